"""The command line at its edges: a taken port, a read-only ``sql``, a store held by a
server, ``check-config`` listing every problem, ``--version`` and plain help."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stitchboard import __version__
from tests.support import ROOT, free_port, serve_process


def stitchboard(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stitchboard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_taken_port_is_one_line_exit_2_and_nothing_on_disk(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        # Every other port free and explicit: the machine may run other servers.
        others = [
            ("--port", free_port()),
            ("--otlp-http-port", free_port()),
            ("--otlp-grpc-port", free_port()),
        ]
        done = stitchboard(
            "serve",
            "--clickhouse",
            f"chdb://{data}",
            *(part for flag, free in others for part in (flag, str(free))),
            "--mllp-port",
            str(port),
            cwd=tmp_path,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on port {port} of 127.0.0.1: it is already in use;"
        " choose another with --mllp-port (or 0 to disable it)"
    ]
    assert not data.exists()


def test_check_config_takes_a_path_and_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "slas.yaml"
    bad.write_text(
        "facilities:\n  - {id: A, timezone: Nowhere/Zone}\n"
        "keys:\n  visit: {attributes: [visit.id]}\n"
        "workflows:\n  - name: w\n    steps:\n"
        "      - {name: a, match: {system: X}, keys: [visit, chrge]}\n"
    )
    done = stitchboard("check-config", str(bad))
    assert done.returncode == 2
    assert "facilities[0].timezone: unknown time zone 'Nowhere/Zone'" in done.stderr
    assert "workflows[0].steps[0].keys[1]: key 'chrge' is not declared in keys" in done.stderr
    ok = stitchboard("check-config", str(ROOT / "slas.yaml"))
    assert ok.returncode == 0 and "ok (3 facilities" in ok.stdout


def test_version_and_help_without_bool_metavars() -> None:
    assert stitchboard("--version").stdout.strip() == f"stitchboard {__version__}"
    for args in ((), ("serve",), ("import",), ("dead-letters", "replay"), ("correlate",)):
        help_text = stitchboard(*args, "--help").stdout
        assert "<bool>" not in help_text and "Usage:" in help_text, args


@pytest.mark.slow
def test_sql_is_read_only_and_says_when_a_server_holds_the_store(tmp_path: Path) -> None:
    with serve_process() as server:
        held = stitchboard("sql", "--clickhouse", server.clickhouse, "SELECT 1")
        assert held.returncode == 2
        [line] = held.stderr.strip().splitlines()
        assert "is held by a running server" in line and "/api/v1/" in line
        assert server.stop() == 0
        url = server.clickhouse
        _reads_but_never_writes(url)


def _reads_but_never_writes(url: str) -> None:
    read = stitchboard("sql", "--clickhouse", url, "SELECT count() AS n FROM {db}.events")
    assert (read.returncode, read.stdout.strip()) == (0, '{"n": 0}')
    for change in ("DROP TABLE {db}.events", "CREATE TABLE {db}.x (a Int8) ENGINE = Memory"):
        refused = stitchboard("sql", "--clickhouse", url, change)
        assert refused.returncode == 2 and "read-only" in refused.stderr, change
    assert stitchboard("sql", "--clickhouse", url, "EXISTS TABLE {db}.events").stdout.strip()
