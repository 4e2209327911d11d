"""Raw messages streamed to the engine through named pipes while it parses them.

One ``INSERT … SELECT`` reads every message of a group from ``inputs`` pipes (RowBinary
``idx UInt32, raw String``), so the statement is planned once per group however many
batches feed it, and the Python work that produces the batches (reading and splitting
the file) overlaps the engine's parse instead of preceding it.

One reader thread takes the batches from the source in order, numbers their messages and
encodes them, up to ``AHEAD`` batches before the pipes: reading and splitting the file
goes on while the engine still plans the statement (for 100,000 messages, about 0.7 s of
Python against 0.5-0.7 s of planning, which otherwise ran one after the other). One
writer thread per pipe takes the next encoded batch; a writer blocked on its pipe holds
only that batch, so if the engine reads the pipes one after another the other writers
take the rest, and the blocked one continues when its pipe is read. Pipes are opened
without blocking (retried until the engine opens them), so a statement that fails before
reading them cannot leave a thread waiting; a statement that fails after closes its
ends, and the writers stop on the broken pipe.
"""

from __future__ import annotations

import errno
import fcntl
import os
import queue
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from collector.rowbinary import varint

_INDEX = struct.Struct("<I")
_OPEN_RETRY = 0.002  # seconds between attempts to open a pipe the engine has not opened yet
_WAIT = 0.05  # seconds a thread waits on the batches before it looks whether it was stopped
# Encoded batches read ahead of the pipes: the importer's 20,000 messages a batch make
# about 0.15 s of splitting each, so four cover the statement's planning.
AHEAD = 4


class MessagePipes:
    """Named pipes under ``parent`` fed from ``batches`` by a reader thread and one writer
    thread per pipe (a context manager: ``__exit__`` stops and joins the threads and removes
    the pipes)."""

    def __init__(self, batches: Iterable[Sequence[bytes]], inputs: int, parent: Path):
        self._source: Iterator[Sequence[bytes]] = iter(batches)
        self._dir = Path(tempfile.mkdtemp(prefix="pipes-", dir=parent))
        self.paths = [self._dir / f"part-{n}.bin" for n in range(inputs)]
        for path in self.paths:
            os.mkfifo(path, 0o600)
        self.count = 0  # messages taken from the source so far
        self.error: BaseException | None = None  # the source's own failure, if any
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ready: queue.Queue[bytes | None] = queue.Queue(AHEAD)
        self._threads = [
            threading.Thread(target=self._read, name="hl7-pipes-source", daemon=True),
            *(
                threading.Thread(
                    target=self._write, args=(path,), name=f"hl7-pipe-{n}", daemon=True
                )
                for n, path in enumerate(self.paths)
            ),
        ]

    def __enter__(self) -> MessagePipes:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _read(self) -> None:
        """Every batch of the source, numbered and encoded, in order; then one end mark per
        writer. A failing source ends the batches there and leaves its error for the caller."""
        try:
            for batch in self._source:
                if batch:
                    data = row_binary(batch, self.count)
                    self.count += len(batch)
                    if not self._put(data):
                        return
        except BaseException as exc:  # reported by the caller after the statement
            self._failed(exc)
        for _ in self.paths:
            if not self._put(None):
                return

    def _put(self, item: bytes | None) -> bool:
        """Hand ``item`` to the writers; False when stopped first."""
        while not self._stopped.is_set():
            try:
                self._ready.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def _take(self) -> bytes | None:
        """The next encoded batch; None when the source is done or the pipes are stopped."""
        while not self._stopped.is_set():
            try:
                return self._ready.get(timeout=_WAIT)
            except queue.Empty:
                continue
        return None

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.error = self.error or exc

    def _write(self, path: Path) -> None:
        try:
            fd = self._open(path)
            if fd is None:
                return
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                while (data := self._take()) is not None:
                    pipe.write(data)
        except BrokenPipeError:
            pass  # the statement ended (failed) before reading everything: nothing to feed
        except OSError as exc:  # the pipe itself failed: the group must not count as loaded
            self._failed(exc)

    def _open(self, path: Path) -> int | None:
        """The pipe's write end once the engine has opened it for reading (None: stopped)."""
        while not self._stopped.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(_OPEN_RETRY)
                continue
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            return fd
        return None


def row_binary(messages: Sequence[bytes], first: int = 0) -> bytes:
    """RowBinary rows ``(idx UInt32, raw String)``: index, LEB128 length, bytes."""
    pack = _INDEX.pack
    parts: list[bytes] = []
    append = parts.append
    for i, raw in enumerate(messages, first):
        append(pack(i))
        n = len(raw)
        if n < 0x80:
            append(bytes((n,)))
        else:
            append(varint(n))
        append(raw)
    return b"".join(parts)
