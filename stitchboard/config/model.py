"""Pydantic models of slas.yaml (outside data enters here, so models are strict)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from stitchboard.config.base import Strict
from stitchboard.config.messages import MessagesConfig
from stitchboard.config.slos import AlertsConfig, Slo
from stitchboard.config.workflows import Workflow

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Calendar(Strict):
    """Business days of a facility: weekends and listed holidays are not business days."""

    weekend: list[str] = Field(default_factory=lambda: ["sat", "sun"])
    holidays: list[dt.date] = Field(default_factory=list)

    @field_validator("weekend")
    @classmethod
    def _weekday_names(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower() not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday {bad[0]!r}; use one of {', '.join(WEEKDAYS)}")
        return [d.lower() for d in value]

    def is_business_day(self, day: dt.date) -> bool:
        return WEEKDAYS[day.weekday()] not in self.weekend and day not in self.holidays


class Facility(Strict):
    id: str
    name: str = ""
    timezone: str = "UTC"
    aliases: list[str] = Field(default_factory=list)
    calendar: Calendar = Field(default_factory=Calendar)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class KeyRule(Strict):
    """A business key and where it is found in OpenTelemetry attributes.

    ``attributes`` are tried in order on the span/log record, then its resource.
    ``phi`` keys are pseudonymized at ingest.
    """

    attributes: list[str]
    phi: bool = False
    description: str = ""


class OtelMapping(Strict):
    """Which OpenTelemetry attributes give an event's facility, system, operation, amount."""

    facility_attributes: list[str] = Field(
        default_factory=lambda: ["facility.id", "stitchboard.facility"]
    )
    system_attributes: list[str] = Field(default_factory=lambda: ["service.name"])
    operation_attributes: list[str] = Field(
        default_factory=lambda: ["stitchboard.operation", "messaging.operation.name"]
    )
    amount_attributes: list[str] = Field(default_factory=lambda: ["stitchboard.amount", "amount"])
    phi_attributes: list[str] = Field(
        default_factory=lambda: [
            "patient.mrn",
            "patient.name",
            "patient.birth_date",
            "patient.address",
            "patient.phone",
            "patient.ssn",
        ]
    )


DEFAULT_KEYS: dict[str, KeyRule] = {
    "msg": KeyRule(attributes=["messaging.message.id"]),
    "conversation": KeyRule(attributes=["messaging.message.conversation_id"]),
    "correlation": KeyRule(attributes=["correlation.id"]),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SlasConfig(Strict):
    version: int = 1
    facilities: list[Facility] = Field(default_factory=list)
    keys: dict[str, KeyRule] = Field(default_factory=lambda: dict(DEFAULT_KEYS))
    otel: OtelMapping = Field(default_factory=OtelMapping)
    messages: MessagesConfig = Field(default_factory=MessagesConfig)
    workflows: list[Workflow] = Field(default_factory=list)
    slos: list[Slo] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @field_validator("keys")
    @classmethod
    def _key_names(cls, value: dict[str, KeyRule]) -> dict[str, KeyRule]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"key name {name!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _unique_facilities(self) -> SlasConfig:
        seen: set[str] = set()
        for facility in self.facilities:
            for name in (facility.id, *facility.aliases):
                if name in seen:
                    raise ValueError(f"facility id or alias {name!r} is declared twice")
                seen.add(name)
        return self

    def facility_index(self) -> dict[str, str]:
        """Every id and alias → the canonical facility id."""
        index: dict[str, str] = {}
        for facility in self.facilities:
            index[facility.id] = facility.id
            for alias in facility.aliases:
                index[alias] = facility.id
        return index

    def slo(self, name: str) -> Slo | None:
        return next((s for s in self.slos if s.name == name), None)

    def facility(self, facility_id: str) -> Facility | None:
        return next((f for f in self.facilities if f.id == facility_id), None)

    @property
    def phi_keys(self) -> frozenset[str]:
        return frozenset(name for name, rule in self.keys.items() if rule.phi)
