"""Importing HL7, JSON Lines and CSV message logs (``stitchboard import``), without the CLI.

With the embedded store the running server owns the data directory, so when a
server answers on the console port the files are sent to it (``POST
/api/v1/messages``); otherwise the store is opened directly. Either way each
chunk of records and the file's checkpoint become durable together, so an
interrupted import resumes where it stopped (``--restart`` starts over; event
ids are deterministic, so nothing is stored twice either way).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from rich.progress import Progress

from collector.files import Record, csv_header, detect_format, judge, records
from collector.import_state import add_checkpoint, file_id, resume_offset
from collector.intake import Intake, batch_of
from collector.mllp import frame
from stitchboard.cli_options import server_headers
from stitchboard.errors import StitchboardError
from stitchboard.runtime import Runtime
from stitchboard.settings import Settings
from stitchboard.writer import Batch

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


class ImportTarget(Protocol):
    """Where imported records go: the store itself, or a running server."""

    label: str

    def resume_offset(self, fid: str) -> int: ...

    def send(
        self, chunk: list[Record], fmt: str, header: bytes, report: FileReport, fid: str, path: Path
    ) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class DirectTarget:
    """Writes through a local runtime (the store is not owned by a server)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.intake = Intake(self.runtime.config, self.runtime.pseudonymize)
        self.delimiter = self.runtime.config.messages.logs.csv_delimiter
        self._in_flight: list[Future[None]] = []
        self.label = f"store {self.runtime.store.display_url}"

    def resume_offset(self, fid: str) -> int:
        return resume_offset(self.runtime.store, fid)

    def send(
        self, chunk: list[Record], fmt: str, header: bytes, report: FileReport, fid: str, path: Path
    ) -> None:
        source, dl_source = path.name, f"file:{path.name}"
        outcomes = [judge(self.intake, r, source, dl_source) for r in chunk]
        batch = batch_of(outcomes, Batch())
        add_checkpoint(batch, fid, path.name, chunk[-1].end, len(chunk))
        for outcome in outcomes:
            report.events += len(outcome.events)
            if outcome.dead_letter is not None:
                report.rejected += 1
                report.reasons[outcome.reason] += 1
        # Parse the next chunk while the writer inserts this one; two in flight at most.
        self._in_flight.append(self._submit(batch))
        if len(self._in_flight) > 1:
            self._in_flight.pop(0).result()

    def _submit(self, batch: Batch) -> Future[None]:
        from stitchboard.errors import Overloaded

        while True:
            try:
                return self.runtime.writer.submit(batch)
            except Overloaded:
                time.sleep(0.05)

    def flush(self) -> None:
        while self._in_flight:
            self._in_flight.pop(0).result()

    def close(self) -> None:
        self.flush()
        self.runtime.close()


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
        for chunk in _chunks(records(stream, fmt, start, delimiter), chunk_size):
            target.send(chunk, fmt, header, report, fid, path)
            report.records += len(chunk)
            if progress is not None and task is not None:
                progress.update(task, completed=chunk[-1].end)
    target.flush()
    if progress is not None and task is not None:
        progress.update(task, completed=size)
    return report
