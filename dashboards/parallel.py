"""A page refresh's independent reads, side by side.

A page shows when its slowest callback is done; reads that do not depend on each other
run on a few shared threads (each keeps its own store client), so the refresh takes
about as long as its slowest read rather than the sum of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="console-read")


def side_by_side(jobs: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each job's result by name; the first failure is raised once all have run."""
    running = {name: _POOL.submit(job) for name, job in jobs.items()}
    return {name: future.result() for name, future in running.items()}
