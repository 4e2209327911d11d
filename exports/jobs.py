"""Export jobs of a running server: a bundle is written in a thread, with its progress.

Jobs live in the process (a restart forgets them; their bundles stay on disk
in ``exports_dir``). Each job belongs to the user who started it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exports.bundle import Selection, write_bundle
from exports.signing import load_or_create_key
from stitchboard.audit import AuditEntry
from stitchboard.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    owner: str
    selection: Selection
    path: Path
    created: str
    status: str = "running"  # running, done, failed
    transactions: int = 0
    error: str | None = None
    manifest_sha256: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id,
                "status": self.status,
                "selection": self.selection.describe(),
                "created": self.created,
                "transactions": self.transactions,
                "error": self.error,
                "download": f"/api/v1/exports/{self.id}/bundle" if self.status == "done" else None,
            }


def audit_targets(job_id: str, selection: Selection, pseudonymize: Any) -> tuple[str, ...]:
    """The job, the exported transaction (by id) or the search key (as its pseudonym)."""
    targets = [job_id]
    for name, value in selection.describe().items():
        if name == "transaction_id":
            targets.append(value)
        elif name == "key":
            targets.append(f"key:{pseudonymize(value)}")
        else:
            targets.append(f"{name}={value}")
    return tuple(targets)


class Jobs:
    def __init__(self, runtime: Runtime, audit: Any = None):
        self.runtime = runtime
        self.audit = audit  # callable(AuditEntry) or None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, selection: Selection, owner: str, role: str, source: str) -> Job:
        directory = self.runtime.settings.exports_dir
        directory.mkdir(parents=True, exist_ok=True)
        job_id = secrets.token_hex(8)
        job = Job(
            job_id,
            owner,
            selection,
            directory / f"stitchboard-export-{job_id}.zip",
            dt.datetime.now(dt.UTC).isoformat(),
        )
        with self._lock:
            self._jobs[job_id] = job
        thread = threading.Thread(
            target=self._run, args=(job, role, source), name=f"export-{job_id}", daemon=True
        )
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, role: str, source: str) -> None:
        runtime = self.runtime

        def progress(count: int) -> None:
            with job._lock:
                job.transactions = count

        try:
            key = load_or_create_key(runtime.settings.export_key_file)
            manifest = write_bundle(
                runtime.store,
                runtime.config,
                runtime.settings.config,
                runtime.pseudonymize,
                job.selection,
                job.path,
                job.owner,
                key,
                progress,
            )
            with job._lock:
                job.status, job.transactions = "done", manifest["transactions"]
            outcome = "ok"
        except Exception as exc:  # noqa: BLE001 - a failed job reports why, the server goes on
            log.exception("export %s failed", job.id)
            with job._lock:
                job.status, job.error = "failed", str(exc)
            outcome = "failed"
        if self.audit is not None:
            targets = audit_targets(job.id, job.selection, runtime.pseudonymize)
            self.audit(AuditEntry(job.owner, role, "export.written", targets, source, outcome))
