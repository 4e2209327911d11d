"""Put hops on the real wires: OTLP/HTTP through the OpenTelemetry SDK, HL7 over MLLP,
JSON Lines over ``POST /api/v1/messages``. ``Dispatcher`` routes each hop by channel."""

from simulator.send.dispatch import Dispatcher, Endpoints, SendStats

__all__ = ["Dispatcher", "Endpoints", "SendStats"]
