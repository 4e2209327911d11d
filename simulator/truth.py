"""The ground truth of each simulated transaction, judged against slas.yaml ``workflows``.

The simulator knows which transaction every hop belongs to (it made them), so
membership never comes from key matching here, except for fan-in steps, which
by definition join every transaction carrying their key value. Deadlines,
status and flags follow ../shared/DESIGN.md "Correlation" and the step
semantics documented in ``stitchboard.config.workflows``:

- ``within`` counts from the anchor step's first event (``previous`` = the
  nearest earlier step that happened, else the start; ``start`` = the first
  step's first event, else the earliest chained event);
- a step is judged by its first event, a repeating step by its latest; each
  step and the end-to-end deadline report the worst level missed (breach, else warn);
- ``bd`` deadlines end at local midnight after the Nth business day;
- a step whose latest event is an error leaves the transaction ``failed``
  (a later ok event, e.g. a cleared match exception, clears it);
- ``late`` = complete with a deadline missed; ``overdue`` = open with a
  deadline passed at ``as_of``; two events of a non-repeating step are a
  ``duplicate_step`` whatever their status.
"""

from __future__ import annotations

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


def _events(hop: Hop) -> Iterable[tuple[str, Mapping[str, str]]]:
    """(event identity, keys) of each event the collector makes of the hop."""
    if hop.lines:
        for n, line in enumerate(hop.lines):
            yield f"{hop.hop_id}/{n}", {**hop.keys, **line}
    else:
        yield hop.hop_id, hop.keys


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
    events: dict[str, list[tuple[int, str, str]]] = defaultdict(list)  # step → (time, id, status)
    carried: dict[str, set[str]] = defaultdict(set)
    joined: dict[str, set[str]] = defaultdict(set)  # keys of fan-in events (journal ids)
    flags: set[str] = set()
    amount = None
    for step_name, hop in own:
        if step_name == UNEXPECTED:
            flags.add("unexpected_step")
            continue
        step = workflow.step(step_name)
        if step is None:
            continue
        for ident, keys in _events(hop):
            events[step_name].append((hop.time, ident, hop.status))
            for key in (*step.keys, *step.carries):
                if key in keys:
                    carried[key].add(keys[key])
        if step_name == workflow.steps[0].name and hop.amount is not None:
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
                events[step.name].append((hop.time, hop.hop_id, hop.status))
                for key in step.keys:
                    if key in hop.keys:
                        joined[key].add(hop.keys[key])
    steps: list[StepTruth] = []
    first: dict[str, int] = {}
    actual: dict[str, int] = {}
    failed = False
    for step in workflow.steps:
        got = sorted(set(events.get(step.name, ())))
        if not got:
            continue
        first[step.name] = got[0][0]
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
    for i, name in enumerate(names):
        step = workflow.steps[i]
        later = [n for n in names[i + 1 :] if n in first]
        if name not in first and not step.optional and later:
            flags.add("missing_step")
        if name in first and any(first[n] < first[name] - skew for n in later):
            flags.add("out_of_order")
    required = [s.name for s in workflow.steps if not s.optional]
    complete = all(n in first for n in required)
    missed: list[Missed] = []
    previous = 0
    for step in workflow.steps:
        within = step.within
        anchor = 0
        if within is not None:
            if within.after == "start":
                anchor = start
            elif within.after == "previous":
                anchor = previous or start
            else:
                anchor = first.get(within.after, 0)
        if step.name in first:
            previous = first[step.name]
        if not anchor:
            continue
        at = actual.get(step.name)
        if at is None and (step.optional or complete):
            continue
        for level in ("breach", "warn"):  # the worst level missed, once
            limit = getattr(within, level)
            if limit is None:
                continue
            due = deadline_after(site, anchor, limit)
            if (at is not None and at > due) or (at is None and as_of >= due):
                missed.append(Missed(step.name, level, due))
                break
    if workflow.within is not None:
        done = max(first[n] for n in required) if complete else None
        for level in ("breach", "warn"):
            limit = getattr(workflow.within, level)
            if limit is None:
                continue
            due = deadline_after(site, start, limit)
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
