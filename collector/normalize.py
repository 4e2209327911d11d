"""From OpenTelemetry attributes to event fields, as slas.yaml configures it.

Built once per configuration; the per-record work is a few set intersections
and dict lookups, because it runs for every span and log record.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from stitchboard.config import SlasConfig


class RecordProblem(ValueError):
    """A record that cannot be used; the message is the dead-letter reason."""


class Normalizer:
    def __init__(self, config: SlasConfig, pseudonymize: Callable[[str], str]):
        self.config = config
        self.pseudonymize = pseudonymize
        # attribute name → (key name, rank): lower rank wins when several attributes give a key
        self._key_attrs: dict[str, tuple[str, int]] = {}
        for key, rule in config.keys.items():
            for rank, attribute in enumerate(rule.attributes):
                self._key_attrs.setdefault(attribute, (key, rank))
        self._key_attr_set = frozenset(self._key_attrs)
        phi_key_attrs = {a for rule in config.keys.values() if rule.phi for a in rule.attributes}
        self.phi_attributes = frozenset(config.otel.phi_attributes) | phi_key_attrs
        self._facilities = config.facility_index()
        self._facility_attrs = tuple(config.otel.facility_attributes)
        self._system_attrs = tuple(config.otel.system_attributes)
        self._operation_attrs = tuple(config.otel.operation_attributes)
        self._amount_attrs = tuple(config.otel.amount_attributes)

    def mask(self, attributes: dict[str, str]) -> dict[str, str]:
        """Replace PHI attribute values by pseudonyms, in place."""
        for name in self.phi_attributes.intersection(attributes):
            attributes[name] = self.pseudonymize(attributes[name])
        return attributes

    def keys(self, attributes: dict[str, str]) -> dict[str, str]:
        hits = self._key_attr_set.intersection(attributes)
        if not hits:
            return {}
        found: dict[str, tuple[int, str]] = {}
        for attribute in hits:
            value = attributes[attribute]
            if not value:
                continue
            key, rank = self._key_attrs[attribute]
            current = found.get(key)
            if current is None or rank < current[0]:
                found[key] = (rank, value)
        return {key: value for key, (_, value) in found.items()}

    @staticmethod
    def _first(names: tuple[str, ...], record: dict[str, str], resource: dict[str, str]) -> str:
        for name in names:
            value = record.get(name)
            if value:
                return value
        for name in names:
            value = resource.get(name)
            if value:
                return value
        return ""

    def facility(self, record: dict[str, str], resource: dict[str, str]) -> str:
        """The canonical id of a declared facility (id or alias), else the name as sent.

        An undeclared facility is a gap in slas.yaml, not a bad record: the record is
        kept under the name it was sent with, listed in health, and takes the facility's
        id once slas.yaml declares it (the correlator resolves names when it reads).
        """
        raw = self._first(self._facility_attrs, record, resource)
        if not raw or not self._facilities:
            return raw
        return self._facilities.get(raw, raw)

    def system(self, record: dict[str, str], resource: dict[str, str]) -> str:
        return self._first(self._system_attrs, record, resource)

    def operation(self, record: dict[str, str], fallback: str) -> str:
        for name in self._operation_attrs:
            value = record.get(name)
            if value:
                return value
        return fallback

    def amount(self, record: dict[str, str]) -> Decimal | None:
        for name in self._amount_attrs:
            raw = record.get(name)
            if raw:
                try:
                    value = Decimal(raw)
                except InvalidOperation:
                    raise RecordProblem(f"attribute {name}: {raw!r} is not an amount") from None
                if not value.is_finite() or abs(value) >= Decimal("1e16"):
                    raise RecordProblem(f"attribute {name}: {raw!r} is out of range")
                return value.quantize(Decimal("0.01"))
        return None
