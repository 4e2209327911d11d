"""What the console's callbacks read from: the running server's runtime and a clock.

Dash pages register their callbacks at import, before a server exists, so the
one runtime of the process is handed over here when the console is mounted.
Callbacks are thin: they take the console, read through ``dashboards.queries``
and build figures; the logic they call is tested without Dash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stitchboard.access import Caller, caller_of
from stitchboard.runtime import Runtime


@dataclass(frozen=True)
class Console:
    runtime: Runtime
    clock: Callable[[], int] = field(default=time.time_ns)

    def now(self) -> int:
        return self.clock()


_current: list[Console] = []


def install(console: Console) -> None:
    _current[:] = [console]


def console() -> Console:
    if not _current:
        raise RuntimeError("the console is not mounted: call dashboards.app.mount_console first")
    return _current[0]


def caller() -> Caller | None:
    """Who is using the page, as the console's access layer identified them.

    None when the console runs without the access layer (a test app), or outside a
    request. The Dash server runs behind a2wsgi, which hands the ASGI scope on.
    """
    try:
        import flask

        scope = flask.request.environ.get("asgi.scope", {})
    except RuntimeError:  # no request context
        return None
    return caller_of(scope)
