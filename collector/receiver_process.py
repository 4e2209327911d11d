"""The receivers in a process of their own, spooling for the server to load.

A sender's answer (an MLLP AA, an OTLP/HTTP 200) waits for its data to be judged,
appended and synced; in the server's process every step also waits for the
interpreter lock, which the correlator and the loader hold much of the time. So
``stitchboard serve`` (with the spool on and ``receiver_process``) runs the MLLP
and OTLP/HTTP listeners in a child process:

- the server binds the ports and passes the listening sockets to the child, so a
  taken port stops the server's start, and the ports stay open while a crashed
  child is restarted (the kernel keeps queueing connections);
- the child (``python -m collector.receiver_process``) judges each message and
  request as the in-process listeners do (``MllpListener``, ``otlp_app``),
  appends the batch to its own spool directory (``<spool_dir>/receivers``,
  group commit) and answers after ``fdatasync``; it has no store: an ingest
  token it has not seen lately is a question to the server;
- it reports where its durable records end after every sync; the server's loader
  reads them from there (``FollowedSpool``) into ClickHouse with its own spool's
  (OTLP requests spooled as sent are decoded by the engine there), and tells the
  child what it loaded, which frees the child's size bound. A failing store
  reaches the child too, so a full spool answers 503 and AR with the reason.

OTLP/gRPC stays in the server's process (gRPC cannot take a listening socket).

The two talk over a socket pair: length-prefixed pickles (both ends are this
program). The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C reaches the
whole process group): it stops when the server tells it to, after answering what
it is storing, or at once when the server is gone (Linux kills it with the
server, and the closed socket pair tells it elsewhere). A child that exits
otherwise is logged and restarted, with backoff; its spool loads as before. One
that sends nothing for ``HANG_TIMEOUT`` (it reports ten times a second) is
killed and restarted the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from collector.http import otlp_app
from collector.ingest import OtlpIngest, native_database
from collector.intake import Intake
from collector.mllp import MllpListener, configured
from collector.mllp_tls import context_from
from collector.otlp_native import NATIVE_KIND
from stitchboard.components import HttpComponent
from stitchboard.config import SlasConfig
from stitchboard.errors import ConfigError
from stitchboard.ingest_auth import IngestGuard, SenderNetworks, token_check
from stitchboard.metrics import Metrics
from stitchboard.phi import Pseudonymizer, load_key
from stitchboard.settings import Settings
from stitchboard.spool.codec import encode_batch
from stitchboard.spool.follower import FollowedSpool
from stitchboard.spool.journal import Journal, SpoolState, Tally
from stitchboard.spool.loader import SpooledWriter
from stitchboard.spool.segment import Position
from stitchboard.spool.waiters import Waiters

if TYPE_CHECKING:
    from stitchboard.components import Component
    from stitchboard.runtime import Runtime
    from stitchboard.writer import Batch

log = logging.getLogger(__name__)

SUBDIRECTORY = "receivers"  # of spool_dir
READY_TIMEOUT = 60.0  # seconds for a child to open its spool and listen
STOP_TIMEOUT = 30.0  # seconds for a child to answer what it holds and exit
TOKEN_TIMEOUT = 10.0  # seconds for the server to answer whether a token may send
REPORT_INTERVAL = 0.1  # seconds between reports besides those after syncs (counters)
RESTART_BACKOFF = (1.0, 30.0)  # seconds, doubling
# A child that has not reported for this long (it reports every REPORT_INTERVAL) is hung:
# killed, then restarted as any child that exits.
HANG_TIMEOUT = 15.0  # seconds
# The listeners' counters and histograms the server's /metrics shows (Metrics attributes).
COUNTERS = ("requests", "received", "accepted", "rejected")
HISTOGRAMS = ("batch_latency",)
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
    mllp: bool  # which listening sockets follow on the command line, in this order
    otlp_http: bool
    database: str | None  # the engine-side OTLP decoder's, when it is on


# -- the server's side -----------------------------------------------------------------


def receiver_process(runtime: Runtime) -> ReceiverProcess | None:
    """The receivers' process of ``stitchboard serve``, when senders are spooled and
    ``receiver_process`` is on (and MLLP or OTLP/HTTP listens)."""
    settings = runtime.settings
    writer = runtime.writer
    if not (settings.receiver_process and isinstance(writer, SpooledWriter)):
        return None
    if not (settings.mllp_port or settings.otlp_http_port):
        return None
    return ReceiverProcess(runtime, writer, writer.journal.directory / SUBDIRECTORY)


class ReceiverProcess:
    """A ``Component`` of ``stitchboard serve``: the receivers' process, started and watched."""

    name = "receivers"

    def __init__(self, runtime: Runtime, writer: SpooledWriter, directory: Path):
        settings = runtime.settings
        # Bad TLS or network settings stop the server's start, not a child's.
        context_from(settings)
        SenderNetworks(settings.mllp_allow)
        self.runtime = runtime
        self.writer = writer
        self.host = settings.host
        self.mllp_port = settings.mllp_port
        self.otlp_http_port = settings.otlp_http_port
        self.tls = settings.mllp_tls_cert is not None
        self.spool = FollowedSpool(directory, settings.spool_max_bytes)
        self.spool.on_commit = self._loaded
        self.spool.on_load_error = self._load_error
        self._tokens = token_check(runtime.store)
        self._listening: list[socket.socket] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self._counted: dict[tuple[str, tuple[str, ...]], float] = {}
        self._refused = 0
        self._heard = time.monotonic()  # the child's last message
        self._watchdog: asyncio.Task[None] | None = None
        registry = runtime.metrics.registry
        self.restarts = Counter(
            "stitchboard_receiver_restarts",
            "Receiver processes (MLLP, OTLP/HTTP) restarted after exiting on their own",
            registry=registry,
        )
        self.hangs = Counter(
            "stitchboard_receiver_hangs",
            "Receiver processes killed after sending nothing for 15 s (then restarted)",
            registry=registry,
        )
        self.up = Gauge(
            "stitchboard_receiver_up", "1 while the receivers' process runs", registry=registry
        )
        runtime.on_config(self._reconfigure)

    async def start(self) -> None:
        if self.mllp_port:
            self._listening.append(_listen(self.host, self.mllp_port))
            self.mllp_port = self._listening[-1].getsockname()[1]
        if self.otlp_http_port:
            self._listening.append(_listen(self.host, self.otlp_http_port))
            self.otlp_http_port = self._listening[-1].getsockname()[1]
        await self._spawn(restarted=False)
        self.writer.follow(self.spool)

    async def _spawn(self, *, restarted: bool) -> None:
        """Start a child (on the event loop's thread: Linux ties the child's life to it)."""
        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(), *(sock.fileno() for sock in self._listening))
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.receiver_process", str(os.getpid()), *map(str, fds)],
            pass_fds=fds,
        )
        theirs.close()
        start = Start(
            settings=self.runtime.settings,
            config=self.runtime.config,
            directory=self.spool.directory,
            mllp=bool(self.mllp_port),
            otlp_http=bool(self.otlp_http_port),
            database=_native_database(self.runtime, self.writer),
        )
        send(ours, ("start", start))
        ready = await asyncio.to_thread(_first_message, ours, READY_TIMEOUT)
        if ready is None or ready[0] != "ready":
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await asyncio.to_thread(process.wait)
            raise RuntimeError(f"the receivers' process did not start (exit status {code})")
        state: SpoolState = ready[1]
        self.writer.spool_metrics.torn.inc(state.torn_records)
        self._refused = state.refused
        self.spool.follow(state, restarted=True)
        self._process, self._control = process, ours
        self._counted.clear()
        self._heard = time.monotonic()
        self.up.set(1)
        loop = asyncio.get_running_loop()
        self._reader = threading.Thread(
            target=self._read, args=(ours, loop), name="receivers", daemon=True
        )
        self._reader.start()
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch())
        if restarted:
            log.info("receivers' process restarted (process %d)", process.pid)

    def _read(self, control: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """The child's reports and questions, on a thread of their own, until it exits."""
        while (message := receive(control)) is not None:
            self._heard = time.monotonic()
            kind = message[0]
            if kind == "progress":
                self._progress(*message[1:])
            elif kind == "token":
                self._answer_token(*message[1:])
        self.up.set(0)
        if not self._stopping:
            loop.call_soon_threadsafe(self._exited)

    def _progress(
        self,
        state: SpoolState,
        syncs: list[tuple[int, float]],
        counters: dict[Any, float],
        observed: list[tuple[str, tuple[str, ...], float]],
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
        for attribute, labels, value in observed:
            getattr(metrics, attribute).labels(*labels).observe(value)

    def _answer_token(self, question: int, secret: str) -> None:
        try:
            allowed = self._tokens(secret)
        except Exception:  # noqa: BLE001 - the store is away: refuse, the sender retries
            log.exception("checking an ingest token for the receivers failed")
            allowed = False
        self._send(("token", question, allowed))

    async def _watch(self) -> None:
        """Kill a child that stopped reporting (stopped, deadlocked): it is then restarted."""
        while not self._stopping:
            await asyncio.sleep(min(1.0, HANG_TIMEOUT / 4))
            process = self._process
            silent = time.monotonic() - self._heard
            if process is None or process.poll() is not None or silent < HANG_TIMEOUT:
                continue
            if self._restart is not None and not self._restart.done():
                continue  # already being replaced
            log.error(
                "the receivers' process %d sent nothing for %.0f s; killing it", process.pid, silent
            )
            self.hangs.inc()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            self._heard = time.monotonic()

    def _exited(self) -> None:
        self.restarts.inc()
        self._restart = asyncio.get_running_loop().create_task(self._respawn())

    async def _respawn(self) -> None:
        delay = RESTART_BACKOFF[0]
        if self._process is not None:
            code = await asyncio.to_thread(self._process.wait)
            log.error("the receivers' process exited (status %s); restarting it", code)
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
                log.exception("restarting the receivers failed; trying again in %.0f s", delay)
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

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        process = self._process
        if process is not None:
            self._send(("stop",))
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("the receivers did not stop in %.0f s; killing them", STOP_TIMEOUT)
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
        for sock in (self._control, *self._listening):
            if sock is not None:
                sock.close()
        self.up.set(0)

    def describe(self) -> str:
        lines = []
        if self.otlp_http_port:
            lines.append(f"{'OTLP/HTTP':<22} http://{self.host}:{self.otlp_http_port}")
        if self.mllp_port:
            label = "HL7 v2 over MLLP+TLS" if self.tls else "HL7 v2 over MLLP"
            scheme = "mllps" if self.tls else "mllp"
            lines.append(f"{label:<22} {scheme}://{self.host}:{self.mllp_port}")
        return "\n  ".join(lines)  # one banner line each


def _native_database(runtime: Runtime, writer: SpooledWriter) -> str | None:
    """The engine-side decoder's database, if the server loads what it takes (as sent)."""
    return native_database(runtime) if writer.loads_raw(NATIVE_KIND) else None


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


class _Observed:
    """A histogram of the child's ``Metrics`` whose observations go to the server."""

    def __init__(self, attribute: str, sink: Callable[[str, tuple[str, ...], float], None]):
        self.attribute = attribute
        self.sink = sink

    def labels(self, *values: str) -> _Observation:
        return _Observation(self, values)


@dataclass(frozen=True)
class _Observation:
    histogram: _Observed
    values: tuple[str, ...]

    def observe(self, value: float) -> None:
        self.histogram.sink(self.histogram.attribute, self.values, value)


class Receiver:
    """The child: the listeners, their spool, and the reports to the server."""

    def __init__(self, start: Start, control: socket.socket, listening: list[socket.socket]):
        settings = start.settings
        self.control = control
        self.journal = _open_journal(start.directory, settings)
        self.waiters = Waiters()
        self._syncs: list[tuple[int, float]] = []
        self._observed: list[tuple[str, tuple[str, ...], float]] = []
        self._report_lock = threading.Lock()
        self._questions = itertools.count()
        self._answers: dict[int, Future[bool]] = {}
        self.journal.on_sync = self._synced
        self.journal.on_group = self._group
        pseudonymize = Pseudonymizer(load_key(settings.pseudonym_key, settings.pseudonym_key_file))
        self.metrics = Metrics()
        for attribute in HISTOGRAMS:
            setattr(self.metrics, attribute, _Observed(attribute, self._observe))
        self.components: list[Component] = []
        sockets = iter(listening)
        self.mllp: MllpListener | None = None
        self.pseudonymize = pseudonymize
        if start.mllp:
            self.mllp = configured(
                settings, start.config, pseudonymize, self.write, self.metrics, next(sockets)
            )
            self.components.append(self.mllp)
        self.otlp: OtlpIngest | None = None
        if start.otlp_http:
            self.otlp = OtlpIngest(
                start.config, pseudonymize, self.metrics, self.write, start.database
            )
            guard = IngestGuard(self._ask_token, settings.ingest_auth, settings.bootstrap_token)
            app = otlp_app(settings, self.metrics, self.otlp, guard)
            sock = next(sockets)
            port = sock.getsockname()[1]
            self.components.append(
                HttpComponent("otlp-http", app, settings.host, port, "OTLP/HTTP", sock=sock)
            )
        self._stopped = asyncio.Event()

    async def write(self, batch: Batch) -> None:
        rows = batch.rows
        if rows:
            await self.waiters.wait(self.journal.append(encode_batch(batch), rows))

    def _synced(self, records: int, seconds: float) -> None:
        with self._report_lock:
            self._syncs.append((records, seconds))

    def _observe(self, attribute: str, labels: tuple[str, ...], value: float) -> None:
        with self._report_lock:
            self._observed.append((attribute, labels, value))

    def _group(self) -> None:
        """After each sync, on the sync thread: the loader learns of the new records at once
        (counters moved by the senders it wakes go with the next report)."""
        self.waiters.synced()
        self.report()

    def report(self) -> None:
        """Where the durable records end, the syncs since the last report, the counters."""
        with self._report_lock:
            syncs, self._syncs = self._syncs, []
            observed, self._observed = self._observed, []
            counters = {}
            for attribute in COUNTERS:
                for family in getattr(self.metrics, attribute).collect():
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            labels = tuple(sample.labels.values())
                            counters[(attribute, labels)] = sample.value
            message = ("progress", self.journal.state(), syncs, counters, observed)
            with contextlib.suppress(OSError):  # the server is gone: the control loop ends us
                send(self.control, message)

    def _ask_token(self, secret: str) -> bool:
        """Whether the server's store knows ``secret`` as an ingest token (a worker thread)."""
        question = next(self._questions)
        answer: Future[bool] = Future()
        self._answers[question] = answer
        try:
            with self._report_lock:
                send(self.control, ("token", question, secret))
            return answer.result(TOKEN_TIMEOUT)
        except (OSError, TimeoutError):
            log.warning("the server did not answer whether an ingest token may send; refused")
            return False
        finally:
            self._answers.pop(question, None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for component in self.components:
            await component.start()
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
            elif kind == "token":
                answer = self._answers.get(message[1])
                if answer is not None:
                    answer.set_result(message[2])
            elif kind == "config":
                loop.call_soon_threadsafe(self._reconfigure, message[1])
            elif kind == "stop":
                asyncio.run_coroutine_threadsafe(self._stop(), loop).result()
                return
        # The server is gone: whatever is durable loads on its next start.
        log.warning("the server closed its connection to the receivers; exiting")
        os._exit(1)

    def _reconfigure(self, config: SlasConfig) -> None:
        if self.mllp is not None:
            self.mllp.intake = Intake(config, self.pseudonymize)  # one assignment
        if self.otlp is not None:
            self.otlp.reconfigure(config)

    async def _stop(self) -> None:
        # The MLLP listener answers the messages it is storing (up to 10 s), then closes.
        for component in reversed(self.components):
            await component.stop()
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
    """``python -m collector.receiver_process <server pid> <control fd> <listening fds…>``."""
    _die_with_parent(int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[1]))
    listening = [socket.socket(fileno=int(fd)) for fd in argv[2:]]
    message = receive(control)
    if message is None or message[0] != "start":
        sys.exit("collector.receiver_process: started without a server")
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
