"""HL7 v2 for the collector: framing (MLLP, files), field reading, PHI masking,
extraction into hop events per slas.yaml, and acknowledgments. No I/O here."""
