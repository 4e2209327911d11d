"""Turning "this happened at t" into the hop a real system would emit.

Applies what real estates do to timestamps and delivery: each system stamps
with its own (skewed) clock at the precision of its format, feeds go silent
and flush their backlog afterwards, senders re-send after timeouts, some
systems upload late.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from simulator.estate import Site, local, skewed, to_ns
from simulator.records import HOUR, MINUTE, NS, Hop
from stitchboard.events import event_id

# Share of hops re-sent after a timeout (same ids: must not double count).
RESEND_RATE = 0.01
# Share of spans/log lines uploaded hours late (a job that exports on a timer).
LATE_RATE = 0.005
# Chance a given feed of a facility goes silent for about an hour on a given day.
OUTAGE_RATE = 0.06

Member = tuple[str, str, str]


def precision(channel: str, ns: int) -> int:
    """What survives of a timestamp in this channel's format."""
    if channel == "hl7":
        return ns - ns % NS
    if channel == "jsonl":
        return ns - ns % 1_000_000
    return ns


def outage_end(seed: str, site: Site, system: str, ns: int) -> int | None:
    """If the feed of ``system`` at ``site`` is silent at ``ns``, when it comes back."""
    window = _outage(seed, site.id, site.zone, system, local(site, ns).date())
    return window[1] if window is not None and window[0] <= ns < window[1] else None


@functools.lru_cache(maxsize=65536)
def _outage(
    seed: str, site_id: str, zone: dt.tzinfo, system: str, day: dt.date
) -> tuple[int, int] | None:
    rng = random.Random(f"{seed}|outage|{site_id}|{system}|{day.isoformat()}")
    if rng.random() >= OUTAGE_RATE:
        return None
    start_local = dt.datetime.combine(
        day, dt.time(rng.randrange(7, 21), rng.randrange(60)), tzinfo=zone
    )
    start = to_ns(start_local)
    return start, start + rng.randrange(45, 91) * MINUTE


@dataclass
class Emitter:
    """Collects the hops of one simulated transaction (or group of linked ones)."""

    seed: str
    site: Site
    rng: random.Random
    hops: list[Hop] = field(default_factory=list)
    scenario: set[str] = field(default_factory=set)

    def ident(self, *parts: object) -> str:
        """A hop id from the seed, the facility and what the hop is (its tag)."""
        return event_id(self.seed, self.site.id, *parts)

    def control_id(self, prefix: str, hop_id: str, ns: int) -> str:
        stamp = local(self.site, ns).strftime("%Y%m%d%H%M%S")
        return f"{prefix}{stamp}{int(hop_id[:8], 16) % 10**6:06d}"

    def emit(
        self,
        *,
        members: tuple[Member, ...],
        channel: str,
        system: str,
        operation: str,
        at: int,
        keys: Mapping[str, str],
        tag: tuple[object, ...],
        status: str = "ok",
        status_message: str = "",
        amount: Decimal | None = None,
        attributes: Mapping[str, str] | None = None,
        body: Callable[[int, str], str] | None = None,
        lines: tuple[Mapping[str, str], ...] = (),
        latency: int | None = None,
        time: int | None = None,
    ) -> Hop:
        """Emit one hop. ``at`` is the true instant; ``body(stamp_ns, hop_id)`` builds HL7 text.

        ``time`` overrides the reported time (an HL7 message reports EVN-6, which
        the system may set to an earlier instant than the send): the hop then also
        keeps ``at`` as its stamped send time (MSH-7).
        """
        hop_id = self.ident(tag)
        stamped = precision(channel, skewed(system, at if time is None else time))
        message_time = precision(channel, skewed(system, at)) if time is not None else 0
        if latency is None:
            latency = int(self.rng.uniform(0.2, 8) * NS)
        sent = at + latency
        back = outage_end(self.seed, self.site, system, sent)
        if back is not None:
            sent = back + int(self.rng.uniform(0, 300) * NS)
            self.scenario.add("silent_feed")
        if channel in ("span", "log", "jsonl") and self.rng.random() < LATE_RATE:
            sent += int(self.rng.uniform(2, 12) * HOUR)
            self.scenario.add("late_arrival")
        text = body(stamped, hop_id) if body is not None else ""
        hop = Hop(
            hop_id=hop_id,
            members=members,
            channel=channel,
            facility=self.site.id,
            system=system,
            operation=operation,
            time=stamped,
            sent=sent,
            keys=dict(keys),
            status=status,
            status_message=status_message,
            amount=amount,
            attributes=dict(attributes or {}),
            body=text,
            lines=lines,
            message_time=message_time,
        )
        self.hops.append(hop)
        if status == "error":
            self.scenario.add("error_hop")
        if self.rng.random() < RESEND_RATE:
            again = int(self.rng.uniform(30, 120) * NS)
            self.hops.append(_resend(hop, sent + again))
            self.scenario.add("duplicate_send")
        return hop


def _resend(hop: Hop, sent: int) -> Hop:
    return Hop(
        hop_id=hop.hop_id,
        members=hop.members,
        channel=hop.channel,
        facility=hop.facility,
        system=hop.system,
        operation=hop.operation,
        time=hop.time,
        sent=sent,
        keys=hop.keys,
        status=hop.status,
        status_message=hop.status_message,
        amount=hop.amount,
        attributes=hop.attributes,
        body=hop.body,
        lines=hop.lines,
        resend=True,
        message_time=hop.message_time,
    )
