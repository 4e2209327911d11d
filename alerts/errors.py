"""Errors of the alerts stage; the API maps them to 400/404."""

from __future__ import annotations


class AlertsError(Exception):
    """Base of every error this stage raises on purpose."""


class BadSilence(AlertsError, ValueError):
    """A silence that cannot be created: no matchers, no author, bad times."""


class SilenceNotFound(AlertsError, KeyError):
    """No silence with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "silence not found"


class AlertNotFound(AlertsError, KeyError):
    """No (unresolved) alert with that fingerprint."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "alert not found"


class ChannelError(AlertsError):
    """A channel that cannot be used (missing secret, unknown name)."""
