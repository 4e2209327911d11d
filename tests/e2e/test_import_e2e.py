"""End to end against a real ``stitchboard serve``: MLLP with the hl7 package's client,
``stitchboard import`` sending to the running server, dead-letter replay after editing
slas.yaml, then a direct import once the server is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from tests.support import ROOT, TEST_KEY, TOKEN_ENV, ServeProcess, sql

DATA = Path(__file__).parents[1] / "data" / "hl7"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "stitchboard", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or ROOT,
        env={**os.environ, "STITCHBOARD_PSEUDONYM_KEY": TEST_KEY, **TOKEN_ENV, **(env or {})},
    )


@pytest.mark.slow
def test_mllp_import_and_replay_through_a_running_server(tmp_path):
    config = tmp_path / "slas.yaml"
    config.write_text((ROOT / "slas.yaml").read_text())
    adt_file = tmp_path / "adt.hl7"
    adt_file.write_bytes(
        b"".join(
            (DATA / "adt_a03.hl7")
            .read_bytes()
            .replace(b"ADT20250314162210004417", f"E2E-{n:05d}".encode())
            + b"\n"
            for n in range(200)  # in chunks of 50 (several requests), then sent again
        )
        + (DATA / "v23_adt_a01.hl7").read_bytes()  # an undeclared facility: kept as sent
        + b"\n"
        + (DATA / "adt_a03.hl7")  # unreadable: dead-lettered
        .read_bytes()
        .replace(b"ADT20250314162210004417", b"BROKEN-1")
        .replace(b"EVN|", b"EVN-BROKEN|")
    )
    server = ServeProcess(tmp_path / "data", config=config).start()
    try:
        with MLLPClient("127.0.0.1", server.mllp_port) as client:
            reply = client.send_message((DATA / "dft_p03.hl7").read_bytes())
        ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode())
        assert (str(ack["MSA.F1"]), str(ack["MSA.F2"])) == ("AA", "DFT20250312110545000188")

        env = {"STITCHBOARD_PORT": str(server.port)}
        first = cli("import", str(adt_file), "--chunk", "50", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert f"server http://127.0.0.1:{server.port}" in first.stderr
        assert "is not an HL7 segment" in first.stderr
        assert "unknown facility" not in first.stderr
        second = cli("import", str(adt_file), env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr

        listed = cli("dead-letters", "list", env=env, cwd=tmp_path)
        assert listed.returncode == 0 and "1 dead letters" in listed.stdout
        assert "GOOD HEALTH" not in listed.stdout
        replayed = cli(
            "dead-letters", "replay", "--reason", "not an HL7 segment", env=env, cwd=tmp_path
        )
        assert replayed.returncode == 0, replayed.stderr
        assert "0 replayed" in replayed.stdout  # still unreadable: nothing to fix in slas.yaml
        health = server.health()
        assert health["status"] == "ok"
    finally:
        assert server.stop() == 0

    # The server is gone: import opens the store directly.
    credit = tmp_path / "credit.hl7"
    credit.write_bytes((DATA / "dft_p03_credit.hl7").read_bytes())
    direct = cli(
        "import",
        str(credit),
        "--clickhouse",
        server.clickhouse,
        env={"STITCHBOARD_PORT": str(server.port)},
        cwd=tmp_path,
    )
    assert direct.returncode == 0, direct.stderr
    assert "store chdb://" in direct.stderr
    rows = sql(
        server.clickhouse,
        "SELECT countIf(startsWith(keys['msg'], 'E2E-')) AS imported,"
        " countIf(keys['msg'] = 'DFT20250312110545000188') AS mllp,"
        " countIf(facility = 'GOOD HEALTH HOSPITAL') AS undeclared,"
        " countIf(keys['charge'] = 'CHG-88120457-R1') AS direct"
        " FROM {db}.events FINAL",
    )
    assert rows == [{"imported": 200, "mllp": 1, "undeclared": 1, "direct": 1}]


@pytest.mark.slow
def test_direct_import_with_worker_processes(tmp_path):
    """``stitchboard import --workers 2`` from a real command line: the spawned judging
    processes do not re-run the command, and every record is stored once."""
    adt = (DATA / "adt_a03.hl7").read_bytes()
    path = tmp_path / "many.hl7"
    path.write_bytes(
        b"".join(
            adt.replace(b"ADT20250314162210004417", b"WRK-%04d" % n).replace(b"\r", b"\n") + b"\n"
            for n in range(120)
        )
    )
    data = tmp_path / "data"
    (tmp_path / "slas.yaml").write_text((ROOT / "slas.yaml").read_text())
    env = {"STITCHBOARD_PORT": "1"}  # no server answers there: import opens the store
    args = (
        "import",
        str(path),
        "--chunk",
        "10",
        "--workers",
        "2",
        "--python",  # the judging processes parse HL7 only on the Python path
        "--clickhouse",
        f"chdb://{data}",
    )
    first = cli(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    script = Path(sys.executable).with_name("stitchboard")  # the console script, as installed
    again = subprocess.run(
        [str(script), *args, "--restart"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "STITCHBOARD_PSEUDONYM_KEY": TEST_KEY, **TOKEN_ENV, **env},
    )
    assert again.returncode == 0, again.stderr
    rows = sql(
        f"chdb://{data}",
        "SELECT count() AS events, uniqExact(keys['msg']) AS messages"
        " FROM {db}.events FINAL WHERE startsWith(keys['msg'], 'WRK-')",
    )
    assert rows == [{"events": 120, "messages": 120}]
    imports = sql(f"chdb://{data}", "SELECT max(offset) AS offset FROM {db}.message_imports")
    assert imports == [{"offset": path.stat().st_size}]
