"""One simulation run from the command line: plan, send (or write), report, write truth."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from simulator.files import write_hops
from simulator.records import DAY, NS
from simulator.runner import LOOKAHEAD, Simulation, live, send_due, write_truth
from simulator.send import Dispatcher, Endpoints
from simulator.traffic import EVENTS_PER_SECOND_AT_SCALE_1, estate_from_config
from stitchboard.config import load_config
from stitchboard.settings import Settings

err = Console(stderr=True)

# --count without --backfill draws its transactions from this far back.
COUNT_WINDOW = 30 * DAY


@dataclass(frozen=True)
class SimulateOptions:
    rate: float
    facilities: list[str] | None
    seed: int
    backfill_ns: int
    live: bool
    count: int | None
    workflows: list[str] | None
    truth: Path | None
    out: Path | None
    # Restarting on a populated store: the history's transactions carry on live,
    # but what came due while the simulator was stopped is not sent (a lost feed).
    resume: bool = False
    hl7_batches: bool = True  # history HL7 as batches over HTTP rather than MLLP
    until_ns: int | None = None  # the simulated "now" for history (default: the clock)


def wait_ready(
    api: str,
    server: subprocess.Popen | None = None,
    timeout: float = 120.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """Poll ``GET /api/v1/health`` until it answers 200; None if the server died.

    Without credentials (``headers``) the answer says only ``ok``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            return None
        try:
            response = httpx.get(f"{api}/api/v1/health", timeout=2.0, headers=headers)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return None


def run_simulation(
    settings: Settings,
    host: str,
    options: SimulateOptions,
    stop: threading.Event | None = None,
    server: subprocess.Popen | None = None,
) -> None:
    config = load_config(settings.config)
    estate = estate_from_config(
        config,
        options.seed,
        scale=options.rate / EVENTS_PER_SECOND_AT_SCALE_1,
        facilities=options.facilities,
        workflows=options.workflows,
    )
    sim = Simulation(config, estate)
    # Without a truth file, a long run keeps only what is still to be sent.
    sim.plan.keep = options.truth is not None or options.out is not None
    now = options.until_ns or int(time.time() * NS)
    if options.count is not None:
        since = now - (options.backfill_ns or COUNT_WINDOW)
        added = sim.generate(since, now, count=options.count)
        err.print(f"{added} units of work planned from {options.count} requested")
    elif options.backfill_ns and options.out is None and not options.resume:
        pass  # generated day by day while sending, below
    elif options.backfill_ns:
        sim.generate(now - options.backfill_ns, now)
        if options.resume:
            skipped = len(sim.due(now))
            err.print(f"store already populated: {skipped} history hops not sent again")
    else:
        sim.generated_until = now
    if options.out is not None:
        due = sim.due(now)
        written = write_hops(options.out, due)
        err.print(f"wrote {written} hops to {options.out}")
        if options.truth is not None:
            n = write_truth(sim, options.truth, now)
            err.print(f"wrote the truth of {n} transactions to {options.truth}")
        return
    endpoints = Endpoints(
        otlp=f"http://{host}:{settings.otlp_http_port}",
        api=f"http://{host}:{settings.port}",
        mllp_host=host,
        mllp_port=settings.mllp_port,
    )
    dispatcher = Dispatcher(endpoints, config, estate.sites)
    try:
        started = time.monotonic()
        dispatcher.hl7_batches = options.hl7_batches
        sent = 0
        if options.backfill_ns and options.count is None and not options.resume:
            # A day of history at a time: the first rows land while later days are
            # still being planned, and memory holds a day, not the month.
            day = now - options.backfill_ns
            while day < now:
                sim.generate(day, min(day + DAY, now))
                day = min(day + DAY, now)
                # Hops of units drawn later may come up to a day earlier (LOOKAHEAD).
                sent += send_due(sim, dispatcher, min(day - LOOKAHEAD, now))
        sent += send_due(sim, dispatcher, now)
        dispatcher.flush()
        dispatcher.hl7_batches = False
        if sent:
            took = time.monotonic() - started
            err.print(
                f"history: {dispatcher.stats.line()} in {took:.1f}s"
                f" ({dispatcher.stats.events / max(took, 1e-9):,.0f} events/s)"
            )
        if options.truth is not None:
            n = write_truth(sim, options.truth, now)
            err.print(f"wrote the truth of {n} transactions to {options.truth}")
        if options.live and options.until_ns is None:
            if stop is None:
                stop = threading.Event()
                if threading.current_thread() is threading.main_thread():
                    # SIGTERM (a service manager, `kill`) stops as cleanly as Ctrl-C.
                    signal.signal(signal.SIGTERM, lambda *_: stop.set())
            last = [time.monotonic()]

            def report(_: int) -> None:
                if server is not None and server.poll() is not None:
                    err.print("the server stopped; stopping the simulator")
                    stop.set()
                if time.monotonic() - last[0] >= 60:
                    last[0] = time.monotonic()
                    err.print(f"sent so far: {dispatcher.stats.line()}")

            err.print("sending live traffic; Ctrl-C stops")
            with contextlib.suppress(KeyboardInterrupt):
                live(sim, dispatcher, stop, report=report)
            if options.truth is not None:
                n = write_truth(sim, options.truth, sim.sent_until)
                err.print(f"wrote the truth of {n} transactions to {options.truth}")
        dispatcher.flush()
    finally:
        dispatcher.close()
    problems = dispatcher.problems()
    err.print(
        f"sent {dispatcher.stats.line()}"
        + (f"; {len(problems)} problems, first: {problems[0]}" if problems else "")
    )
