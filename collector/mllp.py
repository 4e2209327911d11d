"""HL7 v2 over MLLP: the listener an interface engine sends a copy of every message to.

One ACK per message, in order, on the connection it came from:
- AA once the events are durable (``await runtime.writer.write``);
- AE with the reason in MSA-3 and ERR when the message cannot be used; it is
  durable in ``dead_letters`` by then (resending it would not help);
- AR when nothing could be stored (ingest buffer full, store down): the engine
  should resend, as it does when an ACK says AR.

Each connection is its own task, so a slow, stuck or broken client only ever
holds itself up. Engines keep connections open for days and go quiet at night,
so idle connections stay open (TCP keepalive finds dead peers) unless
``idle_timeout`` is set. On shutdown, messages being stored still get their ACK.
With a TLS context (``collector.mllp_tls``) the listener accepts only TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from collector.hl7.ack import ACCEPT, ERROR, REJECT, ack_bytes
from collector.hl7.extract import Header
from collector.hl7.framing import END, START, FrameTooLarge, MllpDecoder
from collector.intake import Intake, Outcome, batch_of
from collector.mllp_tls import context_from
from stitchboard.config import SlasConfig
from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.ingest_auth import SenderNetworks
from stitchboard.metrics import Metrics
from stitchboard.runtime import Runtime
from stitchboard.settings import Settings
from stitchboard.writer import Batch

log = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "mllp"
SIGNAL = "hl7.mllp"  # the label of this listener's metrics


def frame(message: bytes) -> bytes:
    return START + message + END + b"\r"


class MllpListener:
    """A ``Component`` of ``stitchboard serve``."""

    name = "mllp"

    def __init__(
        self,
        intake: Intake,
        write: Callable[[Batch], Awaitable[None]],
        host: str = "127.0.0.1",
        port: int = 2575,
        *,
        max_frame: int = 16 * 1024 * 1024,
        idle_timeout: float | None = None,
        read_size: int = 64 * 1024,
        metrics: Metrics | None = None,
        senders: SenderNetworks | None = None,
        tls: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ):
        self.intake = intake
        self.write = write
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout
        self.read_size = read_size
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # between a frame and its ACK
        self._closing = False
        self.messages = 0
        self.rejected = 0
        self.metrics = metrics or Metrics()
        self.senders = senders or SenderNetworks(())
        self.tls = tls
        self.sock = sock  # already bound and listening (``host`` and ``port`` unused)

    async def start(self) -> None:
        # A sender that connects and never finishes the handshake is dropped.
        handshake = 30.0 if self.tls is not None else None
        if self.sock is not None:
            self._server = await asyncio.start_server(
                self._serve,
                sock=self.sock,
                limit=self.read_size,
                ssl=self.tls,
                ssl_handshake_timeout=handshake,
            )
        else:
            self._server = await asyncio.start_server(
                self._serve,
                self.host,
                self.port,
                limit=self.read_size,
                ssl=self.tls,
                ssl_handshake_timeout=handshake,
            )
        sockets = self._server.sockets or ()
        if sockets and self.port == 0:
            self.port = sockets[0].getsockname()[1]

    async def stop(self, grace: float = 10.0) -> None:
        if self._server is None:
            return
        self._server.close()
        self._closing = True
        # Idle connections are cut; those storing a message finish and send its ACK.
        for task in self._connections - self._busy:
            task.cancel()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=grace)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    def describe(self) -> str:
        if self.tls is not None:
            return f"{'HL7 v2 over MLLP+TLS':<22} mllps://{self.host}:{self.port}"
        return f"{'HL7 v2 over MLLP':<22} mllp://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        peer = writer.get_extra_info("peername")
        source = f"mllp:{peer[0]}" if peer else "mllp"
        if not self.senders.allows(peer[0] if peer else ""):
            # No credentials in MLLP: a sender outside the allowed networks is cut off unread.
            log.warning("refused MLLP connection from %s (not in mllp_allow)", source)
            self._connections.discard(task)
            writer.close()
            return
        decoder = MllpDecoder(self.max_frame)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(self.read_size), self.idle_timeout)
                except TimeoutError:
                    log.info("closing idle MLLP connection from %s", source)
                    break
                if not data:
                    if decoder.pending:
                        log.warning(
                            "MLLP client %s disconnected mid-message (%d bytes dropped,"
                            " nothing acknowledged)",
                            source,
                            decoder.pending,
                        )
                    break
                try:
                    frames = decoder.feed(data)
                except FrameTooLarge as exc:
                    log.warning("closing MLLP connection from %s: %s", source, exc)
                    writer.write(frame(ack_bytes(Header(), REJECT, str(exc), "207")))
                    await writer.drain()
                    break
                if frames:
                    self._busy.add(task)
                    try:
                        for ack in await self._handle(frames, source):
                            writer.write(frame(ack))
                        await writer.drain()
                    finally:
                        self._busy.discard(task)
                    if self._closing:
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("MLLP connection from %s reset", source)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one connection must never take the listener down
            log.exception("MLLP connection from %s failed", source)
        finally:
            if decoder.discarded:
                log.warning(
                    "MLLP client %s sent %d bytes outside <VT>…<FS><CR> frames; they were skipped",
                    source,
                    decoder.discarded,
                )
            self._connections.discard(task)
            self._busy.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _handle(self, messages: list[bytes], source: str) -> list[bytes]:
        """Store the messages of one read (or their dead letters) and answer each with an ACK.

        Engines that pipeline get one durable write for all the frames that arrived together.
        """
        self.messages += len(messages)
        outcomes: list[Outcome | None] = []
        for message in messages:
            try:
                outcomes.append(self.intake.hl7(message, source, DEAD_LETTER_SOURCE))
            except Exception:  # noqa: BLE001 - a parser bug must not drop the connection
                log.exception("HL7 message from %s could not be processed", source)
                outcomes.append(None)
        failure = ""
        outcome_label = "ok"
        try:
            await self.write(batch_of(o for o in outcomes if o is not None))
        except Overloaded:
            failure = "Stitchboard is overloaded (ingest buffer full); resend later"
            outcome_label = "overloaded"
        except StoreUnavailable as exc:
            failure = f"store unavailable ({exc}); resend later"
            outcome_label = "unavailable"
        m = self.metrics
        m.requests.labels(SIGNAL, outcome_label).inc()
        m.received.labels(SIGNAL).inc(len(messages))
        if not failure:
            rejected = sum(1 for o in outcomes if o is None or not o.accepted)
            m.accepted.labels(SIGNAL).inc(len(messages) - rejected)
            m.rejected.labels(SIGNAL).inc(rejected)
        acks = []
        for outcome in outcomes:
            header = (outcome.header if outcome else None) or Header()
            if outcome is None:
                acks.append(ack_bytes(header, REJECT, "internal error; resend later", "207"))
            elif failure:
                acks.append(ack_bytes(header, REJECT, failure, "207"))
            elif outcome.accepted:
                acks.append(ack_bytes(header, ACCEPT))
            else:
                self.rejected += 1
                acks.append(ack_bytes(header, ERROR, outcome.reason, outcome.error_code or "207"))
        return acks


def listener(runtime: Runtime) -> MllpListener:
    """The listener on the server's event loop, writing to the server's writer."""
    server = configured(
        runtime.settings,
        runtime.config,
        runtime.pseudonymize,
        runtime.writer.write,
        runtime.metrics,
    )

    def reconfigure(config: SlasConfig) -> None:
        server.intake = Intake(config, runtime.pseudonymize)  # one assignment

    runtime.on_config(reconfigure)
    return server


def configured(
    settings: Settings,
    config: SlasConfig,
    pseudonymize: Callable[[str], str],
    write: Callable[[Batch], Awaitable[None]],
    metrics: Metrics,
    sock: socket.socket | None = None,
) -> MllpListener:
    """A listener as the settings say (port, frame limit, sender networks, TLS)."""
    return MllpListener(
        Intake(config, pseudonymize),
        write,
        settings.host,
        settings.mllp_port,
        max_frame=settings.max_body_bytes,
        metrics=metrics,
        senders=SenderNetworks(settings.mllp_allow),
        tls=context_from(settings),
        sock=sock,
    )
