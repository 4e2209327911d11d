"""``stitchboard alerts list|silence|unsilence|ack|evaluate --once|test-channel NAME``.

With the embedded store these run against a stopped server (one process owns a
data directory); against a ClickHouse server they run beside it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.config.model import SlasConfig
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.settings import load_settings
from stitchboard.store import Store

app = typer.Typer(help="SLO alerts: list, silence, acknowledge, evaluate, test a channel.")


@contextmanager
def _opened(clickhouse: str | None, config: object) -> Iterator[tuple[Store, SlasConfig]]:
    from stitchboard.config import load_config
    from stitchboard.stages import open_store

    try:
        settings = load_settings(clickhouse=clickhouse, config=config)
        loaded = load_config(settings.config)
        store = open_store(
            settings.clickhouse, database=settings.database, cluster=settings.cluster
        )
    except ConfigError as exc:
        fail(str(exc))
    except StitchboardError as exc:
        fail(str(exc), 1)
    try:
        yield store, loaded
    except StitchboardError as exc:
        fail(str(exc), 1)
    finally:
        store.close()


def _print(value: object) -> None:
    from alerts.api import jsonable

    print(json.dumps(jsonable(value), sort_keys=True))


@app.command("list")
def list_command(
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
    state: Annotated[str | None, typer.Option(help="pending, firing or resolved")] = None,
    limit: int = 100,
) -> None:
    """Alerts, newest first, one JSON object a line."""
    from alerts import list_alerts

    with _opened(clickhouse, config) as (store, _):
        for view in list_alerts(store, [state] if state else None, limit):
            _print(view)


@app.command()
def silence(
    matchers: Annotated[list[str], typer.Argument(help="label=value, e.g. facility=LCH02")],
    author: Annotated[str, typer.Option(help="Who silences")],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h")] = "2h",
    comment: str = "",
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Silence alerts whose labels match every label=value; prints the silence id."""
    from alerts import BadSilence
    from alerts import silence as create
    from stitchboard.config.workflows import Duration

    pairs = {}
    for m in matchers:
        if "=" not in m:
            fail(f"bad matcher {m!r}: write label=value")
        key, value = m.split("=", 1)
        pairs[key] = value
    try:
        length = Duration.model_validate(duration)
    except ValueError as exc:
        fail(f"bad duration {duration!r}: {exc}")
    now = dt.datetime.now(dt.UTC)
    with _opened(clickhouse, config) as (store, _):
        try:
            print(
                create(
                    store,
                    pairs,
                    now,
                    now + dt.timedelta(microseconds=length.nanos // 1000),
                    author,
                    comment,
                )
            )
        except BadSilence as exc:
            fail(str(exc))


@app.command()
def unsilence(
    silence_id: str,
    author: Annotated[str, typer.Option(help="Who expires it")],
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Expire a silence now."""
    from alerts import SilenceNotFound
    from alerts import unsilence as expire

    with _opened(clickhouse, config) as (store, _):
        try:
            expire(store, silence_id, author)
        except SilenceNotFound as exc:
            fail(str(exc), 1)
    print(f"expired {silence_id}")


@app.command()
def ack(
    fingerprint: str,
    author: Annotated[str, typer.Option(help="Who acknowledges")],
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Acknowledge a firing alert: no repeats until it resolves or worsens."""
    from alerts import AlertNotFound, acknowledge

    with _opened(clickhouse, config) as (store, _):
        try:
            _print(acknowledge(store, fingerprint, author))
        except AlertNotFound as exc:
            fail(str(exc), 1)


@app.command()
def evaluate(
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit")] = False,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run one evaluation cycle and deliver its notifications (``--once``)."""
    from alerts.evaluation import evaluate_all
    from alerts.notifier import ChannelNotifier

    if not once:
        fail("only --once is supported here; stitchboard serve evaluates continuously")
    with _opened(clickhouse, config) as (store, loaded):
        notifier = ChannelNotifier(loaded, store)
        result = evaluate_all(store, loaded, notifier)
        notifier.close()
        firing = [r for r in result.step.records.values() if r.state == "firing"]
        print(
            f"{len(result.statuses)} SLO groups, {len(result.candidates)} conditions,"
            f" {len(firing)} firing, {len(result.step.notices)} notifications"
        )


@app.command("test-channel")
def test_channel(
    name: str,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send a test alert through one channel and print every attempt."""
    import time

    from alerts.channels import Attempt, Deliverer
    from alerts.lifecycle import AlertRecord, Notice

    with _opened(clickhouse, config) as (store, loaded):
        channel = next((c for c in loaded.alerts.channels if c.name == name), None)
        if channel is None:
            known = ", ".join(c.name for c in loaded.alerts.channels)
            fail(f"no channel {name!r} in slas.yaml (channels: {known})")
        attempts: list[Attempt] = []
        now = time.time_ns()
        record = AlertRecord(
            fingerprint="0000000000000000",
            rule="test",
            severity="ticket",
            state="firing",
            labels={"rule": "test", "channel": name},
            annotations={"summary": f"Stitchboard test notification on channel {name}"},
            active_since=now,
            starts_at=now,
            ends_at=None,
            value=None,
        )
        notice = Notice("{rule='test'}", {"rule": "test"}, (record,), "firing")
        ok = Deliverer(channel, loaded.alerts.external_url, attempts.append).deliver(notice)
        for a in attempts:
            print(f"attempt {a.attempt}: {a.status} {a.response} {a.error}".rstrip())
        if not ok:
            raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="alerts")
