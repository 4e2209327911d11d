"""Export bundles on the embedded store: contents, signature, tamper detection, the API job.

Two discharges at Northside share GL batch B1: visit V1 has 7 hops (ADT, ACK,
two charges, coding, final bill, journal), visit V2 the same 6 without its own
journal, so the journal belongs to both. 13 distinct hops are stored. Each final bill also starts a
claim_to_cash transaction, so there are four transactions in all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from correlator.service import CorrelatorService
from exports.bundle import MANIFEST, SIGNATURE, Selection, write_bundle
from exports.signing import public_pem, sign
from exports.verify import verify_bundle
from stitchboard.api import build_api
from stitchboard.audit import AuditEntry, AuditLog
from stitchboard.components import HttpComponent
from stitchboard.events import DEAD_LETTER_COLUMNS, EVENT_COLUMNS, DeadLetter
from stitchboard.stages import served_stages
from tests.correlator_helpers import HOUR, at, discharge_chain, shipped_config
from tests.support import AUTH, ROOT, InProcess, free_port, make_runtime

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def two_visits(store):
    second = [e for e in discharge_chain(T0 + HOUR, 2) if e.system != "ERP_GL"]
    events = discharge_chain(T0, 1) + second
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    CorrelatorService(store, CONFIG).full_pass()
    workflows = store.rows(
        f"SELECT workflow, count() FROM {store.table('transactions')} FINAL"
        " WHERE deleted = 0 GROUP BY workflow ORDER BY workflow"
    )
    # Each final bill also opens a claim_to_cash transaction.
    assert workflows == [("claim_to_cash", 2), ("discharge_to_revenue", 2)]
    return store


def export(store, tmp_path: Path, selection: Selection, name: str = "b.zip") -> Path:
    runtime = make_runtime(store)
    out = tmp_path / name
    write_bundle(
        store,
        CONFIG,
        ROOT / "slas.yaml",
        runtime.pseudonymize,
        selection,
        out,
        "ana",
        KEY,
    )
    runtime.writer.close()
    return out


def lines(bundle: Path, name: str) -> list[dict]:
    with zipfile.ZipFile(bundle) as zf:
        return [json.loads(x) for x in zf.read(name).splitlines()]


def rewrite(bundle: Path, out: Path, change) -> Path:
    """Copy a bundle member by member, letting ``change(name, data)`` alter or drop each."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = change(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
    return out


def test_a_filter_export_holds_every_transaction_hop_and_audit_row(two_visits, tmp_path):
    store = two_visits
    [v1] = [
        r[0]
        for r in store.rows(
            f"SELECT transaction_id FROM {store.table('transaction_keys')}"
            " WHERE value = 'V1' AND workflow = 'discharge_to_revenue'"
        )
    ]
    AuditLog(store, "export-test").record(
        AuditEntry("bob", "viewer", "transaction.view", (v1,), "10.0.0.7")
    )
    bundle = export(store, tmp_path, Selection(workflow="discharge_to_revenue"))
    txs = lines(bundle, "transactions.jsonl")
    assert sorted(t["keys"]["visit"][0] for t in txs) == ["V1", "V2"]
    assert sorted(len(t["events"]) for t in txs) == [7, 7]  # the shared journal in both
    assert len(lines(bundle, "events.jsonl")) == 13
    audit = lines(bundle, "audit.jsonl")
    assert [(a["actor"], a["action"], a["targets"]) for a in audit] == [
        ("bob", "transaction.view", [v1])
    ]
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        slas = zf.read("slas.yaml")
        report = zf.read("report.html").decode()
    assert slas == (ROOT / "slas.yaml").read_bytes()
    assert manifest["slas_sha256"] == hashlib.sha256(slas).hexdigest()
    assert manifest["transactions"] == 2 and manifest["exporter"] == "ana"
    assert manifest["selection"] == {"workflow": "discharge_to_revenue"}
    assert set(manifest["files"]) == {
        "transactions.jsonl",
        "events.jsonl",
        "spans.jsonl",
        "logs.jsonl",
        "audit.jsonl",
        "messages.jsonl",
        "dead_letters.jsonl",
        "report.html",
        "slas.yaml",
        "signing-key.pub.pem",
    }
    assert "ADT^A03" in report and "2 transactions." in report
    result = verify_bundle(bundle, KEY.public_key())
    assert result.ok and result.files_checked == 10 and result.transactions == 2


def test_one_transaction_and_a_key_search(two_visits, tmp_path):
    by_key = export(two_visits, tmp_path, Selection(key="C1a"), "key.zip")  # a charge id
    [tx] = lines(by_key, "transactions.jsonl")
    assert tx["keys"]["visit"] == ["V1"]
    one = export(two_visits, tmp_path, Selection(transaction_id=tx["id"]), "one.zip")
    assert [t["id"] for t in lines(one, "transactions.jsonl")] == [tx["id"]]


@pytest.fixture(scope="module")
def good(two_visits, tmp_path_factory) -> Path:
    return export(two_visits, tmp_path_factory.mktemp("good"), Selection(), "good.zip")


@pytest.mark.parametrize(
    "member", ["transactions.jsonl", "events.jsonl", "audit.jsonl", "report.html", "slas.yaml"]
)
def test_one_altered_byte_in_any_file_is_named(good, tmp_path, member):
    def flip(name: str, data: bytes) -> bytes:
        if name != member:
            return data
        return data[:10] + bytes([data[10] ^ 0x01]) + data[11:]

    bad = rewrite(good, tmp_path / "bad.zip", flip)
    problems = verify_bundle(bad, KEY.public_key()).problems
    assert len(problems) == 1 and problems[0].startswith(f"{member}: altered (SHA-256 ")


def test_a_dropped_file_and_an_added_file_are_named(good, tmp_path):
    dropped = rewrite(good, tmp_path / "d.zip", lambda n, d: None if n == "audit.jsonl" else d)
    assert verify_bundle(dropped, KEY.public_key()).problems == [
        "audit.jsonl: missing (listed in the manifest)"
    ]
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "a.zip", "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("extra.csv", b"x")
    assert verify_bundle(tmp_path / "a.zip", KEY.public_key()).problems == [
        "extra.csv: not in the manifest (added)"
    ]


def test_a_bundle_re_signed_with_another_key_fails(good, tmp_path):
    mallory = Ed25519PrivateKey.generate()
    with zipfile.ZipFile(good) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        events = zf.read("events.jsonl")
    forged_events = events.replace(b"NMC01", b"NMC02", 1)
    forged_key = public_pem(mallory.public_key())
    for name, data in (("events.jsonl", forged_events), ("signing-key.pub.pem", forged_key)):
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    forged = json.dumps(manifest, indent=2, sort_keys=True).encode()
    replacements = {
        "events.jsonl": forged_events,
        "signing-key.pub.pem": forged_key,
        MANIFEST: forged,
        SIGNATURE: sign(mallory, forged).encode(),
    }
    bad = rewrite(good, tmp_path / "resigned.zip", lambda n, d: replacements.get(n, d))
    problems = verify_bundle(bad, KEY.public_key()).problems
    assert len(problems) == 1
    assert problems[0].startswith("manifest.json: signature does not verify with the trusted key")


def test_export_verify_command(good, tmp_path):
    pem = tmp_path / "trusted.pem"
    pem.write_bytes(public_pem(KEY.public_key()))

    def run(bundle: Path) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "stitchboard", "export", "verify", str(bundle)]
        cmd += ["--public-key", str(pem)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    ok = run(good)
    assert ok.returncode == 0 and "verified (10 files, 4 transactions" in ok.stdout
    bad = rewrite(
        good, tmp_path / "bad.zip", lambda n, d: d + b" " if n == "transactions.jsonl" else d
    )
    failed = run(bad)
    assert failed.returncode == 1
    assert "transactions.jsonl: altered" in failed.stderr and "NOT verified" in failed.stderr


def test_an_auditor_exports_through_the_api_and_the_bundle_verifies(two_visits, tmp_path):
    from stitchboard import credentials
    from stitchboard.roles import Role

    store = two_visits
    runtime = make_runtime(store)
    stages = served_stages()
    app = build_api(runtime, [r for s in stages for r in s.routers(runtime)])
    _, secret = credentials.create_token(store, "auditor-api", Role.AUDITOR, "test", None)
    auditor = {"Authorization": f"Bearer {secret}"}
    port = free_port()
    with (
        InProcess([HttpComponent("console", app, "127.0.0.1", port, "Console")]),
        httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as api,
    ):
        started = api.post("/exports", json={"key": "V2"}, headers=auditor)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while (job := api.get(f"/exports/{job_id}", headers=auditor).json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["status"] == "done" and job["transactions"] == 1
        # Another user (even an admin) cannot read this auditor's job.
        assert api.get(f"/exports/{job_id}", headers=AUTH).status_code == 404
        download = api.get(f"/exports/{job_id}/bundle", headers=auditor)
        assert download.status_code == 200
        assert download.headers["cache-control"] == "no-store"
        pem = api.get("/exports/public-key", headers=auditor).content
        audit = api.get("/audit", params={"user": "token:auditor-api"}, headers=auditor).json()
    runtime.writer.close()
    bundle = tmp_path / "api.zip"
    bundle.write_bytes(download.content)
    from exports.signing import load_public_key

    result = verify_bundle(bundle, load_public_key(pem, "api"))
    assert result.ok and result.transactions == 1
    actions = {r["action"] for r in audit["audit"]}
    assert {"export", "export.written", "export.download"} <= actions


def test_a_page_read_in_bulk_equals_each_transaction_read_alone(two_visits):
    from correlator import StoreTransactions

    reader = StoreTransactions(two_visits, CONFIG)
    ids = [
        r[0] for r in two_visits.rows(f"SELECT id FROM {two_visits.table('transactions')} FINAL")
    ]
    now = T0 + 40 * 86_400 * 1_000_000_000
    assert len(ids) == 4
    assert reader.get_transactions(ids, now) == [reader.get_transaction(i, now) for i in ids]


def test_the_slas_versions_in_force_since_the_first_transaction_are_included(two_visits, tmp_path):
    import datetime as dt

    from stitchboard.config_history import record_config

    store = two_visits
    start = dt.datetime.fromtimestamp(T0 / 1e9, dt.UTC)  # V1's discharge, the earliest start
    texts = {}
    for days, name in ((-10, "v0"), (-1, "v1"), (1, "v2")):
        path = tmp_path / f"{name}.yaml"
        path.write_bytes((ROOT / "slas.yaml").read_bytes() + f"# {name}\n".encode())
        sha, new = record_config(store, path, now=start + dt.timedelta(days=days))
        assert new
        texts[name] = (sha, path.read_bytes())
    assert record_config(store, tmp_path / "v2.yaml") == (texts["v2"][0], False)
    bundle = export(store, tmp_path, Selection(workflow="discharge_to_revenue"), "v.zip")
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        # v0 was replaced by v1 before the first transaction began: not in force.
        assert [v["sha256"] for v in manifest["slas_versions"]] == [
            texts["v1"][0],
            texts["v2"][0],
        ]
        for name in ("v1", "v2"):
            sha, content = texts[name]
            assert zf.read(f"slas-versions/{sha}.yaml") == content
    assert verify_bundle(bundle, KEY.public_key()).files_checked == 12


def test_a_bad_selection_is_refused_naming_every_problem(two_visits, tmp_path):
    from exports.errors import ExportError

    bad = Selection(transaction_id="x-1", workflow="dischrage", since="last tuesday")
    with pytest.raises(ExportError) as info:
        export(two_visits, tmp_path, bad)
    message = str(info.value)
    assert "transaction_id: bad transaction id 'x-1'" in message
    assert "transaction_id selects one transaction: give no filter with it" in message
    assert "workflow: unknown 'dischrage'; known: discharge_to_revenue" in message
    assert "since: not an ISO 8601 time: 'last tuesday'" in message
    assert not (tmp_path / "b.zip").exists()


def test_status_and_flag_narrow_a_filter_export(two_visits, tmp_path):
    everything = lines(export(two_visits, tmp_path, Selection(), "all.zip"), "transactions.jsonl")
    assert len(everything) == 4
    for status in {t["status"] for t in everything}:
        narrowed = export(two_visits, tmp_path, Selection(status=status), f"{status}.zip")
        expected = sorted(t["id"] for t in everything if t["status"] == status)
        assert sorted(t["id"] for t in lines(narrowed, "transactions.jsonl")) == expected
    from exports.errors import ExportError

    with pytest.raises(ExportError) as info:
        export(two_visits, tmp_path, Selection(status="lost", flag="odd"), "bad.zip")
    assert "status: unknown 'lost'; known: in_progress" in str(info.value)
    assert "flag: unknown 'odd'; known: missing_step" in str(info.value)


HL7_ADT = "MSH|^~\\&|EHR|NMC01|IFE|NMC01|20260309090000||ADT^A03|M1|P|2.5\rPID|||phi:3f2a||phi:9c1e"


def test_stored_messages_and_dead_letters_that_mention_a_key_are_in_the_bundle(
    two_visits, tmp_path
):
    store = two_visits
    # V1's discharge again, now with its masked message text kept (store_message: true):
    # the newer row replaces the old one, the hop is the same.
    adt = discharge_chain(T0, 1)[0]
    kept = dataclasses.replace(adt, attributes={**adt.attributes, "hl7.message": HL7_ADT})
    store.insert("events", EVENT_COLUMNS, [kept.row()])
    letters = [
        # Mentions charge C1a (V1's) five hours in: related.
        DeadLetter(
            "mllp", "x-application/hl7-v2+er7", b"FT1|1||C1a|bad amount", "FT1-6", T0 + 5 * HOUR
        ),
        # Mentions no key of the export.
        DeadLetter("mllp", "x-application/hl7-v2+er7", b"FT1|1||ZZZ9|x", "FT1-6", T0 + 5 * HOUR),
        # Mentions C1a, but 60 days later: outside the 30 days around V1.
        DeadLetter(
            "mllp", "x-application/hl7-v2+er7", b"FT1|1||C1a|late", "FT1-6", T0 + 60 * 24 * HOUR
        ),
    ]
    store.insert("dead_letters", DEAD_LETTER_COLUMNS, [d.row() for d in letters])
    bundle = export(store, tmp_path, Selection(key="C1a"), "content.zip")
    [tx] = lines(bundle, "transactions.jsonl")
    [message] = lines(bundle, "messages.jsonl")
    assert (message["event_id"], message["content"]) == (adt.event_id, HL7_ADT)
    assert message["content_type"] == "x-application/hl7-v2+er7"
    [letter] = lines(bundle, "dead_letters.jsonl")
    assert (letter["id"], letter["payload"], letter["reason"]) == (
        letters[0].dead_letter_id,
        "FT1|1||C1a|bad amount",
        "FT1-6",
    )
    assert letter["transactions"] == [tx["id"]]
    assert verify_bundle(bundle, KEY.public_key()).ok
