"""One evaluation cycle: judge every SLO and rule, advance the lifecycle, notify.

``evaluate_all`` is the plain function behind the scheduler job, the CLI's
``alerts evaluate --once`` and the tests (which pass a fixed clock). New alerts that
partial data may have raised wait, pending with a ``held`` annotation: burn-rate
alerts while the correlator catches up (``alerts.progress``), burn-rate and overdue
alerts of the workflows a feed receiving a backlog feeds (``alerts.backfill``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from alerts.backfill import Backlog, backfill_holds, backfilling, backlog_rows
from alerts.burn_rate import RULE as BURN_RATE
from alerts.burn_rate import burn_rate_candidates
from alerts.conditions import (
    error_candidates,
    error_rows,
    feed_rows,
    idle_candidates,
    inhibited,
    overdue_candidates,
)
from alerts.lifecycle import AlertState, Candidate, Hold, Step, advance
from alerts.notifier import MemoryNotifier, Notifier
from alerts.objectives import SloStatus, slo_report
from alerts.overdue import overdue_rows
from alerts.progress import MAX_HOLD_NS, Correlation
from alerts.repository import STATE_LOCK, live_records, load_silences, to_ns, write_records
from alerts.resolution import Findings, cleared
from alerts.rollup import refresh, rollup_relation
from alerts.unmatched import unmatched_candidates
from correlator import unmatched_groups
from stitchboard.config.model import SlasConfig
from stitchboard.store import Store

log = logging.getLogger("stitchboard.alerts")


@dataclass(frozen=True)
class Evaluation:
    statuses: tuple[SloStatus, ...]
    candidates: tuple[Candidate, ...]
    step: Step
    backfilling: tuple[Backlog, ...] = ()  # the feeds receiving a backlog this cycle


def observe(store: Store, config: SlasConfig, statuses: list[SloStatus], now: int) -> Findings:
    """What every enabled rule reads this cycle; reads the ledgers as of the last refresh."""
    rules = config.alerts
    overdue = overdue_rows(store, rules.overdue.amount, now) if rules.overdue.enabled else []
    feeds = feed_rows(store, config, rules.idle_feeds, now) if rules.idle_feeds.enabled else []
    errors = (
        error_rows(store, rules.error_spike.window.nanos, now) if rules.error_spike.enabled else []
    )
    unmatched = []
    if rules.unmatched.enabled:
        older = rules.unmatched.older_than.nanos if rules.unmatched.older_than else 0
        unmatched = unmatched_groups(store, now, older)
    return Findings(tuple(statuses), tuple(overdue), tuple(feeds), tuple(errors), tuple(unmatched))


def candidates(config: SlasConfig, findings: Findings, now: int) -> list[Candidate]:
    """What every rule finds in ``findings``."""
    rules = config.alerts
    found = burn_rate_candidates(config, findings.statuses)
    if rules.overdue.enabled:
        found += overdue_candidates(rules.overdue, findings.overdue, rules.external_url)
    if rules.idle_feeds.enabled:
        found += idle_candidates(config, rules.idle_feeds, findings.feeds, now)
    if rules.error_spike.enabled:
        found += error_candidates(config, findings.errors)
    if rules.unmatched.enabled:
        found += unmatched_candidates(rules.unmatched, findings.unmatched, now, rules.external_url)
    return found


def holds(
    config: SlasConfig,
    found: list[Candidate],
    correlation: Correlation | None,
    feeds: tuple[Backlog, ...],
    now: int,
) -> dict[str, Hold]:
    """Which new alerts may not start firing this cycle, and why (by fingerprint)."""
    out = backfill_holds(config, found, feeds, now)
    if correlation is None or not correlation.catching_up:
        return out
    for c in found:
        if c.rule != BURN_RATE:
            continue
        also = out.get(c.fingerprint)
        reason = correlation.reason() + (f"; {also.reason}" if also else "")
        out[c.fingerprint] = Hold(reason, max(MAX_HOLD_NS, also.max_ns if also else 0))
    return out


def evaluate_all(
    store: Store,
    config: SlasConfig,
    notifier: Notifier | None = None,
    now: dt.datetime | None = None,
    correlation: Correlation | None = None,
) -> Evaluation:
    """``correlation``: the correlator's progress (``alerts.progress``); while it catches
    up, new burn-rate alerts are held pending. None (no correlator in this process):
    nothing is held for it. Feeds receiving a backlog are read from the store."""
    now = now or dt.datetime.now(dt.UTC)
    now_ns = to_ns(now) or 0
    notifier = notifier or MemoryNotifier()
    # One read-advance-write of alert state at a time in this process (scheduler, CLI,
    # acknowledgements from the API).
    with STATE_LOCK:
        # The rollup is brought up to date first; the SLOs are then counted from it.
        refresh(store, list(config.slos))
        statuses = slo_report(store, config, now, relation=rollup_relation)
        findings = observe(store, config, statuses, now_ns)
        found = candidates(config, findings, now_ns)
        muted = inhibited(config, found)
        previous = {r.fingerprint: r for r in live_records(store, now_ns)}
        present = {c.fingerprint for c in found}
        backfill = config.alerts.backfill
        feeds = (
            backfilling(backfill, backlog_rows(store, backfill, now_ns)) if backfill.enabled else ()
        )
        held = holds(config, found, correlation, feeds, now_ns)
        resolutions = {
            fp: cleared(r, findings, config, now_ns)
            for fp, r in previous.items()
            if fp not in present and r.state != AlertState.RESOLVED
        }
        step = advance(
            previous,
            found,
            load_silences(store),
            muted,
            config.alerts.route,
            now_ns,
            resolutions,
            held,
        )
        # State first: a crash after this line may lose a notification, never send one twice.
        write_records(store, step.changed)
    if step.notices:
        notifier.notify(step.notices)
    return Evaluation(tuple(statuses), tuple(found), step, feeds)
