"""Unmatched fan-in events: a GL journal or cash posting waiting for its batch or claim.

The correlator counts them per workflow x step x facility (``unmatched_groups``);
``unmatched_candidates`` (pure) turns the groups that break the rule into alerts:
one waiting ``older_than`` or longer, or ``count`` of them waiting at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from alerts.lifecycle import Candidate
from correlator import UnmatchedGroup
from stitchboard.config.slos import UnmatchedRule

UNMATCHED = "unmatched"
_NS = 1_000_000_000


def age(ns: int) -> str:
    """A compact age: 3d 4h, 5h 12m, 7m."""
    minutes = max(ns, 0) // (60 * _NS)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def unmatched_candidates(
    rule: UnmatchedRule, groups: Iterable[UnmatchedGroup], now: int, external_url: str
) -> list[Candidate]:
    out = []
    for group in groups:
        by_age = rule.older_than is not None and group.aged > 0
        by_count = rule.count is not None and group.waiting >= rule.count
        if not (by_age or by_count):
            continue
        why = []
        if by_age and rule.older_than is not None:
            why.append(f"{group.aged} waiting longer than {rule.older_than.text}")
        if by_count:
            why.append(f"{group.waiting} waiting (limit {rule.count})")
        oldest = age(now - group.oldest_ns)
        links = " ".join(
            f"{external_url}/api/v1/unmatched-events?key={quote(value)}"
            for value in group.waiting_for
            if value
        )
        out.append(
            Candidate(
                rule=UNMATCHED,
                severity=rule.severity,
                labels={
                    "rule": UNMATCHED,
                    "workflow": group.workflow,
                    "step": group.step,
                    "facility": group.facility,
                },
                annotations={
                    "summary": (
                        f"{group.workflow} at {group.facility}: {group.waiting} {group.step}"
                        f" events match no transaction, the oldest for {oldest}"
                    ),
                    "description": "; ".join(why),
                    "waiting": str(group.waiting),
                    "aged": str(group.aged),
                    "oldest_age": oldest,
                    "examples": " ".join(group.examples),
                    "waiting_for": " ".join(group.waiting_for),
                    "example_links": links,
                    **rule.annotations,
                },
                value=float(group.aged if by_age else group.waiting),
                for_ns=rule.for_.nanos,
            )
        )
    return out
