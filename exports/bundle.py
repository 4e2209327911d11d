"""Writing an export bundle: a zip an auditor can check later, file by file.

The bundle holds ``transactions.jsonl`` (each transaction with its steps,
verdicts, deadlines and hops), ``events.jsonl`` (every hop with all its stored
attributes), ``spans.jsonl`` and ``logs.jsonl`` (the stored OpenTelemetry rows
of the hops' traces), ``audit.jsonl`` (who viewed or changed these
transactions), ``messages.jsonl`` and ``dead_letters.jsonl`` (the masked
message content the store keeps; see ``exports.messages``), ``slas.yaml``
(the file at export time) and ``slas-versions/<sha256>.yaml`` (every version
the server loaded while these transactions were judged), ``report.html`` (a
readable timeline), ``manifest.json`` (every file's SHA-256 and size, the
selection, the time, the exporter, the server version, the key fingerprint) and
``manifest.sig`` (Ed25519 over ``manifest.json``).

Transactions are read a page at a time and written as they come, so memory is
bounded by one page whatever the size of the export.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from correlator import (
    FLAGS,
    STATUSES,
    BadQuery,
    StoreTransactions,
    TransactionFilter,
    decode_cursor,
)
from exports.errors import ExportError
from exports.messages import related_dead_letters, stored_message
from exports.signing import fingerprint, public_pem, sign
from stitchboard import __version__
from stitchboard.config import SlasConfig
from stitchboard.config_history import versions_in_force
from stitchboard.store import Store

PAGE = 500
DATA_FILES = (
    "transactions.jsonl",
    "events.jsonl",
    "spans.jsonl",
    "logs.jsonl",
    "audit.jsonl",
    "messages.jsonl",
    "dead_letters.jsonl",
    "report.html",
)
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "signing-key.pub.pem"


@dataclass(frozen=True)
class Selection:
    """What to export: one transaction, a key search, or a filter."""

    transaction_id: str | None = None
    key: str | None = None
    workflow: str | None = None
    facility: str | None = None
    since: str | None = None  # ISO 8601, on the start time
    until: str | None = None
    status: str | None = None  # a transaction status (in_progress, late, overdue, ...)
    flag: str | None = None  # a conformance flag (missing_step, ...)

    def describe(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


Progress = Callable[[int], None]


class _Hashed:
    """A zip member being written, with its SHA-256 and size kept as it goes."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)

    def line(self, obj: Any) -> None:
        self.write(json.dumps(obj, default=str, ensure_ascii=False).encode() + b"\n")


def _parse(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{name}: not an ISO 8601 time: {text!r}") from None
    return int((t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp() * 1e9)


def check_selection(selection: Selection, config: SlasConfig) -> None:
    """Raise ExportError naming every problem of a selection at once."""
    problems = []
    filters = (
        selection.key,
        selection.workflow,
        selection.facility,
        selection.status,
        selection.flag,
    )
    if selection.transaction_id is not None:
        if not selection.transaction_id.isalnum() or len(selection.transaction_id) > 64:
            problems.append(f"transaction_id: bad transaction id {selection.transaction_id!r}")
        if any(filters) or selection.since or selection.until:
            problems.append("transaction_id selects one transaction: give no filter with it")
    known = [w.name for w in config.workflows]
    if selection.workflow and selection.workflow not in known:
        problems.append(f"workflow: unknown {selection.workflow!r}; known: {', '.join(known)}")
    if selection.status and selection.status not in STATUSES:
        problems.append(f"status: unknown {selection.status!r}; known: {', '.join(STATUSES)}")
    if selection.flag and selection.flag not in FLAGS:
        problems.append(f"flag: unknown {selection.flag!r}; known: {', '.join(FLAGS)}")
    for name in ("since", "until"):
        try:
            _parse(getattr(selection, name), name)
        except ExportError as exc:
            problems.append(str(exc))
    if problems:
        raise ExportError("; ".join(problems))


def transaction_pages(
    store: Store,
    selection: Selection,
    config: SlasConfig,
    pseudonymize: Callable[[str], str],
    now_ns: int,
) -> Iterator[list[dict[str, Any]]]:
    """The selected transactions in full, a page at a time, newest first."""
    check_selection(selection, config)
    reader = StoreTransactions(store, config)
    if selection.transaction_id:
        tx = reader.get_transaction(selection.transaction_id, now_ns)
        if tx is None:
            raise ExportError(f"no transaction {selection.transaction_id!r}")
        yield [tx]
        return
    keys: tuple[str, ...] = ()
    if selection.key:
        keys = tuple(dict.fromkeys((selection.key, pseudonymize(selection.key))))
    where = TransactionFilter(
        workflow=selection.workflow,
        facility=config.facility_index().get(selection.facility or "", selection.facility),
        status=selection.status,
        flag=selection.flag,
        key_values=keys,
        since=_parse(selection.since, "since"),
        until=_parse(selection.until, "until"),
    )
    while True:
        try:
            page, cursor = reader.list_transactions(where, PAGE, now_ns)
        except BadQuery as exc:
            raise ExportError(str(exc)) from None
        yield reader.get_transactions([t["id"] for t in page], now_ns)
        if cursor is None:
            return
        where = dataclasses.replace(where, after=decode_cursor(cursor))


def _rows(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return store.dicts(sql, params)


def _report_head(selection: Selection, exporter: str, when: str) -> bytes:
    what = ", ".join(f"{k}={v}" for k, v in selection.describe().items()) or "everything"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Stitchboard export</title><style>body{font-family:system-ui,sans-serif;"
        "margin:2rem;color:#1f2933}table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
        "td,th{border:1px solid #d0d5dd;padding:.2rem .5rem;text-align:left}</style></head>"
        f"<body><h1>Stitchboard export</h1><p>Selection: {html.escape(what)}<br>"
        f"Exported by {html.escape(exporter)} at {html.escape(when)}; "
        f"Stitchboard {html.escape(__version__)}</p>"
    ).encode()


def _report_transaction(tx: dict[str, Any]) -> bytes:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(ev['time']))}</td><td>{e(str(ev['step']))}</td>"
        f"<td>{e(str(ev['system']))}</td><td>{e(str(ev['operation']))}</td>"
        f"<td>{e(str(ev['status']))}</td></tr>"
        for ev in tx.get("events", [])
    )
    missed = ", ".join(f"{m['step']} ({m['level']})" for m in tx.get("missed", [])) or "none"
    return (
        f"<h2>{e(tx['id'])}: {e(tx['workflow'])} at {e(tx['facility'])}</h2>"
        f"<p>Status {e(str(tx['status']))}; started {e(str(tx['start_time']))}; "
        f"deadlines missed: {e(missed)}</p>"
        "<table><tr><th>time</th><th>step</th><th>system</th><th>operation</th>"
        f"<th>status</th></tr>{rows}</table>"
    ).encode()


def write_bundle(
    store: Store,
    config: SlasConfig,
    config_path: Path,
    pseudonymize: Callable[[str], str],
    selection: Selection,
    out_path: Path,
    exporter: str,
    key: Ed25519PrivateKey,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write the bundle to ``out_path`` and return its manifest."""
    now = now or dt.datetime.now(dt.UTC)
    when = now.isoformat()
    now_ns = int(now.timestamp() * 1e9)
    started = time.monotonic()
    count = 0
    span = _Span()
    files: dict[str, dict[str, Any]] = {}
    tmp = out_path.with_name(out_path.name + ".part")
    # zip members are written one at a time: each file is streamed to disk first.
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as scratch:
        handles = {name: open(Path(scratch) / name, "wb") for name in DATA_FILES}  # noqa: SIM115
        try:
            out = {name: _Hashed(h) for name, h in handles.items()}
            out["report.html"].write(_report_head(selection, exporter, when))
            letters: set[str] = set()  # dead letters written, across pages
            for page in transaction_pages(store, selection, config, pseudonymize, now_ns):
                _write_page(store, page, out, letters)
                count += len(page)
                for tx in page:
                    span.add(tx)
                if progress is not None:
                    progress(count)
            out["report.html"].write(f"<p>{count} transactions.</p></body></html>".encode())
        finally:
            for handle in handles.values():
                handle.close()
        zf = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        with zf:
            for name, h in out.items():
                zf.write(Path(scratch) / name, name)
                files[name] = {"sha256": h.sha.hexdigest(), "bytes": h.size}
            slas = config_path.read_bytes()
            zf.writestr("slas.yaml", slas)
            files["slas.yaml"] = {"sha256": hashlib.sha256(slas).hexdigest(), "bytes": len(slas)}
            versions = []
            if span.first is not None:
                # The slas.yaml versions in force while these transactions were judged.
                for v in versions_in_force(store, span.first, now):
                    name = f"slas-versions/{v.sha256}.yaml"
                    zf.writestr(name, v.content)
                    digest = hashlib.sha256(v.content).hexdigest()
                    files[name] = {"sha256": digest, "bytes": len(v.content)}
                    versions.append({"sha256": v.sha256, "in_force_from": v.loaded_at.isoformat()})
            public = public_pem(key.public_key())
            zf.writestr(PUBLIC_KEY, public)
            files[PUBLIC_KEY] = {"sha256": hashlib.sha256(public).hexdigest(), "bytes": len(public)}
            manifest = {
                "format": "stitchboard-export/1",
                "created": when,
                "exporter": exporter,
                "server_version": __version__,
                "selection": selection.describe(),
                "transactions": count,
                "slas_sha256": files["slas.yaml"]["sha256"],
                "slas_versions": versions,
                "signing_key": fingerprint(key.public_key()),
                "seconds": round(time.monotonic() - started, 3),
                "files": files,
            }
            manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
            zf.writestr(MANIFEST, manifest_bytes)
            zf.writestr(SIGNATURE, sign(key, manifest_bytes) + "\n")
    tmp.replace(out_path)
    return manifest


class _Span:
    """The earliest start among the exported transactions."""

    def __init__(self) -> None:
        self.first: dt.datetime | None = None

    def add(self, tx: dict[str, Any]) -> None:
        start = tx.get("start_time")
        if start:
            t = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            self.first = t if self.first is None or t < self.first else self.first


def _write_page(
    store: Store, page: Sequence[dict[str, Any]], out: dict[str, _Hashed], letters: set[str]
) -> None:
    ids = [t["id"] for t in page]
    event_ids = [e["event_id"] for t in page for e in t.get("events", [])]
    traces = sorted({e["trace_id"] for t in page for e in t.get("events", []) if e["trace_id"]})
    for tx in page:
        out["transactions.jsonl"].line(tx)
        out["report.html"].write(_report_transaction(tx))
    if event_ids:
        for row in _rows(
            store,
            f"SELECT * FROM {store.table('events')} FINAL"
            " WHERE event_id IN {ids:Array(String)} ORDER BY event_time, event_id",
            {"ids": event_ids},
        ):
            out["events.jsonl"].line(row)
            message = stored_message(row)
            if message is not None:
                out["messages.jsonl"].line(message)
    for letter in related_dead_letters(store, page, letters):
        out["dead_letters.jsonl"].line(letter)
    if traces:
        for table, name in (("otel_traces", "spans.jsonl"), ("otel_logs", "logs.jsonl")):
            for row in _rows(
                store,
                f"SELECT * FROM {store.table(table)} FINAL"
                " WHERE TraceId IN {ids:Array(String)} ORDER BY Timestamp",
                {"ids": traces},
            ):
                out[name].line(row)
    for row in _rows(
        store,
        f"SELECT * FROM {store.table('audit_log')}"
        " WHERE hasAny(targets, {ids:Array(String)}) ORDER BY chain, seq",
        {"ids": ids},
    ):
        out["audit.jsonl"].line(row)
