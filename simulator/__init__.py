"""A simulated regional health system: seeded, realistic hop traffic plus its ground truth.

The generator (``traffic``, ``workflows``) is pure: the same seed gives the same
hops and the same truth, byte for byte. The senders (``send``) put those hops on
the real wires: OpenTelemetry SDK exporters, HL7 v2 over MLLP, JSON Lines over HTTP.
"""
