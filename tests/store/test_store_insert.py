"""``Store.insert``: column types described once per table and columns, forgotten on DDL."""

from __future__ import annotations

from typing import Any

import pytest

from stitchboard.store import Store


def _spy(store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[Any]]:
    """From now on: the DESCRIBE statements this thread's client runs, and the column
    types each insert hands the client (None would make it DESCRIBE on its own)."""
    client = store.client()
    describes: list[str] = []
    handed: list[Any] = []
    query, create = client.query, client.create_insert_context

    def counting(sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql.startswith("DESCRIBE"):
            describes.append(sql)
        return query(sql, *args, **kwargs)

    def recording(*args: Any, **kwargs: Any) -> Any:
        handed.append(kwargs.get("column_type_names"))
        return create(*args, **kwargs)

    monkeypatch.setattr(client, "query", counting)
    monkeypatch.setattr(client, "create_insert_context", recording)
    return describes, handed


def test_inserts_describe_a_table_once_and_again_after_ddl(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = store.table("insert_types")
    store.command(f"DROP TABLE IF EXISTS {table}")
    store.command(f"CREATE TABLE {table} (n UInt32, tag LowCardinality(String)) ENGINE = Memory")
    describes, handed = _spy(store, monkeypatch)
    for n in range(3):
        store.insert("insert_types", ("n", "tag"), [(n, f"t{n}")])
    assert describes == [f"DESCRIBE TABLE {table}"]  # the first insert only
    assert handed == [["UInt32", "LowCardinality(String)"]] * 3
    assert store.rows(f"SELECT n, tag FROM {table} ORDER BY n") == [(0, "t0"), (1, "t1"), (2, "t2")]
    # The table changes shape: the next insert describes it again and writes the new type.
    store.command(f"DROP TABLE {table}")
    store.command(f"CREATE TABLE {table} (n String, tag String) ENGINE = Memory")
    store.insert("insert_types", ("n", "tag"), [("seven", "t7")])
    assert len(describes) == 2 and handed[-1] == ["String", "String"]
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


def test_a_failed_insert_forgets_the_types(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    table = store.table("insert_types_failed")
    store.command(f"CREATE TABLE {table} (n UInt32) ENGINE = Memory")
    try:
        describes, _ = _spy(store, monkeypatch)
        store.insert("insert_types_failed", ("n",), [(1,)])
        with pytest.raises(Exception):  # noqa: B017 - whatever the client raises for it
            store.insert("insert_types_failed", ("n",), [("not a number",)])
        store.insert("insert_types_failed", ("n",), [(2,)])
        assert len(describes) == 2  # described again after the failure
        assert store.rows(f"SELECT n FROM {table} ORDER BY n") == [(1,), (2,)]
    finally:
        store.command(f"DROP TABLE {table}")


def test_settings_apply_to_that_insert_only(store: Store) -> None:
    """Two versions of one key in one block: the engine collapses them as it inserts
    unless the insert says ``optimize_on_insert = 0`` (what the correlator's writes do)."""
    table = store.table("insert_settings")
    store.command(
        f"CREATE TABLE {table} (k String, v UInt32) ENGINE = ReplacingMergeTree(v) ORDER BY k"
    )
    try:
        store.insert("insert_settings", ("k", "v"), [("a", 1), ("a", 2)])
        assert store.rows(f"SELECT k, v FROM {table}") == [("a", 2)]
        store.insert("insert_settings", ("k", "v"), [("b", 1), ("b", 2)], {"optimize_on_insert": 0})
        assert store.rows(f"SELECT k, v FROM {table} WHERE k = 'b' ORDER BY v") == [
            ("b", 1),
            ("b", 2),
        ]
        assert store.rows(f"SELECT k, v FROM {table} FINAL ORDER BY k") == [("a", 2), ("b", 2)]
        store.insert("insert_settings", ("k", "v"), [("c", 1), ("c", 2)])  # not carried over
        assert store.rows(f"SELECT v FROM {table} WHERE k = 'c'") == [(2,)]
    finally:
        store.command(f"DROP TABLE {table}")
