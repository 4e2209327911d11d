"""The alert lifecycle (pure): pending, firing, resolved, grouping, waits, repeats, silences,
acknowledgements, inhibition. The clock is a parameter; times are seconds from T."""

from __future__ import annotations

from dataclasses import replace

from alerts.lifecycle import (
    AlertRecord,
    Candidate,
    Hold,
    Silence,
    Step,
    advance,
    fingerprint,
)
from stitchboard.config.slos import Route

S = 1_000_000_000
T = 1_773_000_000 * S
ROUTE = Route.model_validate(
    {
        "group_by": ["rule", "facility"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
)


def cand(facility: str = "LCH02", workflow: str = "d2r", severity: str = "page", for_s: int = 0):
    return Candidate(
        rule="overdue",
        severity=severity,
        labels={"rule": "overdue", "facility": facility, "workflow": workflow},
        annotations={"summary": f"{workflow} at {facility}"},
        value=3.0,
        for_ns=for_s * S,
    )


class Run:
    """Feeds ``advance`` its own output, as the store would between cycles."""

    def __init__(self, route: Route = ROUTE) -> None:
        self.records: dict[str, AlertRecord] = {}
        self.route = route
        self.silences: list[Silence] = []

    def at(self, seconds: int, *candidates: Candidate, muted: frozenset[str] = frozenset()) -> Step:
        step = advance(self.records, candidates, self.silences, muted, self.route, T + seconds * S)
        self.records = step.records
        return step

    def state(self, c: Candidate) -> str:
        return self.records[c.fingerprint].state


def test_fingerprint_is_stable_and_order_free() -> None:
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})
    assert len(fingerprint({"a": "1"})) == 16


def test_pending_for_then_firing_then_resolved() -> None:
    run, c = Run(), cand(for_s=60)
    assert run.at(0, c).notices == () and run.state(c) == "pending"
    assert run.at(59, c).notices == () and run.state(c) == "pending"
    run.at(60, c)
    assert run.state(c) == "firing"
    assert run.records[c.fingerprint].starts_at == T + 60 * S
    # Group wait: 30 s after the first alert of the group fired.
    assert run.at(89, c).notices == ()
    [notice] = run.at(90, c).notices
    assert notice.status == "firing" and [a.fingerprint for a in notice.alerts] == [c.fingerprint]
    # The condition clears: resolved, and the resolve waits for the group interval (5m).
    assert run.at(120).notices == ()
    assert run.state(c) == "resolved"
    assert run.records[c.fingerprint].ends_at == T + 120 * S
    [resolve] = run.at(390).notices
    assert resolve.status == "resolved" and resolve.alerts[0].state == "resolved"
    assert run.at(1000).notices == ()  # told once


def test_a_pending_alert_that_clears_is_never_notified() -> None:
    run, c = Run(), cand(for_s=300)
    run.at(0, c)
    run.at(100)
    assert run.state(c) == "resolved"
    assert run.at(10_000).notices == ()


def test_alerts_group_by_labels_and_new_members_wait_for_the_group_interval() -> None:
    run = Run()
    a, b = cand(workflow="d2r"), cand(workflow="i2r")
    other = cand(facility="NMC01")
    run.at(0, a, other)
    notices = run.at(30, a, other).notices
    assert sorted(len(n.alerts) for n in notices) == [1, 1]
    assert {n.group_labels["facility"] for n in notices} == {"LCH02", "NMC01"}
    # A second alert in LCH02's group: sent with the group, after the group interval.
    assert run.at(60, a, b, other).notices == ()
    [notice] = run.at(330, a, b, other).notices
    assert notice.group_labels == {"rule": "overdue", "facility": "LCH02"}
    assert sorted(r.labels["workflow"] for r in notice.alerts) == ["d2r", "i2r"]


def test_repeat_interval_and_acknowledgement() -> None:
    run, c = Run(), cand()
    run.at(0, c)
    assert len(run.at(30, c).notices) == 1
    assert run.at(30 + 4 * 3600 - 1, c).notices == ()
    [again] = run.at(30 + 4 * 3600, c).notices
    assert again.repeat
    # Acknowledged: no more repeats while it keeps firing...
    fp = c.fingerprint
    run.records[fp] = replace(run.records[fp], acknowledged_by="dana", acknowledged_at=T)
    assert run.at(30 + 9 * 3600, c).notices == ()
    assert run.at(30 + 20 * 3600, c).notices == ()


def test_worse_severity_clears_the_acknowledgement_and_notifies() -> None:
    run = Run()
    ticket = cand(severity="ticket")
    run.at(0, ticket)
    run.at(30, ticket)
    fp = ticket.fingerprint
    run.records[fp] = replace(run.records[fp], acknowledged_by="dana", acknowledged_at=T)
    page = cand(severity="page")  # same labels, same alert
    assert page.fingerprint == fp
    [notice] = run.at(30 + 300, page).notices
    assert notice.alerts[0].severity == "page"
    assert run.records[fp].acknowledged_by is None


def test_silence_mutes_while_active_and_the_alert_is_still_kept() -> None:
    run, c = Run(), cand()
    run.silences = [
        Silence("s1", {"facility": "LCH02"}, T, T + 3600 * S, "dana", "maintenance window")
    ]
    run.at(0, c)
    assert run.at(30, c).notices == ()
    assert run.state(c) == "firing" and run.records[c.fingerprint].silenced
    # Silence over: the alert is notified (group wait long past).
    [notice] = run.at(3600, c).notices
    assert notice.alerts[0].fingerprint == c.fingerprint
    assert not run.records[c.fingerprint].silenced


def test_inhibited_alerts_are_not_notified() -> None:
    run, c = Run(), cand()
    run.at(0, c, muted=frozenset({c.fingerprint}))
    assert run.at(30, c, muted=frozenset({c.fingerprint})).notices == ()
    assert run.records[c.fingerprint].inhibited


def test_restart_keeps_what_was_notified() -> None:
    run, c = Run(), cand()
    run.at(0, c)
    run.at(30, c)
    # A new process starts from the stored records: no second page...
    restarted = Run()
    restarted.records = dict(run.records)
    assert restarted.at(60, c).notices == ()
    # ...and a condition that cleared while it was down is resolved and sent at once
    # (the group was last notified long ago).
    [notice] = restarted.at(4000).notices
    assert notice.status == "resolved"
    assert restarted.state(c) == "resolved"
    assert restarted.at(5000).notices == ()


def test_an_acknowledgement_is_passed_on_once() -> None:
    run, c = Run(), cand()
    run.at(0, c)
    run.at(30, c)
    fp = c.fingerprint
    run.records[fp] = replace(run.records[fp], acknowledged_by="dana", acknowledged_at=T + 40 * S)
    [notice] = run.at(45, c).notices
    assert notice.acknowledgement and [a.fingerprint for a in notice.alerts] == [fp]
    assert run.at(60, c).notices == ()


def test_a_held_alert_stays_pending_until_the_hold_lifts_or_runs_out() -> None:
    """``held`` (the correlator catching up, a feed backfilling): a new alert waits
    pending, saying why; it fires the first cycle the hold lifts, or after the hold's
    ``max_ns``."""
    run, c = Run(), cand()
    hold = Hold("correlator catching up", 600 * S)

    def at(seconds: int, *found: Candidate, held: Hold | None = None) -> Step:
        holds = {f.fingerprint: held for f in found} if held else None
        step = advance(run.records, found, [], frozenset(), run.route, T + seconds * S, None, holds)
        run.records = step.records
        return step

    assert at(0, c, held=hold).notices == ()
    record = run.records[c.fingerprint]
    assert (record.state, record.annotations["held"]) == ("pending", "correlator catching up")
    assert at(599, c, held=hold).notices == () and run.state(c) == "pending"
    at(600, c)  # the hold lifted: fires now (for: 0), without the note
    record = run.records[c.fingerprint]
    assert (record.state, record.starts_at) == ("firing", T + 600 * S)
    assert "held" not in record.annotations
    # Firing alerts are not held back into pending.
    at(700, c, held=hold)
    assert run.state(c) == "firing"

    # A hold that never lifts ends after its max_ns (600 s) of pending.
    run = Run()
    other = cand(facility="NMC01")
    at(0, other, held=hold)
    at(599, other, held=hold)
    assert run.state(other) == "pending"
    at(600, other, held=hold)
    assert run.state(other) == "firing"

    # A held alert whose condition clears resolves without a notification.
    run = Run()
    third = cand(facility="MSC03")
    at(0, third, held=hold)
    at(15)
    assert run.state(third) == "resolved"
    assert at(1000).notices == ()
