"""A simulated regional health system: seeded, realistic hop traffic plus its ground truth.

The generator (``traffic``, ``workflows``) is pure: the same seed gives the same
hops and the same truth, byte for byte. The senders (``send``) put those hops on
the real wires: OpenTelemetry SDK exporters, HL7 v2 over MLLP, JSON Lines over HTTP.

What other packages may use (the rest is private): ``plan`` and
``estate_from_config`` (traffic), ``evaluate`` (its ground truth), ``Hop`` and
``dumps`` (records), ``read_hops``/``write_hops`` (hop files), and the time units.
"""

from simulator.files import read_hops, write_hops
from simulator.records import DAY, NS, Hop, dumps
from simulator.traffic import EVENTS_PER_SECOND_AT_SCALE_1, estate_from_config, plan
from simulator.truth import evaluate

__all__ = [
    "DAY",
    "EVENTS_PER_SECOND_AT_SCALE_1",
    "NS",
    "Hop",
    "dumps",
    "estate_from_config",
    "evaluate",
    "plan",
    "read_hops",
    "write_hops",
]
