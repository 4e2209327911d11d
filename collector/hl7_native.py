"""HL7 messages turned into ``events`` rows by the ClickHouse engine itself (embedded store).

The raw messages of a chunk are written to one RowBinary file (``idx UInt32, raw
String``); one ``INSERT … SELECT`` (``collector.hl7.sql``) parses them into a Memory
landing table: the events of every message the SQL is certain about, a marker row
for each of the others. The events are copied into ``events``, the markers read
back: those messages (rejections, escapes, other delimiters, ...) are handed back
by index for the Python path
(``collector.intake``), which stays the reference and writes every dead letter.
``tests/store/test_hl7_native.py`` checks that both paths write the same rows.

Only for the embedded store: ``file()`` reads the engine's local files, and a
ClickHouse server does not share this machine's temporary directory.
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.hl7.extract import Hl7Extractor
from collector.hl7.sql import LANDING_COLUMNS, SETTINGS, Hl7Statements, statements, unsupported
from collector.rowbinary import varint
from stitchboard.config import SlasConfig
from stitchboard.events import EVENT_COLUMNS
from stitchboard.phi import Pseudonymizer
from stitchboard.store import Store

_INDEX = struct.Struct("<I")
_TABLES = itertools.count(1)
_LANDING = "_hl7_landing_"  # + process id + "_" + number: a Memory table per NativeHl7
_PER_STREAM = 5_000  # fewer messages than this per stream are not worth another one


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the engine took from one chunk: its events, and the messages it left."""

    events: int
    messages: int
    rest: tuple[int, ...]  # indexes (into the chunk) of the messages for the Python path


class NativeHl7:
    """The engine-side HL7 path for one slas.yaml; ``reason`` says why it is off ("" = on)."""

    def __init__(
        self,
        config: SlasConfig,
        pseudonymize: Callable[[str], str],
        store: Store,
        streams: int | None = None,
    ):
        self.store = store
        self.streams = streams or min(4, os.cpu_count() or 1)
        extractor = Hl7Extractor(config, pseudonymize)
        self.reason = unsupported(extractor)
        if not isinstance(pseudonymize, Pseudonymizer):
            self.reason = "the engine needs the keyed pseudonymizer (its HMAC pads)"
        elif store.path is None:
            self.reason = "the store is a ClickHouse server (the engine reads local files)"
        self._pads = pseudonymize.hmac_pads() if isinstance(pseudonymize, Pseudonymizer) else None
        self._sql: Hl7Statements | None = None if self.reason else statements(extractor)
        self._landing = store.table(f"{_LANDING}{os.getpid()}_{next(_TABLES)}")
        self._events = store.table("events")
        self._ready = False
        self._dir = Path(tempfile.mkdtemp(prefix="stitchboard-hl7-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)

    @property
    def enabled(self) -> bool:
        return not self.reason

    def load(self, messages: Sequence[bytes], source: str, now: int) -> Loaded:
        """Insert the events of every message the engine can take (``observed_time`` ``now``,
        ns); the others come back by index, untouched."""
        if self._sql is None or self._pads is None or not messages:
            return Loaded(0, 0, tuple(range(len(messages))))
        if not self._ready:
            self._drop_stale()
            self.store.command(f"CREATE TABLE {self._landing} ({LANDING_COLUMNS}) ENGINE = Memory")
            self._ready = True
        chunk = Path(tempfile.mkdtemp(prefix="chunk-", dir=self._dir))
        try:
            # One file per stream: the engine parses the files of a glob in parallel.
            streams = max(1, min(self.streams, len(messages) // _PER_STREAM))
            size = -(-len(messages) // streams)
            for n in range(streams):
                part = _row_binary(messages[n * size : (n + 1) * size], n * size)
                (chunk / f"part-{n}.bin").write_bytes(part)
            params = {
                "path": str(chunk / "part-*.bin"),
                "source": source,
                "now": now,
                "ipad": self._pads[0],
                "opad": self._pads[1],
            }
            store = self.store
            store.command(f"TRUNCATE TABLE {self._landing}")
            store.command(
                f"INSERT INTO {self._landing} {self._sql.parse}",
                parameters=params,
                settings={**SETTINGS, "max_insert_threads": streams},
            )
            # A message is left to Python when any of its rows is not ok (its marker row, or
            # a line the SQL cannot be sure about): its other rows are not copied either.
            landing = self._landing
            left = f"(SELECT idx FROM {landing} WHERE ok = 0)"
            rest, events = store.query(
                f"SELECT (SELECT arraySort(groupUniqArray(idx)) FROM {landing} WHERE ok = 0),"
                f" (SELECT count() FROM {landing} WHERE idx NOT IN {left})"
            ).result_rows[0]
            if events:
                columns = ", ".join(EVENT_COLUMNS)
                store.command(
                    f"INSERT INTO {self._events} ({columns})"
                    f" SELECT {columns} FROM {landing} WHERE idx NOT IN {left}",
                    settings={"max_insert_threads": self.streams},
                )
            store.command(f"TRUNCATE TABLE {self._landing}")
            return Loaded(int(events), len(messages) - len(rest), tuple(int(i) for i in rest))
        finally:
            shutil.rmtree(chunk, ignore_errors=True)

    def _drop_stale(self) -> None:
        """Drop landing tables an earlier process left (killed before ``close``): one process
        owns an embedded store, so those of other process ids are nobody's."""
        mine = f"{_LANDING}{os.getpid()}_"
        stale = self.store.rows(
            "SELECT name FROM system.tables WHERE database = {db:String}"
            " AND startsWith(name, {prefix:String}) AND NOT startsWith(name, {mine:String})",
            {"db": self.store.database, "prefix": _LANDING, "mine": mine},
        )
        for (name,) in stale:
            self.store.command(f"DROP TABLE IF EXISTS {self.store.table(name)}")
        self.store.command(f"DROP TABLE IF EXISTS {self._landing}")

    def close(self) -> None:
        if self._ready:
            self.store.command(f"DROP TABLE IF EXISTS {self._landing}")
            self._ready = False


def _row_binary(messages: Sequence[bytes], first: int = 0) -> bytes:
    """RowBinary rows ``(idx UInt32, raw String)``: index, LEB128 length, bytes."""
    pack = _INDEX.pack
    parts: list[bytes] = []
    append = parts.append
    for i, raw in enumerate(messages, first):
        append(pack(i))
        n = len(raw)
        if n < 0x80:
            append(bytes((n,)))
        else:
            append(varint(n))
        append(raw)
    return b"".join(parts)
