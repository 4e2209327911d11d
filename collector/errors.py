"""Collector errors: what a sender did wrong, mapped to a status at the edge."""

from stitchboard.errors import InvalidInput


class UndecodableBody(InvalidInput):
    """The body is not a valid OTLP request (HTTP 400 / gRPC INVALID_ARGUMENT, never retried)."""


class UnsupportedMediaType(InvalidInput):
    """Content-Type or Content-Encoding the collector does not speak (HTTP 415)."""


class BodyTooLarge(InvalidInput):
    """The (decompressed) body is over the configured limit (HTTP 413)."""
