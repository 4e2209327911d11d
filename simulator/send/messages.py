"""JSON Lines (and HL7 batches) to ``POST /api/v1/messages``: how middleware without
OTLP or MLLP reports, and how an engine replays a backlog.

Field names follow slas.yaml ``messages.logs`` defaults: ``event_time`` (ISO 8601
in the facility's local time with its offset), ``facility``, ``system``,
``operation``, ``status``, ``amount``, ``id``, and each business key under its
own name.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx

from simulator.estate import Site, local
from simulator.records import Hop

log = logging.getLogger(__name__)

BATCH_LINES = 500


def json_line(hop: Hop, site: Site | None) -> str:
    # Local time with its offset, as the facility's middleware logs it.
    stamp = (
        local(site, hop.time).isoformat(timespec="milliseconds")
        if site is not None
        else str(hop.time)
    )
    record: dict[str, object] = {
        "id": hop.hop_id,
        "event_time": stamp,
        "facility": hop.facility,
        "system": hop.system,
        "operation": hop.operation,
        "status": hop.status,
    }
    if hop.status_message:
        record["message"] = hop.status_message
    if hop.amount is not None:
        record["amount"] = f"{hop.amount:.2f}"
    record.update(hop.keys)
    return json.dumps(record, separators=(",", ":"))


class MessagesSender:
    """Batches records into one POST; ``kind`` is ``jsonl`` or ``hl7`` (MLLP-framed)."""

    def __init__(
        self,
        api: str,
        sites: dict[str, Site],
        timeout: float = 30.0,
        retries: int = 8,
        kind: str = "jsonl",
    ):
        self.kind = kind
        self.url = api.rstrip("/") + "/api/v1/messages"
        self.sites = sites
        self.retries = retries
        self._client = httpx.Client(timeout=timeout)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.stored = 0
        self.rejected: list[str] = []
        self.failed: list[str] = []

    def send(self, hop: Hop) -> None:
        if self.kind == "hl7":
            record = "\x0b" + hop.body + "\x1c\r"
        else:
            record = json_line(hop, self.sites.get(hop.facility))
        with self._lock:
            self._lines.append(record)
            full = len(self._lines) >= BATCH_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return
        if self.kind == "hl7":
            self._post("".join(lines).encode(), len(lines), "x-application/hl7-v2+er7")
        else:
            self._post("\n".join(lines).encode() + b"\n", len(lines), "application/x-ndjson")

    def _post(self, body: bytes, count: int, content_type: str) -> None:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(
                    self.url, content=body, headers={"Content-Type": content_type}
                )
            except httpx.HTTPError as exc:
                reason = str(exc)
            else:
                if response.status_code == 200:
                    self._account(response, count)
                    return
                reason = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in (429, 502, 503, 504):
                    self.failed.append(reason)
                    log.warning("POST %s: %s", self.url, reason)
                    return
                delay = float(response.headers.get("Retry-After", delay))
            if attempt == self.retries:
                self.failed.append(reason)
                log.warning("POST %s gave up: %s", self.url, reason)
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _account(self, response: httpx.Response, count: int) -> None:
        """The body says how many were accepted and why the others were rejected."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        accepted = body.get("accepted", count) if isinstance(body, dict) else count
        self.stored += int(accepted)
        for entry in body.get("rejections", []) if isinstance(body, dict) else []:
            self.rejected.append(str(entry.get("reason", entry)))

    def close(self) -> None:
        self.flush()
        self._client.close()
