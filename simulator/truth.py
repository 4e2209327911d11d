"""The ground truth of each simulated transaction, judged against slas.yaml ``workflows``.

The simulator knows which transaction every hop belongs to (it made them), so
membership never comes from key matching here, except for fan-in steps, which
by definition join every transaction carrying their key value. Deadlines,
status and flags follow ../shared/DESIGN.md "Correlation", DOMAIN.md "When
clocks start" and the step semantics documented in docs/slas.md:

- a step's clock starts when its anchor step first happens (``previous`` = the
  step just before, ``start`` = the first step, or a named step), at the time
  ``within.from`` names: when the business event occurred, or when its message
  was sent (an interface is judged from the send). While the anchor is pending
  the step is not due; only an optional anchor that was skipped (a later step
  happened) hands the anchor back to the step before it;
- the end-to-end deadline runs from the first step; without it no clock runs;
- a required step missing while a later required step happened is
  ``missing_step`` at once, or with a ``grace`` once that grace after the
  earliest such later event (never before the start) has passed, which is then
  its breach deadline (unless its own breach deadline comes first);
- a step is judged by its first event, a repeating step by its latest; each
  step and the end-to-end deadline report the worst level missed (breach, else warn);
- ``bd`` deadlines end at local midnight after the Nth business day;
- a step whose latest event is an error leaves the transaction ``failed``
  (a later ok event, e.g. a cleared match exception, clears it);
- ``late`` = complete with a deadline missed; ``overdue`` = open with a
  deadline passed at ``as_of``; two events of a non-repeating step are a
  ``duplicate_step`` whatever their status; a step marked ``may_precede`` (charges
  post during the stay) is never ``out_of_order``;
- a charge line is taken by the first step whose match its attributes pass (a
  credit line, FT1-6 = CD, is a reversal, not a charge).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from simulator.encounters import Opened
from simulator.estate import Site, local, to_ns
from simulator.records import Hop, Missed, StepTruth, Truth
from stitchboard.config.model import SlasConfig
from stitchboard.config.workflows import Duration, Pattern, StepMatch, Workflow

UNEXPECTED = "!unexpected"


def _matches(pattern: Pattern | None, value: str) -> bool:
    if pattern is None:
        return True
    if pattern.exact is not None:
        return value == pattern.exact
    if pattern.prefix is not None:
        return value.startswith(pattern.prefix)
    return re.search(pattern.regex or "", value) is not None


def step_matches(match: StepMatch, hop: Hop) -> bool:
    return (
        _matches(match.system, hop.system)
        and _matches(match.operation, hop.operation)
        and all(_matches(p, hop.attributes.get(k, "")) for k, p in match.attributes.items())
    )


def deadline_after(site: Site, anchor: int, limit: Duration) -> int:
    if limit.business_days:
        day = local(site, anchor).date()
        left = limit.business_days
        while left:
            day += dt.timedelta(days=1)
            if site.calendar.is_business_day(day):
                left -= 1
        return to_ns(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=site.zone))
    return anchor + limit.nanos


def _events(hop: Hop) -> Iterable[tuple[str, Mapping[str, str], Mapping[str, str]]]:
    """(event identity, keys, attributes) of each event the collector makes of the hop."""
    if hop.lines:
        for n, line in enumerate(hop.lines):
            attributes = {**hop.attributes}
            if "charge.type" in line:
                attributes["charge.type"] = line["charge.type"]
            yield f"{hop.hop_id}/{n}", {**hop.keys, **line}, attributes
    else:
        yield hop.hop_id, hop.keys, hop.attributes


def _step_of(workflow: Workflow, named: str, hop: Hop, attributes: Mapping[str, str]) -> str:
    """The step that takes this event: the first of the workflow whose match passes
    (slas.yaml: an event goes to the first step that matches), e.g. a credit line of
    a charge message is a reversal. Fan-in steps are the member's own."""
    step = workflow.step(named)
    if step is None or step.fan_in:
        return named
    line = dataclasses.replace(hop, attributes=attributes)
    return next(
        (s.name for s in workflow.steps if not s.fan_in and step_matches(s.match, line)), named
    )


def evaluate(
    config: SlasConfig,
    sites: Sequence[Site],
    opened: Sequence[Opened],
    hops: Sequence[Hop],
    as_of: int,
    scenario: Mapping[str, frozenset[str]] | None = None,
    sent_by: int | None = None,
) -> list[Truth]:
    """Truth for every opened transaction as of ``as_of``, counting only the hops
    sent by then (or by ``sent_by``, when sending stopped earlier)."""
    workflows = {w.name: w for w in config.workflows}
    site_by_id = {s.id: s for s in sites}
    cutoff = as_of if sent_by is None else min(as_of, sent_by)
    arrived = [h for h in hops if h.sent <= cutoff and not h.resend]
    members: dict[str, list[tuple[str, Hop]]] = defaultdict(list)
    for hop in arrived:
        for _, txn, step in hop.members:
            members[txn].append((step, hop))
    fan_in: dict[tuple[str, str], list[Hop]] = defaultdict(list)
    for hop in arrived:
        if not hop.members:
            for key, value in hop.keys.items():
                fan_in[(key, value)].append(hop)
    truths = []
    for o in opened:
        workflow = workflows.get(o.workflow)
        if workflow is None:
            continue
        own = members.get(o.txn, [])
        if not own:
            continue
        truths.append(
            _judge(
                workflow,
                site_by_id[o.facility],
                o,
                own,
                fan_in,
                as_of,
                (scenario or {}).get(o.txn, frozenset()),
                config.phi_keys,
            )
        )
    return truths


def _judge(
    workflow: Workflow,
    site: Site,
    o: Opened,
    own: list[tuple[str, Hop]],
    fan_in: Mapping[tuple[str, str], list[Hop]],
    as_of: int,
    scenario: frozenset[str],
    phi: frozenset[str],
) -> Truth:
    # step → (time, id, status, sent stamp)
    events: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    carried: dict[str, set[str]] = defaultdict(set)
    joined: dict[str, set[str]] = defaultdict(set)  # keys of fan-in events (journal ids)
    flags: set[str] = set()
    amount = None
    for member_step, hop in own:
        if member_step == UNEXPECTED:
            flags.add("unexpected_step")
            continue
        if workflow.step(member_step) is None:
            continue
        for ident, keys, attributes in _events(hop):
            step_name = _step_of(workflow, member_step, hop, attributes)
            step = workflow.step(step_name)
            if step is None:
                continue
            events[step_name].append((hop.time, ident, hop.status, hop.sent_stamp))
            for key in (*step.keys, *step.carries):
                if key in keys:
                    carried[key].add(keys[key])
        if member_step == workflow.steps[0].name and hop.amount is not None:
            amount = hop.amount
    for step in workflow.steps:
        if not step.fan_in:
            continue
        candidates = {
            h.hop_id: h
            for k in step.fan_in
            for v in carried.get(k, ())
            for h in fan_in.get((k, v), ())
        }
        for hop in candidates.values():
            if step_matches(step.match, hop):
                events[step.name].append((hop.time, hop.hop_id, hop.status, hop.sent_stamp))
                for key in step.keys:
                    if key in hop.keys:
                        joined[key].add(hop.keys[key])
    steps: list[StepTruth] = []
    first: dict[str, int] = {}
    first_sent: dict[str, int] = {}
    actual: dict[str, int] = {}
    failed = False
    for step in workflow.steps:
        got = sorted(set(events.get(step.name, ())))
        if not got:
            continue
        first[step.name] = got[0][0]
        first_sent[step.name] = got[0][3]
        # A repeating step is judged by its latest event (a late charge is late).
        actual[step.name] = got[-1][0] if step.repeat else got[0][0]
        steps.append(StepTruth(step.name, got[0][0], got[-1][0], len(got)))
        if got[-1][2] == "error":
            failed = True
        if len(got) > 1 and not step.repeat:
            flags.add("duplicate_step")
    first_step = workflow.steps[0].name
    core = [first[s.name] for s in workflow.steps if not s.fan_in and s.name in first]
    start = first.get(first_step) or min(core or first.values())
    skew = workflow.clock_skew.nanos
    names = [s.name for s in workflow.steps]
    # A later step that came first is out of order; steps that may come early
    # (charges post during the stay, before the discharge) are outside this check.
    ordered = [s.name for s in workflow.steps if not s.may_precede and s.name in first]
    for i, name in enumerate(ordered):
        if any(first[n] < first[name] - skew for n in ordered[i + 1 :]):
            flags.add("out_of_order")
    required = [s.name for s in workflow.steps if not s.optional]
    complete = all(n in first for n in required)
    last_happened = max((i for i, n in enumerate(names) if n in first), default=-1)
    missed: list[Missed] = []
    for i, step in enumerate(workflow.steps):
        within = step.within
        anchor = 0
        if within is not None:
            if within.after == "start":
                j = 0
            elif within.after == "previous":
                j = i - 1
            else:
                j = names.index(within.after)
            # Only a skipped optional anchor hands the clock back to the step before it.
            while (
                j >= 0
                and names[j] not in first
                and workflow.steps[j].optional
                and last_happened > j
            ):
                j -= 1
            if j >= 0 and names[j] in first:
                anchor = first_sent[names[j]] if within.from_ == "sent" else first[names[j]]
        at = actual.get(step.name)
        if at is None and (step.optional or complete):
            continue
        breach_due = (
            deadline_after(site, anchor, within.breach)
            if anchor and within is not None and within.breach is not None
            else 0
        )
        warn_due = (
            deadline_after(site, anchor, within.warn)
            if anchor and within is not None and within.warn is not None
            else 0
        )
        if at is None:
            shown = [
                first[n]
                for n in names[i + 1 :]
                if n in first and not workflow.steps[names.index(n)].optional
            ]
            if shown:
                grace = step.grace if step.grace is not None else workflow.grace
                if grace is None:
                    flags.add("missing_step")
                elif within is None or anchor:  # else it waits on its anchor's deadline
                    grace_due = deadline_after(site, max(min(shown), start), grace)
                    if not breach_due or grace_due < breach_due:
                        breach_due = grace_due
                    if as_of >= breach_due:
                        flags.add("missing_step")
        for level, due in (("breach", breach_due), ("warn", warn_due)):  # the worst, once
            if not due:
                continue
            if (at is not None and at > due) or (at is None and as_of >= due):
                missed.append(Missed(step.name, level, due))
                break
    if workflow.within is not None and first_step in first:
        done = max(first[n] for n in required) if complete else None
        for level in ("breach", "warn"):
            limit = getattr(workflow.within, level)
            if limit is None:
                continue
            due = deadline_after(site, first[first_step], limit)
            if (done is not None and done > due) or (done is None and as_of >= due):
                missed.append(Missed("end_to_end", level, due))
                break
    if failed:
        status = "failed"
    elif complete:
        status = "late" if missed else "complete"
    else:
        status = "overdue" if missed else "in_progress"
    found = {k: tuple(sorted(v)) for k, v in {**carried, **joined}.items() if k not in phi}
    return Truth(
        txn=o.txn,
        workflow=workflow.name,
        facility=o.facility,
        start=start,
        steps=tuple(steps),
        missed=tuple(missed),
        status=status,
        flags=tuple(sorted(flags)),
        keys=found,
        scenario=tuple(sorted(scenario)),
        as_of=as_of,
        amount=amount,
    )
