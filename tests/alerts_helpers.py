"""Helpers for the alerts tests: a small slas.yaml, the stage's tables, transaction rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alerts import held
from alerts.schema import MIGRATIONS
from stitchboard.config import parse_config
from stitchboard.config.model import SlasConfig
from stitchboard.store import Store
from stitchboard.store.ddl import SchemaContext

NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
DAY = 24 * HOUR

BASE_YAML = """\
facilities:
  - {id: F1, timezone: America/Chicago}
  - {id: F2, timezone: America/New_York}
  - {id: F3}
keys:
  visit: {attributes: [visit.id]}
  dept: {attributes: [dept.id]}
workflows:
  - name: w
    within: {warn: 1h, breach: 2h}
    steps:
      - {name: a, match: {system: SYS_A}, keys: [visit]}
      - {name: b, match: {system: SYS_B}, keys: [visit], within: {warn: 30m, breach: 1h}}
"""

SLOS_YAML = """\
slos:
  - name: w_e2e
    indicator: {workflow: w}
    objective: 0.9
    window: 1d
  - name: w_b_warn
    indicator: {workflow: w, step: b, threshold: warn}
    objective: 0.8
    window: 1d
    facilities: [F1]
"""


def config(extra: str = SLOS_YAML) -> SlasConfig:
    return parse_config(BASE_YAML + extra)


def migrate_alerts(store: Store) -> None:
    ctx = SchemaContext(store.database, store.cluster)
    for migration in MIGRATIONS:
        for sql in migration.statements(ctx):
            store.command(sql)


def emptied_judgements(store: Store) -> Store:
    """The alerts stage's tables migrated, with no transactions and nothing judged:
    the SLI ledger, rollup and its marks, the open deadlines and ``slo_held``."""
    migrate_alerts(store)
    for table in ("transactions", "slo_ledger", "slo_rollup", "slo_rollup_marks", "open_deadlines"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    held.clear(store)
    return store


def when(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC)


TX_COLUMNS = (
    "id",
    "workflow",
    "id_time",
    "facility",
    "status",
    "level",
    "start_time",
    "end_time",
    "last_time",
    "warn_deadline",
    "breach_deadline",
    "amount",
    "step_names",
    "step_first",
    "step_levels",
    "key_names",
    "key_values",
    "version",
    "deleted",
)


def tx(
    tx_id: str,
    facility: str,
    status: str,
    *,
    now: int,
    level: str = "",
    end: int | None = None,
    last: int | None = None,
    warn: int | None = None,
    breach: int | None = None,
    amount: str | None = None,
    steps: tuple[list[str], list[int], list[str]] = ([], [], []),
    keys: dict[str, str] | None = None,
    deleted: int = 0,
    workflow: str = "w",
) -> tuple[object, ...]:
    """A transactions row; start 3 days before ``now`` unless an end says otherwise."""
    start = min(x for x in (end, last, now - 3 * DAY) if x is not None) - HOUR
    keys = keys or {}
    return (
        tx_id,
        workflow,
        when(start),
        facility,
        status,
        level,
        when(start),
        when(end) if end is not None else None,
        when(last if last is not None else (end or start)),
        when(warn) if warn is not None else None,
        when(breach) if breach is not None else None,
        Decimal(amount) if amount is not None else None,
        steps[0],
        steps[1],
        steps[2],
        list(keys),
        list(keys.values()),
        1,
        deleted,
    )


def insert_transactions(store: Store, rows: list[tuple[object, ...]]) -> None:
    store.insert("transactions", TX_COLUMNS, rows)


class Receiver:
    """A real local HTTP server that records every POST and answers scripted statuses.

    ``statuses`` are used in order, the last one repeats (default 200/202 forever).
    """

    def __init__(self, statuses: list[int] | None = None) -> None:
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from tests.support import free_port

        self.posts: list[dict[str, object]] = []
        self.statuses = list(statuses or [202])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.posts.append(
                        {
                            "at": time.time(),
                            "path": self.path,
                            "headers": dict(self.headers),
                            "raw": body,
                            "json": json.loads(body or b"null"),
                        }
                    )
                    status = (
                        receiver.statuses.pop(0)
                        if len(receiver.statuses) > 1
                        else receiver.statuses[0]
                    )
                reply = b'{"status":"success","message":"Event processed"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def bodies(self) -> list[dict[str, object]]:
        with self.lock:
            return [p["json"] for p in self.posts]  # type: ignore[misc]
