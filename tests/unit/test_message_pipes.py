"""Messages streamed through named pipes: each exactly once, indexed in the source's order,
whatever order the reader takes the pipes in, and no writer left waiting when the reader
fails, stops early or never comes."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.message_pipes import AHEAD, MessagePipes, row_binary


def decode(data: bytes) -> list[tuple[int, bytes]]:
    """RowBinary ``(idx UInt32, raw String)`` rows, read back."""
    rows, at = [], 0
    while at < len(data):
        (idx,) = struct.unpack_from("<I", data, at)
        at += 4
        length = shift = 0
        while True:
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        rows.append((idx, data[at : at + length]))
        at += length
    return rows


def read_all(path: Path) -> bytes:
    with path.open("rb") as pipe:
        return pipe.read()


def in_thread(fn, *args) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


BATCHES = [[b"MSH|a%d|%d" % (b, i) + b"x" * (i * 40) for i in range(7)] for b in range(5)]
ALL = [m for batch in BATCHES for m in batch]


def test_row_binary_holds_index_length_and_bytes() -> None:
    long = b"y" * 300  # a two-byte length: 300 = 0xAC 0x02
    data = row_binary([b"ab", long], 7)
    assert data[:7] == b"\x07\x00\x00\x00\x02ab" and data[7:13] == b"\x08\x00\x00\x00\xac\x02"
    assert decode(data) == [(7, b"ab"), (8, long)]


def test_every_message_once_in_source_order_with_concurrent_readers(tmp_path: Path) -> None:
    with MessagePipes(BATCHES, 3, tmp_path) as pipes:
        readers = [in_thread(read_all, path) for path in pipes.paths]
        for thread, _ in readers:
            thread.join(10)
    rows = sorted(row for _, out in readers for row in decode(out[0]))  # type: ignore[arg-type]
    assert rows == list(enumerate(ALL))
    assert pipes.count == 35 and pipes.error is None
    assert not any(thread.is_alive() for thread, _ in readers)
    assert list(tmp_path.iterdir()) == []  # the pipes are gone


def test_a_reader_taking_the_pipes_one_after_another_gets_everything(tmp_path: Path) -> None:
    """A writer blocked on an unread pipe holds no lock: the others take the rest."""
    with MessagePipes(BATCHES, 2, tmp_path) as pipes:
        thread, out = in_thread(lambda: [read_all(p) for p in pipes.paths])
        thread.join(10)
        assert not thread.is_alive()
    rows = sorted(row for data in out[0] for row in decode(data))  # type: ignore[attr-defined]
    assert rows == list(enumerate(ALL))


def test_the_source_is_read_ahead_while_nobody_reads_the_pipes(tmp_path: Path) -> None:
    """The engine opens its inputs only once the statement is planned: by then ``AHEAD``
    batches are encoded and waiting (and one more taken), and no further."""
    taken: list[int] = []

    def source() -> Iterator[list[bytes]]:
        for n, batch in enumerate(BATCHES + BATCHES):  # twice AHEAD batches
            taken.append(n)
            yield batch

    with MessagePipes(source(), 2, tmp_path) as pipes:
        deadline = time.monotonic() + 10
        while len(taken) < AHEAD + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # time to take more, were it not bounded
        assert taken == list(range(AHEAD + 1)) and pipes.count == 7 * (AHEAD + 1)
        readers = [in_thread(read_all, path) for path in pipes.paths]
        for thread, _ in readers:
            thread.join(10)
    rows = sorted(row for _, out in readers for row in decode(out[0]))  # type: ignore[arg-type]
    assert rows == list(enumerate(ALL + ALL))


def test_a_failing_source_closes_the_pipes_and_reports_its_error(tmp_path: Path) -> None:
    def source() -> Iterator[list[bytes]]:
        yield BATCHES[0]
        yield BATCHES[1]
        raise OSError("disk went away")

    with MessagePipes(source(), 2, tmp_path) as pipes:
        readers = [in_thread(read_all, path) for path in pipes.paths]
        for thread, _ in readers:
            thread.join(10)
    assert isinstance(pipes.error, OSError) and str(pipes.error) == "disk went away"
    rows = sorted(row for _, out in readers for row in decode(out[0]))  # type: ignore[arg-type]
    assert rows == list(enumerate(BATCHES[0] + BATCHES[1]))
    assert pipes.count == 14


def test_nobody_reading_leaves_no_writer_waiting(tmp_path: Path) -> None:
    """A statement that fails before opening its inputs: leaving the block still returns."""
    done = threading.Event()

    def run() -> None:
        with MessagePipes(BATCHES, 2, tmp_path):
            pass
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10)


def test_a_reader_stopping_early_stops_the_writers(tmp_path: Path) -> None:
    """A statement that fails after opening its inputs closes them: the writers see a broken
    pipe and stop."""
    big = [[b"z" * 100_000] * 50 for _ in range(4)]  # far more than a pipe's buffer
    done = threading.Event()

    def run() -> None:
        with MessagePipes(big, 2, tmp_path) as pipes:
            for path in pipes.paths:
                with path.open("rb") as pipe:
                    pipe.read(10)  # then closed, unread
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10)


@pytest.mark.parametrize("inputs", [1, 4])
def test_empty_batches_are_skipped(tmp_path: Path, inputs: int) -> None:
    with MessagePipes([[], [b"MSH|1"], [], [b"MSH|2"]], inputs, tmp_path) as pipes:
        readers = [in_thread(read_all, path) for path in pipes.paths]
        for thread, _ in readers:
            thread.join(10)
    rows = sorted(row for _, out in readers for row in decode(out[0]))  # type: ignore[arg-type]
    assert rows == [(0, b"MSH|1"), (1, b"MSH|2")]
