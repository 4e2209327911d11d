"""``Store.stream_rows``: blocks as they arrive, with the error translation of every read."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import StreamFailureError

from stitchboard.errors import StoreUnavailable
from stitchboard.store import Store
from tests.conftest import engine_url


def test_streams_every_row_in_blocks(store: Store) -> None:
    blocks = list(
        store.stream_rows(
            "SELECT number, number * 2 FROM numbers({n:UInt32})",
            {"n": 10},
            settings={"max_block_size": 4},
        )
    )
    rows = [tuple(row) for block in blocks for row in block]
    assert rows == [(i, 2 * i) for i in range(10)]
    assert len(blocks) >= 2  # read block by block, not in one piece


def test_a_failed_stream_is_translated_with_the_engines_message(store: Store) -> None:
    # clickhouse-connect reports any failure inside a stream as StreamFailureError, an
    # OperationalError: the class ``Store`` treats as "the store is unavailable".
    with pytest.raises(StoreUnavailable, match="UNKNOWN_IDENTIFIER") as caught:
        list(store.stream_rows("SELECT no_such_column FROM numbers(1)"))
    assert isinstance(caught.value.__cause__, StreamFailureError)
    assert store.scalar("SELECT 1") == 1  # a fresh client answers the next read


def test_a_consumer_error_is_not_translated(store: Store) -> None:
    with pytest.raises(KeyError):
        for _ in store.stream_rows("SELECT number FROM numbers(3)"):
            raise KeyError("consumer")
    assert store.scalar("SELECT 1") == 1  # the client is still usable


class _LostConnection:
    """A client whose stream breaks after one block, as a dropped socket would."""

    closed = False

    def query_row_block_stream(self, *args: Any, **kwargs: Any) -> _LostConnection:
        return self

    def __enter__(self) -> _LostConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> _LostConnection:
        self.sent = 0
        return self

    def __next__(self) -> list[tuple[int]]:
        self.sent += 1
        if self.sent > 1:
            raise ConnectionResetError("connection reset by peer")
        return [(1,)]

    def close(self) -> None:
        self.closed = True


class _StoreWithLostConnection(Store):
    def __init__(self) -> None:
        super().__init__(engine_url(), database="unused")
        self.broken = _LostConnection()

    def client(self) -> Any:
        self._local.client = self.broken
        return self.broken


def test_an_os_error_mid_stream_becomes_store_unavailable() -> None:
    store = _StoreWithLostConnection()
    got = []
    with pytest.raises(StoreUnavailable, match="connection reset by peer"):
        for block in store.stream_rows("SELECT 1"):
            got.append(block)
    assert got == [[(1,)]]
    assert store.broken.closed  # the broken client is dropped, the next read reconnects


class _Rows(list):  # a list that can be watched with a weak reference
    pass


def test_inserted_rows_are_freed_when_the_insert_returns_even_with_the_collector_paused(
    store: Store,
) -> None:
    import gc
    import weakref

    store.command("CREATE TABLE IF NOT EXISTS freed (n UInt32, s String) ENGINE = Memory")
    rows = _Rows((i, f"row {i}") for i in range(1000))
    watched = weakref.ref(rows)
    enabled = gc.isenabled()
    gc.disable()  # as the correlator writes: no cyclic collection until it is done
    try:
        store.insert("freed", ("n", "s"), rows)
        del rows
        assert watched() is None  # freed by reference counting, not kept for a collection
    finally:
        if enabled:
            gc.enable()
    assert store.scalar("SELECT count() FROM freed") == 1000
    store.command("DROP TABLE freed")
