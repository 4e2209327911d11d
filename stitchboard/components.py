"""A long-running part of ``stitchboard serve``: a listener or a background loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Protocol

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    async def start(self) -> None:
        """Start serving; returns once the component is ready."""

    async def stop(self) -> None:
        """Stop accepting work and finish what was accepted."""

    def describe(self) -> str:
        """One line for the startup banner: what it is and where it listens."""


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``stitchboard serve``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpComponent:
    """An ASGI app served by uvicorn inside the shared event loop."""

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        host: str,
        port: int,
        label: str,
        sock: socket.socket | None = None,  # already bound and listening
    ):
        self.name = name
        self.sock = sock
        self.label = label
        self.host = host
        self.port = port
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=10,
            h11_max_incomplete_event_size=None,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sockets = [self.sock] if self.sock is not None else None
        self._task = asyncio.create_task(self._server.serve(sockets), name=self.name)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises the bind error
                raise RuntimeError(f"{self.name} stopped during startup")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    def describe(self) -> str:
        return f"{self.label:<22} http://{self.host}:{self.port}"
