"""A writer ``Batch`` as spool record bytes, and back.

Rows hold str, int, float, bytes, None, lists, dicts and ``Decimal`` amounts.
The payload is a pickle (protocol 5, the C pickler: a few microseconds for a
message's rows); reading uses the standard library's recipe for restricting
globals, so a spool file can name no class beyond the few value types listed
here: reading one never runs code.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from stitchboard.writer import Batch

FORMAT = 1
_ALLOWED = frozenset(
    {
        ("decimal", "Decimal"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("uuid", "UUID"),
    }
)


class UnreadableRecord(Exception):
    """A spool record that is intact (its checksum holds) but cannot be decoded."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"spool records may not hold {module}.{name}")


def encode_batch(batch: Batch) -> bytes:
    tables = {table: (tuple(cols), rows) for table, (cols, rows) in batch.tables.items()}
    return pickle.dumps((FORMAT, tables, batch.raw), protocol=5)


def decode_batch(payload: bytes) -> Batch:
    try:
        version, tables, raw = _Unpickler(io.BytesIO(payload)).load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the same thing
        raise UnreadableRecord(f"cannot decode spool record: {exc}") from exc
    if version != FORMAT:
        raise UnreadableRecord(f"spool record format {version!r}, expected {FORMAT}")
    return Batch(tables=tables, raw=raw)
