"""JSON Lines and CSV message logs → hop events, per slas.yaml ``messages.logs`` (no I/O).

Middleware and ERPs log one record per message: a JSON object per line or a
CSV row. Field lists are tried in order; the first non-empty value wins. PHI
fields are pseudonymized before anything else reads the row, so the stored
event and a dead-lettered row hold pseudonyms only (and replay the same).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from collector.hl7.dtm import is_dtm, parse_dtm
from collector.hl7.extract import parse_amount
from stitchboard.config import SlasConfig
from stitchboard.events import STATUS_ERROR, STATUS_OK, STATUS_UNSET, Event, event_id

_STATUSES = {STATUS_OK, STATUS_ERROR, STATUS_UNSET}


class RowRejected(ValueError):
    """A row that cannot become an event; the message is the reason."""


def _lookup(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    if "." in name:
        value: Any = row
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value
    return None


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


class LogExtractor:
    def __init__(self, config: SlasConfig, pseudonymize: Callable[[str], str]):
        self.mapping = config.messages.logs
        self.pseudonymize = pseudonymize
        self.phi_fields = list(self.mapping.phi_fields)
        self.phi_keys = config.phi_keys
        self.facilities = config.facility_index()
        self.zones = {f.id: f.zone for f in config.facilities}
        keys = {name: list(fields) for name, fields in self.mapping.keys.items()}
        # A configured key is also read from a field of the same name.
        for name in config.keys:
            fields = keys.setdefault(name, [])
            if name not in fields:
                fields.append(name)
        self.keys = keys
        self.status_map = {k.lower(): v for k, v in self.mapping.status_map.items()}

    def mask(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with PHI fields (top level or dotted paths) pseudonymized."""
        masked = dict(row)
        for name in self.phi_fields:
            _mask_path(masked, name.split("."), self.pseudonymize)
        return masked

    def _first(self, row: Mapping[str, Any], names: list[str]) -> str:
        for name in names:
            value = _text(_lookup(row, name))
            if value:
                return value
        return ""

    def event(
        self, row: Mapping[str, Any], source: str, source_kind: str, observed_time: int
    ) -> Event:
        """The event of a masked row; raises RowRejected with an actionable reason."""
        m = self.mapping
        facility = self._first(row, m.facility)
        if self.facilities:
            if not facility:
                raise RowRejected(
                    f"no facility: none of the fields {', '.join(m.facility)} is set;"
                    " slas.yaml declares facilities, so every row must name one"
                )
            # Undeclared: kept as sent (a gap in slas.yaml, not a bad row).
            facility = self.facilities.get(facility, facility)
        event_time = self._time(row, self.zones.get(facility))
        status_text = self._first(row, m.status)
        status = (
            self.status_map.get(status_text.lower(), STATUS_UNSET)
            if status_text
            else (m.default_status)
        )
        if status not in _STATUSES:
            status = STATUS_UNSET
        keys = {}
        for name, fields in self.keys.items():
            value = self._first(row, fields)
            if value:
                keys[name] = self.pseudonymize(value) if name in self.phi_keys else value
        attributes = {}
        for name in m.attributes:
            value = _text(_lookup(row, name))
            if value:
                attributes[name] = value
        identity = self._first(row, m.id) or json.dumps(row, sort_keys=True, default=str)
        return Event(
            event_id=event_id(source_kind, identity),
            event_time=event_time,
            observed_time=observed_time,
            source_kind=source_kind,
            source=source,
            facility=facility,
            system=self._first(row, m.system),
            operation=self._first(row, m.operation),
            status=status,
            status_message=self._first(row, m.status_message) if status == STATUS_ERROR else "",
            amount=parse_amount(self._first(row, m.amount)),
            keys=keys,
            attributes=attributes,
        )

    def _time(self, row: Mapping[str, Any], zone: dt.tzinfo | None) -> int:
        problems = []
        for name in self.mapping.event_time:
            raw = _lookup(row, name)
            if raw is None or _text(raw) == "":
                continue
            try:
                return parse_time(raw, self.mapping.time_format, zone)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise RowRejected(f"no usable event time ({'; '.join(problems)})")
        raise RowRejected(
            f"no event time: none of the fields {', '.join(self.mapping.event_time)}"
            " is set (configure messages.logs.event_time in slas.yaml)"
        )


def parse_time(raw: Any, time_format: str = "auto", zone: dt.tzinfo | None = None) -> int:
    """Nanoseconds UTC from an ISO 8601 string, an epoch number or an HL7 date/time."""
    text = _text(raw)
    if time_format != "auto":
        try:
            moment = dt.datetime.strptime(text, time_format)
        except ValueError as exc:
            raise ValueError(f"{text!r} does not match time_format {time_format!r}") from exc
        return _nanos(moment, zone)
    if isinstance(raw, int | float) and not isinstance(raw, bool) or _is_number(text):
        number = Decimal(text)
        magnitude = abs(number)
        if len(text.split(".")[0]) in (8, 12, 14) and is_dtm(text):
            return parse_dtm(text, zone)
        scale = (
            1_000_000_000
            if magnitude < 10**11
            else 1_000_000
            if magnitude < 10**14
            else 1_000
            if magnitude < 10**17
            else 1
        )
        return int(number * scale)
    if is_dtm(text):
        return parse_dtm(text, zone)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time, an epoch number or an HL7 date/time"
        ) from exc
    return _nanos(moment, zone)


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return text[:1].isdigit() or text[:1] in "+-."


def _nanos(moment: dt.datetime, zone: dt.tzinfo | None) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _mask_path(row: dict[str, Any], parts: list[str], pseudonymize: Callable[[str], str]) -> None:
    key = parts[0]
    if key not in row:
        return
    if len(parts) == 1:
        value = row[key]
        if isinstance(value, list):
            row[key] = [pseudonymize(_text(v)) if _text(v) else v for v in value]
        elif _text(value):
            row[key] = pseudonymize(_text(value))
        return
    child = row[key]
    if isinstance(child, dict):
        child = dict(child)
        row[key] = child
        _mask_path(child, parts[1:], pseudonymize)
