"""Free disk as a running server reports it: health, /metrics, on the embedded engine."""

from __future__ import annotations

import shutil
from pathlib import Path

from httpx import Client

from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from tests.support import AUTH, InProcess, free_port, make_runtime


def _serve(runtime):
    port = free_port()
    server = HttpComponent("console", build_api(runtime, []), "127.0.0.1", port, "Console")
    return InProcess([server]), Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH)


def test_health_and_metrics_list_the_store_disk_and_the_spool(store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    # Every disk has less than 100 % free: each one is warned about.
    runtime = make_runtime(store, spool=spool, disk_min_free_percent=100.0)
    served, client = _serve(runtime)
    with served, client:
        body = client.get("/api/v1/health").json()
        metrics = client.get("/metrics").text
    runtime.writer.close()

    engine_path = store.scalar("SELECT path FROM system.disks WHERE name = 'default'")
    assert [d["name"] for d in body["disks"]] == ["store:default", "spool"]
    on_store, on_spool = body["disks"]
    assert on_store["path"] == engine_path and on_spool["path"] == str(spool)
    # The engine's figures are its filesystem's (statvfs), as Python reads them.
    for disk, where in ((on_store, engine_path), (on_spool, spool)):
        usage = shutil.disk_usage(where)
        assert disk["total_bytes"] == usage.total
        assert abs(disk["free_bytes"] - usage.free) < 1 << 30  # other writers meanwhile
        assert disk["free_percent"] == round(100 * disk["free_bytes"] / usage.total, 1)
        assert disk["low"] is True
    assert len(body["warnings"]) == 2
    assert body["warnings"][0].startswith(f"low disk: store:default ({engine_path}) has ")
    assert body["warnings"][1].startswith(f"low disk: spool ({spool}) has ")
    assert body["status"] == "ok"  # a warning, not an outage

    free = {
        line.split("disk=")[1].split(",")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("stitchboard_disk_free_bytes{")
    }
    assert set(free) == {'"store:default"', '"spool"'}
    assert abs(free['"spool"'] - on_spool["free_bytes"]) < 1 << 30


def test_no_warning_above_the_threshold(store) -> None:
    runtime = make_runtime(store, disk_min_free_percent=0.0)
    served, client = _serve(runtime)
    with served, client:
        body = client.get("/api/v1/health").json()
    runtime.writer.close()
    assert [d["name"] for d in body["disks"]] == ["store:default"]  # no spool: none listed
    assert body["warnings"] == [] and body["disks"][0]["low"] is False
