"""The ``slas.yaml`` model: facilities, business keys, extraction rules, workflows, SLOs."""

from stitchboard.config.loader import load_config, parse_config
from stitchboard.config.model import Facility, KeyRule, OtelMapping, SlasConfig

__all__ = ["Facility", "KeyRule", "OtelMapping", "SlasConfig", "load_config", "parse_config"]
