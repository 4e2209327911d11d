"""Free disk: the figures, the warnings and the data health card, from known sizes."""

from __future__ import annotations

import shutil
from pathlib import Path

from dashboards.formatting import size
from dashboards.pages.data_health import disk_card
from stitchboard.disks import GIB, DiskSpace, path_space, warnings

STORE = DiskSpace("store:default", "/data/", 30 * GIB, 200 * GIB)  # 15 %
SPOOL = DiskSpace("spool", "spool", 150 * GIB, 200 * GIB)  # 75 %


def test_free_percent_and_low() -> None:
    assert STORE.free_percent == 15.0
    assert STORE.low(20.0) and not STORE.low(15.0) and not STORE.low(10.0)
    assert DiskSpace("store:s3", "", 0, 0).free_percent == 100.0  # no size: never low


def test_warnings_name_each_disk_below_the_threshold() -> None:
    assert warnings([STORE, SPOOL], 10.0) == []
    assert warnings([STORE, SPOOL], 20.0) == [
        "low disk: store:default (/data/) has 30.0 GiB free (15.0 % of 200.0 GiB),"
        " below the 20 % that STITCHBOARD_DISK_MIN_FREE_PERCENT asks for"
    ]
    assert len(warnings([STORE, SPOOL], 80.0)) == 2


def test_as_dict_is_what_health_lists() -> None:
    assert STORE.as_dict(20.0) == {
        "name": "store:default",
        "path": "/data/",
        "free_bytes": 30 * GIB,
        "total_bytes": 200 * GIB,
        "free_percent": 15.0,
        "low": True,
    }


def test_a_spool_directory_not_made_yet_is_measured_on_its_parent(tmp_path: Path) -> None:
    disk = path_space("spool", tmp_path / "not" / "yet")
    usage = shutil.disk_usage(tmp_path)
    assert disk.path == str(tmp_path / "not" / "yet")
    assert disk.total_bytes == usage.total
    assert abs(disk.free_bytes - usage.free) < 64 << 20  # other writers between the reads


def test_sizes_in_binary_units() -> None:
    assert size(512) == "512 B"
    assert size(1536) == "1.5 KiB"
    assert size(30 * GIB) == "30.0 GiB"
    assert size(3 * 1024 * GIB) == "3.0 TiB"
    assert size(None) == "—"


def test_the_card_shows_the_disk_with_the_least_free_space() -> None:
    card = disk_card([SPOOL, STORE], 10.0)
    value, note = card.children[1].children, card.children[2].children
    assert (value, note) == ("15.0 %", "30.0 GiB of 200.0 GiB on store:default")
    assert card.className == "kpi warn"  # 15 % is under twice the 10 %
    assert disk_card([SPOOL, STORE], 20.0).className == "kpi bad"
    assert disk_card([SPOOL, STORE], 5.0).className == "kpi good"
    unread = disk_card([], 10.0)
    assert (unread.children[1].children, unread.className) == ("—", "kpi warn")


def test_a_relative_spool_directory_is_reported_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert path_space("spool", Path("spool")).path == str(tmp_path / "spool")
