"""Routing notices to channels, off the evaluation's thread.

``Notifier`` is the boundary: the evaluation hands it notices and moves on.
``ChannelNotifier`` sends each (notice, channel) pair on a small thread pool,
so a slow or failing channel never blocks the others or the next evaluation,
and records every attempt in ``notification_log``. ``MemoryNotifier`` keeps
notices in memory for tests of the lifecycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol

from alerts.channels import Attempt, Deliverer
from alerts.lifecycle import SEVERITY_RANK, Notice
from alerts.repository import log_attempts
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import Channel
from stitchboard.store import Store

log = logging.getLogger("stitchboard.alerts")


class Notifier(Protocol):
    def notify(self, notices: Sequence[Notice]) -> None:
        """Deliver (or start delivering) every notice; never raises."""


class MemoryNotifier:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notices: Sequence[Notice]) -> None:
        self.notices.extend(notices)


def route_channels(config: SlasConfig, notice: Notice) -> list[Channel]:
    """The channels of a notice: by its worst severity if routed so, else the route's list."""
    route = config.alerts.route
    worst = max(
        (r.severity for r in notice.alerts), key=lambda s: SEVERITY_RANK.get(s, 0), default=""
    )
    names = route.by_severity.get(worst) or route.channels
    channels = config.alerts.channels
    return [c for c in channels if c.name in names] if names else list(channels)


class ChannelNotifier:
    def __init__(
        self,
        config: SlasConfig,
        store: Store,
        workers: int = 4,
        sleep: Callable[[float], None] | None = None,
    ):
        self.config = config
        self.store = store
        self.sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alerts-notify")
        self._pending: set[Future[bool]] = set()
        self._lock = threading.Lock()

    def record(self, attempt: Attempt) -> None:
        rows = [
            (
                attempt.time,
                fp,
                attempt.group_key,
                attempt.channel,
                attempt.action,
                attempt.status,
                attempt.response,
                attempt.error,
                attempt.attempt,
            )
            for fp in attempt.fingerprints or ("",)
        ]
        try:
            log_attempts(self.store, rows)
        except Exception:  # noqa: BLE001 - the log must not stop delivery
            log.exception("could not record a notification attempt on %s", attempt.channel)

    def deliverer(self, channel: Channel) -> Deliverer:
        sleep = self.sleep if self.sleep is not None else time.sleep
        return Deliverer(channel, self.config.alerts.external_url, self.record, sleep=sleep)

    def notify(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            for channel in route_channels(self.config, notice):
                action = None
                if notice.acknowledgement:
                    if channel.type != "pagerduty":
                        continue  # only PagerDuty keeps an incident to acknowledge
                    action = "acknowledge"
                future = self._pool.submit(self.deliverer(channel).deliver, notice, action)
                with self._lock:
                    self._pending.add(future)
                future.add_done_callback(self._done)

    def _done(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Until every delivery started so far has finished (CLI, tests, shutdown)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout)

    def close(self, timeout: float = 30) -> None:
        self.wait(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
