"""HL7 v2 over MLLP, as an interface engine sends: one message, then wait for its ACK.

Several connections work in parallel (engines run one connection per outbound
channel); each message's ACK must name it in MSA-2. A dropped connection is
re-opened and the unacknowledged message sent again, as engines do.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\r"


class MllpError(Exception):
    """The listener cannot be reached or answered something that is not an ACK."""


@dataclass(frozen=True, slots=True)
class Ack:
    code: str  # AA, AE, AR
    control_id: str  # MSA-2
    text: str


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


def control_id(message: str) -> str:
    return message.split("\r", 1)[0].split("|")[9]


def parse_ack(data: bytes) -> Ack:
    text = data.decode("utf-8", errors="replace")
    for segment in text.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA|"):
            fields = segment.split("|")
            return Ack(
                fields[1],
                fields[2] if len(fields) > 2 else "",
                fields[3] if len(fields) > 3 else "",
            )
    raise MllpError(f"reply has no MSA segment: {text[:120]!r}")


class MllpConnection:
    """One TCP connection: send a framed message, read the framed ACK."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._buffer = b""
        return self._sock

    def exchange(self, message: str) -> Ack:
        sock = self._connect()
        sock.sendall(frame(message))
        while END not in self._buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("listener closed the connection before the ACK")
            self._buffer += chunk
        reply, self._buffer = self._buffer.split(END, 1)
        return parse_ack(reply.lstrip(START))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class MllpSender:
    """A pool of connections fed from a bounded queue; ``flush`` waits for every ACK."""

    def __init__(self, host: str, port: int, connections: int = 4, retries: int = 8):
        self.host, self.port, self.retries = host, port, retries
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=connections * 64)
        self._lock = threading.Lock()
        self.acked = 0
        self.rejected: list[tuple[str, str]] = []  # (control id, reason) answered AE/AR
        self.failed: list[tuple[str, str]] = []  # could not be delivered at all
        self._threads = [
            threading.Thread(target=self._work, name=f"mllp-{n}", daemon=True)
            for n in range(connections)
        ]
        for thread in self._threads:
            thread.start()

    def send(self, message: str) -> None:
        self._queue.put(message)

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self.flush()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _work(self) -> None:
        conn = MllpConnection(self.host, self.port)
        try:
            while True:
                message = self._queue.get()
                try:
                    if message is None:
                        return
                    self._deliver(conn, message)
                finally:
                    self._queue.task_done()
        finally:
            conn.close()

    def _deliver(self, conn: MllpConnection, message: str) -> None:
        expected = control_id(message)
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                ack = conn.exchange(message)
            except OSError as exc:
                conn.close()
                if attempt == self.retries:
                    with self._lock:
                        self.failed.append((expected, str(exc)))
                    log.warning(
                        "MLLP %s:%s: %s not delivered: %s", self.host, self.port, expected, exc
                    )
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._lock:
                if ack.control_id != expected:
                    self.failed.append((expected, f"ACK names {ack.control_id!r}"))
                elif ack.code in ("AA", "CA"):
                    self.acked += 1
                else:
                    self.rejected.append((expected, f"{ack.code} {ack.text}".strip()))
            return
