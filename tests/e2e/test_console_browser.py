"""The console in real Chromium against a real ``stitchboard serve`` with known traffic.

Every page loads without browser console errors or Dash callback errors; a heatmap cell
opens the workflow page for its facility; a visit id search leads to its detail page
with every hop; the CSV download holds the filtered transactions; a silence made on the
alerts page is listed; an auditor exports a visit from the console and the downloaded
bundle verifies. The browser logs in through the login page like a person:
an engineer for the walk through the pages, a viewer to show that acting on an alert
needs more, and the audit log records what each did. One screenshot per page goes to
``screenshots/`` (git-ignored).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.correlator_helpers import DAY, HOUR
from tests.dashboard_seed import T0, chain, otlp_json, seed_events
from tests.support import AUTH, ROOT, serve_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "screenshots"
# The seed's T0 moved to 8.5 days ago: every hop is in the past, and every claim its final
# bill started has waited more than 48 h for its 837 (overdue, whichever step it waits on).
SHIFT = (time.time_ns() - int(8.5 * DAY)) - T0
D2R = "discharge_to_revenue"


def traffic() -> list:
    """The shared seed plus VISIT0006: NMC01 at T0+5h, a $12,000.00 charge and nothing after,
    so overdue and worth more than the overdue alert's $10,000 threshold: an alert fires."""
    big = chain(
        T0 + 5 * HOUR,
        6,
        "NMC01",
        bill_after=None,
        charges=("12000.00",),
        journal=False,
        coding=False,
    )
    return [*seed_events(), *big]


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    # Alerts every 2 s rather than 15: the overview's SLO figures and the alerts page wait
    # for a cycle after the stitching.
    with serve_process(evaluation_interval="2s") as server:
        body = otlp_json(traffic(), shift=SHIFT)
        sent = httpx.post(f"{server.otlp_http}/v1/traces", json=body, timeout=30)
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the correlator has stitched all five
            found = httpx.get(
                f"{server.api}/api/v1/transactions",
                params={"workflow": D2R},
                timeout=10,
                headers=AUTH,
            ).json()["transactions"]
            if len(found) == 6 and any(t["keys"].get("claim") for t in found):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"transactions not stitched in time: {found}")
        for name, role in USERS.items():
            made = httpx.post(
                f"{server.api}/api/v1/users",
                json={"name": name, "role": role, "password": PASSWORD},
                headers=AUTH,
                timeout=10,
            )
            assert made.status_code == 201, made.text
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


ENGINEER, VIEWER, AUDITOR = "dana.on-call", "lee.cfo", "sam.audit"
USERS = {ENGINEER: "engineer", VIEWER: "viewer", AUDITOR: "auditor"}
PASSWORD = "correct horse battery staple"


class Page:
    """A browser tab that records console errors and failed Dash callbacks."""

    def __init__(self, browser: Any, base: str, user: str = ENGINEER):
        self.base = base
        self.tab = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.login(user)

    def login(self, user: str) -> None:
        self.tab.goto(self.base + "/alerts")  # any page: it sends a stranger to log in
        assert "/login" in self.tab.url
        self.tab.fill("#username", user)
        self.tab.fill("#password", PASSWORD)
        self.tab.press("#password", "Enter")
        self.tab.wait_for_function("() => location.pathname === '/alerts'")

    def open(self, path: str) -> Any:
        self.tab.goto(self.base + path)
        self.settle()
        return self.tab

    def settle(self) -> None:
        self.tab.wait_for_load_state("networkidle")
        self.tab.wait_for_function(
            "() => !document.querySelector('[data-dash-is-loading=\"true\"]')"
        )

    def shot(self, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        self.tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.tab.locator(".dash-fe-error__title").count() == 0


@pytest.fixture
def page(server: Any, browser: Any) -> Iterator[Page]:
    tab = Page(browser, server.api)
    yield tab
    tab.tab.close()


def test_overview_heatmap_cell_opens_the_workflow_for_that_facility(page: Page) -> None:
    tab = page.open("/?range=30d")
    tab.wait_for_selector("#ov-heatmap .heatmaplayer")
    # Now is T0 + 8.5 d. Started in range: six discharges, and three claim_to_cash
    # transactions started by the final bills (T0+4d, +4d4h, +6d2h), none with an 837:
    # overdue. On time, as the heatmap's SLOs judge: discharge_to_revenue end to end
    # judged its six, good VISIT0001 and VISIT0003 (past warn, within breach); the
    # claims' 999 step (4 h after the 837) has no clock yet, so none is judged: 2 of 6.
    tab.wait_for_selector("#ov-kpi-on-time")
    # Like the heatmap, the card counts from the SLI rollup as of the alert evaluator's
    # last cycle: until a cycle after the stitching it has nothing judged ("—").
    deadline = time.monotonic() + 90
    while tab.inner_text("#ov-kpi-on-time .kpi-value") == "—" and time.monotonic() < deadline:
        time.sleep(2)
        tab.reload()
        page.settle()
        tab.wait_for_selector("#ov-kpi-on-time")
    kpis = {k: tab.inner_text(f"#ov-kpi-{k} .kpi-value") for k in ("transactions", "on-time")}
    assert kpis == {"transactions": "9", "on-time": "33.3%"}
    assert tab.inner_text("#ov-kpi-on-time .kpi-note").startswith("2 of 6 judged")
    # VISIT0002, VISIT0004, VISIT0006 and the three claims.
    assert tab.inner_text("#ov-kpi-overdue .kpi-value") == "6"
    # Late VISIT0003 ($150.50), overdue VISIT0002 ($100.00) and VISIT0006 ($12,000.00).
    assert tab.inner_text("#ov-kpi-at-risk .kpi-value") == "$12.3K"
    # DNFB: VISIT0002, VISIT0004 (no charges) and VISIT0006 have no final bill: $12,100.00.
    assert tab.inner_text("#ov-kpi-dnfb .kpi-value") == "$12.1K"
    assert tab.inner_text("#ov-kpi-dnfb .kpi-note").startswith("3 discharged")
    page.shot("overview")
    page.assert_clean()
    # Rows are facilities in slas.yaml order, columns workflows: the top-left cell is
    # Northside x discharge_to_revenue.
    box = tab.locator("#ov-heatmap .nsewdrag").first.bounding_box()
    assert box is not None
    tab.mouse.click(box["x"] + box["width"] / 10, box["y"] + box["height"] / 6)
    tab.wait_for_function("() => location.pathname === '/workflow'")
    page.settle()
    assert "workflow=discharge_to_revenue" in tab.url and "facility=NMC01" in tab.url
    assert "range=30d" in tab.url
    assert "Northside Medical Center" in tab.inner_text("#wf-facility")
    tab.wait_for_selector("#wf-funnel .barlayer")
    page.shot("workflow")
    page.assert_clean()


def test_visit_search_opens_its_detail_with_every_hop(page: Page) -> None:
    tab = page.open("/transactions")
    tab.fill("#tx-key", "VISIT0001")
    tab.press("#tx-key", "Enter")
    tab.wait_for_function("() => location.search === '?key=VISIT0001'")
    page.settle()
    link = tab.locator("#tx-grid a[href^='/transactions/']")
    link.first.wait_for()
    assert link.count() == 1
    page.shot("transactions")
    page.assert_clean()
    link.first.click()
    tab.wait_for_function("() => location.pathname.startsWith('/transactions/')")
    page.settle()
    tab.wait_for_selector("#txd-hops .ag-row")
    # Discharge, ACK, two charges, journal, coding, final bill and the A13 cancel.
    assert tab.locator("#txd-hops .ag-center-cols-container .ag-row").count() == 8
    assert tab.inner_text("#txd-status") == "complete"
    assert "within its deadlines" in tab.inner_text("#txd-reasons")
    tab.wait_for_selector("#txd-timeline .scatterlayer")
    page.shot("transaction")
    page.assert_clean()


def test_csv_download_holds_the_filtered_transactions(page: Page) -> None:
    tab = page.open(f"/transactions?workflow={D2R}&range=30d")
    tab.locator("#tx-grid a[href^='/transactions/']").first.wait_for()
    with tab.expect_download() as download:
        tab.click("#tx-csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["visit"] for r in rows) == [f"VISIT000{n}" for n in range(1, 7)]
    late = next(r for r in rows if r["visit"] == "VISIT0003")
    assert (late["status"], late["facility"], late["amount"]) == ("late", "LCH02", "150.50")
    page.assert_clean()


def test_custom_dates_from_the_picker_are_kept_in_the_url(page: Page) -> None:
    # The six discharges start within T0..T0+5h; the claims from T0+4d. Dates from the
    # day before T0 through the day of T0+5h (UTC: no facility chosen) hold the six only.
    day = dt.timedelta(days=1)
    first = (dt.datetime.fromtimestamp((T0 + SHIFT) / 1e9, dt.UTC) - day).date().isoformat()
    last = dt.datetime.fromtimestamp((T0 + SHIFT + 5 * HOUR) / 1e9, dt.UTC).date().isoformat()
    tab = page.open("/transactions?range=30d")
    tab.locator("#tx-grid a[href^='/transactions/']").first.wait_for()
    tab.fill("#tx-dates-from", first)
    tab.press("#tx-dates-from", "Enter")
    tab.fill("#tx-dates-to", last)
    tab.press("#tx-dates-to", "Enter")
    tab.wait_for_function(f"() => location.search.includes('to={last}')")
    page.settle()
    assert f"from={first}" in tab.url and "range=" not in tab.url
    tab.locator("#tx-grid a[href^='/transactions/']").first.wait_for()
    tab.wait_for_function(
        "() => document.querySelectorAll('#tx-grid .ag-center-cols-container .ag-row').length === 6"
    )
    assert "whole days in UTC" in tab.inner_text("body")
    page.shot("transactions-custom-dates")
    page.assert_clean()
    # The same link opened afresh shows the same view; the overview keeps the dates too.
    overview = page.open(f"/?from={first}&to={last}")
    overview.wait_for_selector("#ov-kpi-transactions")
    assert overview.inner_text("#ov-kpi-transactions .kpi-value") == "6"
    page.assert_clean()


def test_acknowledge_and_silence_from_the_alerts_page(page: Page, server: Any) -> None:
    tab = page.open("/alerts")
    deadline = time.monotonic() + 90
    labels = "facility=NMC01, rule=overdue, workflow=discharge_to_revenue"
    row = tab.locator("#al-grid .ag-center-cols-container .ag-row", has_text=labels)
    while row.count() == 0:  # the evaluator runs every 2 s here
        assert time.monotonic() < deadline, "the overdue alert at NMC01 never fired"
        tab.wait_for_timeout(3000)
        tab.reload()
        page.settle()
    # Logged in, the actor is the login: the page shows it and does not ask.
    assert tab.input_value("#al-author") == ENGINEER
    assert tab.is_disabled("#al-author")
    row.first.locator(".ag-cell").first.click()
    tab.click("#al-ack")
    tab.wait_for_selector("#al-message:has-text('Acknowledged')")
    tab.wait_for_selector("#al-grid .ag-row:has-text('dana.on-call')")
    tab.fill("#al-comment", "charge reviewed by patient accounting")
    tab.click("#al-silence-selected")
    tab.wait_for_selector("#al-message:has-text('Silenced')")
    tab.wait_for_selector("#al-silence-table td:has-text('dana.on-call')")
    table = tab.inner_text("#al-silence-table")
    assert labels in table and "charge reviewed by patient accounting" in table
    # The overdue summary counts VISIT0002, VISIT0004 and VISIT0006 with $12,100.00 at risk.
    assert "3 transactions overdue, $12,100.00 at risk" in tab.inner_text("#al-grid")
    listed = httpx.get(f"{server.api}/api/v1/alerts/silences", timeout=10, headers=AUTH)
    assert listed.status_code == 200 and "dana.on-call" in listed.text
    page.shot("alerts")
    page.assert_clean()


def test_silence_by_matchers_from_the_alerts_page(page: Page) -> None:
    tab = page.open("/alerts")
    tab.fill("#al-matchers", "facility=LCH02, workflow=discharge_to_revenue")
    tab.fill("#al-comment", "interface engine maintenance")
    tab.click("#al-silence-new")
    tab.wait_for_selector("#al-silence-table td:has-text('interface engine maintenance')")
    assert "facility=LCH02, workflow=discharge_to_revenue" in tab.inner_text("#al-silence-table")
    tab.fill("#al-matchers", "facility")
    tab.click("#al-silence-new")
    tab.wait_for_selector("#al-message .error")
    assert "bad matcher 'facility'" in tab.inner_text("#al-message")
    page.assert_clean()


def test_data_health_lists_every_feed(page: Page) -> None:
    tab = page.open("/data-health")
    tab.wait_for_selector("#dh-feeds-table")
    feeds = tab.inner_text("#dh-feeds-table")
    for system in ("EHR_ADT", "IFENGINE", "PERIOP", "LAB", "ERP_GL", "CODING", "PATACCT"):
        assert system in feeds
    # Seven systems at NMC01 and LCH02; six at MSC03, whose one charge line is PERIOP's.
    assert tab.locator("#dh-feeds-table tbody tr").count() == 20
    # The disk with the least free space of the store's and the spool's (one filesystem
    # here: either may be the lowest by a few bytes).
    disk = tab.inner_text("#dh-kpi-disk")
    assert re.search(
        r"Free disk\s+\d+\.\d %\s+[\d.,]+ [KMGT]?i?B of [\d.,]+ [KMGT]?i?B"
        r" on (store:default|spool)",
        disk,
        re.IGNORECASE,  # the title is shown in capitals
    ), disk
    page.shot("data-health")
    page.assert_clean()


def test_unknown_transaction_and_api_paths(page: Page, server: Any) -> None:
    tab = page.open("/transactions/doesnotexist")
    assert "Transaction not found" in tab.inner_text("#txd-missing")
    page.assert_clean()
    missing = httpx.get(f"{server.api}/api/v1/nope", timeout=10, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{server.api}/metrics", timeout=10, headers=AUTH).status_code == 200


def test_a_viewer_reads_but_cannot_act_and_the_audit_log_names_both(
    browser: Any, server: Any
) -> None:
    viewer = Page(browser, server.api, VIEWER)
    try:
        tab = viewer.open("/alerts")
        assert tab.input_value("#al-author") == VIEWER
        tab.fill("#al-matchers", "facility=MSC03")
        tab.click("#al-silence-new")
        tab.wait_for_selector("#al-message .error")
        assert "need the engineer role (you are viewer)" in tab.inner_text("#al-message")
        tab = viewer.open("/transactions?key=VISIT0001")
        link = tab.locator("#tx-grid a[href^='/transactions/']")
        link.first.wait_for()
        tx_id = link.first.get_attribute("href").rsplit("/", 1)[-1]
        viewer.open(f"/transactions/{tx_id}")
        viewer.assert_clean()
    finally:
        viewer.tab.close()
    rows = httpx.get(
        f"{server.api}/api/v1/audit", params={"user": VIEWER}, timeout=10, headers=AUTH
    ).json()["audit"]
    actions = [(r["action"], r["outcome"]) for r in rows]
    assert ("transaction.view", "ok") in actions
    assert ("transaction.search", "ok") in actions
    assert ("login", "ok") in actions
    # The refused silence changed nothing, so it is not an action of the viewer's.
    assert not [a for a in actions if a[0].startswith("alert.")]
    silences = httpx.get(f"{server.api}/api/v1/alerts/silences", timeout=10, headers=AUTH).json()[
        "items"
    ]
    assert all(s["matchers"] != {"facility": "MSC03"} for s in silences)
    engineer = httpx.get(
        f"{server.api}/api/v1/audit", params={"user": ENGINEER}, timeout=10, headers=AUTH
    ).json()["audit"]
    assert {"alert.ack", "alert.silence"} <= {r["action"] for r in engineer}


def download_export(tab: Any, button: str, into: Path) -> Path:
    """Click an Export bundle button, wait for the job, download the signed bundle."""
    tab.click(button)
    link = tab.locator(f"{button}-download")
    link.wait_for(timeout=60_000)
    assert "transactions, signed" in tab.inner_text(f"{button}-status")
    with tab.expect_download() as download:
        link.click()
    saved = into / download.value.suggested_filename
    download.value.save_as(saved)
    return saved


def verify(server: Any, bundle: Path, into: Path) -> str:
    """``stitchboard export verify`` with the server's public key, as an auditor would."""
    key = httpx.get(f"{server.api}/api/v1/exports/public-key", timeout=10, headers=AUTH)
    assert key.status_code == 200
    (into / "server.pub.pem").write_bytes(key.content)
    out = subprocess.run(
        [sys.executable, "-m", "stitchboard", "export", "verify", str(bundle)]
        + ["--public-key", str(into / "server.pub.pem")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def jsonl(bundle: Path, name: str) -> list[dict[str, Any]]:
    with zipfile.ZipFile(bundle) as zf:
        return [json.loads(line) for line in zf.read(name).splitlines()]


def test_an_auditor_exports_a_visit_from_the_console_and_the_bundle_verifies(
    browser: Any, server: Any, tmp_path: Path
) -> None:
    auditor = Page(browser, server.api, AUDITOR)
    try:
        tab = auditor.open("/transactions")
        assert tab.inner_text("#nav-user") == f"{AUDITOR} (auditor)"
        assert tab.locator("nav a[href='/audit']").count() == 1
        assert tab.locator("nav a[href='/exports']").count() == 1
        tab.fill("#tx-key", "VISIT0001")
        tab.press("#tx-key", "Enter")
        tab.wait_for_function("() => location.search === '?key=VISIT0001'")
        auditor.settle()
        link = tab.locator("#tx-grid a[href^='/transactions/']")
        link.first.wait_for()
        assert link.count() == 1
        tx_id = link.first.get_attribute("href").rsplit("/", 1)[-1]
        link.first.click()
        tab.wait_for_function("() => location.pathname.startsWith('/transactions/')")
        auditor.settle()
        tab.wait_for_selector("#txd-hops .ag-row")
        bundle = download_export(tab, "#txd-export", tmp_path)
        auditor.shot("transaction-export")
        auditor.assert_clean()

        # The bundle holds VISIT0001 with its 8 hops, and verifies with the server's key.
        [tx] = jsonl(bundle, "transactions.jsonl")
        assert (tx["id"], tx["keys"]["visit"], len(tx["events"])) == (tx_id, ["VISIT0001"], 8)
        assert "(11 files, 1 transactions, signature good)" in verify(server, bundle, tmp_path)

        # The Transactions page exports what it shows: the six discharges of the last 30 days.
        tab = auditor.open(f"/transactions?workflow={D2R}&range=30d")
        tab.locator("#tx-grid a[href^='/transactions/']").first.wait_for()
        filtered = download_export(tab, "#tx-export", tmp_path)
        visits = sorted(t["keys"]["visit"][0] for t in jsonl(filtered, "transactions.jsonl"))
        assert visits == [f"VISIT000{n}" for n in range(1, 7)]
        assert "6 transactions, signature good" in verify(server, filtered, tmp_path)

        # The audit log in the console shows the search, the view and the export.
        tab = auditor.open(f"/audit?user={AUDITOR}")
        assert tab.inner_text("#nav-user") == f"{AUDITOR} (auditor)"
        for action in ("transaction.search", "transaction.view", "export", "export.written"):
            assert tab.locator(f"#audit-rows td:text-is('{action}')").count() >= 1, action
        assert tx_id in tab.inner_text("#audit-rows")
        auditor.shot("audit")
        auditor.assert_clean()
    finally:
        auditor.tab.close()
    audit = httpx.get(
        f"{server.api}/api/v1/audit", params={"user": AUDITOR}, timeout=10, headers=AUTH
    ).json()["audit"]
    done = {(r["action"], r["outcome"], tx_id in r["targets"]) for r in audit}
    assert {("transaction.view", "ok", True), ("export", "ok", False)} <= done
    assert ("export.written", "ok", True) in done and ("export.download", "ok", False) in done
    assert any(r["action"] == "transaction.search" for r in audit)


def test_a_viewer_sees_no_export_and_is_refused_when_calling_it(browser: Any, server: Any) -> None:
    viewer = Page(browser, server.api, VIEWER)
    try:
        tab = viewer.open("/transactions?key=VISIT0001")
        assert tab.inner_text("#nav-user") == f"{VIEWER} (viewer)"
        assert tab.locator("nav a[href='/audit']").count() == 0
        link = tab.locator("#tx-grid a[href^='/transactions/']")
        link.first.wait_for()
        tx_id = link.first.get_attribute("href").rsplit("/", 1)[-1]
        assert tab.locator("#tx-export").count() == 0
        tab = viewer.open(f"/transactions/{tx_id}")
        tab.wait_for_selector("#txd-hops .ag-row")
        assert tab.locator("#txd-export").count() == 0
        # Calling the export API anyway, from the page, with the session's CSRF token.
        status = tab.evaluate(
            """async (id) => (await fetch("/api/v1/exports", {method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRFToken":
                  (document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/) || [])[1] || ""},
                body: JSON.stringify({transaction_id: id})})).status""",
            tx_id,
        )
        assert status == 403
        viewer.errors.clear()  # the browser logs the refused fetch as a console error
        tab.goto(server.api + "/exports")
        assert "/exports" in tab.url and "forbidden" in tab.inner_text("body")
        # Logging out from the bar ends the session: the console asks for a login again.
        viewer.open("/transactions")
        tab.click("#nav-logout")
        tab.wait_for_function("() => location.pathname === '/login'")
        tab.goto(server.api + "/transactions")
        assert "/login" in tab.url
    finally:
        viewer.tab.close()
