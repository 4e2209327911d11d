"""Message content for a bundle: the stored messages of the hops, and related dead letters.

What the store keeps, all of it PHI-masked at ingest (PHI fields pseudonymized
with the same keyed HMAC as the business keys):

- an HL7 hop's message text, when its mapping has ``store_message: true``
  (event attribute ``hl7.message``): written to ``messages.jsonl``, one line
  per hop that has one;
- dead letters (records that could not be used, with their masked payload and
  the reason): written to ``dead_letters.jsonl`` when their payload mentions a
  key value of an exported transaction and they arrived within 30 days of it,
  the rule of the console's transaction page. Each line names the exported
  transactions whose keys it mentions.

Not kept, so not exported: the raw bytes as received (only the masked text),
message text of HL7 mappings without ``store_message``, and the payloads of
JSON Lines and CSV records that became events (their fields are the event's
attributes).

Every hop's attributes and the OTel span and log rows of its trace are in
``events.jsonl``, ``spans.jsonl`` and ``logs.jsonl`` already.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from stitchboard.store import Store

HL7_MESSAGE = "hl7.message"
HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"
WINDOW_NS = 30 * 86_400 * 10**9
NEEDLES = 200  # ClickHouse's multiSearchAny takes at most 255 needles per call
MIN_KEY = 3  # shorter values would match unrelated payloads


def stored_message(event_row: dict[str, Any]) -> dict[str, Any] | None:
    """The stored message of one ``events`` row, or None when none was kept."""
    text = (event_row.get("attributes") or {}).get(HL7_MESSAGE)
    if not text:
        return None
    return {
        "event_id": event_row["event_id"],
        "event_time": event_row["event_time"],
        "source_kind": event_row["source_kind"],
        "source": event_row["source"],
        "content_type": HL7_CONTENT_TYPE,
        "content": text,
    }


def _ns(iso: str | None) -> int | None:
    if not iso:
        return None
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def _key_values(tx: dict[str, Any]) -> set[str]:
    return {v for values in tx.get("keys", {}).values() for v in values if len(v) >= MIN_KEY}


def related_dead_letters(
    store: Store, transactions: Sequence[dict[str, Any]], seen: set[str]
) -> Iterator[dict[str, Any]]:
    """Dead letters mentioning a key of these transactions, each once (``seen`` spans pages)."""
    values = sorted(set().union(*(_key_values(t) for t in transactions)))
    times = [
        ns
        for t in transactions
        for ns in (_ns(t.get("start_time")), _ns(t.get("last_time")))
        if ns is not None
    ]
    if not values or not times:
        return
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(values), NEEDLES):
        for row in store.dicts(
            "SELECT id, received_time, toUnixTimestamp64Nano(received_time) AS received_ns,"
            " source, content_type, payload, reason, replayed"
            f" FROM {store.table('dead_letters')} FINAL"
            " WHERE received_time >= fromUnixTimestamp64Nano({since:Int64})"
            " AND received_time < fromUnixTimestamp64Nano({until:Int64})"
            " AND multiSearchAny(payload, {needles:Array(String)})"
            " ORDER BY received_time, id",
            {
                "since": min(times) - WINDOW_NS,
                "until": max(times) + WINDOW_NS,
                "needles": values[i : i + NEEDLES],
            },
        ):
            if row["id"] not in seen:
                found[row["id"]] = row
    for letter_id, row in sorted(found.items(), key=lambda kv: (kv[1]["received_ns"], kv[0])):
        payload = row.pop("payload")
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        received = int(row.pop("received_ns"))
        mentions = sorted(
            t["id"]
            for t in transactions
            if any(v in text for v in _key_values(t)) and _near(t, received)
        )
        if not mentions:
            continue  # a key of one transaction, but outside that transaction's window
        seen.add(letter_id)
        yield {**row, "payload": text, "transactions": mentions}


def _near(tx: dict[str, Any], received: int) -> bool:
    start, last = _ns(tx.get("start_time")), _ns(tx.get("last_time"))
    if start is None:
        return True
    return start - WINDOW_NS <= received < (last or start) + WINDOW_NS
