"""The transaction page's reads beyond the correlator's: hop attributes, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stitchboard.store import Store

# -- transaction detail ----------------------------------------------------------


def event_attributes(store: Store, event_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """event id → its attributes (PHI already pseudonymized at ingest)."""
    if not event_ids:
        return {}
    rows = store.rows(
        f"SELECT event_id, attributes FROM {store.table('events')}"
        " WHERE event_id IN {ids:Array(String)}",
        {"ids": list(event_ids)},
    )
    return {str(i): dict(a) for i, a in rows}


def related_dead_letters(
    store: Store, values: Sequence[str], since: int, until: int, limit: int = 50
) -> list[dict[str, Any]]:
    """Dead letters received in [since, until) whose payload mentions one of the key values."""
    needles = [v for v in dict.fromkeys(values) if len(v) >= 3][:200]
    if not needles:
        return []
    return store.dicts(
        "SELECT id, toUnixTimestamp64Nano(received_time) AS received_ns, source, reason,"
        f" replayed FROM {store.table('dead_letters')} FINAL"
        " WHERE received_time >= fromUnixTimestamp64Nano({since:Int64})"
        " AND received_time < fromUnixTimestamp64Nano({until:Int64})"
        " AND multiSearchAny(payload, {needles:Array(String)})"
        " ORDER BY received_time DESC LIMIT {limit:UInt32}",
        {"since": since, "until": until, "needles": needles, "limit": limit},
    )
