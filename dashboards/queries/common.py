"""What every read of the console shares: the scope of a view, the status now, the
open set's filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NS = 1_000_000_000
DAY_NS = 86_400 * NS

# Same rule as the transactions API: an open transaction past a deadline is overdue.
_STATUS_NOW = """multiIf(
    status IN ('in_progress', 'overdue')
      AND ((breach_deadline IS NOT NULL AND breach_deadline <= {now:DateTime64(9, 'UTC')})
        OR (warn_deadline IS NOT NULL AND warn_deadline <= {now:DateTime64(9, 'UTC')})),
    'overdue', status)"""
STATUS_NOW = _STATUS_NOW  # public: the listing reads it too

_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"

# Aging buckets of open transactions (upper bound in days; None = no bound).
AGING_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("< 1 d", 1),
    ("1–3 d", 3),
    ("3–7 d", 7),
    ("7–14 d", 14),
    ("14–30 d", 30),
    ("> 30 d", None),
)


@dataclass(frozen=True)
class Scope:
    """Which transactions a view covers: workflow, facility and a window on id_time."""

    since: int  # ns, inclusive
    until: int  # ns, exclusive
    workflow: str | None = None
    facility: str | None = None

    def where(self, now: int) -> tuple[str, dict[str, Any]]:
        clauses = [
            "deleted = 0",
            "id_time >= fromUnixTimestamp64Nano({since:Int64})",
            "id_time < fromUnixTimestamp64Nano({until:Int64})",
        ]
        params: dict[str, Any] = {"since": self.since, "until": self.until, "now": now}
        if self.workflow:
            clauses.append("workflow = {workflow:String}")
            params["workflow"] = self.workflow
        if self.facility:
            clauses.append("facility = {facility:String}")
            params["facility"] = self.facility
        return " AND ".join(clauses), params


# The open set's rows (``open_transactions``): deadlines in ns, 0 = none.
_OPEN_OVERDUE = """(status = 'overdue'
    OR (breach_ns != 0 AND breach_ns <= {now:Int64})
    OR (warn_ns != 0 AND warn_ns <= {now:Int64}))"""
_OPEN_STATUS = "status IN ('in_progress', 'overdue')"


def _open_where(now: int, workflow: str | None, facility: str | None) -> tuple[str, dict[str, Any]]:
    """Open-set rows of a workflow and facility (None: all) that started before tomorrow."""
    clauses = ["id_time < fromUnixTimestamp64Nano({until:Int64})"]
    params: dict[str, Any] = {"until": now + DAY_NS, "now": now}
    if workflow:
        clauses.append("workflow = {workflow:String}")
        params["workflow"] = workflow
    if facility:
        clauses.append("facility = {facility:String}")
        params["facility"] = facility
    return " AND ".join(clauses), params
