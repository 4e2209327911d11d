"""Shared fixtures: one embedded ClickHouse engine per test process, a database per module.

A module's database is freshly migrated, or one a previous module left behind with
every table emptied: migrating costs dozens of DDL statements (a second or more on a
busy machine, for each of some sixty modules), emptying a few milliseconds. A
database is passed on only when it is exactly as migrations leave it (the same
tables with the same definitions; a module that altered, added or dropped one gets
it dropped) and when the module left no thread running that could still write into
it; otherwise it is dropped, as before.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stitchboard.stages import open_store
from stitchboard.store import Store

_engine_dir: Path | None = None
# Emptied databases as migrations leave them, for the next modules.
_spare: list[str] = []
# The tables of a freshly migrated database (name, engine, definition without its name).
_pristine: list[tuple[str, str, str]] | None = None
# Pools whose idle threads outlive every module: they hold no database of their own.
_SHARED_THREADS = ("console-read",)


def engine_url() -> str:
    """The one chdb data directory this test process may open."""
    global _engine_dir
    if _engine_dir is None:
        _engine_dir = Path(tempfile.mkdtemp(prefix="stitchboard-engine-"))
        # Removed when the process ends, pytest or not (``python -m bench`` uses it too:
        # a 20 M-event benchmark leaves gigabytes behind otherwise).
        atexit.register(shutil.rmtree, _engine_dir, True)
    return f"chdb://{_engine_dir}"


def _tables(store: Store) -> list[tuple[str, str, str]]:
    # A materialized view's inner table is named by a random UUID; its view says the rest.
    rows = store.rows(
        "SELECT name, engine, replaceAll(create_table_query, {db:String}, '')"
        " FROM system.tables WHERE database = {db:String} AND NOT startsWith(name, '.inner')"
        " ORDER BY name",
        {"db": store.database},
    )
    return [(str(n), str(e), str(q)) for n, e, q in rows]


def _empty(store: Store) -> None:
    """Every table emptied but the record of applied migrations (views hold no rows)."""
    names = store.rows(
        "SELECT name FROM system.tables WHERE database = {db:String}"
        " AND engine NOT IN ('MaterializedView', 'View') AND name != 'schema_migrations'",
        {"db": store.database},
    )
    for (name,) in names:
        store.command(f"TRUNCATE TABLE `{store.database}`.`{name}`")


def _leaked(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.name.startswith(_SHARED_THREADS)
    ]


@pytest.fixture(scope="module")
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated, empty database of its own for each test module."""
    global _pristine
    before = set(threading.enumerate())
    module = request.module.__name__.rsplit(".", 1)[-1]
    name = _spare.pop() if _spare else "t_" + re.sub(r"\W", "_", module)
    s = open_store(engine_url(), database=name)
    if _pristine is None:
        _pristine = _tables(s)
    yield s
    if not _leaked(before) and _tables(s) == _pristine:
        _empty(s)
        _spare.append(name)
    else:
        s.command(f"DROP DATABASE IF EXISTS `{name}`")
    s.close()
