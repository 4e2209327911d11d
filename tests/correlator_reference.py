"""The first, straightforward ``summarize``: the optimized one must give the same results."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from correlator.deadlines import FacilityClock
from correlator.transaction import (
    _RANK,
    BREACH,
    COMPLETE,
    DUPLICATE_STEP,
    END_TO_END,
    FAILED,
    IN_PROGRESS,
    LATE,
    MISSING_STEP,
    OUT_OF_ORDER,
    OVERDUE,
    UNEXPECTED_NAME,
    UNEXPECTED_STEP,
    WARN,
    Hop,
    Missed,
    StepResult,
    Transaction,
    transaction_id,
)
from stitchboard.config.workflows import Duration, Workflow
from stitchboard.events import STATUS_ERROR

_UTC = FacilityClock.for_facility(None)


def _order(hop: Hop) -> tuple[int, str]:
    return (hop.event.event_time, hop.event.event_id)


def _worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def reference_summarize(
    workflow: Workflow,
    core: Iterable[Hop],
    attached: Iterable[Hop],
    clocks: dict[str, FacilityClock],
    now: int,
) -> Transaction:
    """One transaction from its core (chained) hops and its attached (fan-in, unexpected) hops."""
    core_hops = sorted(core, key=_order)
    all_hops = sorted({h.event.event_id: h for h in (*core_hops, *attached)}.values(), key=_order)
    steps = workflow.steps
    by_step: list[list[Hop]] = [[] for _ in steps]
    unexpected: list[Hop] = []
    for hop in all_hops:
        if hop.step < 0:
            unexpected.append(hop)
        else:
            by_step[hop.step].append(hop)

    first = [h[0].event.event_time if h else 0 for h in by_step]
    happened = [bool(h) for h in by_step]
    # The first step is never fan-in, so its earliest hop (if any) is a core hop.
    head = by_step[0][0] if by_step[0] else core_hops[0]
    start = head.event.event_time
    facility = head.event.facility or next(
        (h.event.facility for h in core_hops if h.event.facility), ""
    )
    clock = clocks.get(facility) or _UTC

    required = [i for i, s in enumerate(steps) if not s.optional]
    complete = all(happened[i] for i in required)
    end_time = max(first[i] for i in required) if complete else 0

    results: list[StepResult] = []
    missed: list[Missed] = []
    warn_pending: list[int] = []
    breach_pending: list[int] = []
    level = ""
    failed = False
    error_count = 0
    missing = False
    last_happened = max((i for i, h in enumerate(happened) if h), default=-1)
    for i, step in enumerate(steps):
        hops = by_step[i]
        anchor = 0
        since = ""
        within = step.within
        if within is not None:
            if within.after == "start":
                j = 0
            elif within.after == "previous":
                j = i - 1
            else:
                j = next(k for k, s in enumerate(steps) if s.name == within.after)
            # A skipped optional anchor (a later step happened) passes the anchor back.
            while j >= 0 and not happened[j] and steps[j].optional and last_happened > j:
                j -= 1
            if j >= 0 and happened[j]:
                event = by_step[j][0].event
                anchor = event.sent if within.from_ == "sent" else event.event_time
                since = steps[j].name + (" sent" if within.from_ == "sent" else "")
        warn_at = clock.add(anchor, within.warn) if anchor and within and within.warn else 0
        breach_at = clock.add(anchor, within.breach) if anchor and within and within.breach else 0
        step_level = ""
        late_by = 0
        amount: Decimal | None = None
        status = ""
        if hops:
            # Repeating steps are judged by their latest event (a late charge is late);
            # others by their first (later copies are duplicates, flagged separately).
            actual = hops[-1].event.event_time if step.repeat else hops[0].event.event_time
            for deadline, name in ((breach_at, BREACH), (warn_at, WARN)):
                if deadline and actual > deadline:
                    step_level = name
                    late_by = actual - deadline
                    limit = getattr(within, name)
                    missed.append(
                        Missed(
                            step.name, name, deadline, actual, late_by, limit.text, since, anchor
                        )
                    )
                    break
            for hop in hops:
                if hop.event.amount is not None:
                    amount = hop.event.amount if amount is None else amount + hop.event.amount
                if hop.event.status == STATUS_ERROR:
                    error_count += 1
            status = hops[-1].event.status
            failed = failed or status == STATUS_ERROR
        elif not step.optional and not complete:
            limits = {
                BREACH: (within.breach.text if within and within.breach else "", since, anchor),
                WARN: (within.warn.text if within and within.warn else "", since, anchor),
            }
            gone = False
            later = [j for j in range(i + 1, len(steps)) if happened[j] and not steps[j].optional]
            if later:
                grace = step.grace if step.grace is not None else workflow.grace
                if grace is None:
                    missing = True
                elif within is None or anchor:
                    earliest = min(later, key=lambda j: first[j])
                    grace_from = max(first[earliest], start)
                    grace_at = clock.add(grace_from, grace)
                    if not breach_at or grace_at < breach_at:
                        breach_at = grace_at
                        limits[BREACH] = (grace.text, steps[earliest].name, grace_from)
                        gone = True
                    missing = missing or now >= breach_at
            if breach_at:
                breach_pending.append(breach_at)
            if warn_at:
                warn_pending.append(warn_at)
            for deadline, name in ((breach_at, BREACH), (warn_at, WARN)):
                if deadline and now >= deadline:
                    step_level = name
                    late_by = now - deadline
                    limit, since_name, since_time = limits[name]
                    missed.append(
                        Missed(
                            step.name,
                            name,
                            deadline,
                            0,
                            late_by,
                            limit,
                            since_name,
                            since_time,
                            gone and name == BREACH,
                        )
                    )
                    break
        level = _worse(level, step_level)
        results.append(
            StepResult(
                name=step.name,
                events=len(hops),
                first_time=first[i],
                last_time=hops[-1].event.event_time if hops else 0,
                anchor_time=anchor,
                warn_at=warn_at,
                breach_at=breach_at,
                duration_ns=max(first[i] - anchor, 0) if hops and anchor else 0,
                level=step_level,
                late_by_ns=late_by,
                amount=amount,
                status=status,
            )
        )
    if unexpected:
        results.append(
            StepResult(
                name=UNEXPECTED_NAME,
                events=len(unexpected),
                first_time=unexpected[0].event.event_time,
                last_time=unexpected[-1].event.event_time,
                anchor_time=0,
                warn_at=0,
                breach_at=0,
                duration_ns=0,
                level="",
                late_by_ns=0,
                amount=None,
                status=unexpected[-1].event.status,
            )
        )

    e2e = workflow.within
    if e2e is not None and happened[0]:
        e2e_from = first[0]
        e2e_level, e2e_missed = _end_to_end(
            clock, e2e_from, steps[0].name, end_time, now, e2e.warn, e2e.breach
        )
        if e2e_missed is not None:
            missed.append(e2e_missed)
        level = _worse(level, e2e_level)
        if not complete:
            if e2e.warn is not None:
                warn_pending.append(clock.add(e2e_from, e2e.warn))
            if e2e.breach is not None:
                breach_pending.append(clock.add(e2e_from, e2e.breach))

    flags = _flags(workflow, by_step, first, happened, missing, bool(unexpected))
    if failed:
        status = FAILED
    elif complete:
        status = LATE if level else COMPLETE
    else:
        status = OVERDUE if level else IN_PROGRESS

    amount = next((r.amount for r in results if r.amount is not None), None)
    keys = sorted({(k, v) for h in all_hops for k, v in h.event.keys.items() if v})
    return Transaction(
        id=transaction_id(
            workflow.name, core_hops[0].event.event_id, core_hops[0].event.event_time
        ),
        workflow=workflow.name,
        id_time=core_hops[0].event.event_time,
        facility=facility,
        status=status,
        level=level,
        start_time=start,
        end_time=end_time,
        last_time=all_hops[-1].event.event_time,
        duration_ns=end_time - start if complete else 0,
        warn_deadline=min(warn_pending, default=0) if not complete else 0,
        breach_deadline=min(breach_pending, default=0) if not complete else 0,
        flags=flags,
        steps=tuple(results),
        missed=tuple(missed),
        amount=amount,
        keys=tuple(keys),
        event_ids=tuple(h.event.event_id for h in all_hops),
        event_steps=tuple(steps[h.step].name if h.step >= 0 else UNEXPECTED_NAME for h in all_hops),
        error_count=error_count,
    )


def _end_to_end(
    clock: FacilityClock,
    start: int,
    start_name: str,
    end_time: int,
    now: int,
    warn: Duration | None,
    breach: Duration | None,
) -> tuple[str, Missed | None]:
    actual = end_time or now
    for duration, name in ((breach, BREACH), (warn, WARN)):
        if duration is None:
            continue
        deadline = clock.add(start, duration)
        if (end_time and end_time > deadline) or (not end_time and now >= deadline):
            missed = Missed(
                END_TO_END,
                name,
                deadline,
                end_time,
                actual - deadline,
                duration.text,
                start_name,
                start,
            )
            return name, missed
    return "", None


def _flags(
    workflow: Workflow,
    by_step: list[list[Hop]],
    first: list[int],
    happened: list[bool],
    missing: bool,
    has_unexpected: bool,
) -> tuple[str, ...]:
    flags = []
    steps = workflow.steps
    if missing:
        flags.append(MISSING_STEP)
    skew = workflow.clock_skew.nanos
    latest = None
    for i in range(len(steps)):
        if not happened[i] or steps[i].may_precede:
            continue
        if latest is not None and first[i] + skew < latest:
            flags.append(OUT_OF_ORDER)
            break
        latest = first[i] if latest is None else max(latest, first[i])
    if any(
        not steps[i].repeat and len({h.event.event_id for h in hops}) > 1
        for i, hops in enumerate(by_step)
    ):
        flags.append(DUPLICATE_STEP)
    if has_unexpected:
        flags.append(UNEXPECTED_STEP)
    return tuple(flags)
