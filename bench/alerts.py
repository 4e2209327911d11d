"""Alerts figures: one evaluation cycle (every shipped SLO and rule) over 10M transactions,
and a passed deadline to a webhook, without load and under 10k events/s of ingest.

``BENCH_ALERTS_TXS`` sets the size (default 10,000,000), ``BENCH_ALERTS_RATE`` the
ingest rate of the loaded latency run (default 10,000 events/s), ``BENCH_ALERTS_PARTS``
which parts run (comma-separated of ``cycle``, ``latency``, ``load``; default all).
The transactions are generated in ClickHouse (INSERT … SELECT from ``numbers``) for the five shipped
workflows and three facilities over 30 days, with the shipped mix of statuses.
The in-run reference is one exact (FINAL) scan of two columns of the same table.
Each deadline -> webhook figure is split (``where_time_goes``): the transaction row
carrying the deadline written (under ingest, when the correlator writes it), the
evaluation cycle that found it passed (the alert's ``startsAt``), the webhook received.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

NS = 1_000_000_000


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    ranked = sorted(values)
    p95 = ranked[min(len(ranked) - 1, int(0.95 * len(ranked)))]
    return f"median {statistics.median(ranked):.1f} s, p95 {p95:.1f} s, max {ranked[-1]:.1f} s"


def _rfc3339(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


Key = tuple[str, str]


def where_time_goes(
    deadlines: dict[Key, float],
    fired: dict[Key, float],
    received: dict[Key, float],
    written: dict[Key, float] | None = None,
) -> list[str]:
    """Where the time from a passed deadline to a received page goes, per alert that
    arrived (seconds since the epoch): the transaction row carrying the deadline
    written (``written``, when the correlator writes it), the evaluation cycle that found
    it (the alert's ``startsAt``: the cycle's start), the webhook received."""
    keys = sorted(k for k in received if k in fired)
    out = []
    ready = dict(deadlines)
    if written is not None:
        seen = [k for k in keys if k in written]
        late = [max(0.0, written[k] - deadlines[k]) for k in seen]
        out.append(f"deadline -> its transaction row written (0 when before): {_quantiles(late)}")
        ready = {k: max(deadlines[k], written.get(k, deadlines[k])) for k in keys}
    waits = [fired[k] - ready[k] for k in keys]
    out.append(f"-> the evaluation cycle that found it started: {_quantiles(waits)}")
    rest = [received[k] - fired[k] for k in keys]
    out.append(f"-> webhook received (that cycle, then delivery): {_quantiles(rest)}")
    return out


def _generate_sql(table: str, config: object, count: int, now_s: int) -> str:
    workflows = config.workflows  # type: ignore[attr-defined]
    names = ", ".join(f"'{w.name}'" for w in workflows)
    steps = ", ".join("[" + ", ".join(f"'{s.name}'" for s in w.steps) + "]" for w in workflows)
    n_wf = len(workflows)
    # Per row: a workflow, a facility, a start within 30 days, and a status mix of roughly
    # 85 % complete, 4 % late (breach), 3 % late (warn), 5 % open, 2 % overdue, 1 % failed;
    # each row its own version, as the correlator's writes (versions only grow).
    return f"""
INSERT INTO {table} (id, workflow, id_time, facility, status, level, start_time, end_time,
    last_time, warn_deadline, breach_deadline, amount, step_names, step_counts, step_first,
    step_last, step_levels, step_warn, step_breach, step_status, warn_missed_at,
    breach_missed_at, version, deleted)
SELECT
    -- Shaped like the correlator's ids: 16 hex digits of id_time (ns), 16 of a hash, so
    -- they sort by age as real ones do.
    concat(leftPad(lower(hex(toUnixTimestamp64Nano(id_time))), 16, '0'),
        substring(lower(hex(MD5(toString(number)))), 1, 16)) AS id,
    [{names}][number % {n_wf} + 1] AS workflow,
    fromUnixTimestamp64Nano(toInt64(({now_s} - 30 * 86400 + (number * 7919) % (30 * 86400))
        * 1000000000)) AS id_time,
    ['NMC01', 'LCH02', 'MSC03'][intDiv(number, {n_wf}) % 3 + 1] AS facility,
    multiIf(r < 85, 'complete', r < 92, 'late', r < 97, 'in_progress', r < 99, 'overdue',
        'failed') AS status,
    multiIf(r >= 85 AND r < 89, 'breach', r >= 89 AND r < 92, 'warn', r >= 97 AND r < 99,
        'breach', '') AS level,
    id_time AS start_time,
    if(r < 92, id_time + toIntervalSecond(3600 + number % 86400), NULL) AS end_time,
    id_time + toIntervalSecond(600) AS last_time,
    if(r >= 92 AND r < 99, id_time + toIntervalSecond(1800), NULL) AS warn_deadline,
    if(r >= 92 AND r < 99, id_time + toIntervalSecond(if(r < 97, 40 * 86400, 3600)), NULL)
        AS breach_deadline,
    toDecimal64((number % 50000) / 3, 2) AS amount,
    [{steps}][number % {n_wf} + 1] AS step_names,
    arrayMap(x -> toUInt32(1), step_names) AS step_counts,
    arrayMap((x, i) -> if(i <= 2 OR r < 92,
        toUnixTimestamp64Nano(id_time) + i * 600000000000, 0),
        step_names, arrayEnumerate(step_names)) AS step_first,
    step_first AS step_last,
    arrayMap((x, i) -> if(i = 2 AND r >= 85 AND r < 92, if(r < 89, 'breach', 'warn'), ''),
        step_names, arrayEnumerate(step_names)) AS step_levels,
    arrayMap((x, i) -> toUnixTimestamp64Nano(id_time) + i * 1800000000000,
        step_names, arrayEnumerate(step_names)) AS step_warn,
    arrayMap((x, i) -> toUnixTimestamp64Nano(id_time) + i * 3600000000000,
        step_names, arrayEnumerate(step_names)) AS step_breach,
    arrayMap((x, i) -> if(r >= 99 AND i = 2, 'error', 'ok'),
        step_names, arrayEnumerate(step_names)) AS step_status,
    multiIf(r >= 85 AND r < 92, step_warn[2], r >= 97 AND r < 99,
        toUnixTimestamp64Nano(warn_deadline), 0) AS warn_missed_at,
    multiIf(r >= 85 AND r < 89, step_breach[2], r >= 97 AND r < 99,
        toUnixTimestamp64Nano(breach_deadline), 0) AS breach_missed_at,
    toUInt64({now_s}) * 1000000000 + number AS version,
    0 AS deleted
FROM (SELECT number, number * 2654435761 % 100 AS r FROM numbers({count}))
"""


_RECENT = "id_time >= now() - toIntervalDay(2)"


def _rewrite(store: Any, table: str, where: str, every: int, round_: int) -> None:
    """About 1 in ``every`` transactions matching ``where`` get a new version, as the
    correlator's writes (above every earlier one); the open ones among them complete."""
    version = f"{time.time_ns()} + rowNumberInAllBlocks()"
    store.command(
        f"INSERT INTO {table} SELECT * REPLACE ({version} AS version,"
        " if(status = 'in_progress', 'complete', status) AS status,"
        " if(status = 'in_progress', last_time + toIntervalHour(1), end_time)"
        f" AS end_time) FROM {table} FINAL WHERE ({where})"
        f" AND cityHash64(id, {round_}) % {every} = 0"
        " SETTINGS do_not_merge_across_partitions_select_final = 1"
    )


def run() -> Iterator[str]:
    parts = {
        p.strip() for p in os.environ.get("BENCH_ALERTS_PARTS", "cycle,latency,load").split(",")
    }
    unknown = parts - {"cycle", "latency", "load"}
    if unknown:
        raise ValueError(f"BENCH_ALERTS_PARTS: unknown part(s) {sorted(unknown)}")
    if "cycle" in parts:
        yield from _cycle()
    if "latency" in parts:
        yield from _latency()
    if "load" in parts:
        yield _latency_under_load(int(os.environ.get("BENCH_ALERTS_RATE", "10000")))


def _cycle() -> Iterator[str]:
    import datetime as dt

    from alerts import (
        MemoryNotifier,
        evaluate_all,
        refresh_rollup,
        rollup_relation,
        slo_report,
        slo_snapshot,
    )
    from stitchboard.config import load_config
    from stitchboard.stages import open_store
    from tests.conftest import engine_url
    from tests.support import ROOT

    config = load_config(ROOT / "slas.yaml")
    count = int(os.environ.get("BENCH_ALERTS_TXS", "10000000"))
    store = open_store(engine_url(), database="bench_alerts")
    table = store.table("transactions")
    try:
        store.command(f"TRUNCATE TABLE {table}")
        started = time.perf_counter()
        store.command(_generate_sql(table, config, count, int(time.time())))
        store.command(f"OPTIMIZE TABLE {table} FINAL")
        yield f"generated {count:,} transactions in {time.perf_counter() - started:.1f} s"

        refs = []
        for _ in range(3):
            started = time.perf_counter()
            store.scalar(
                f"SELECT countIf(status = 'late'), sum(ifNull(amount, 0)) FROM {table} FINAL"
                " WHERE deleted = 0 SETTINGS do_not_merge_across_partitions_select_final = 1"
            )
            refs.append(time.perf_counter() - started)
        reference = statistics.median(refs)
        yield (
            f"reference: one FINAL scan (status, amount) of {count:,} rows:"
            f" {reference * 1000:.0f} ms"
        )

        slo_times = []
        for _ in range(3):
            started = time.perf_counter()
            report = slo_report(store, config)
            slo_times.append(time.perf_counter() - started)
        judged = sum(s.total for s in report)
        yield (
            f"SLO report straight from transactions ({len(config.slos)} SLOs,"
            f" {len(report)} groups, {judged:,} judged):"
            f" median {statistics.median(slo_times) * 1000:.0f} ms"
        )

        started = time.perf_counter()
        built = refresh_rollup(store, list(config.slos))
        rows = store.scalar(f"SELECT count() FROM {store.table('slo_rollup')}")
        yield (
            f"rollup built from scratch (once; after a restart it is kept):"
            f" {time.perf_counter() - started:.1f} s, {rows:,} rollup rows"
            f" (rebuilt={built.rebuilt})"
        )

        # What GET /api/v1/slos does: catch the rollup up, then count every SLO from it.
        api_times = []
        for _ in range(5):
            started = time.perf_counter()
            with slo_snapshot(store, list(config.slos)) as counted:
                slo_report(store, config, relation=counted.relation)
            api_times.append(time.perf_counter() - started)
        yield (
            f"SLO report as the API serves it (rollup caught up, source={counted.source}):"
            f" median {statistics.median(api_times) * 1000:.0f} ms, max"
            f" {max(api_times) * 1000:.0f} ms (target p95 <= 500 ms)"
        )

        cycle_times = []
        for _ in range(3):
            started = time.perf_counter()
            result = evaluate_all(store, config, MemoryNotifier())
            cycle_times.append(time.perf_counter() - started)
        cycle = statistics.median(cycle_times)
        yield (
            f"evaluation cycle (rollup refresh + SLOs from the rollup + overdue + idle feeds"
            f" + error spikes + lifecycle): median {cycle * 1000:.0f} ms,"
            f" {len(result.candidates)} conditions"
            f" (target <= 1000 ms; {cycle / reference:.1f}x the reference scan)"
        )

        # Steady state under ingest: a cycle after the correlator rewrote 10,000 transactions
        # (about what 15 s at 10k events/s changes), the open ones among them now complete.
        # Spread over the 30 days (the worst case: every part of the ledger is touched), and
        # among the transactions started in the last 2 days (where new hops mostly land).
        # Then ~1,000 spread: what 15 s brings to a 20-facility system at 200k events a day
        # per facility (about 700 events), claims and POs landing weeks after their start.
        scopes = (
            ("spread over the 30 days", "1", 10_000),
            ("started in the last 2 days", _RECENT, 10_000),
            ("spread over the 30 days", "1", 1_000),
        )
        for n, (scope, where, rewrites) in enumerate(scopes):
            in_scope = int(store.scalar(f"SELECT count() FROM {table} WHERE {where}") or 0)
            every = max(1, in_scope // rewrites)
            changed_times, refresh_times, rest_times = [], [], []
            for round_ in range(3):
                _rewrite(store, table, where, every, n * 10 + round_)
                started = time.perf_counter()
                result = evaluate_all(store, config, MemoryNotifier())
                changed_times.append(time.perf_counter() - started)
            # Where the time goes: the rollup refresh, then the rest of a cycle.
            for round_ in range(3):
                _rewrite(store, table, where, every, n * 10 + 5 + round_)
                started = time.perf_counter()
                refresh_rollup(store, list(config.slos))
                refresh_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                evaluate_all(store, config, MemoryNotifier())
                rest_times.append(time.perf_counter() - started)
            yield (
                f"evaluation cycle after ~{rewrites:,} transactions {scope} were rewritten:"
                " median"
                f" {statistics.median(changed_times) * 1000:.0f} ms"
                f" (runs: {', '.join(f'{t * 1000:.0f}' for t in changed_times)} ms;"
                f" target <= 1000 ms); split in other runs: rollup refresh median"
                f" {statistics.median(refresh_times) * 1000:.0f} ms, the rest of the cycle"
                f" {statistics.median(rest_times) * 1000:.0f} ms"
            )
        at = dt.datetime.now(dt.UTC)
        scan = slo_report(store, config, at)
        rolled = slo_report(store, config, at, relation=rollup_relation)
        yield f"SLO report from the rollup equals the scan's: {scan == rolled}"
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
        store.close()


def _latency(count: int = 15, spread_s: float = 45.0) -> Iterator[str]:
    """Deadline passed -> webhook received, with the shipped evaluation interval and route.

    Each of ``count`` open high-value transactions (one per workflow x facility, so each
    is its own alert group) passes its breach deadline at a different moment over
    ``spread_s`` seconds while the evaluation loop runs as in ``stitchboard serve``.
    """
    import asyncio
    import datetime as dt
    from decimal import Decimal

    from alerts import EvaluationLoop
    from stitchboard.config import load_config
    from stitchboard.config.slos import Channel
    from stitchboard.stages import open_store
    from tests.alerts_helpers import TX_COLUMNS, Receiver
    from tests.conftest import engine_url
    from tests.support import ROOT, make_runtime

    shipped = load_config(ROOT / "slas.yaml")
    store = open_store(engine_url(), database="bench_alerts_latency")
    arrivals: dict[tuple[str, str], float] = {}
    fired: dict[tuple[str, str], float] = {}
    with Receiver() as receiver:
        hook = Channel(name="hook", type="webhook", url=receiver.url, retries=0)
        alerts = shipped.alerts.model_copy(update={"channels": [hook]})
        config = shipped.model_copy(update={"alerts": alerts, "slos": []})
        runtime = make_runtime(store, config=config)
        now = time.time()
        deadlines: dict[tuple[str, str], float] = {}
        rows: list[tuple[object, ...]] = []
        combos = [(w.name, f.id) for w in config.workflows for f in config.facilities][:count]
        for i, (workflow, facility) in enumerate(combos):
            due = now + 10 + spread_s * i / max(1, len(combos) - 1)
            deadlines[(workflow, facility)] = due
            start = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
            rows.append(
                (
                    f"lat{i}",
                    workflow,
                    start,
                    facility,
                    "in_progress",
                    "",
                    start,
                    None,
                    start,
                    None,
                    dt.datetime.fromtimestamp(due, dt.UTC),
                    Decimal("50000.00"),
                    [],
                    [],
                    [],
                    [],
                    [],
                    1,
                    0,
                )
            )
        store.insert("transactions", TX_COLUMNS, rows)
        loop = EvaluationLoop(runtime)
        event_loop = asyncio.new_event_loop()
        event_loop.run_until_complete(loop.start())
        stop_at = now + 10 + spread_s + 40
        try:
            while time.time() < stop_at and len(arrivals) < len(deadlines):
                for post in list(receiver.posts):
                    for alert in post["json"]["alerts"]:  # type: ignore[index]
                        key = (alert["labels"]["workflow"], alert["labels"]["facility"])
                        arrivals.setdefault(key, float(post["at"]))  # type: ignore[arg-type]
                        fired.setdefault(key, _rfc3339(alert["startsAt"]))
                time.sleep(0.05)
        finally:
            event_loop.run_until_complete(loop.stop())
            event_loop.close()
            runtime.writer.close()
            store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
            store.close()
    latencies = sorted(arrivals[k] - deadlines[k] for k in arrivals)
    missing = len(deadlines) - len(latencies)
    if latencies:
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        yield (
            f"deadline passed -> webhook received ({len(latencies)} alerts, interval"
            f" {shipped.alerts.evaluation_interval.text}, no ingest load): median"
            f" {statistics.median(latencies):.1f} s, p95 {p95:.1f} s, max {latencies[-1]:.1f} s"
            f" (target p95 <= 30 s){'; ' + str(missing) + ' never arrived' if missing else ''}"
        )
        for line in where_time_goes(deadlines, fired, arrivals):
            yield f"  {line}"
    else:
        yield "deadline passed -> webhook received: no notification arrived"


def _load_config(hook_url: str, probe_workflows: int, breach: str) -> object:
    """The shipped slas.yaml plus probe workflows (a start step, then an end step due
    ``breach`` later that never comes), every alert to one webhook."""
    import yaml

    from stitchboard.config import parse_config
    from tests.support import ROOT

    data = yaml.safe_load((ROOT / "slas.yaml").read_text())
    for k in range(probe_workflows):
        data["workflows"].append(
            {
                "name": f"probe_{k}",
                "steps": [
                    {"name": "start", "match": {"system": f"PROBE{k}"}, "keys": ["visit"]},
                    {
                        "name": "end",
                        "match": {"system": f"PROBE{k}_END"},
                        "keys": ["visit"],
                        "within": {"breach": breach},
                    },
                ],
            }
        )
    data["alerts"]["channels"] = [
        {"name": "hook", "type": "webhook", "url": hook_url, "retries": 0}
    ]
    return parse_config(yaml.safe_dump(data), "bench slas.yaml")


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value != float("inf") else "not reached (never arrived)"


def _latency_under_load(rate: int = 10_000, count: int = 15, spread_s: float = 45.0) -> str:
    """Deadline passed -> webhook received while ``rate`` events/s are ingested.

    As in ``stitchboard serve``: events go through the spool to the correlator thread,
    and the evaluation loop (shipped interval, SLOs, rules and route) runs beside them.
    ``count`` probe transactions (one per probe workflow x facility, each its own alert
    group) start over ``spread_s`` seconds among the traffic, each with a $50,000 amount
    and a 20 s breach deadline for a step that never comes: the deadline passes 20 s
    after its start event; the overdue rule must page for it.
    """
    import asyncio
    import shutil
    import tempfile
    import threading
    from decimal import Decimal
    from pathlib import Path

    from alerts import EvaluationLoop
    from bench.correlator_traffic import _event, transactions
    from correlator import CorrelatorService
    from stitchboard.errors import Overloaded
    from stitchboard.events import EVENT_COLUMNS
    from stitchboard.spool import Journal, SpooledWriter
    from stitchboard.stages import open_store
    from stitchboard.writer import Batch
    from tests.alerts_helpers import Receiver
    from tests.conftest import engine_url
    from tests.support import make_runtime

    facilities = ("NMC01", "LCH02", "MSC03")
    breach_s = 20.0
    store = open_store(engine_url(), database="bench_alerts_load")
    spool_dir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-spool-"))
    arrivals: dict[tuple[str, str], float] = {}
    fired: dict[tuple[str, str], float] = {}
    written: dict[tuple[str, str], float] = {}
    with Receiver() as receiver:
        config = _load_config(receiver.url, -(-count // len(facilities)), "20s")
        runtime = make_runtime(store, config=config)
        service = CorrelatorService(store, config)  # type: ignore[arg-type]
        writer = SpooledWriter(store, Journal(spool_dir), batch_max_rows=100_000)
        writer.add_listener(service.on_batch)
        writer.start()
        service.start()
        service.ready.wait()
        loop = EvaluationLoop(runtime)
        event_loop = asyncio.new_event_loop()
        event_loop.run_until_complete(loop.start())
        stream = transactions(10_000_000, seed=101, prefix="L")
        started = time.time()
        probes = [
            (f"probe_{i // len(facilities)}", facilities[i % len(facilities)]) for i in range(count)
        ]
        send_at = {p: started + 10 + spread_s * i / max(1, count - 1) for i, p in enumerate(probes)}
        deadlines: dict[tuple[str, str], float] = {}
        stop_at = started + 10 + spread_s + breach_s + 45
        sent = 0
        ticks = 0
        tick = 0.05
        per_tick = rate // 20
        stopping = threading.Event()

        probe_workflows = sorted({w for w, _ in probes})
        seen_sql = (
            f"SELECT DISTINCT workflow, facility FROM {store.table('transactions')}"
            " WHERE workflow IN {w:Array(String)} AND breach_deadline IS NOT NULL"
        )

        def watch() -> None:
            polled = 0.0
            while not stopping.is_set():
                for post in list(receiver.posts):
                    for alert in post["json"]["alerts"]:  # type: ignore[index]
                        key = (alert["labels"].get("workflow"), alert["labels"].get("facility"))
                        if key in deadlines:
                            arrivals.setdefault(key, float(post["at"]))  # type: ignore[arg-type]
                            fired.setdefault(key, _rfc3339(alert["startsAt"]))
                if time.time() - polled >= 0.25 and len(written) < count:
                    # When the correlator has written each probe's row (with its deadline):
                    # polled, so known to within the poll's period and duration.
                    polled = time.time()
                    for workflow, facility in store.rows(seen_sql, {"w": probe_workflows}):
                        written.setdefault((workflow, facility), time.time())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            while time.time() < stop_at and len(arrivals) < count:
                chunk = [e.row() for _, e in zip(range(per_tick), stream, strict=False)]
                now = time.time()
                for (workflow, facility), at in send_at.items():
                    if (workflow, facility) not in deadlines and now >= at:
                        k = workflow.removeprefix("probe_")
                        t = time.time_ns()
                        probe = _event(
                            f"probe-{workflow}-{facility}",
                            t,
                            facility,
                            f"PROBE{k}",
                            "probe.start",
                            {"visit": f"PV-{workflow}-{facility}-{started}"},
                            Decimal("50000.00"),
                        )
                        chunk.append(probe.row())
                        deadlines[(workflow, facility)] = t / 1e9 + breach_s
                batch = Batch()
                batch.add("events", EVENT_COLUMNS, chunk)
                while True:
                    try:
                        writer.submit(batch)
                        break
                    except Overloaded:
                        time.sleep(0.01)
                sent += len(chunk)
                ticks += 1
                pause = started + ticks * tick - time.time()
                if pause > 0:
                    time.sleep(pause)
            offered = sent / (time.time() - started)
            lag = sorted(service.recent_delays)
        finally:
            stopping.set()
            watcher.join(5)
            # Ingest first, then the correlator, then the evaluation: nothing may run on
            # the database once it is dropped.
            writer.close()
            service.stop(timeout=120)
            event_loop.run_until_complete(loop.stop())
            event_loop.close()
            runtime.writer.close()
            shutil.rmtree(spool_dir, ignore_errors=True)
            store.command(f"DROP DATABASE IF EXISTS `{store.database}`")
            store.close()
    latencies = sorted(arrivals[k] - deadlines[k] for k in arrivals)
    missing = count - len(latencies)
    if not latencies:
        return f"deadline passed -> webhook received under {offered:,.0f} events/s: none arrived"
    # A probe that never arrived counts as later than any that did.
    ranked = latencies + [float("inf")] * missing
    p95 = ranked[min(len(ranked) - 1, int(0.95 * len(ranked)))]
    p95_text = _seconds(p95)
    lag_text = (
        f"; correlator lag (batch durable -> transactions written) during the run: p50"
        f" {lag[len(lag) // 2]:.1f} s, p95 {lag[min(len(lag) - 1, int(0.95 * len(lag)))]:.1f} s"
        if lag
        else ""
    )
    return (
        f"deadline passed -> webhook received ({count} probes, under"
        f" {offered:,.0f} events/s of ingest through the spool and the correlator):"
        f" median {_seconds(statistics.median(ranked))}, p95 {p95_text},"
        f" max arrived {latencies[-1]:.1f} s (target p95 <= 30 s)"
        + (
            f"; {missing} never arrived (the run ends 45 s after the last deadline)"
            if missing
            else ""
        )
        + lag_text
        + "".join(f"\n  {line}" for line in where_time_goes(deadlines, fired, arrivals, written))
    )
