"""Errors shared by every stage.

The hierarchy is small on purpose: callers at an edge (HTTP, gRPC, MLLP, CLI)
map each class to one response, and nothing else should escape a stage.
"""


class StitchboardError(Exception):
    """Base of every error Stitchboard raises on purpose."""


class ConfigError(StitchboardError):
    """A configuration file or setting is invalid; ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class PortInUse(StitchboardError):
    """A listening port is taken by another process; the message names the flag to change it."""


class StoreUnavailable(StitchboardError):
    """ClickHouse cannot be reached or refused a write; the caller may retry later."""


class Overloaded(StitchboardError):
    """The ingest buffer is full; the caller should retry after a pause."""

    def __init__(self, message: str = "ingest buffer full", retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__(message)


class InvalidInput(StitchboardError):
    """A request or record cannot be used; the message says what and where."""
