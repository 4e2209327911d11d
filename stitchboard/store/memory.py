"""An in-memory Sink for tests of the ingest path, with a switch to simulate an outage."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

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


class OutageSink:
    """Wraps a Sink (the real store too) and refuses every write while ``down`` is set.

    For tests of store outages: the wrapped store stays up for reads, as a ClickHouse
    server that refuses inserts (disk full, too many parts) does.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("the store refuses writes (simulated outage)")

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self._check()
        self.inner.insert(table, columns, rows)

    def command(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """The engine-side OTLP inserter writes with a command."""
        self._check()
        return self.inner.command(sql, parameters=parameters, **kwargs)
