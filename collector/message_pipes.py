"""Raw messages streamed to the engine through named pipes while it parses them.

One ``INSERT … SELECT`` reads every message of a group from ``inputs`` pipes (RowBinary
``idx UInt32, raw String``), so the statement is planned once per group however many
batches feed it, and the Python work that produces the batches (reading and splitting
the file) overlaps the engine's parse instead of preceding it.

One writer thread per pipe, each taking the next batch from the shared source under a
lock (so message indexes follow the source's order). A thread blocked on its pipe never
holds the lock: if the engine reads the pipes one after another, the other threads take
the rest of the batches, and the blocked one continues when its pipe is read. Pipes are
opened without blocking (retried until the engine opens them), so a statement that fails
before reading them cannot leave a thread waiting; a statement that fails after closes
its ends, and the writers stop on the broken pipe.
"""

from __future__ import annotations

import errno
import fcntl
import os
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


class MessagePipes:
    """Named pipes under ``parent`` fed from ``batches`` by writer threads (a context manager:
    ``__exit__`` stops and joins the writers and removes the pipes)."""

    def __init__(self, batches: Iterable[Sequence[bytes]], inputs: int, parent: Path):
        self._source: Iterator[Sequence[bytes]] = iter(batches)
        self._dir = Path(tempfile.mkdtemp(prefix="pipes-", dir=parent))
        self.paths = [self._dir / f"part-{n}.bin" for n in range(inputs)]
        for path in self.paths:
            os.mkfifo(path, 0o600)
        self.count = 0  # messages handed to the pipes so far
        self.error: BaseException | None = None  # the source's own failure, if any
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(path,), name=f"hl7-pipe-{n}", daemon=True)
            for n, path in enumerate(self.paths)
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

    def _next(self) -> tuple[int, Sequence[bytes]] | None:
        """The next batch and the index of its first message; None when done or stopped."""
        with self._lock:
            while not self._stopped.is_set() and self.error is None:
                try:
                    batch = next(self._source)
                except StopIteration:
                    return None
                except BaseException as exc:  # reported by the caller after the statement
                    self.error = exc
                    return None
                if batch:
                    first = self.count
                    self.count += len(batch)
                    return first, batch
            return None

    def _write(self, path: Path) -> None:
        try:
            fd = self._open(path)
            if fd is None:
                return
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                while (item := self._next()) is not None:
                    pipe.write(row_binary(item[1], item[0]))
        except BrokenPipeError:
            pass  # the statement ended (failed) before reading everything: nothing to feed
        except OSError as exc:  # the pipe itself failed: the group must not count as loaded
            with self._lock:
                self.error = self.error or exc

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
