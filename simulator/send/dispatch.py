"""Route each hop to the wire its system uses, and count what was sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from simulator.estate import Site
from simulator.records import Hop
from simulator.send.messages import MessagesSender
from simulator.send.mllp import MllpSender
from simulator.send.otlp import OtlpSender
from stitchboard.config.model import SlasConfig


@dataclass(frozen=True, slots=True)
class Endpoints:
    otlp: str = "http://127.0.0.1:4318"
    api: str = "http://127.0.0.1:8050"
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575


@dataclass
class SendStats:
    hops: Counter = field(default_factory=Counter)  # by channel
    events: int = 0

    def line(self) -> str:
        parts = ", ".join(f"{n} {c}" for c, n in sorted(self.hops.items()))
        return f"{sum(self.hops.values())} hops ({parts}), {self.events} events"


def key_attributes(config: SlasConfig) -> Mapping[str, str]:
    """Key name → the first OpenTelemetry attribute slas.yaml reads it from."""
    return {name: rule.attributes[0] for name, rule in config.keys.items() if rule.attributes}


class Dispatcher:
    def __init__(
        self,
        endpoints: Endpoints,
        config: SlasConfig,
        sites: Iterable[Site],
        mllp_connections: int = 16,
    ):
        sites = list(sites)
        self.endpoints = endpoints
        # A backlog goes as HL7 batches over HTTP (an engine replaying its queue);
        # live messages go one by one over MLLP, each ACK awaited.
        self.hl7_batches = False
        self.stats = SendStats()
        self.otlp = OtlpSender(endpoints.otlp, key_attributes(config))
        self.mllp = MllpSender(endpoints.mllp_host, endpoints.mllp_port, mllp_connections)
        self.messages = MessagesSender(endpoints.api, {s.id: s for s in sites})
        self.hl7_http = MessagesSender(endpoints.api, {}, kind="hl7")

    def send(self, hop: Hop) -> None:
        if hop.channel == "hl7" and self.hl7_batches:
            self.hl7_http.send(hop)
        elif hop.channel == "hl7":
            self.mllp.send(hop.body)
        elif hop.channel == "jsonl":
            self.messages.send(hop)
        else:
            self.otlp.send(hop)
        self.stats.hops[hop.channel] += 1
        self.stats.events += hop.event_count

    def flush(self) -> None:
        self.mllp.flush()
        self.hl7_http.flush()
        self.messages.flush()
        self.otlp.flush()

    def close(self) -> None:
        self.mllp.close()
        self.hl7_http.close()
        self.messages.close()
        self.otlp.close()

    def problems(self) -> list[str]:
        """Deliveries that failed or were rejected, one line each (empty when all is well)."""
        out = [f"mllp {cid}: {why}" for cid, why in self.mllp.failed + self.mllp.rejected]
        for sender in (self.messages, self.hl7_http):
            out += [f"{sender.kind} over HTTP: {why}" for why in sender.failed + sender.rejected]
        return out
