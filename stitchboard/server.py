"""``stitchboard serve``: every stage in one process, one event loop.

The embedded store lets one process own a data directory, so one server runs
the collectors, the correlator, the alert scheduler, the API and dashboards.
SIGTERM/SIGINT stop the listeners first, then flush the writer: nothing that was
acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import logging
import signal
import socket
import sys

from stitchboard.api import build_api
from stitchboard.audit import AuditEntry, AuditLog
from stitchboard.components import Component, HttpComponent
from stitchboard.config_history import record_config
from stitchboard.credentials import ensure_first_admin
from stitchboard.errors import PortInUse
from stitchboard.runtime import Runtime, build_runtime
from stitchboard.settings import Settings
from stitchboard.stages import served_stages

log = logging.getLogger(__name__)


def build_components(runtime: Runtime) -> list[Component]:
    stages = served_stages()
    components: list[Component] = []
    routers = []
    for stage in stages:
        components.extend(stage.components(runtime))
        routers.extend(stage.routers(runtime))
    settings = runtime.settings
    if settings.port:
        app = build_api(runtime, routers)
        for stage in stages:
            stage.mount(app, runtime)
        components.append(
            HttpComponent("console", app, settings.host, settings.port, "Console and API")
        )
    return components


def _record_config(runtime: Runtime) -> None:
    """Keep this slas.yaml among the versions in force, and audit the load."""
    settings = runtime.settings
    sha, new = record_config(runtime.store, settings.config)
    chain = settings.audit_chain or socket.gethostname()
    entry = AuditEntry("server", "admin", "config.load", (sha,), "", detail=str(settings.config))
    AuditLog(runtime.store, chain).record(
        entry if new else dataclasses.replace(entry, outcome="unchanged")
    )


async def run(settings: Settings, ready: asyncio.Event | None = None) -> None:
    runtime = await asyncio.to_thread(build_runtime, settings, True)
    password_file = settings.initial_admin_file
    first_admin = await asyncio.to_thread(ensure_first_admin, runtime.store, password_file)
    await asyncio.to_thread(_record_config, runtime)
    # A reloaded slas.yaml is a version in force too (auditors ask which one judged what).
    runtime.on_config(lambda _config: _record_config(runtime))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def reload_on_hangup() -> None:
        task = loop.create_task(_reload(runtime))
        reloads.add(task)  # keep a reference until it is done
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_hangup)
    components = build_components(runtime)
    started: list[Component] = []
    try:
        for component in components:
            await component.start()
            started.append(component)
        # Every stage has registered its raw inserters and listeners: start loading.
        runtime.writer.start()
        # What is alive now lives as long as the server (modules, the console's app, the
        # stages): frozen, out of the collector's reach, it is no longer walked by every
        # full collection (under MLLP load each took 230 ms of the GIL, now about 100 ms).
        # Refcounting still frees any of it that is dropped; only a cycle would stay.
        gc.collect()
        gc.freeze()
        # One write, so log lines from stage threads cannot land inside the banner.
        store = f"  {'Store':<22} {runtime.store.display_url} (database {runtime.store.database})"
        banner = ["Stitchboard is running", store, *(f"  {c.describe()}" for c in started)]
        if first_admin:
            banner.append(
                f"  First start: console user 'admin', password in {password_file}"
                " (delete the file after logging in)"
            )
        sys.stdout.write("\n".join(banner) + "\n")
        sys.stdout.flush()
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        # Listeners first (no new work), background loops after, then flush.
        for component in reversed(started):
            try:
                await component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("stopping %s failed", component.name)
        await asyncio.to_thread(runtime.close)
        print("Stitchboard stopped", flush=True)


# Each listening port with the flag that changes it.
_PORTS = (
    ("port", "--port"),
    ("otlp_http_port", "--otlp-http-port"),
    ("otlp_grpc_port", "--otlp-grpc-port"),
    ("mllp_port", "--mllp-port"),
)


def check_ports(settings: Settings) -> None:
    """Refuse to start, before anything is created on disk, when a port is taken."""
    for name, flag in _PORTS:
        port = getattr(settings, name)
        if not port:
            continue
        with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
            # As the servers bind: a port in TIME_WAIT is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"({exc.strerror})"
                disable = " (or 0 to disable it)" if name != "port" else ""
                raise PortInUse(
                    f"cannot listen on port {port} of {settings.host}: it {why};"
                    f" choose another with {flag}{disable}"
                ) from None


async def _reload(runtime: Runtime) -> None:
    """SIGHUP: re-read slas.yaml; a bad file is refused with every problem logged."""
    problems = await asyncio.to_thread(runtime.reload_config)
    if problems:
        log.error(
            "slas.yaml not reloaded, the running configuration stays:\n%s", "\n".join(problems)
        )


SWITCH_INTERVAL = 0.0005  # seconds


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_ports(settings)
    # A thread waking from I/O (the event loop after select, the spool's sync thread after
    # fdatasync) waits for the GIL up to this interval while another thread computes (the
    # correlator, the loader): 5 ms by default, paid several times per acknowledgement.
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.run(run(settings))
