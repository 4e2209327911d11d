"""The simulator's traffic as stored events, decoded in process by the collector's intake.

HL7 hops go through the HL7 extractor as MLLP would deliver them; every other hop
(OTLP spans, middleware logs) as the JSON line the simulator's file sender writes,
so keys, facilities, times and amounts are what ingest makes of them.
"""

from __future__ import annotations

from collections.abc import Iterator

from collector.intake import Intake
from simulator.records import DAY
from simulator.send.messages import json_line
from simulator.traffic import estate_from_config, plan
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event


def simulated_events(
    config: SlasConfig, seed: int, since: int, days: int, scale: float = 1.0
) -> Iterator[Event]:
    estate = estate_from_config(config, seed, scale=scale)
    sites = {s.id: s for s in estate.sites}
    intake = Intake(config, lambda value: f"p-{value}", now=lambda: since + days * DAY)
    for hop in plan(estate, since, since + days * DAY).by_sent():
        if hop.channel == "hl7":
            outcome = intake.hl7(hop.body, "sim", "mllp")
        else:
            outcome = intake.json_line(json_line(hop, sites.get(hop.facility)), "sim", "file:sim")
        yield from outcome.events
