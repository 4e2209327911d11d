"""The write boundary: what the ingest path needs from a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Sink(Protocol):
    """Makes rows durable. Raises ``StoreUnavailable`` when it cannot."""

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None: ...
