"""A small time-bounded cache for figures that many viewers share.

The SLO report scans every SLO's transactions; the overview asks for it on every
refresh of every open browser. Within ``ttl`` seconds the console answers from
the last computation (the alert evaluator recomputes it every cycle anyway), so
ten leaders with the overview open cost one computation per ``ttl``, not ten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, size: int = 64):
        self.ttl = ttl
        self.clock = clock
        self.size = size
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value for ``key``, computed at most once per ``ttl`` (one caller computes;
        the others wait for it rather than computing the same thing again)."""
        with self._lock:
            found = self._items.get(key)
            now = self.clock()
            if found is not None and now - found[0] < self.ttl:
                return found[1]
            value = compute()
            if len(self._items) >= self.size:
                self._items.pop(min(self._items, key=lambda k: self._items[k][0]))
            self._items[key] = (now, value)
            return value
