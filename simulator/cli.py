"""``stitchboard simulate`` and ``stitchboard demo``: the simulated estate from the command line."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, err, fail
from stitchboard.config.workflows import Duration
from stitchboard.errors import ConfigError
from stitchboard.settings import load_settings

DEFAULT_RATE = 1.0


def _duration_ns(text: str | None) -> int:
    if not text:
        return 0
    try:
        duration = Duration.model_validate(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1]) from None
    if duration.business_days:
        raise typer.BadParameter("use calendar units for --backfill (e.g. 30d, 12h)")
    return duration.nanos


def _instant_ns(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 instant") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _split(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def simulate(
    rate: Annotated[
        float,
        typer.Option(help="Average hop events per second across the estate (history and live)."),
    ] = DEFAULT_RATE,
    facilities: Annotated[
        str | None,
        typer.Option(help="Comma-separated facility ids or aliases from slas.yaml (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same traffic and truth.")] = 1,
    backfill: Annotated[
        str | None,
        typer.Option(
            help="Send this much history first at full speed (e.g. 30d, 12h), then exit"
            " unless --live."
        ),
    ] = None,
    live: Annotated[
        bool | None,
        typer.Option(
            "--live/--no-live",
            help="Keep sending as the clock moves, until stopped"
            " (default: live unless --backfill or --count).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            help="Send the first N units of work (a visit with its claim and implants, a"
            " requisition, a pay period) from the start of the backfill window"
            " (default 30d ago), only what is due by now; then exit."
        ),
    ] = None,
    workflows: Annotated[
        str | None, typer.Option(help="Comma-separated workflow names to simulate (default: all).")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="Write the ground truth (JSON Lines, one transaction per line) here."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Simulate history up to this instant (ISO 8601, e.g. 2026-03-16T00:00:00Z)"
            " instead of now: the same seed and --until give the same traffic."
        ),
    ] = None,
    hl7_history: Annotated[
        str,
        typer.Option(
            help="How history HL7 is sent: http (batches to /api/v1/messages, fast) or mllp"
            " (one message per ACK, as live)."
        ),
    ] = "http",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the hops to this JSON Lines file (.gz to compress) instead of sending."
        ),
    ] = None,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Where the server listens.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Console/API port (default 8050).")] = None,
    otlp_http_port: Annotated[
        int | None, typer.Option(help="OTLP/HTTP port (default 4318).")
    ] = None,
    mllp_port: Annotated[int | None, typer.Option(help="MLLP port (default 2575).")] = None,
) -> None:
    """Simulate a regional health system's traffic into a running server."""
    from simulator.session import SimulateOptions, run_simulation

    settings = load_settings(
        config=config, port=port, otlp_http_port=otlp_http_port, mllp_port=mllp_port
    )
    if rate <= 0:
        fail("--rate must be above 0")
    options = SimulateOptions(
        rate=rate,
        facilities=_split(facilities),
        seed=seed,
        backfill_ns=_duration_ns(backfill),
        live=live if live is not None else (not backfill and count is None and out is None),
        count=count,
        workflows=_split(workflows),
        truth=truth,
        out=out,
        hl7_batches=hl7_history != "mllp",
        until_ns=_instant_ns(until),
    )
    if hl7_history not in ("http", "mllp"):
        fail("--hl7-history is http or mllp")
    try:
        run_simulation(settings, host, options)
    except ConfigError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))


def demo(
    rate: Annotated[float, typer.Option(help="Hop events per second (history and live).")] = 0.2,
    backfill: Annotated[
        str,
        typer.Option(
            help="History sent on first start (empty store), e.g. 5d; extended to the latest"
            " pay-period close."
        ),
    ] = "5d",
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 1,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="Console and API port (default 8050).")] = None,
    otlp_http_port: Annotated[
        int | None, typer.Option(help="OTLP/HTTP port (default 4318).")
    ] = None,
    otlp_grpc_port: Annotated[
        int | None, typer.Option(help="OTLP/gRPC port (default 4317).")
    ] = None,
    mllp_port: Annotated[int | None, typer.Option(help="MLLP port (default 2575).")] = None,
) -> None:
    """The console plus a simulated health system: `stitchboard serve` and live traffic.

    On first start (no events stored yet) a short history is sent first, so the
    dashboards have data within a minute. Ctrl-C stops both.
    """
    from simulator.session import SimulateOptions, run_simulation, wait_ready
    from simulator.supply import history_with_a_pay_period_close

    settings = load_settings(
        clickhouse=clickhouse,
        config=config,
        port=port,
        otlp_http_port=otlp_http_port,
        otlp_grpc_port=otlp_grpc_port,
        mllp_port=mllp_port,
    )
    command = [sys.executable, "-m", "stitchboard", "serve"]
    for flag, value in (
        ("--clickhouse", clickhouse),
        ("--config", config),
        ("--port", port),
        ("--otlp-http-port", otlp_http_port),
        ("--otlp-grpc-port", otlp_grpc_port),
        ("--mllp-port", mllp_port),
    ):
        if value is not None:
            command += [flag, str(value)]
    # The demo reads the server's health details with an admin token of its own.
    env = os.environ.copy()
    token = env.setdefault("STITCHBOARD_BOOTSTRAP_TOKEN", secrets.token_urlsafe(32))
    server = subprocess.Popen(command, env=env)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        api = f"http://{settings.host}:{settings.port}"
        health = wait_ready(api, server, headers={"Authorization": f"Bearer {token}"})
        if health is None:
            fail("stitchboard serve did not become ready; see its output above", 1)
            return
        _print_first_login(settings.initial_admin_file, api)
        err.print(
            f'API for curl while this demo runs: export AUTH="Authorization: Bearer {token}"'
            " (an admin token of this run only)",
            highlight=False,
            soft_wrap=True,  # one line whatever the terminal's width, so it can be copied
        )
        empty = int(health.get("store", {}).get("tables", {}).get("events", 0)) == 0
        options = SimulateOptions(
            rate=rate,
            facilities=None,
            seed=seed,
            # Long enough for a pay-period close too: every workflow has transactions.
            backfill_ns=history_with_a_pay_period_close(_duration_ns(backfill), time.time_ns()),
            live=True,
            count=None,
            workflows=None,
            truth=None,
            out=None,
            resume=not empty,
        )
        err.print(
            f"Simulated health system: {rate} events/s live"
            + (f", {options.backfill_ns // 86_400_000_000_000}d of history first" if empty else "")
            + f". Console: {api}",
            highlight=False,
        )
        run_simulation(settings, settings.host, options, stop=stop, server=server)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


def _print_first_login(password_file: Path, api: str) -> None:
    """Show the generated admin password once (first start), then remove its file."""
    if not password_file.is_file():
        err.print(f"Console: {api}/login (log in with your user; first-start admin: admin)")
        return
    password = password_file.read_text().strip()
    password_file.unlink()
    err.print(
        f"Console: {api}/login  user [bold]admin[/]  password [bold]{password}[/]"
        " (shown once: it is not stored anywhere in clear; add users with"
        " `stitchboard users add`)",
        highlight=False,
        soft_wrap=True,
    )


def register(cli: typer.Typer) -> None:
    cli.command()(simulate)
    cli.command()(demo)
