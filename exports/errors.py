"""Errors of the export stage."""

from stitchboard.errors import StitchboardError


class ExportError(StitchboardError):
    """An export cannot be made or read; the message says what and where."""
