"""The ClickHouse store: client construction, schema migrations, typed inserts and queries."""

from stitchboard.store.client import Store, connect
from stitchboard.store.literals import literal_rows, string_array
from stitchboard.store.memory import MemorySink, OutageSink
from stitchboard.store.sink import Sink

__all__ = [
    "MemorySink",
    "OutageSink",
    "Sink",
    "Store",
    "connect",
    "literal_rows",
    "string_array",
]
