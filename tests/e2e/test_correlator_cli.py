"""``stitchboard correlate`` on a data directory of its own: a backlog pass, then --rebuild."""

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
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-correlate-"))
    yield workdir / "data"
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow  # three short-lived CLI subprocesses on their own data directory
def test_correlate_then_rebuild_with_fewer_workflows(data_dir: Path, tmp_path: Path) -> None:
    url = f"chdb://{data_dir}"
    seed = textwrap.dedent(f"""
        from stitchboard.events import EVENT_COLUMNS
        from stitchboard.stages import open_store
        from tests.correlator_helpers import at, discharge_chain
        store = open_store({url!r})
        events = discharge_chain(at("2026-03-09T09:00:00-05:00"))
        store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    """)
    subprocess.run([sys.executable, "-c", seed], check=True, cwd=ROOT, timeout=120)

    first = run("correlate", "--clickhouse", url)
    assert first.returncode == 0, first.stderr
    # One discharge_to_revenue transaction holding all 7 (complete), and the final bill
    # starting a claim_to_cash one with no claim after it (overdue).
    assert "correlated 7 events into 2 transactions" in first.stdout
    assert first.stdout.split("\n")[1:3] == ["  complete     1", "  overdue      1"]
    rows = sql(url, "SELECT workflow, status FROM {db}.transactions FINAL WHERE deleted = 0")
    assert {(r["workflow"], r["status"]) for r in rows} >= {("discharge_to_revenue", "complete")}

    # Without discharge_to_revenue, a rebuild leaves none of its transactions.
    text = (ROOT / "slas.yaml").read_text()
    cut = text.index("  - name: discharge_to_revenue")
    rest = text.index("  # claim -> cash")
    config = tmp_path / "slas.yaml"
    text = text[:cut] + text[rest:]
    # The shipped SLOs judge discharge_to_revenue too: without it they would be refused.
    text = text[: text.index("\nslos:\n")] + text[text.index("\nalerts:\n") :]
    config.write_text(text)
    again = run("correlate", "--clickhouse", url, "--config", str(config), "--rebuild")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("rebuilt 7 events into 1 transactions")
    rows = sql(url, "SELECT workflow FROM {db}.transactions FINAL WHERE deleted = 0")
    assert "discharge_to_revenue" not in {r["workflow"] for r in rows}
