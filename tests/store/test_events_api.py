"""The JSON API over the correlator's tables: hops by key (matched or not), the facility
filter's 400, unmatched events."""

from __future__ import annotations

import re

import httpx
import pytest

from correlator.api import build_router
from correlator.service import CorrelatorService
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import DAY, at, discharge_chain, ev
from tests.support import AUTH, InProcess, free_port, make_runtime

T0 = at("2026-03-09T09:00:00-05:00")


@pytest.fixture(scope="module")
def client(store):
    runtime = make_runtime(store)
    events = [
        *discharge_chain(T0, 1),
        ev("ERP_GL", "gl.journal.post", T0 + DAY, charge_batch="B-X", journal="J-X"),
        ev("EHR_ADT", "ADT^A03", T0, facility="ATLANTIS", msg="M7", visit="V7", account="A7"),
    ]
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    CorrelatorService(store, runtime.config).full_pass()
    port = free_port()
    app = build_api(runtime, [build_router(runtime)])
    with (
        InProcess([HttpComponent("api", app, "127.0.0.1", port, "API")]),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=AUTH) as http,
    ):
        yield http
    runtime.writer.close()


def test_events_by_key_show_hops_matched_or_not(client) -> None:
    [journal] = client.get("/api/v1/events", params={"key": "J-X"}).json()["events"]
    assert (journal["operation"], journal["transactions"]) == ("gl.journal.post", [])
    hops = client.get("/api/v1/events", params={"key": "V1"}).json()["events"]
    assert [h["operation"] for h in hops] == ["ADT^A03", "DFT^P03", "DFT^P03", "BAR^P05"]
    steps = [[(t["workflow"], t["step"]) for t in h["transactions"]] for h in hops]
    assert steps == [
        [("discharge_to_revenue", "discharge")],
        [("discharge_to_revenue", "charge")],
        [("discharge_to_revenue", "charge")],
        [("discharge_to_revenue", "coding_complete")],
    ]
    assert client.get("/api/v1/events").status_code == 400  # the key is required


def test_an_unknown_facility_filter_is_a_clear_400(client) -> None:
    bad = client.get("/api/v1/transactions", params={"facility": "NOPE"})
    assert bad.status_code == 400
    assert (
        "unknown facility 'NOPE'; declared: LCH02, MSC03, NMC01" in bad.json()["error"]["message"]
    )
    # An undeclared name transactions were sent with can be filtered on.
    d2r = {"workflow": "discharge_to_revenue"}
    found = client.get("/api/v1/transactions", params={"facility": "ATLANTIS", **d2r}).json()
    assert [t["keys"]["visit"] for t in found["transactions"]] == [["V7"]]
    by_alias = client.get("/api/v1/transactions", params={"facility": "NMC", **d2r}).json()
    assert [t["keys"]["visit"] for t in by_alias["transactions"]] == [["V1"]]


def test_unmatched_events_route(client) -> None:
    listed = client.get("/api/v1/unmatched-events", params={"key": "B-X"}).json()
    assert [u["keys"]["journal"] for u in listed["unmatched_events"]] == ["J-X"]
    bad = client.get("/api/v1/unmatched-events", params={"workflow": "nope"})
    assert bad.status_code == 400


def test_the_api_docs_load_their_assets_from_the_server(client) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/api/v1/docs-assets/swagger-ui-bundle.js" in scripts
    for asset in scripts:
        if asset.startswith("/"):
            assert client.get(asset).status_code == 200, asset
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "Stitchboard API"
