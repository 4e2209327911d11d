"""``stitchboard alerts …`` as a user runs it: subprocesses on a data directory of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, TEST_KEY

pytestmark = pytest.mark.slow


@pytest.fixture
def url() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-alerts-cli-"))
    yield f"chdb://{workdir / 'data'}"
    shutil.rmtree(workdir, ignore_errors=True)


def alerts(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "stitchboard",
            "alerts",
            *args,
            "--clickhouse",
            url,
            "--config",
            str(ROOT / "slas.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "STITCHBOARD_PSEUDONYM_KEY": TEST_KEY},
    )


def test_evaluate_silence_list_and_test_channel(url: str) -> None:
    once = alerts(url, "evaluate", "--once")
    assert once.returncode == 0, once.stderr
    # An empty store: 7 SLOs x 3 facilities, all no_data, nothing fires.
    assert once.stdout.strip() == "21 SLO groups, 0 conditions, 0 firing, 0 notifications"

    created = alerts(
        url,
        "silence",
        "facility=LCH02",
        "rule=idle_feed",
        "--author",
        "dana",
        "--duration",
        "90m",
        "--comment",
        "EHR upgrade",
    )
    assert created.returncode == 0, created.stderr
    silence_id = created.stdout.strip()
    assert len(silence_id) == 32

    bad = alerts(url, "silence", "facility", "--author", "dana")
    assert bad.returncode == 2 and "bad matcher 'facility'" in bad.stderr

    expired = alerts(url, "unsilence", silence_id, "--author", "lee")
    assert expired.stdout.strip() == f"expired {silence_id}"
    missing = alerts(url, "unsilence", "nope", "--author", "lee")
    assert missing.returncode == 1 and "no silence 'nope'" in missing.stderr

    listed = alerts(url, "list")
    assert listed.returncode == 0 and listed.stdout == ""
    ack = alerts(url, "ack", "0123456789abcdef", "--author", "dana")
    assert ack.returncode == 1 and "no alert with fingerprint" in ack.stderr

    tested = alerts(url, "test-channel", "log")
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.strip() == "attempt 1: sent logged"
    assert "Stitchboard test notification on channel log" in tested.stderr
    unknown = alerts(url, "test-channel", "pager")
    assert unknown.returncode == 2 and "no channel 'pager'" in unknown.stderr
