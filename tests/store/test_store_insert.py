"""``Store.insert``: column types described once per table and columns, forgotten on DDL."""

from __future__ import annotations

from typing import Any

import pytest

from stitchboard.store import Store


def _count_describes(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DESCRIBE statements this thread's client runs from now on."""
    client = store.client()
    seen: list[str] = []
    query = client.query

    def counting(sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql.startswith("DESCRIBE"):
            seen.append(sql)
        return query(sql, *args, **kwargs)

    monkeypatch.setattr(client, "query", counting)
    return seen


def test_inserts_describe_a_table_once_and_again_after_ddl(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = store.table("insert_types")
    store.command(f"DROP TABLE IF EXISTS {table}")
    store.command(f"CREATE TABLE {table} (n UInt32, tag LowCardinality(String)) ENGINE = Memory")
    describes = _count_describes(store, monkeypatch)
    for n in range(3):
        store.insert("insert_types", ("n", "tag"), [(n, f"t{n}")])
    assert describes == [f"DESCRIBE TABLE {table}"]  # the first insert only
    assert store.rows(f"SELECT n, tag FROM {table} ORDER BY n") == [(0, "t0"), (1, "t1"), (2, "t2")]
    # The table changes shape: the next insert describes it again and writes the new type.
    store.command(f"DROP TABLE {table}")
    store.command(f"CREATE TABLE {table} (n String, tag String) ENGINE = Memory")
    store.insert("insert_types", ("n", "tag"), [("seven", "t7")])
    assert len(describes) == 2
    assert store.rows(f"SELECT n, tag FROM {table}") == [("seven", "t7")]
    store.command(f"DROP TABLE {table}")


def test_an_unknown_column_is_named(store: Store) -> None:
    table = store.table("insert_types_unknown")
    store.command(f"CREATE TABLE {table} (n UInt32) ENGINE = Memory")
    try:
        with pytest.raises(Exception, match="'nope'"):
            store.insert("insert_types_unknown", ("n", "nope"), [(1, 2)])
    finally:
        store.command(f"DROP TABLE {table}")
