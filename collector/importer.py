"""Importing HL7, JSON Lines and CSV message logs (``stitchboard import``), without the CLI.

With the embedded store the running server owns the data directory, so when a
server answers on the console port the files are sent to it (``POST
/api/v1/messages``); otherwise the store is opened directly. Either way each
chunk of records and the file's checkpoint become durable together, so an
interrupted import resumes where it stopped (``--restart`` starts over; event
ids are deterministic, so nothing is stored twice either way).
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from rich.progress import Progress

from collector.files import Record, csv_header, detect_format, records
from collector.hl7_native import NativeHl7
from collector.import_pool import JudgePool, judge_chunk
from collector.import_state import add_checkpoint, file_id, resume_offset
from collector.mllp import frame
from stitchboard.cli_options import server_headers
from stitchboard.errors import StitchboardError
from stitchboard.events import DEAD_LETTER_COLUMNS, EVENT_COLUMNS
from stitchboard.runtime import Runtime
from stitchboard.settings import Settings
from stitchboard.writer import Batch

# Records per engine statement at least: planning the statement costs half a second
# whatever the group, so the engine path parses large ones (streamed: the file is split
# while the engine parses, so a group's size costs no waiting).
ENGINE_CHUNK = 200_000

CONTENT_TYPES = {
    "hl7": "x-application/hl7-v2+er7",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
}


@dataclass
class FileReport:
    name: str
    format: str
    resumed_at: int = 0
    records: int = 0
    events: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    engine: int = 0  # HL7 messages the engine parsed (the others: Python)


class ImportTarget(Protocol):
    """Where imported records go: the store itself, or a running server."""

    label: str

    def resume_offset(self, fid: str) -> int: ...

    def send_all(
        self,
        chunks: Iterable[list[Record]],
        fmt: str,
        header: bytes,
        report: FileReport,
        fid: str,
        path: Path,
    ) -> Iterator[int]:
        """Send every chunk; yields the byte offset reached after each (for progress)."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class DirectTarget:
    """Writes through a local runtime (the store is not owned by a server).

    Chunks are judged by a ``JudgePool`` (``workers`` processes) while the writer
    inserts earlier ones. A file's checkpoint only names records already on disk:
    chunk N's checkpoint is taken once chunk N's insert has returned and the store
    has been synced (``sync``: ``syncfs`` of the embedded store's directory; a
    ClickHouse server keeps its own durability), and travels with the next batch
    built. A crash re-imports at most the chunks after the last checkpoint, and
    their deterministic event ids keep them single.
    """

    def __init__(
        self,
        runtime: Runtime,
        workers: int = 1,
        sync: Callable[[], None] | None = None,
        engine: bool = True,
        engine_chunk: int = ENGINE_CHUNK,
    ):
        self.runtime = runtime
        self.pool = JudgePool(runtime.config, runtime.pseudonymize, workers)
        # HL7 parsed by the engine where it can (embedded store); None: all in Python.
        native = NativeHl7(runtime.config, runtime.pseudonymize, runtime.store) if engine else None
        self.native = native if native is not None and native.enabled else None
        # Why the engine path is off though asked for ("": on, or not asked for).
        self.engine_off = native.reason if native is not None else ""
        self.engine_chunk = engine_chunk
        self.intake = self.pool.intake
        self.delimiter = self.runtime.config.messages.logs.csv_delimiter
        self.sync = sync or (lambda: sync_store(runtime.store.path))
        self._in_flight: deque[tuple[Future[None], tuple[str, str, int, int]]] = deque()
        self._durable: tuple[str, str, int, int] | None = None  # checkpoint not yet written
        self.label = f"store {self.runtime.store.display_url}"

    def resume_offset(self, fid: str) -> int:
        return resume_offset(self.runtime.store, fid)

    def send_all(
        self,
        chunks: Iterable[list[Record]],
        fmt: str,
        header: bytes,
        report: FileReport,
        fid: str,
        path: Path,
    ) -> Iterator[int]:
        if fmt == "hl7" and self.native is not None:
            yield from self._send_native(self.native, chunks, report, fid, path)
            return
        for judged in self.pool.judge(chunks, path.name, f"file:{path.name}"):
            batch = Batch()
            batch.add("events", EVENT_COLUMNS, judged.event_rows)
            batch.add("dead_letters", DEAD_LETTER_COLUMNS, judged.letter_rows)
            if self._durable is not None:
                add_checkpoint(batch, *self._durable)
                self._durable = None
            report.events += len(judged.event_rows)
            report.rejected += judged.rejected
            report.reasons.update(judged.reasons)
            # Judge the next chunk while the writer inserts this one; two in flight at most.
            self._in_flight.append(
                (self._submit(batch), (fid, path.name, judged.end, judged.records))
            )
            if len(self._in_flight) > 1:
                self._settle()
            yield judged.end

    def _send_native(
        self,
        native: NativeHl7,
        chunks: Iterable[list[Record]],
        report: FileReport,
        fid: str,
        path: Path,
    ) -> Iterator[int]:
        """HL7 groups parsed by the engine; what it leaves is judged here, in Python.

        Each group of at least ``engine_chunk`` records: one engine statement fed while the
        file is still being split, the Python rows (with the previous group's checkpoint),
        one sync; this group's checkpoint travels with the next one.
        """
        self.flush()
        letters = f"file:{path.name}"
        source = iter(chunks)
        while (first := next(source, None)) is not None:
            group: list[Record] = []  # every record of the group, in order
            usable: list[Record] = []  # those sent to the engine: index = the engine's idx
            batches = _group_batches(first, source, self.engine_chunk, group, usable)
            loaded = native.load_batches(batches, path.name, time.time_ns())
            rest = [usable[i] for i in loaded.rest] + [r for r in group if r.problem]
            batch = Batch()
            report.events += loaded.events
            report.engine += loaded.messages
            if rest:
                judged = judge_chunk(self.intake, rest, path.name, letters)
                batch.add("events", EVENT_COLUMNS, judged.event_rows)
                batch.add("dead_letters", DEAD_LETTER_COLUMNS, judged.letter_rows)
                report.events += len(judged.event_rows)
                report.rejected += judged.rejected
                report.reasons.update(judged.reasons)
            if self._durable is not None:
                add_checkpoint(batch, *self._durable)
            if batch.tables:
                self._submit(batch).result()
            self.sync()
            self._durable = (fid, path.name, group[-1].end, len(group))
            yield group[-1].end

    def _settle(self) -> None:
        """Wait for the oldest insert, make it durable; its checkpoint goes with the next batch."""
        future, checkpoint = self._in_flight.popleft()
        future.result()
        self.sync()
        self._durable = checkpoint

    def _submit(self, batch: Batch) -> Future[None]:
        from stitchboard.errors import Overloaded

        while True:
            try:
                return self.runtime.writer.submit(batch)
            except Overloaded:
                time.sleep(0.05)

    def flush(self) -> None:
        while self._in_flight:
            self._settle()
        if self._durable is not None:
            batch = Batch()
            add_checkpoint(batch, *self._durable)
            self._durable = None
            self._submit(batch).result()
            self.sync()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.pool.close()
            if self.native is not None:
                self.native.close()
            self.runtime.close()


def _group_batches(
    first: list[Record],
    chunks: Iterator[list[Record]],
    minimum: int,
    group: list[Record],
    usable: list[Record],
) -> Iterator[list[bytes]]:
    """The messages of ``first`` and the chunks after it, one list per chunk, until the
    group holds ``minimum`` records; each record goes to ``group`` as it is taken, and to
    ``usable`` when it is sent (a record with a ``problem`` is not)."""
    chunk: list[Record] | None = first
    while chunk is not None:
        group.extend(chunk)
        taken = [r for r in chunk if not r.problem]
        usable.extend(taken)
        yield [r.data for r in taken]
        if len(group) >= minimum:
            return
        chunk = next(chunks, None)


def sync_store(path: Path | None) -> None:
    """Flush the embedded store's files to disk (``syncfs`` of its file system).

    ClickHouse writes a part without fsync by default (``fsync_after_insert`` 0), so
    an insert that returned may still be in the page cache. No-op for a server.
    """
    if path is None:
        return
    syncfs = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


class ServerTarget:
    """Sends chunks to a running server's ``POST /api/v1/messages``."""

    def __init__(self, url: str, retries: int = 30):
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=120, headers=server_headers())
        self.retries = retries
        self.label = f"server {self.url}"

    def resume_offset(self, fid: str) -> int:
        response = self.client.get(f"{self.url}/api/v1/messages/imports/{fid}")
        response.raise_for_status()
        return int(response.json()["offset"])

    def send_all(
        self,
        chunks: Iterable[list[Record]],
        fmt: str,
        header: bytes,
        report: FileReport,
        fid: str,
        path: Path,
    ) -> Iterator[int]:
        for chunk in chunks:
            self.send(chunk, fmt, header, report, fid, path)
            yield chunk[-1].end

    def send(
        self, chunk: list[Record], fmt: str, header: bytes, report: FileReport, fid: str, path: Path
    ) -> None:
        if fmt == "hl7":
            body = b"".join(frame(r.raw) for r in chunk)
        elif fmt == "jsonl":
            body = b"\n".join(r.raw for r in chunk)
        else:
            body = header + b"".join(r.raw for r in chunk)
        headers = {
            "Content-Type": CONTENT_TYPES[fmt],
            "X-Stitchboard-Source": f"file:{path.name}",
            "X-Stitchboard-Import-Id": fid,
            "X-Stitchboard-Import-Offset": str(chunk[-1].end),
            "X-Stitchboard-Import-Name": path.name,
        }
        for _ in range(self.retries):
            response = self.client.post(
                f"{self.url}/api/v1/messages", content=body, headers=headers
            )
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code != 200:
                raise StitchboardError(f"server answered {response.status_code}: {response.text}")
            result = response.json()
            report.events += result["events"]
            report.rejected += result["rejected"]
            for rejection in result["rejections"]:
                report.reasons[rejection["reason"]] += 1
            return
        raise StitchboardError(
            "the server stayed overloaded or unavailable; run import again later (it resumes)"
        )

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


def running_server(settings: Settings) -> str | None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{host}:{settings.port}"
    try:
        if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code in (200, 503):
            return url
    except httpx.HTTPError:
        return None
    return None


def _chunks(items: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _counted(chunks: Iterator[list[Record]], report: FileReport) -> Iterator[list[Record]]:
    for chunk in chunks:
        report.records += len(chunk)
        yield chunk


def import_file(
    target: ImportTarget,
    path: Path,
    fmt: str,
    restart: bool,
    chunk_size: int,
    progress: Progress | None = None,
    delimiter: str = ",",
) -> FileReport:
    fmt = detect_format(path) if fmt == "auto" else fmt
    report = FileReport(path.name, fmt)
    fid = file_id(path)
    start = 0 if restart else target.resume_offset(fid)
    report.resumed_at = start
    size = path.stat().st_size
    task = progress.add_task(path.name, total=size, completed=start) if progress else None
    with path.open("rb") as stream:
        header = csv_header(stream) if fmt == "csv" else b""
        chunks = _counted(_chunks(records(stream, fmt, start, delimiter), chunk_size), report)
        for end in target.send_all(chunks, fmt, header, report, fid, path):
            if progress is not None and task is not None:
                progress.update(task, completed=end)
    target.flush()
    if progress is not None and task is not None:
        progress.update(task, completed=size)
    return report
