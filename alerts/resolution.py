"""What a resolve notification says: that the condition cleared, with the figures at
resolution (pure).

A firing alert's annotations describe the cycle that fired it ("burns its error
budget 20.0x ... compliance 47.71 %"). When its condition no longer holds, the
rules have no candidate for it to carry new figures, so ``cleared`` builds them
from what the rules read in the resolving cycle (``Findings``): the SLO's burn
rates and compliance now, the overdue count and amount now, when the feed was
last heard from, the failed hops now. The rule's own annotations (a runbook URL)
are kept; the examples of the firing cycle are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.burn_rate import RULE as BURN_RATE
from alerts.burn_rate import figures, headline
from alerts.conditions import ERROR_SPIKE, IDLE_FEED, OVERDUE, FeedRow, OverdueRow, idle_limit
from alerts.lifecycle import AlertRecord
from alerts.objectives import SloStatus, label, scaled
from alerts.unmatched import UNMATCHED, age
from correlator import UnmatchedGroup
from stitchboard.config.model import SlasConfig

_NS = 1_000_000_000
# Annotations that describe one cycle's figures: replaced (or dropped) on resolve.
_PER_CYCLE = frozenset(
    {"summary", "description", "examples", "example_links", "waiting_for", "held"}
)


@dataclass(frozen=True)
class Findings:
    """What the rules read in one cycle (empty where a rule is disabled)."""

    statuses: tuple[SloStatus, ...] = ()
    overdue: tuple[OverdueRow, ...] = ()
    feeds: tuple[FeedRow, ...] = ()
    errors: tuple[tuple[str, str, int], ...] = ()
    unmatched: tuple[UnmatchedGroup, ...] = ()


def cleared(
    record: AlertRecord, findings: Findings, config: SlasConfig, now: int
) -> dict[str, str]:
    """The annotations of ``record`` once its condition no longer holds at ``now``."""
    kept = {k: v for k, v in record.annotations.items() if k not in _PER_CYCLE}
    labels = record.labels
    if record.rule == BURN_RATE:
        new = _burn_rate(labels, findings.statuses, config, record.annotations)
    elif record.rule == OVERDUE:
        new = _overdue(labels, findings.overdue, config)
    elif record.rule == IDLE_FEED:
        new = _idle(labels, findings.feeds, config, now)
    elif record.rule == ERROR_SPIKE:
        new = _errors(labels, findings.errors, config)
    elif record.rule == UNMATCHED:
        new = _unmatched(labels, findings.unmatched)
    else:
        new = {"summary": f"Cleared: {record.annotations.get('summary', record.rule)}"}
    return {**kept, **new}


def _burn_rate(
    labels: Mapping[str, str],
    statuses: tuple[SloStatus, ...],
    config: SlasConfig,
    fired: Mapping[str, str],
) -> dict[str, str]:
    slo = config.slo(labels.get("slo", ""))
    status = next(
        (
            s
            for s in statuses
            if s.slo == labels.get("slo")
            and (s.step or "") == labels.get("step", "")
            and all(labels.get(k) == v for k, v in s.group.items())
        ),
        None,
    )
    where = f"{labels.get('slo')}: {labels.get('workflow')} at {labels.get('facility')}"
    if slo is None or status is None:
        return {"summary": f"{where} cleared: the SLO or its group is no longer judged"}
    # The windows of the pair that fired (older alerts: the policy's first pair).
    pair = slo.alerting.windows[0]
    long_label = fired.get("long_window") or label(scaled(pair.long, slo))
    short_label = fired.get("short_window") or label(scaled(pair.short, slo))
    factor = next(
        (
            w.factor
            for w in slo.alerting.windows
            if (label(scaled(w.long, slo)), label(scaled(w.short, slo)))
            == (long_label, short_label)
        ),
        pair.factor,
    )
    now_text = _burn_cleared(status, long_label, short_label, factor, slo.alerting.min_events)
    return {
        "summary": f"{headline(status)} cleared: {now_text}",
        **figures(status, slo.objective, long_label, short_label),
    }


def _burn_cleared(
    status: SloStatus, long_label: str, short_label: str, factor: float, min_events: int
) -> str:
    """What cleared a burn-rate pair: the window(s) now under its factor (one is enough),
    with the other's rate beside, so a long window still burning fast does not read as
    the reason; else the minimum-events guard."""

    def rate(window: str) -> str:
        value = status.burn_rates.get(window)
        return f"nothing judged over {window}" if value is None else f"{value:.1f}x over {window}"

    low = [
        w
        for w in (long_label, short_label)
        if (value := status.burn_rates.get(w)) is None or value < factor
    ]
    if not low:
        events = status.window_counts.get(long_label, (0, 0))[1]
        return (
            f"{events} judged over {long_label}, fewer than the {min_events} the rule needs"
            f" (burns its error budget {rate(long_label)} and {rate(short_label)})"
        )
    text = f"burns its error budget {' and '.join(rate(w) for w in low)}, under {factor:g}x"
    if len(low) == 1:
        other = short_label if low == [long_label] else long_label
        text += f" ({rate(other)})"
    return text


def _overdue(
    labels: Mapping[str, str], rows: tuple[OverdueRow, ...], config: SlasConfig
) -> dict[str, str]:
    workflow, facility = labels.get("workflow", ""), labels.get("facility", "")
    rule = config.alerts.overdue
    row = next((r for r in rows if (r.workflow, r.facility) == (workflow, facility)), None)
    count, high, amount = (row.count, row.high_value, row.amount) if row else (0, 0, 0)
    limits = []
    if rule.amount is not None:
        limits.append(f"{high} worth at least ${rule.amount:,.0f}")
    if rule.count is not None:
        limits.append(f"{count} overdue (limit {rule.count})")
    return {
        "summary": (
            f"{workflow} at {facility} cleared: {count} transactions overdue,"
            f" ${amount:,.2f} at risk"
        ),
        "description": "; ".join(limits),
        "overdue": str(count),
        "amount_at_risk": f"{amount:.2f}",
    }


def _idle(
    labels: Mapping[str, str], feeds: tuple[FeedRow, ...], config: SlasConfig, now: int
) -> dict[str, str]:
    system, facility = labels.get("system", ""), labels.get("facility", "")
    operation = labels.get("operation", "")
    rule = config.alerts.idle_feeds
    feed = next(
        (f for f in feeds if (f.system, f.facility, f.operation) == (system, facility, operation)),
        None,
    )
    name = f"{system}" + (f" {operation}" if operation else "") + f" at {facility}"
    if feed is None or feed.last_ns is None:
        return {
            "summary": f"{name} cleared: no longer watched",
            "description": (
                f"Fewer than {rule.discover_min_events} events received within"
                f" {rule.discover_within.text}, and not declared."
            ),
        }
    quiet = max(0, now - feed.last_ns)
    limit = idle_limit(rule, feed)
    if quiet < limit.nanos:
        return {
            "summary": f"{name} cleared: received again, the newest {age(quiet)} ago",
            "description": f"Limit {limit.text} without receipts.",
        }
    hours = rule.business_hours
    window = f" ({hours.start}:00-{hours.end}:00 local, business days)" if hours else ""
    return {
        "summary": f"{name} cleared: outside business hours{window}",
        "description": f"Still nothing received for {age(quiet)} (limit {limit.text}).",
    }


def _errors(
    labels: Mapping[str, str], rows: tuple[tuple[str, str, int], ...], config: SlasConfig
) -> dict[str, str]:
    system, facility = labels.get("system", ""), labels.get("facility", "")
    rule = config.alerts.error_spike
    count = next((n for s, f, n in rows if (s, f) == (system, facility)), 0)
    return {
        "summary": (f"{system} at {facility} cleared: {count} failed hops in {rule.window.text}"),
        "description": f"Threshold {rule.threshold} per {rule.window.text}.",
    }


def _unmatched(labels: Mapping[str, str], groups: tuple[UnmatchedGroup, ...]) -> dict[str, str]:
    workflow, step = labels.get("workflow", ""), labels.get("step", "")
    facility = labels.get("facility", "")
    group = next(
        (g for g in groups if (g.workflow, g.step, g.facility) == (workflow, step, facility)),
        None,
    )
    waiting, aged = (group.waiting, group.aged) if group else (0, 0)
    return {
        "summary": (
            f"{workflow} at {facility} cleared: {waiting} {step} events match no transaction"
        ),
        "waiting": str(waiting),
        "aged": str(aged),
    }
