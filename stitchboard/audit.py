"""The audit log: who did what, to which records, from where, and whether it worked.

Rows form hash chains: each row carries the hash of the row before it in its
chain and its own hash over its content and that link, so ``stitchboard audit
verify`` finds a deleted row (a gap in ``seq``), an altered row (its hash no
longer matches) and a reordered or replaced row (its link does not match the
row before). One process appends to one chain (``audit_chain``, default the host
name); several servers on one cluster each keep their own chain.

Search keys may be PHI, so targets that come from a key search are stored as
the key's pseudonym, like the events themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stitchboard.store.ddl import Table

if TYPE_CHECKING:
    from stitchboard.store.client import Store

log = logging.getLogger(__name__)

AUDIT_LOG = Table(
    name="audit_log",
    columns="""\
    chain LowCardinality(String),
    seq UInt64,
    time DateTime64(6, 'UTC'),
    actor String,
    role LowCardinality(String),
    action LowCardinality(String),
    targets Array(String),
    source String,
    outcome LowCardinality(String),
    detail String,
    prev_hash String,
    hash String""",
    engine="MergeTree",
    tail="PARTITION BY toYYYYMM(time)\nORDER BY (chain, seq)",
    shard_key="cityHash64(chain)",
)

GENESIS = "0" * 64
COLUMNS = (
    "chain",
    "seq",
    "time",
    "actor",
    "role",
    "action",
    "targets",
    "source",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class AuditEntry:
    """What happened, before it is placed in a chain."""

    actor: str
    role: str
    action: str
    targets: tuple[str, ...] = ()
    source: str = ""
    outcome: str = "ok"
    detail: str = ""


@dataclass(frozen=True)
class AuditRecord:
    chain: str
    seq: int
    time: dt.datetime
    actor: str
    role: str
    action: str
    targets: tuple[str, ...]
    source: str
    outcome: str
    detail: str
    prev_hash: str
    hash: str

    def as_row(self) -> list[Any]:
        return [getattr(self, c) if c != "targets" else list(self.targets) for c in COLUMNS]

    def as_dict(self) -> dict[str, Any]:
        d = {c: getattr(self, c) for c in COLUMNS}
        d["targets"] = list(self.targets)
        d["time"] = _iso(self.time)
        return d


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(
    prev_hash: str,
    chain: str,
    seq: int,
    time: dt.datetime,
    entry: AuditEntry | AuditRecord,
) -> str:
    """SHA-256 over the link and the row's content, in a canonical JSON form."""
    content = [
        chain,
        seq,
        _iso(time),
        entry.actor,
        entry.role,
        entry.action,
        list(entry.targets),
        entry.source,
        entry.outcome,
        entry.detail,
    ]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def chained(
    entry: AuditEntry, chain: str, seq: int, prev_hash: str, time: dt.datetime
) -> AuditRecord:
    time = time.astimezone(dt.UTC)  # stored with microseconds, exactly as hashed
    return AuditRecord(
        chain,
        seq,
        time,
        entry.actor,
        entry.role,
        entry.action,
        tuple(entry.targets),
        entry.source,
        entry.outcome,
        entry.detail,
        prev_hash,
        row_hash(prev_hash, chain, seq, time, entry),
    )


class AuditLog:
    """Appends entries to one chain; durable when :meth:`record` returns."""

    def __init__(self, store: Store, chain: str):
        self.store = store
        self.chain = chain
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = None

    def _load_head(self) -> tuple[int, str]:
        rows = self.store.rows(
            f"SELECT seq, hash FROM {self.store.table('audit_log')}"
            " WHERE chain = {chain:String} ORDER BY seq DESC LIMIT 1",
            {"chain": self.chain},
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    def record(self, entry: AuditEntry, now: dt.datetime | None = None) -> AuditRecord:
        with self._lock:
            if self._head is None:
                self._head = self._load_head()
            seq, prev = self._head
            rec = chained(entry, self.chain, seq + 1, prev, now or dt.datetime.now(dt.UTC))
            self.store.insert("audit_log", COLUMNS, [rec.as_row()])
            self._head = (rec.seq, rec.hash)
            return rec


# -- reading -------------------------------------------------------------------------------


def _record(row: Sequence[Any]) -> AuditRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    t = values["time"]
    values["time"] = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
    values["targets"] = tuple(values["targets"])
    values["seq"] = int(values["seq"])
    return AuditRecord(**values)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    targets: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100


def query(store: Store, flt: AuditFilter) -> list[AuditRecord]:
    """Rows matching the filter, newest first."""
    where, params = ["1"], dict[str, Any]()
    if flt.actor:
        where.append("actor = {actor:String}")
        params["actor"] = flt.actor
    if flt.action:
        where.append("action = {action:String}")
        params["action"] = flt.action
    if flt.targets:
        where.append("hasAny(targets, {targets:Array(String)})")
        params["targets"] = list(flt.targets)
    if flt.since:
        where.append("time >= {since:DateTime64(6, 'UTC')}")
        params["since"] = flt.since
    if flt.until:
        where.append("time < {until:DateTime64(6, 'UTC')}")
        params["until"] = flt.until
    rows = store.rows(
        f"SELECT {', '.join(COLUMNS)} FROM {store.table('audit_log')}"
        f" WHERE {' AND '.join(where)} ORDER BY time DESC, chain, seq DESC"
        f" LIMIT {int(flt.limit)}",
        params,
    )
    return [_record(r) for r in rows]


def _chain_rows(store: Store, chain: str, page: int = 10_000) -> Iterator[AuditRecord]:
    after = -1
    while True:
        rows = store.rows(
            f"SELECT {', '.join(COLUMNS)} FROM {store.table('audit_log')}"
            " WHERE chain = {chain:String} AND seq > {after:Int64} ORDER BY seq, hash"
            f" LIMIT {page}",
            {"chain": chain, "after": after},
        )
        # Rows sharing a seq must all come in one page: fetch to the end of the last seq.
        if not rows:
            return
        last = int(rows[-1][1])
        records = [_record(r) for r in rows]
        if len(rows) == page:
            tail = store.rows(
                f"SELECT {', '.join(COLUMNS)} FROM {store.table('audit_log')}"
                " WHERE chain = {chain:String} AND seq = {seq:UInt64} ORDER BY hash",
                {"chain": chain, "seq": last},
            )
            records = [r for r in records if r.seq != last] + [_record(r) for r in tail]
        yield from records
        after = last


@dataclass
class VerifyReport:
    chains: dict[str, int] = field(default_factory=dict)  # chain -> rows checked
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_records(chain: str, records: Iterator[AuditRecord], report: VerifyReport) -> None:
    """Check one chain's rows (in seq order) and add what is wrong to ``report``."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for rec in records:
        count += 1
        where = f"audit_log chain {chain!r} row seq {rec.seq}"
        if rec.seq < expected_seq:
            report.problems.append(f"{where}: duplicate (a second row with this seq)")
            continue
        if rec.seq > expected_seq:
            missing = (
                f"seq {expected_seq}"
                if rec.seq == expected_seq + 1
                else f"seq {expected_seq}-{rec.seq - 1}"
            )
            report.problems.append(f"audit_log chain {chain!r}: {missing} missing (deleted)")
        elif rec.prev_hash != prev_hash:
            report.problems.append(
                f"{where}: does not follow the row before it (reordered, or a row replaced)"
            )
        if row_hash(rec.prev_hash, rec.chain, rec.seq, rec.time, rec) != rec.hash:
            report.problems.append(f"{where}: altered (its content does not match its hash)")
        expected_seq, prev_hash = rec.seq + 1, rec.hash
    report.chains[chain] = count


def verify(store: Store) -> VerifyReport:
    """Walk every chain in the store and report each deleted, altered or reordered row."""
    report = VerifyReport()
    chains = [
        r[0]
        for r in store.rows(f"SELECT DISTINCT chain FROM {store.table('audit_log')} ORDER BY chain")
    ]
    for chain in chains:
        verify_records(chain, _chain_rows(store, chain), report)
    return report
