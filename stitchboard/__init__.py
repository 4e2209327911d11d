"""Stitchboard kernel: settings, the slas.yaml model, the ClickHouse store, the server and CLI."""

__version__ = "0.1.0"
