"""The console's page queries at 10 million transactions, and first render in Chromium.

Part one (in a child process, which owns its embedded data directory): generate
``BENCH_CONSOLE_TXS`` transactions (default 10,000,000) shaped like the
correlator's (5 workflows, 3 facilities, 90 days of starts, step arrays,
amounts, flags, deadlines) plus a day of feed events, record them as correlated
(``correlator.mark_correlated``: they stand for transactions whose events the store
no longer holds), build what the server keeps current (the alerts stage's SLI
rollup, the console's open set), then time every query a page makes on one
refresh, 15 times each, and report p50/p95 per page against the 500 ms target,
beside an in-run reference (one full scan of the table).

Part two: a real ``stitchboard serve`` over the same data directory (it resumes
from the mark; a full pass would retire every generated transaction); headless
Chromium opens each page five times and the time from navigation until the page's
own figures are filled (``PAGES``) and no Dash callback is pending, as the page's own
clock (``performance.now()``) reads it, is the first render (target 2 s). Last, the
live transactions are counted again: the run is refused if the server changed them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

NS = 1_000_000_000
DAY = 86_400
D2R = "discharge_to_revenue"
# Each page is rendered when these show: what its slowest callbacks fill in.
PAGES: dict[str, tuple[str, ...]] = {
    "/": ("#ov-kpi-transactions", "#ov-slo-as-of:not(:empty)", "#ov-trend .annotation"),
    "/workflow": ("#wf-updated:not(:empty)",),
    "/transactions": ("#tx-grid .ag-row",),
    "/alerts": ("#al-updated:not(:empty)",),
    "/data-health": ("#dh-updated:not(:empty)",),
}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _generate(store: Any, count: int, now: int) -> None:
    tx = store.table("transactions")
    span = 90 * DAY
    chunk = 1_000_000
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        store.command(
            f"""
            INSERT INTO {tx} (id, workflow, id_time, facility, status, level, start_time,
                end_time, last_time, duration_ns, warn_deadline, breach_deadline, flags,
                amount, event_ids, event_steps, key_names, key_values, event_count, version,
                step_names, step_counts, step_first, step_last, step_levels)
            SELECT
                concat(leftPad(lower(hex(start_ns)), 16, '0'),
                       substring(lower(hex(MD5(toString(number)))), 1, 16)) AS id,
                ['discharge_to_revenue','claim_to_cash','implant_use_to_replenishment',
                 'requisition_to_payment','timecard_to_labor_gl'][number % 5 + 1],
                fromUnixTimestamp64Nano(start_ns),
                ['NMC01','LCH02','MSC03'][intDiv(number, 5) % 3 + 1],
                st, if(st IN ('late', 'overdue'), 'warn', ''), fromUnixTimestamp64Nano(start_ns),
                if(st IN ('complete', 'late'), fromUnixTimestamp64Nano(start_ns + took), NULL),
                fromUnixTimestamp64Nano(start_ns + took),
                if(st IN ('complete', 'late'), took, NULL),
                if(st IN ('in_progress', 'overdue'),
                   fromUnixTimestamp64Nano(start_ns + 5 * 86400000000000), NULL),
                if(st IN ('in_progress', 'overdue'),
                   fromUnixTimestamp64Nano(start_ns + 7 * 86400000000000), NULL),
                if(cityHash64(number, 5) % 40 = 0, ['missing_step'], []),
                toDecimal64(cityHash64(number, 4) % 2000000 / 100, 2),
                [concat('e', toString(number))], ['discharge'],
                ['visit', 'account'],
                [concat('V', toString(number)), concat('A', toString(number))],
                reached + 1, 1,
                ['discharge','engine_ack','charge','gl_journal','coding_complete','final_bill'],
                arrayMap(i -> toUInt32(i <= reached), range(1, 7)),
                arrayMap(i -> if(i <= reached, start_ns + (i - 1) * 3600000000000, 0),
                         range(1, 7)),
                arrayMap(i -> if(i <= reached, start_ns + (i - 1) * 3600000000000, 0),
                         range(1, 7)),
                arrayMap(i -> '', range(1, 7))
            FROM (
                SELECT number,
                    {now} - toInt64(cityHash64(number, 1) % {span}) * 1000000000 AS start_ns,
                    toInt64(cityHash64(number, 2) % (8 * 86400)) * 1000000000 AS took,
                    multiIf(cityHash64(number, 3) % 100 < 70, 'complete',
                            cityHash64(number, 3) % 100 < 80, 'late',
                            cityHash64(number, 3) % 100 < 90, 'in_progress',
                            cityHash64(number, 3) % 100 < 97, 'overdue', 'failed') AS st,
                    if(st IN ('complete', 'late'), 6, 1 + cityHash64(number, 6) % 5) AS reached
                FROM numbers({first}, {n}))"""
        )
    events = store.table("events")
    store.command(
        f"""
        INSERT INTO {events} (event_id, event_time, observed_time, source_kind, source,
            facility, system, operation, status, keys)
        SELECT lower(hex(MD5(concat('ev', toString(number))))),
            fromUnixTimestamp64Nano({now} - toInt64(number % 86400) * 1000000000),
            fromUnixTimestamp64Nano({now} - toInt64(number % 86400) * 1000000000),
            'span', 'bench', ['NMC01','LCH02','MSC03'][number % 3 + 1],
            ['EHR_ADT','IFENGINE','LAB_LIS','PATACCT','ERP_GL','PERIOP'][intDiv(number, 3) % 6 + 1],
            'op', 'ok', map('visit', concat('V', toString(number)))
        FROM numbers(1000000)"""
    )


def _page_queries(store: Any, config: Any, now: int, count: int) -> dict[str, Callable[[], object]]:
    from alerts import refresh_rollup, rollup_relation, slo_report
    from correlator import StoreTransactions, TransactionFilter
    from dashboards import objectives
    from dashboards import queries as q

    week = q.Scope(now - 7 * DAY * NS, now + 60 * NS)
    wf = q.Scope(now - 7 * DAY * NS, now + 60 * NS, workflow=D2R)
    moment = dt.datetime.fromtimestamp(now / NS, dt.UTC)
    reader = StoreTransactions(store, config)
    steps = [s.name for s in config.workflows[0].steps]
    visit = f"V{count // 2}"

    refresh_rollup(store, list(config.slos))  # the alert evaluator's job, every cycle

    def slo() -> object:
        return (
            slo_report(store, config, now=moment, window="7d", relation=rollup_relation),
            objectives.trend_series(store, config, now - 7 * DAY * NS, now, now, 6 * 3600, None),
        )

    def overview() -> object:
        return (
            q.outcomes(store, week, now),
            q.decided_cards(store, week, now, D2R),
        )

    def workflow() -> object:
        return (
            q.scope_figures(store, wf, now, steps, "engine_ack", "discharge"),
            q.aging(store, now, D2R, None),
            q.most_overdue(store, now, D2R, None),
        )

    def transactions() -> object:
        since = now - 7 * DAY * NS
        first = q.listing.newest(store, TransactionFilter(since=since), 100, now)
        return first, q.listing.newest(
            store,
            TransactionFilter(workflow=D2R, facility="LCH02", status="overdue", since=since),
            100,
            now,
        )

    def search() -> object:
        return q.listing.newest(store, TransactionFilter(key_values=(visit,)), 100, now)

    def detail() -> object:
        [item], _ = reader.list_transactions(TransactionFilter(key_values=(visit,)), 1, now)
        return reader.get_transaction(item["id"], now)

    def data_health() -> object:
        return q.feeds(store, now), q.dead_letter_reasons(store)

    return {
        "overview: SLO report and trend from the SLI rollup (cached 30 s by the page)": slo,
        "overview: the console's own queries": overview,
        "workflow": workflow,
        "transactions (newest page, filtered page)": transactions,
        "transactions (key search)": search,
        "transaction detail": detail,
        "data health": data_health,
    }


def seed_and_time(data_dir: str, count: int) -> None:
    """Child process: generate the store, time the page queries, print JSON lines."""
    from correlator import mark_correlated
    from dashboards import open_transactions
    from stitchboard.config import load_config
    from stitchboard.stages import open_store

    config = load_config(Path(__file__).resolve().parent.parent / "slas.yaml")
    store = open_store(f"chdb://{data_dir}")
    now = time.time_ns()
    started = time.perf_counter()
    _generate(store, count, now)
    tx = store.table("transactions")
    store.command(f"OPTIMIZE TABLE {tx} FINAL")
    # The generated rows stand for transactions correlated from events the store no longer
    # holds: record that, so the server resumes from here instead of rebuilding from the
    # (uncorrelatable) feed events and retiring every generated transaction.
    upto = time.time_ns()
    mark_correlated(store, config, upto=upto, version=upto)
    print(json.dumps({"generated": count, "seconds": time.perf_counter() - started}), flush=True)
    started = time.perf_counter()
    open_transactions.refresh(store)  # built once on a new store, then kept by the pages
    print(json.dumps({"open set": time.perf_counter() - started}), flush=True)
    started = time.perf_counter()
    store.scalar(f"SELECT sum(length(id)) FROM {tx}")
    reference = time.perf_counter() - started
    for page, run in _page_queries(store, config, now, count).items():
        run()  # warm
        times = []
        for _ in range(15):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        print(
            json.dumps(
                {
                    "page": page,
                    "p50": statistics.median(times),
                    "p95": _p(times, 0.95),
                    "reference": reference,
                }
            ),
            flush=True,
        )
    store.close()


def _first_render(data_dir: str) -> Iterator[str]:
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS
    from tests.support import AUTH, ServeProcess

    server = ServeProcess(Path(data_dir)).start(timeout=180)
    user, password = "bench.viewer", "bench password of the console"
    try:
        made = httpx.post(
            f"{server.api}/api/v1/users",
            json={"name": user, "role": "viewer", "password": password},
            headers=AUTH,
            timeout=30,
        )
        made.raise_for_status()
        listed = httpx.get(f"{server.api}/api/v1/transactions", headers=AUTH, timeout=60)
        if not listed.json().get("transactions"):
            # Pages over an empty store would time nothing worth reporting (the server
            # resumes from the state the generator recorded; a full pass would retire
            # every generated transaction, which have no events behind them).
            raise RuntimeError("the served store lists no transactions: first render not timed")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Every page needs a login: sign in once, as a leader would, then time the pages.
            tab.goto(server.api + "/alerts")
            tab.fill("#username", user)
            tab.fill("#password", password)
            tab.press("#password", "Enter")
            tab.wait_for_function("() => location.pathname === '/alerts'")
            for path, ready in PAGES.items():
                # Rendered: the page's own figures are filled and no Dash callback is
                # pending, as the page itself sees it (``performance.now()`` counts from
                # the navigation's start), polled every animation frame.
                done = (
                    "() => "
                    + " && ".join(f"!!document.querySelector({s!r})" for s in ready)
                    + " && !document.querySelector('[data-dash-is-loading=\"true\"]')"
                    + " && performance.now()"
                )
                times = []
                for _ in range(5):
                    tab.goto(server.api + path)
                    rendered = tab.wait_for_function(done, polling="raf", timeout=120_000)
                    times.append(float(rendered.json_value()) / 1000)
                    if "/login" in tab.url:
                        raise RuntimeError(f"{path}: sent to the login page")
                yield (
                    f"first render {path}: median {statistics.median(times) * 1000:,.0f} ms,"
                    f" worst {max(times) * 1000:,.0f} ms of 5 (target 2,000 ms; in order:"
                    f" {', '.join(f'{t * 1000:,.0f}' for t in times)} ms)"
                )
            browser.close()
    finally:
        server.stop()
        for line in server.output.splitlines():
            if "correlator" in line and ("resumed" in line or "full pass" in line):
                yield f"server: {line.strip()}"


def run() -> Iterator[str]:
    count = int(os.environ.get("BENCH_CONSOLE_TXS", "10000000"))
    data_dir = tempfile.mkdtemp(prefix="stitchboard-bench-console-")
    try:
        yield from _measure(data_dir, count)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _measure(data_dir: str, count: int) -> Iterator[str]:
    # Each figure is printed as the child measures it (a long run shows its progress).
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.console", data_dir, str(count)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert child.stdout is not None
        for line in child.stdout:
            yield _figure(json.loads(line))
        if child.wait() != 0:
            errors.seek(0)
            raise RuntimeError(errors.read()[-2000:])
    yield from _first_render(data_dir)
    counted = subprocess.run(
        [sys.executable, "-m", "bench.console", "count", data_dir],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if counted.returncode != 0:
        raise RuntimeError(counted.stderr[-2000:])
    live = int(counted.stdout.strip())
    yield f"after serving: {live:,} live transactions of {count:,} generated"
    if live != count:
        raise RuntimeError("the server changed the generated transactions: figures above invalid")


def _figure(row: dict[str, Any]) -> str:
    if "generated" in row:
        return f"{row['generated']:,} transactions generated in {row['seconds']:.0f} s"
    if "open set" in row:
        seconds = row["open set"]
        return f"open set and decided ledger built from the transactions in {seconds:.1f} s"
    ms = 1000
    return (
        f"{row['page']}: p50 {row['p50'] * ms:,.0f} ms, p95 {row['p95'] * ms:,.0f} ms"
        f" (target 500 ms); reference full scan of ids {row['reference'] * ms:,.0f} ms"
    )


def count_live(data_dir: str) -> int:
    """Child process: the live transactions in the store, after the server stopped."""
    from stitchboard.stages import open_store

    store = open_store(f"chdb://{data_dir}")
    try:
        tx = store.table("transactions")
        return int(store.scalar(f"SELECT count() FROM {tx} FINAL WHERE deleted = 0") or 0)
    finally:
        store.close()


if __name__ == "__main__":
    if sys.argv[1] == "count":
        print(count_live(sys.argv[2]))
    else:
        seed_and_time(sys.argv[1], int(sys.argv[2]))
