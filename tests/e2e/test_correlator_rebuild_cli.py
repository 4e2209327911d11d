"""``stitchboard correlator rebuild`` on a data directory of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT, sql


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stitchboard", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


@pytest.fixture
def data_dir():
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-rebuild-"))
    yield workdir / "data"
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow  # CLI subprocesses on their own data directory
def test_rebuild_writes_every_transaction_and_is_idempotent(data_dir: Path, tmp_path) -> None:
    url = f"chdb://{data_dir}"
    seed = textwrap.dedent(f"""
        from stitchboard.events import EVENT_COLUMNS
        from stitchboard.stages import open_store
        from tests.correlator_helpers import at, discharge_chain
        store = open_store({url!r})
        t0 = at("2026-03-09T09:00:00-05:00")
        events = discharge_chain(t0, 1) + discharge_chain(t0, 2, batch="B2")
        store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    """)
    subprocess.run([sys.executable, "-c", seed], check=True, cwd=ROOT, timeout=120)

    first = run("correlator", "rebuild", "--clickhouse", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("rebuilt 14 events into 4 transactions"), first.stdout
    query = "SELECT workflow, status, length(event_ids) AS n FROM {db}.transactions FINAL"
    rows = sql(url, query + " WHERE deleted = 0 ORDER BY workflow, n")
    # Per visit: a complete discharge (ADT, ACK, 2 charges, journal, coding, final bill)
    # and a claim holding the final bill.
    assert [(r["workflow"], r["n"]) for r in rows] == [
        ("claim_to_cash", 1),
        ("claim_to_cash", 1),
        ("discharge_to_revenue", 7),
        ("discharge_to_revenue", 7),
    ]
    assert {r["status"] for r in rows if r["workflow"] == "discharge_to_revenue"} == {"complete"}

    again = run("correlator", "rebuild", "--clickhouse", url)
    assert again.returncode == 0, again.stderr
    assert "; 0 retired," in again.stdout
    assert sql(url, query + " WHERE deleted = 0 ORDER BY workflow, n") == rows

    broken = tmp_path / "slas.yaml"
    broken.write_text("workflows: [{name: Bad}]\n")
    refused = run("correlator", "rebuild", "--clickhouse", url, "--config", str(broken))
    assert refused.returncode != 0
    assert "slas.yaml" in refused.stderr
