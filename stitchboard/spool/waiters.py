"""Event-loop senders waiting for the spool: one wake-up per loop per group commit.

``asyncio.wrap_future`` on each sender's future costs one
``call_soon_threadsafe`` (a write to the loop's self-pipe, a wake-up, a GIL
hand-off) per sender per sync: with 64 MLLP connections in one group, 64 of
them. ``Waiters`` keeps each loop's waiting senders and, after each group
commit, schedules one callback on that loop that resolves every sender whose
record is synced (or failed), so a group costs one cross-thread wake-up per
loop, whatever its size.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future


class _LoopWaiters:
    """The senders of one event loop. ``add`` and ``_resolve`` run on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._lock = threading.Lock()
        self._waiting: list[tuple[Future[None], asyncio.Future[None]]] = []
        self._scheduled = False

    def add(self, future: Future[None], waiter: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiting.append((future, waiter))
        # Synced before it was listed: the sync thread may have found nothing to wake.
        if future.done():
            self._schedule_here()

    def synced(self) -> bool | None:
        """On the sync thread: wake the loop if a sender waits (True); None: the loop is gone."""
        with self._lock:
            if self._scheduled or not self._waiting:
                return False
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            return None
        return True

    def _schedule_here(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon(self._resolve)

    def _resolve(self) -> None:
        with self._lock:
            self._scheduled = False
            waiting, self._waiting = self._waiting, []
        still: list[tuple[Future[None], asyncio.Future[None]]] = []
        for future, waiter in waiting:
            if not future.done():
                still.append((future, waiter))
            elif not waiter.done():  # a cancelled sender needs no answer
                error = future.exception()
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        if still:
            with self._lock:
                self._waiting.extend(still)
            # One of them may have been synced while the list was out of reach.
            if any(future.done() for future, _ in still):
                self._schedule_here()


class Waiters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}
        self.wakeups = 0  # callbacks scheduled from the sync thread (for tests and metrics)

    async def wait(self, future: Future[None]) -> None:
        """Until ``future`` (resolved by the spool's sync thread) is done; its error raised."""
        if future.done():
            return future.result()
        loop = asyncio.get_running_loop()
        with self._lock:
            waiters = self._loops.get(loop)
            if waiters is None:
                waiters = self._loops[loop] = _LoopWaiters(loop)
        waiter: asyncio.Future[None] = loop.create_future()
        waiters.add(future, waiter)
        await waiter

    def synced(self) -> None:
        """The spool resolved a group's futures: wake each loop that has senders waiting."""
        with self._lock:
            loops = list(self._loops.items())
        for loop, waiters in loops:
            woken = waiters.synced()
            if woken is None:
                with self._lock:
                    self._loops.pop(loop, None)
            elif woken:
                self.wakeups += 1
