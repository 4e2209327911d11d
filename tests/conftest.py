"""Shared fixtures: one embedded ClickHouse engine per test process, a database per module."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stitchboard.stages import open_store
from stitchboard.store import Store

_engine_dir: Path | None = None


def engine_url() -> str:
    """The one chdb data directory this test process may open."""
    global _engine_dir
    if _engine_dir is None:
        _engine_dir = Path(tempfile.mkdtemp(prefix="stitchboard-engine-"))
    return f"chdb://{_engine_dir}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _engine_dir is not None:
        shutil.rmtree(_engine_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated database of its own for each test module."""
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    s = open_store(engine_url(), database=name)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{name}`")
    s.close()
