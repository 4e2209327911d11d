"""A business transaction and how it is summarized from its hop events (pure).

``summarize`` is a function of the transaction's events, the workflow and the
evaluation time only; events are sorted first, so arrival order never shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import NamedTuple

from correlator.deadlines import FacilityClock
from stitchboard.config.workflows import Duration, Workflow
from stitchboard.events import STATUS_ERROR, Event, event_id


# StrEnums: members are the strings stored in ClickHouse and shown by the API, so a
# member equals (and hashes as) its value, and rows read back compare equal.
class Status(StrEnum):
    """A transaction's status (see DESIGN.md, Correlation)."""

    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    LATE = "late"  # complete, some deadline missed
    OVERDUE = "overdue"  # open, a deadline has passed
    FAILED = "failed"  # a hop reported an error


class Level(StrEnum):
    """The worst deadline missed: none, warn or breach."""

    NONE = ""
    WARN = "warn"
    BREACH = "breach"


class Flag(StrEnum):
    """A conformance flag on a transaction."""

    MISSING_STEP = "missing_step"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE_STEP = "duplicate_step"
    UNEXPECTED_STEP = "unexpected_step"


# The members under their former constant names (``transaction.LATE`` and so on).
IN_PROGRESS = Status.IN_PROGRESS
COMPLETE = Status.COMPLETE
LATE = Status.LATE
OVERDUE = Status.OVERDUE
FAILED = Status.FAILED
STATUSES = tuple(Status)
WARN = Level.WARN
BREACH = Level.BREACH
LEVELS = tuple(Level)
_RANK = {Level.NONE: 0, Level.WARN: 1, Level.BREACH: 2}
MISSING_STEP = Flag.MISSING_STEP
OUT_OF_ORDER = Flag.OUT_OF_ORDER
DUPLICATE_STEP = Flag.DUPLICATE_STEP
UNEXPECTED_STEP = Flag.UNEXPECTED_STEP
FLAGS = tuple(Flag)

END_TO_END = "end_to_end"
UNEXPECTED_NAME = "unexpected"


class Hop(NamedTuple):
    """An event as one step of one workflow (a tuple: millions are kept in memory)."""

    event: Event
    step: int  # index into workflow.steps, or matching.UNEXPECTED


# Results are NamedTuples rather than frozen dataclasses: immutable all the same, and
# several times cheaper to build, which matters at a million transactions.
class StepResult(NamedTuple):
    name: str
    events: int  # how many events the step has (not `count`: tuples have a count())
    first_time: int  # ns; 0 when the step has not happened
    last_time: int
    anchor_time: int  # what the deadline counts from; 0 when not armed yet
    warn_at: int  # 0 when the step has no such deadline (or it is not armed)
    breach_at: int
    duration_ns: int  # first_time - anchor_time when both are known
    level: Level  # worst deadline missed by this step
    late_by_ns: int
    amount: Decimal | None
    status: str  # status of the step's latest event


class Missed(NamedTuple):
    step: str  # a step name or "end_to_end"
    level: Level
    deadline: int
    actual: int  # 0 while the step is still awaited
    by_ns: int
    limit: str = ""  # the duration that was missed, as written in slas.yaml
    since: str = ""  # what the clock counted from: a step name, "<step> sent"
    since_time: int = 0
    missing: bool = False  # the step never came within its grace after a later step


class Transaction(NamedTuple):
    id: str
    workflow: str
    id_time: int  # time of the earliest core event, the one the id is derived from
    facility: str
    status: Status
    level: Level
    start_time: int
    end_time: int  # when the last required step first happened; 0 while open
    last_time: int
    duration_ns: int  # end_time - start_time; 0 while open
    warn_deadline: int  # earliest pending warn deadline (open transactions), else 0
    breach_deadline: int
    flags: tuple[Flag, ...]
    steps: tuple[StepResult, ...]
    missed: tuple[Missed, ...]
    amount: Decimal | None
    keys: tuple[tuple[str, str], ...]
    event_ids: tuple[str, ...]
    event_steps: tuple[str, ...]  # the step of each event id, in the same order
    error_count: int

    @property
    def complete(self) -> bool:
        return self.end_time != 0

    @property
    def next_deadline(self) -> int:
        pending = [d for d in (self.warn_deadline, self.breach_deadline) if d]
        return min(pending, default=0)


def transaction_id(workflow: str, first_event_id: str, first_time: int) -> str:
    """Deterministic: from the workflow and the earliest core event (by time, then id).

    32 hex digits: that event's time (ns, 16 digits) and 16 of a hash. Leading with the
    time makes ids sort by age and lets a lookup by id use the table's sorting key.
    """
    return f"{first_time:016x}{event_id('tx', workflow, first_event_id)[:16]}"


def id_time_of(transaction_id: str) -> int | None:
    """The time a transaction id starts with, or None for an id not made here."""
    if len(transaction_id) != 32:
        return None
    try:
        return int(transaction_id[:16], 16)
    except ValueError:
        return None


def _order(hop: Hop) -> tuple[int, str]:
    event = hop[0]
    return (event.event_time, event.event_id)


class Anchor(IntEnum):
    """What a step's deadline counts from."""

    NONE = 0  # the step has no deadline
    START = 1  # the workflow's first step
    PREVIOUS = 2  # the step just before (a skipped optional one hands it back)
    STEP = 3  # a named step (``StepPlan.anchor_step``)


class StepPlan(NamedTuple):
    """One step of a ``Plan``: what ``summarize`` needs, unpacked once per workflow."""

    name: str
    anchor: Anchor
    anchor_step: int  # the anchoring step's index for Anchor.STEP, else -1
    warn: Duration | None
    breach: Duration | None
    repeat: bool
    optional: bool
    from_sent: bool  # the clock counts from the anchor's send time, not its event time
    grace: Duration | None  # how long it may be missing after a later step happened
    may_precede: bool  # may happen before earlier steps: never out of order


class Plan:
    """A workflow compiled for ``summarize``: per step, how its deadline is anchored."""

    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        self.name = workflow.name
        names = [s.name for s in workflow.steps]
        self.names = names
        self.steps: list[StepPlan] = []
        for step in workflow.steps:
            within = step.within
            if within is None:
                anchor, index = Anchor.NONE, -1
            elif within.after == "start":
                anchor, index = Anchor.START, -1
            elif within.after == "previous":
                anchor, index = Anchor.PREVIOUS, -1
            else:
                anchor, index = Anchor.STEP, names.index(within.after)
            self.steps.append(
                StepPlan(
                    name=step.name,
                    anchor=anchor,
                    anchor_step=index,
                    warn=within.warn if within else None,
                    breach=within.breach if within else None,
                    repeat=step.repeat,
                    optional=step.optional,
                    from_sent=within is not None and within.from_ == "sent",
                    grace=step.grace if step.grace is not None else workflow.grace,
                    may_precede=step.may_precede,
                )
            )
        self.optional = tuple(s.optional for s in workflow.steps)
        self.core_steps = frozenset(i for i, s in enumerate(workflow.steps) if not s.fan_in)
        self.required = tuple(i for i, s in enumerate(workflow.steps) if not s.optional)
        e2e = workflow.within
        self.e2e_warn = e2e.warn if e2e else None
        self.e2e_breach = e2e.breach if e2e else None
        self.skew = workflow.clock_skew.nanos


def summarize(
    plan: Plan | Workflow,
    core: Iterable[Hop],
    attached: Iterable[Hop],
    clocks: dict[str, FacilityClock],
    now: int,
) -> Transaction:
    """One transaction from its core (chained) hops and its attached (fan-in, unexpected) hops.

    Clocks: a step's deadline counts from its anchor step's first event (its event
    or its send time, per ``within.from``) and is not armed while the anchor is
    pending; the end-to-end deadline counts from the first step. A required step
    missing while a later step happened is flagged ``missing_step`` at once, or,
    with a ``grace``, once that grace after the earliest later event (and not
    before the start) has passed, which is then a missed breach deadline.

    The hot loop of the correlator: written for speed (locals, tuples), with
    tests/correlator_reference.py as the plain version it must agree with.
    """
    if not isinstance(plan, Plan):
        plan = Plan(plan)
    # Core hops (chained steps) and attached hops (fan-in, unexpected) are disjoint by
    # step, and each side holds an event id once (the stitcher deduplicates).
    ordered = sorted([*core, *attached], key=_order)
    core_steps = plan.core_steps
    head_core = next(h for h in ordered if h[1] in core_steps)
    count = len(plan.steps)
    by_step: list[list[Event]] = [[] for _ in range(count)]
    unexpected: list[Event] = []
    for event, step in ordered:
        if step < 0:
            unexpected.append(event)
        else:
            by_step[step].append(event)
    first = [evs[0].event_time if evs else 0 for evs in by_step]
    head = by_step[0][0] if by_step[0] else head_core[0]
    start = head.event_time
    facility = head.facility
    if not facility:
        facility = next(
            (h[0].facility for h in ordered if h[1] in core_steps and h[0].facility), ""
        )
    clock = clocks.get(facility) or _UTC
    add = clock.add

    complete = True
    end_time = 0
    for i in plan.required:
        if not first[i]:
            complete = False
            break
        if first[i] > end_time:
            end_time = first[i]
    if not complete:
        end_time = 0

    # Per step, the earliest event of a later required step (what shows the step is
    # missing; an optional step proves nothing), and the last step that happened (for
    # skipped optional anchors).
    later_time = [0] * count
    later_step = [-1] * count
    last = -1
    at, at_step = 0, -1
    optional_steps = plan.optional
    for i in range(count - 1, -1, -1):
        later_time[i], later_step[i] = at, at_step
        if first[i]:
            if last < 0:
                last = i
            if not optional_steps[i] and (not at or first[i] <= at):
                at, at_step = first[i], i

    names = plan.names
    results: list[StepResult] = []
    missed: list[Missed] = []
    warn_pending = 0
    breach_pending = 0
    rank = 0
    failed = False
    error_count = 0
    missing = False
    for i, (
        name,
        kind,
        named_anchor,
        warn,
        breach,
        repeat,
        optional,
        from_sent,
        grace,
        _,
    ) in enumerate(plan.steps):
        events = by_step[i]
        anchor = 0
        since = ""
        if kind:
            # The anchor step: the first, the one before, or a named one; an optional
            # anchor that was skipped (a later step happened) hands it back.
            j = 0 if kind == _START else (i - 1 if kind == _PREVIOUS else named_anchor)
            while j >= 0 and not first[j] and optional_steps[j] and last > j:
                j -= 1
            if j >= 0 and first[j]:
                if from_sent:
                    anchor = by_step[j][0].sent_time or first[j]
                    since = names[j] + " sent"
                else:
                    anchor = first[j]
                    since = names[j]
        if anchor:
            # Plain durations inline; business days go through the facility's calendar.
            if warn is None:
                warn_at = 0
            else:
                warn_at = anchor + warn.nanos if not warn.business_days else add(anchor, warn)
            if breach is None:
                breach_at = 0
            else:
                breach_at = (
                    anchor + breach.nanos if not breach.business_days else add(anchor, breach)
                )
        else:
            warn_at = breach_at = 0
        level = Level.NONE
        late_by = 0
        amount: Decimal | None = None
        status = ""
        if events:
            # Repeating steps are judged by their latest event (a late charge is late);
            # others by their first (later copies are duplicates, flagged separately).
            actual = events[-1].event_time if repeat else events[0].event_time
            if breach_at and actual > breach_at:
                level, late_by = BREACH, actual - breach_at
                missed.append(
                    Missed(
                        name,
                        BREACH,
                        breach_at,
                        actual,
                        late_by,
                        breach.text if breach else "",
                        since,
                        anchor,
                    )
                )
            elif warn_at and actual > warn_at:
                level, late_by = WARN, actual - warn_at
                missed.append(
                    Missed(
                        name,
                        WARN,
                        warn_at,
                        actual,
                        late_by,
                        warn.text if warn else "",
                        since,
                        anchor,
                    )
                )
            for event in events:
                if event.amount is not None:
                    amount = event.amount if amount is None else amount + event.amount
                if event.status == STATUS_ERROR:
                    error_count += 1
            status = events[-1].status
            if status == STATUS_ERROR:
                failed = True
        elif not optional and not complete:
            limit = breach.text if breach else ""
            since_time = anchor
            gone = False  # missing past its grace
            if later_time[i]:
                if grace is None:
                    missing = True
                elif not kind or anchor:
                    # A step whose own anchor is pending waits on that anchor's deadline.
                    later = later_time[i] if later_time[i] > start else start
                    grace_at = later + grace.nanos if not grace.business_days else add(later, grace)
                    if not breach_at or grace_at < breach_at:
                        breach_at, limit = grace_at, grace.text
                        since, since_time, gone = names[later_step[i]], later, True
                    if now >= breach_at:
                        missing = True
            if breach_at and (not breach_pending or breach_at < breach_pending):
                breach_pending = breach_at
            if warn_at and (not warn_pending or warn_at < warn_pending):
                warn_pending = warn_at
            if breach_at and now >= breach_at:
                level, late_by = BREACH, now - breach_at
                missed.append(
                    Missed(name, BREACH, breach_at, 0, late_by, limit, since, since_time, gone)
                )
            elif warn_at and now >= warn_at:
                level, late_by = WARN, now - warn_at
                missed.append(
                    Missed(
                        name, WARN, warn_at, 0, late_by, warn.text if warn else "", since, anchor
                    )
                )
        if level and _RANK[level] > rank:
            rank = _RANK[level]
        results.append(
            StepResult(
                name,
                len(events),
                first[i],
                events[-1].event_time if events else 0,
                anchor,
                warn_at,
                breach_at,
                # A step that may come early has no negative duration: it was not waited for.
                first[i] - anchor if events and anchor and first[i] > anchor else 0,
                level,
                late_by,
                amount,
                status,
            )
        )
    if unexpected:
        results.append(
            StepResult(
                UNEXPECTED_NAME,
                len(unexpected),
                unexpected[0].event_time,
                unexpected[-1].event_time,
                0,
                0,
                0,
                0,
                Level.NONE,
                0,
                None,
                unexpected[-1].status,
            )
        )

    # End to end from the first step: without it, no clock runs from an unrelated event.
    e2e_from = first[0]
    if e2e_from and (plan.e2e_warn is not None or plan.e2e_breach is not None):
        e2e_level, e2e_missed = _end_to_end(
            clock, e2e_from, names[0], end_time, now, plan.e2e_warn, plan.e2e_breach
        )
        if e2e_missed is not None:
            missed.append(e2e_missed)
            rank = max(rank, _RANK[e2e_level])
        if not complete:
            if plan.e2e_warn is not None:
                at = add(e2e_from, plan.e2e_warn)
                warn_pending = min(warn_pending, at) if warn_pending else at
            if plan.e2e_breach is not None:
                at = add(e2e_from, plan.e2e_breach)
                breach_pending = min(breach_pending, at) if breach_pending else at

    level = _LEVELS[rank]
    if failed:
        status = FAILED
    elif complete:
        status = LATE if rank else COMPLETE
    else:
        status = OVERDUE if rank else IN_PROGRESS

    amount = next((r.amount for r in results if r.amount is not None), None)
    keys: set[tuple[str, str]] = set()
    for event, _ in ordered:
        keys.update(event.keys.items())
    return Transaction(
        transaction_id(plan.name, head_core[0].event_id, head_core[0].event_time),
        plan.name,
        head_core[0].event_time,
        facility,
        status,
        level,
        start,
        end_time,
        ordered[-1][0].event_time,
        end_time - start if complete else 0,
        warn_pending if not complete else 0,
        breach_pending if not complete else 0,
        _flags(plan, by_step, first, missing, bool(unexpected)),
        tuple(results),
        tuple(missed),
        amount,
        tuple(sorted(item for item in keys if item[1])),
        tuple(h[0].event_id for h in ordered),
        tuple(names[h[1]] if h[1] >= 0 else UNEXPECTED_NAME for h in ordered),
        error_count,
    )


_LEVELS = (Level.NONE, Level.WARN, Level.BREACH)
_START, _PREVIOUS = int(Anchor.START), int(Anchor.PREVIOUS)


def _end_to_end(
    clock: FacilityClock,
    start: int,
    start_name: str,
    end_time: int,
    now: int,
    warn: Duration | None,
    breach: Duration | None,
) -> tuple[Level, Missed | None]:
    actual = end_time or now
    for duration, name in ((breach, BREACH), (warn, WARN)):
        if duration is None:
            continue
        deadline = clock.add(start, duration)
        if (end_time and end_time > deadline) or (not end_time and now >= deadline):
            return name, Missed(
                END_TO_END,
                name,
                deadline,
                end_time,
                actual - deadline,
                duration.text,
                start_name,
                start,
            )
    return Level.NONE, None


def _flags(
    plan: Plan, by_step: list[list[Event]], first: list[int], missing: bool, has_unexpected: bool
) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    steps = plan.steps
    if missing:
        flags.append(MISSING_STEP)
    skew = plan.skew
    latest = None
    for i in range(len(steps)):
        at = first[i]
        # Steps that may come early (charges during the stay) are outside the order check.
        if not at or steps[i].may_precede:
            continue
        if latest is not None and at + skew < latest:
            flags.append(OUT_OF_ORDER)
            break
        if latest is None or at > latest:
            latest = at
    for i, events in enumerate(by_step):
        if len(events) > 1 and not steps[i].repeat:
            flags.append(DUPLICATE_STEP)  # distinct event ids: hops are deduplicated by id
            break
    if has_unexpected:
        flags.append(UNEXPECTED_STEP)
    return tuple(flags)


_UTC = FacilityClock.for_facility(None)
