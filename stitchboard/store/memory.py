"""An in-memory Sink for tests of the ingest path, with a switch to simulate an outage."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from stitchboard.errors import StoreUnavailable


class MemorySink:
    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, object]]] = {}
        self.down = False
        self.inserts = 0
        self._lock = threading.Lock()

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        with self._lock:
            if self.down:
                raise StoreUnavailable("memory sink is down")
            self.inserts += 1
            target = self.tables.setdefault(table, [])
            target.extend(dict(zip(columns, row, strict=True)) for row in rows)
