"""The MLLP listener in a process of its own, spooling for the server to load.

A sender's ACK waits for its message to be judged, appended and synced; in the
server's process every step also waits for the interpreter lock, which the
correlator and the loader hold much of the time. So ``stitchboard serve`` (with
the spool on and ``mllp_process``) runs the listener in a child process:

- the server binds the port and passes the listening socket to the child, so the
  port is taken (or refused) before start-up ends and stays open while a crashed
  child is restarted (the kernel keeps queueing connections);
- the child (``python -m collector.mllp_process``) judges each message as the
  in-process listener does (``MllpListener``, ``Intake``), appends the batch to
  its own spool directory (``<spool_dir>/mllp``, group commit) and sends AA after
  ``fdatasync``; it has no store;
- it reports where its durable records end after every sync; the server's loader
  reads them from there (``FollowedSpool``) into ClickHouse with its own spool's,
  and tells the child what it loaded, which frees the child's size bound. A
  failing store reaches the child too, so a full spool answers AR with the reason.

The two talk over a socket pair: length-prefixed pickles (both ends are this
program). The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C reaches the
whole process group): it stops when the server tells it to, after the ACKs of
messages being stored, or at once when the server is gone (Linux kills it with
the server, and the closed socket pair tells it elsewhere). A child that exits
otherwise is logged and restarted, with backoff; its spool loads as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from collector.intake import Intake
from collector.mllp import MllpListener
from collector.mllp_tls import context_from
from stitchboard.config import SlasConfig
from stitchboard.errors import ConfigError
from stitchboard.ingest_auth import SenderNetworks
from stitchboard.metrics import Metrics
from stitchboard.phi import Pseudonymizer, load_key
from stitchboard.settings import Settings
from stitchboard.spool.codec import encode_batch
from stitchboard.spool.follower import FollowedSpool
from stitchboard.spool.journal import Journal, SpoolState, Tally
from stitchboard.spool.segment import Position
from stitchboard.spool.waiters import Waiters
from stitchboard.writer import Batch

if TYPE_CHECKING:
    from stitchboard.runtime import Runtime
    from stitchboard.spool.loader import SpooledWriter

log = logging.getLogger(__name__)

SUBDIRECTORY = "mllp"  # of spool_dir
READY_TIMEOUT = 60.0  # seconds for a child to open its spool and listen
STOP_TIMEOUT = 30.0  # seconds for a child to answer what it holds and exit
REPORT_INTERVAL = 0.5  # seconds between reports when no sync happened (metrics)
RESTART_BACKOFF = (1.0, 30.0)  # seconds, doubling
# The listener's counters the server's /metrics shows (Metrics attributes).
COUNTERS = ("requests", "received", "accepted", "rejected")
_LENGTH = struct.Struct("<I")


# -- the socket pair ------------------------------------------------------------------


def send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=5)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive(sock: socket.socket) -> tuple[Any, ...] | None:
    """The next message, or None once the other end has closed."""
    head = _read_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    body = _read_exactly(sock, _LENGTH.unpack(head)[0])
    if body is None:
        return None
    message: tuple[Any, ...] = pickle.loads(body)
    return message


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        try:
            chunk = sock.recv(size)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Start:
    settings: Settings
    config: SlasConfig
    directory: Path


# -- the server's side -----------------------------------------------------------------


class MllpProcess:
    """A ``Component`` of ``stitchboard serve``: the listener's process, started and watched."""

    name = "mllp"

    def __init__(self, runtime: Runtime, writer: SpooledWriter, directory: Path):
        settings = runtime.settings
        # Bad TLS or network settings stop the server's start, not a child's.
        context_from(settings)
        SenderNetworks(settings.mllp_allow)
        self.runtime = runtime
        self.writer = writer
        self.host = settings.host
        self.port = settings.mllp_port
        self.tls = settings.mllp_tls_cert is not None
        self.spool = FollowedSpool(directory, settings.spool_max_bytes)
        self.spool.on_commit = self._loaded
        self.spool.on_load_error = self._load_error
        self._listening: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self._counted: dict[tuple[str, tuple[str, ...]], float] = {}
        self._refused = 0
        registry = runtime.metrics.registry
        self.restarts = Counter(
            "stitchboard_mllp_receiver_restarts",
            "MLLP receiver processes restarted after exiting on their own",
            registry=registry,
        )
        self.up = Gauge(
            "stitchboard_mllp_receiver_up",
            "1 while the MLLP receiver process runs",
            registry=registry,
        )
        runtime.on_config(self._reconfigure)

    async def start(self) -> None:
        self._listening = _listen(self.host, self.port)
        self.port = self._listening.getsockname()[1]
        await self._spawn(restarted=False)
        self.writer.follow(self.spool)

    async def _spawn(self, *, restarted: bool) -> None:
        """Start a child (on the event loop's thread: Linux ties the child's life to it)."""
        assert self._listening is not None
        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(), self._listening.fileno())
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.mllp_process", *map(str, (*fds, os.getpid()))],
            pass_fds=fds,
        )
        theirs.close()
        directory = self.spool.directory
        send(ours, ("start", Start(self.runtime.settings, self.runtime.config, directory)))
        ready = await asyncio.to_thread(_first_message, ours, READY_TIMEOUT)
        if ready is None or ready[0] != "ready":
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await asyncio.to_thread(process.wait)
            raise RuntimeError(f"the MLLP receiver did not start (exit status {code})")
        state: SpoolState = ready[1]
        self.writer.spool_metrics.torn.inc(state.torn_records)
        self._refused = state.refused
        self.spool.follow(state, restarted=True)
        self._process, self._control = process, ours
        self._counted.clear()
        self.up.set(1)
        loop = asyncio.get_running_loop()
        self._reader = threading.Thread(
            target=self._read, args=(ours, loop), name="mllp-receiver", daemon=True
        )
        self._reader.start()
        if restarted:
            log.info("MLLP receiver restarted (process %d)", process.pid)

    def _read(self, control: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """The child's reports, on a thread of their own, until it exits."""
        while (message := receive(control)) is not None:
            kind = message[0]
            if kind == "progress":
                self._progress(*message[1:])
        self.up.set(0)
        if not self._stopping:
            loop.call_soon_threadsafe(self._exited)

    def _progress(
        self, state: SpoolState, syncs: list[tuple[int, float]], counters: dict[Any, float]
    ) -> None:
        self.spool.follow(state)
        for records, seconds in syncs:
            self.writer.record_sync(records, seconds)
        if state.refused > self._refused:
            self.writer.spool_metrics.refused.inc(state.refused - self._refused)
            self._refused = state.refused
        metrics = self.runtime.metrics
        for key, value in counters.items():
            delta = value - self._counted.get(key, 0.0)
            if delta > 0:
                attribute, labels = key
                getattr(metrics, attribute).labels(*labels).inc(delta)
                self._counted[key] = value

    def _exited(self) -> None:
        self.restarts.inc()
        self._restart = asyncio.get_running_loop().create_task(self._respawn())

    async def _respawn(self) -> None:
        delay = RESTART_BACKOFF[0]
        if self._process is not None:
            code = await asyncio.to_thread(self._process.wait)
            log.error("the MLLP receiver exited (status %s); restarting it", code)
        if self._control is not None:
            self._control.close()
        while not self._stopping:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(restarted=True)
                return
            except Exception:  # noqa: BLE001 - keep trying; the spool holds what was acked
                log.exception("restarting the MLLP receiver failed; trying again in %.0f s", delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])

    def _send(self, message: tuple[Any, ...]) -> None:
        control = self._control
        if control is None:
            return
        with self._send_lock, contextlib.suppress(OSError):  # a dead child is restarted
            send(control, message)

    def _loaded(self, position: Position, loaded: Tally) -> None:
        self._send(("loaded", position, loaded))

    def _load_error(self, error: str | None) -> None:
        self._send(("load_error", error))

    def _reconfigure(self, config: SlasConfig) -> None:
        self._send(("config", config))

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        process = self._process
        if process is not None:
            self._send(("stop", grace))
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("the MLLP receiver did not stop in %.0f s; killing it", STOP_TIMEOUT)
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
        for sock in (self._control, self._listening):
            if sock is not None:
                sock.close()
        self.up.set(0)

    def describe(self) -> str:
        label = "HL7 v2 over MLLP+TLS" if self.tls else "HL7 v2 over MLLP"
        scheme = "mllps" if self.tls else "mllp"
        return f"{label:<22} {scheme}://{self.host}:{self.port}"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _first_message(sock: socket.socket, timeout: float) -> tuple[Any, ...] | None:
    sock.settimeout(timeout)
    try:
        return receive(sock)
    finally:
        sock.settimeout(None)


# -- the child's side ------------------------------------------------------------------


class Receiver:
    """The child: the listener, its spool, and the reports to the server."""

    def __init__(self, start: Start, control: socket.socket, listening: socket.socket):
        settings = start.settings
        self.control = control
        self.journal = _open_journal(start.directory, settings)
        self.waiters = Waiters()
        self._syncs: list[tuple[int, float]] = []
        self._report_lock = threading.Lock()
        self.journal.on_sync = self._synced
        self.journal.on_group = self._group
        self.pseudonymize = Pseudonymizer(
            load_key(settings.pseudonym_key, settings.pseudonym_key_file)
        )
        self.metrics = Metrics()
        self.listener = MllpListener(
            Intake(start.config, self.pseudonymize),
            self.write,
            settings.host,
            settings.mllp_port,
            max_frame=settings.max_body_bytes,
            metrics=self.metrics,
            senders=SenderNetworks(settings.mllp_allow),
            tls=context_from(settings),
            sock=listening,
        )
        self._stopped = asyncio.Event()

    async def write(self, batch: Batch) -> None:
        rows = batch.rows
        if rows:
            await self.waiters.wait(self.journal.append(encode_batch(batch), rows))

    def _synced(self, records: int, seconds: float) -> None:
        with self._report_lock:
            self._syncs.append((records, seconds))

    def _group(self) -> None:
        self.waiters.synced()
        self.report()

    def report(self) -> None:
        """Where the durable records end, the syncs since the last report, the counters."""
        with self._report_lock:
            syncs, self._syncs = self._syncs, []
            counters = {}
            for attribute in COUNTERS:
                for family in getattr(self.metrics, attribute).collect():
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            labels = tuple(sample.labels.values())
                            counters[(attribute, labels)] = sample.value
            with contextlib.suppress(OSError):  # the server is gone: the control loop ends us
                send(self.control, ("progress", self.journal.state(), syncs, counters))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.listener.start()
        send(self.control, ("ready", self.journal.state()))
        threading.Thread(target=self._control_loop, args=(loop,), daemon=True).start()
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), REPORT_INTERVAL)
            self.report()

    def _control_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while (message := receive(self.control)) is not None:
            kind = message[0]
            if kind == "loaded":
                self.journal.loaded_elsewhere(message[1], message[2])
            elif kind == "load_error":
                self.journal.load_error = message[1]
            elif kind == "config":
                intake = Intake(message[1], self.pseudonymize)
                loop.call_soon_threadsafe(setattr, self.listener, "intake", intake)
            elif kind == "stop":
                asyncio.run_coroutine_threadsafe(self._stop(message[1]), loop).result()
                return
        # The server is gone: whatever is durable loads on its next start.
        log.warning("the server closed its connection to the MLLP receiver; exiting")
        os._exit(1)

    async def _stop(self, grace: float) -> None:
        await self.listener.stop(grace)
        await asyncio.to_thread(self.journal.seal)
        self._stopped.set()


def _open_journal(directory: Path, settings: Settings) -> Journal:
    """The child's spool; a previous child killed with the server may hold it a moment."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return Journal(
                directory,
                max_bytes=settings.spool_max_bytes,
                segment_bytes=settings.spool_segment_bytes,
                retry_after=settings.retry_after_seconds,
            )
        except ConfigError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the server's thread that started us ends (``kill -9`` too)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(1)


def main(argv: list[str]) -> None:
    _die_with_parent(int(argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[0]))
    listening = socket.socket(fileno=int(argv[1]))
    message = receive(control)
    if message is None or message[0] != "start":
        sys.exit("collector.mllp_process: started without a server")
    start: Start = message[1]
    logging.basicConfig(
        level=start.settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.setswitchinterval(0.0005)  # as the server: the sync thread wakes the loop often
    receiver = Receiver(start, control, listening)
    asyncio.run(receiver.run())
    receiver.report()
    control.close()


if __name__ == "__main__":
    main(sys.argv[1:])
