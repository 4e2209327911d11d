"""Multiwindow, multi-burn-rate alerts from SLO reports (pure).

A pair (long, short) fires when both windows burn at least ``factor`` times the
sustainable rate and the long window judged at least ``min_events``
transactions; the alert takes the worst firing pair's severity, so one alert per
SLO and group can escalate from ticket to page (and an acknowledgement ends).
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.lifecycle import SEVERITY_RANK, Candidate
from alerts.objectives import SloStatus, label, scaled
from stitchboard.config.model import SlasConfig

RULE = "slo_burn_rate"


def burn_rate_candidates(config: SlasConfig, statuses: Iterable[SloStatus]) -> list[Candidate]:
    out: list[Candidate] = []
    for status in statuses:
        slo = config.slo(status.slo)
        if slo is None or not slo.alerting.enabled:
            continue
        worst: tuple[int, str, float, str, str] | None = None
        for pair in slo.alerting.windows:
            long_label = label(scaled(pair.long, slo))
            short_label = label(scaled(pair.short, slo))
            long_rate = status.burn_rates.get(long_label)
            short_rate = status.burn_rates.get(short_label)
            events = status.window_counts.get(long_label, (0, 0))[1]
            if long_rate is None or short_rate is None or events < slo.alerting.min_events:
                continue
            if long_rate >= pair.factor and short_rate >= pair.factor:
                rank = SEVERITY_RANK[pair.severity]
                if worst is None or rank > worst[0]:
                    worst = (rank, pair.severity, long_rate, long_label, short_label)
        if worst is None:
            continue
        _, severity, rate, long_label, short_label = worst
        labels = {"rule": RULE, "slo": slo.name, "workflow": status.workflow, **status.group}
        if status.step:
            labels["step"] = status.step
        annotations = {
            "summary": f"{headline(status)} burns its error budget {rate:.1f}x over {long_label}",
            **figures(status, slo.objective, long_label, short_label),
            **slo.alerting.annotations,
        }
        out.append(
            Candidate(
                rule=RULE,
                severity=severity,
                labels=labels,
                annotations=annotations,
                value=rate,
                for_ns=slo.alerting.for_.nanos,
            )
        )
    return out


def headline(status: SloStatus) -> str:
    """``slo: workflow [step s] at facility``."""
    where = f"{status.workflow}" + (f" step {status.step}" if status.step else "")
    return f"{status.slo}: {where} at {status.group.get('facility', '')}"


def figures(
    status: SloStatus, objective: float, long_label: str, short_label: str
) -> dict[str, str]:
    """The annotations that carry the SLO's figures over a pair of windows (firing or
    cleared: the same shape, the figures as of that cycle)."""
    return {
        "description": (
            f"Burn rate {status.burn_rates.get(long_label) or 0:.1f}x over {long_label} and"
            f" {status.burn_rates.get(short_label) or 0:.1f}x over {short_label};"
            f" compliance {_pct(status.compliance)} against {objective:.2%}"
            f" over {status.window}; {status.overdue} overdue, {status.late} late,"
            f" {status.failed} failed; ${status.amount_at_risk:,.2f} at risk"
        ),
        "burn_rate": f"{status.burn_rates.get(long_label) or 0:.2f}",
        "long_window": long_label,
        "short_window": short_label,
        "compliance": "" if status.compliance is None else f"{status.compliance:.4f}",
        "overdue": str(status.overdue),
        "amount_at_risk": f"{status.amount_at_risk:.2f}",
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"
