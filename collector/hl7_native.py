"""HL7 messages turned into ``events`` rows by the ClickHouse engine itself (embedded store).

The raw messages of a group are streamed through named pipes (``collector.message_pipes``:
RowBinary ``idx UInt32, raw String``) into one ``INSERT … SELECT``
(``collector.hl7.sql``), planned once per group, which parses them into a Memory
landing table while the caller still reads and splits the later ones: the events of
every message the SQL is certain about, a marker row for each of the others. The
events are copied into ``events``, the markers read back: those messages (rejections,
escapes, other delimiters, ...) are handed back by index for the Python path
(``collector.intake``), which stays the reference and writes every dead letter.
``tests/store/test_hl7_native.py`` checks that both paths write the same rows.

Only for the embedded store: ``file()`` reads the engine's local files, and a
ClickHouse server does not share this machine's temporary directory.

Why a landing table rather than ``events`` straight from the parse: measured on 100,000
messages, the copy out of Memory is not where the time goes (the parse straight into
``events`` took as much CPU as parse + copy); the MergeTree write is, and above all its
``optimize_on_insert`` (``COPY_SETTINGS``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.hl7.extract import Hl7Extractor
from collector.hl7.sql import LANDING_COLUMNS, SETTINGS, Hl7Statements, statements, unsupported
from collector.message_pipes import MessagePipes
from stitchboard.config import SlasConfig
from stitchboard.events import EVENT_COLUMNS
from stitchboard.phi import Pseudonymizer
from stitchboard.store import Store

_TABLES = itertools.count(1)
_LANDING = "_hl7_landing_"  # + process id + "_" + number: a Memory table per NativeHl7
# The engine reads the pipes as streams ('read': no mmap, no pread, no size known ahead).
READ_SETTINGS = {"storage_file_read_method": "read"}
# The copy into ``events`` skips ``optimize_on_insert``: collapsing the ReplacingMergeTree's
# duplicate event ids inside the inserted block made the copy of 150,000 events take
# 1.3-1.6 s of CPU instead of 0.55 s. Copies of one event inside a chunk are then collapsed
# by the merges, as copies across chunks and imports always were (readers use FINAL).
COPY_SETTINGS = {"optimize_on_insert": 0}


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
        scratch: Path | None = None,
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
        self._dir = Path()
        if not self.reason:
            self._dir, self.reason = _pipe_directory(scratch)
        if self._dir != Path():
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._sql: Hl7Statements | None = (
            None if self.reason else statements(extractor, self.streams)
        )
        self._landing = store.table(f"{_LANDING}{os.getpid()}_{next(_TABLES)}")
        self._events = store.table("events")
        self._ready = False

    @property
    def enabled(self) -> bool:
        return not self.reason

    def load(self, messages: Sequence[bytes], source: str, now: int) -> Loaded:
        """Insert the events of every message the engine can take (``observed_time`` ``now``,
        ns); the others come back by index, untouched."""
        if not messages:
            return Loaded(0, 0, ())
        size = -(-len(messages) // self.streams)  # a batch per pipe, so each stream parses
        batches = [messages[n : n + size] for n in range(0, len(messages), size)]
        return self.load_batches(batches, source, now)

    def load_batches(self, batches: Iterable[Sequence[bytes]], source: str, now: int) -> Loaded:
        """``load`` of the messages of ``batches`` in order (indexes run on across batches),
        in one statement: the batches are taken while the engine parses the earlier ones.
        An error raised by ``batches`` is raised here, before any event is written."""
        if self._sql is None or self._pads is None:
            count = sum(len(batch) for batch in batches)
            return Loaded(0, 0, tuple(range(count)))
        if not self._ready:
            self._drop_stale()
            self.store.command(f"CREATE TABLE {self._landing} ({LANDING_COLUMNS}) ENGINE = Memory")
            self._ready = True
        store = self.store
        store.command(f"TRUNCATE TABLE {self._landing}")
        with MessagePipes(batches, self.streams, self._dir) as pipes:
            params: dict[str, object] = {
                "source": source,
                "now": now,
                "ipad": self._pads[0],
                "opad": self._pads[1],
            }
            params.update({f"path_{n}": str(path) for n, path in enumerate(pipes.paths)})
            store.command(
                f"INSERT INTO {self._landing} {self._sql.parse}",
                parameters=params,
                settings={**SETTINGS, **READ_SETTINGS, "max_insert_threads": self.streams},
            )
        if pipes.error is not None:
            store.command(f"TRUNCATE TABLE {self._landing}")
            raise pipes.error
        count = pipes.count
        if not count:
            return Loaded(0, 0, ())
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
                settings=COPY_SETTINGS,
            )
        store.command(f"TRUNCATE TABLE {self._landing}")
        return Loaded(int(events), count - len(rest), tuple(int(i) for i in rest))

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


def _pipe_directory(scratch: Path | None) -> tuple[Path, str]:
    """A private directory for the pipes under ``scratch`` (the system's temporary
    directory by default), checked by making one pipe there; ``Path()`` and the reason
    when that fails (no such directory, a filesystem without named pipes): the import
    then takes the Python path."""
    try:
        where = Path(tempfile.mkdtemp(prefix="stitchboard-hl7-", dir=scratch))
    except OSError as exc:
        return Path(), f"no directory for named pipes in {scratch or tempfile.gettempdir()}: {exc}"
    try:
        os.mkfifo(where / "probe", 0o600)
        os.unlink(where / "probe")
    except OSError as exc:
        shutil.rmtree(where, ignore_errors=True)
        return Path(), f"named pipes cannot be made in {where.parent}: {exc}"
    return where, ""
