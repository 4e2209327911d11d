"""The console's page logic and callbacks over known traffic on the embedded engine."""

from __future__ import annotations

import csv
import io

import pytest

from correlator import CorrelatorService
from dashboards.app import build_dash
from dashboards.context import Console
from dashboards.objectives import slo_figures
from dashboards.pages import data_health, overview, transactions, workflow
from dashboards.pages.transactions import Search
from dashboards.time_range import TimeRange
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import HOUR, MINUTE, shipped_config
from tests.dashboard_seed import NOW, T0, seed_events
from tests.support import make_runtime

D2R = "discharge_to_revenue"


@pytest.fixture(scope="module")
def ctx(store):
    for table in ("events", "transactions", "transaction_keys", "dead_letters"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    store.insert("events", EVENT_COLUMNS, [e.row() for e in seed_events()])
    CorrelatorService(store, shipped_config()).full_pass()
    runtime = make_runtime(store)
    yield Console(runtime, clock=lambda: NOW)
    runtime.writer.close()


def visits(rows: list[dict]) -> list[str]:
    return [r["visit"] for r in rows]


def test_grid_pages_newest_first_by_cursor(ctx) -> None:
    search = Search(workflow=D2R, range="30d")
    first = transactions.rows_between(ctx, search, 0, 2, NOW)
    assert visits(first["rowData"]) == ["VISIT0005", "VISIT0004"]
    assert "rowCount" not in first  # more to come
    second = transactions.rows_between(ctx, search, 2, 4, NOW)
    assert visits(second["rowData"]) == ["VISIT0003", "VISIT0002"]
    last = transactions.rows_between(ctx, search, 4, 6, NOW)
    assert visits(last["rowData"]) == ["VISIT0001"] and last["rowCount"] == 5
    # A block whose cursor was never seen is reached by walking forward from the top.
    jump = transactions.rows_between(ctx, Search(workflow=D2R, range="90d"), 3, 5, NOW)
    assert visits(jump["rowData"]) == ["VISIT0002", "VISIT0001"]
    row = first["rowData"][0]
    assert row["open"].endswith(f"(/transactions/{row['id']})")
    assert (row["facility"], row["status"], row["amount"]) == ("MSC03", "failed", "$75.00")
    assert row["started"] == "2026-03-09 11:00 MST"  # T0+4h (18:00 UTC) at Mesa, Phoenix time


def test_grid_filters_by_status_facility_and_key(ctx) -> None:
    overdue = transactions.rows_between(ctx, Search(status="overdue", range="30d"), 0, 50, NOW)
    assert {r["visit"] for r in overdue["rowData"] if r["visit"]} == {"VISIT0002", "VISIT0004"}
    lch = transactions.rows_between(ctx, Search(workflow=D2R, facility="LCH02"), 0, 50, NOW)
    assert lch["rowData"] == []  # the default 7-day range ends before T0 + 3 d
    by_key = transactions.rows_between(ctx, Search(key="CHG00030"), 0, 50, NOW)
    assert visits(by_key["rowData"]) == ["VISIT0003"]  # a key search looks at all time


def test_mrn_search_is_pseudonymized(ctx) -> None:
    values = transactions.key_values(ctx, "MRN-000123")
    assert values[0] == "MRN-000123"
    assert values[1] == ctx.runtime.pseudonymize("MRN-000123") != "MRN-000123"


def test_search_from_a_url_ignores_unknown_values() -> None:
    config = shipped_config()
    search = Search.from_args(
        config, {"workflow": "nope", "status": "late", "range": "1y", "key": "  V1 "}
    )
    assert search == Search(status="late", key="V1")


def test_csv_export_of_the_filtered_search(ctx) -> None:
    text = transactions.export_csv(ctx, Search(workflow=D2R, range="30d"), NOW)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert visits(rows) == [f"VISIT000{n}" for n in (5, 4, 3, 2, 1)]
    # One amount format everywhere: a decimal string with two places.
    assert rows[2]["amount"] == "150.50" and rows[2]["status"] == "late"
    limited = transactions.export_csv(ctx, Search(workflow=D2R, range="30d"), NOW, limit=2)
    assert len(list(csv.DictReader(io.StringIO(limited)))) == 2


def test_step_clock_and_limits_from_slas_yaml() -> None:
    d2r = shipped_config().workflows[0]
    assert workflow.anchor_and_limits(d2r, "engine_ack") == ("discharge", 120.0, 900.0)
    assert workflow.anchor_and_limits(d2r, "charge") == (None, 86400.0, 259200.0)
    # 1bd: a business-day limit varies by the day; not drawn.
    assert workflow.anchor_and_limits(d2r, "gl_journal") == ("charge", None, None)


def test_workflow_panels(ctx) -> None:
    build_dash()  # the panels hold Dash components
    view = workflow.WorkflowView(D2R, None, TimeRange("30d"), "engine_ack")
    panels = workflow.panels(ctx, view, NOW)
    reached = panels["funnel"].data[0].x
    assert list(reached) == [5, 5, 4, 3, 3, 3]
    assert "p50 1 min · p90 5 min · p99 5 min" in panels["latency"].layout.title.text
    aging = panels["aging"].data[0]
    assert list(aging.y) == [0, 0, 0, 2, 0, 0] and aging.text[3] == "2 · $100.00"


def test_feeds_idle_after_the_alert_rule(ctx) -> None:
    quiet = Console(ctx.runtime, clock=lambda: T0 + 3 * HOUR + 33 * MINUTE)
    rows = {(r.feed.system, r.feed.facility): r for r in data_health.feed_rows(quiet, quiet.now())}
    # slas.yaml: idle after 30 minutes. EHR_ADT at NMC01 last sent at T0+3h: 33 min ago.
    assert rows[("EHR_ADT", "NMC01")].idle_seconds == 33 * 60
    assert rows[("EHR_ADT", "NMC01")].idle
    assert not rows[("IFENGINE", "NMC01")].idle  # VISIT0004's ACK at T0+3h05: 28 min ago
    assert list(rows)[0] == ("EHR_ADT", "LCH02")  # idle feeds first


def test_replay_a_reason_from_data_health(ctx) -> None:
    store = ctx.runtime.store
    store.insert(
        "dead_letters",
        ("id", "received_time", "source", "content_type", "payload", "reason"),
        [("dl-bad-json", T0, "file:feed.jsonl", "application/x-ndjson", "{not json", "bad row")],
    )
    [reason] = [
        r for r in data_health.queries.dead_letter_reasons(store) if r["reason"] == "bad row"
    ]
    assert reason["count"] == 1
    report = data_health.replay_reason(ctx, "bad row")
    # Still unreadable under today's slas.yaml: considered, kept, nothing stored.
    assert (report["considered"], report["replayed"], report["still_rejected"]) == (1, 0, 1)
    assert report["events"] == 0


def test_custom_dates_narrow_the_grid_the_export_and_the_workflow(ctx) -> None:
    config = ctx.runtime.config
    # The claims start at their final bills: VISIT0001's Fri 13 Mar 14:00 UTC, VISIT0005's
    # 18:00 that day, VISIT0003's Sun 15 Mar 16:00 UTC. Friday alone (UTC) holds two.
    friday = Search.from_args(
        config, {"workflow": "claim_to_cash", "from": "2026-03-13", "to": "2026-03-13"}
    )
    assert friday.range == "custom" and friday.zone == "UTC"
    rows = transactions.rows_between(ctx, friday, 0, 50, NOW)["rowData"]
    assert [r["claim"] for r in rows] == ["CLAIM0005", "CLAIM0001"]
    assert transactions.export_selection(friday, NOW) == {
        "workflow": "claim_to_cash",
        "since": "2026-03-13T00:00:00+00:00",
        "until": "2026-03-14T00:00:00+00:00",
    }
    # Filtered to Mesa, dates are read in Phoenix time (MST, UTC-7): VISIT0005's discharge
    # at 18:00 UTC is 11:00 there; the same minute read as UTC holds nothing.
    minute = {"from": "2026-03-09T11:00", "to": "2026-03-09T11:01", "workflow": D2R}
    mesa = Search.from_args(config, {**minute, "facility": "MSC03"})
    assert visits(transactions.rows_between(ctx, mesa, 0, 50, NOW)["rowData"]) == ["VISIT0005"]
    utc = Search.from_args(config, minute)
    assert transactions.rows_between(ctx, utc, 0, 50, NOW)["rowData"] == []
    # The workflow page over Monday 9 March (every discharge) and Tuesday (none).
    build_dash()
    monday = workflow.resolve(ctx, {"workflow": D2R, "from": "2026-03-09", "to": "2026-03-09"})
    assert list(workflow.panels(ctx, monday, NOW)["funnel"].data[0].x) == [5, 5, 4, 3, 3, 3]
    tuesday = workflow.resolve(ctx, {"workflow": D2R, "from": "2026-03-10", "to": "2026-03-10"})
    assert workflow.panels(ctx, tuesday, NOW)["funnel"].data == ()


def test_the_on_time_card_counts_as_the_slo_does(ctx) -> None:
    # 30 days to NOW: the end-to-end SLO judged VISIT0001 and VISIT0003 (past warn,
    # within breach) good of five: the card says 40.0 %, not the 20 % of "complete
    # within every deadline".
    build_dash()
    chosen = TimeRange("30d")
    statuses = slo_figures(ctx.runtime.store, ctx.runtime.config, "30d", NOW).statuses
    cards = {c.id: c for c in overview.kpis(ctx, chosen, None, NOW, lambda: statuses)}
    card = cards["ov-kpi-on-time"]
    title, value, note = (part.children for part in card.children)
    assert (title, value) == ("On time", "40.0%")
    assert note == "2 of 5 judged in the range: within the breach deadline"
    assert "heatmap" in card.title
