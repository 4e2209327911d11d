"""slas.yaml ``slos:`` and ``alerts:`` — service level objectives and how they page.

An SLO is shaped after OpenSLO v1 (indicator, objective, time window, budgeting
method, alert policy), compact enough to write by hand. ``alerts:`` holds the
rules beyond burn rates (overdue high-value transactions, idle feeds, error
spikes), the routing (grouping, waits, repeats), inhibition and the channels.
Secrets are never written here: a channel names the environment variable that
holds its URL, routing key or signing secret.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from stitchboard.config.base import Strict
from stitchboard.config.workflows import Duration

if TYPE_CHECKING:
    from stitchboard.config.model import SlasConfig

_DAY_NS = 86_400_000_000_000


class _WithFor(Strict):
    """A model with a ``for`` field (a Python keyword: ``for_`` in code, ``for`` in YAML),
    which dumps as ``for`` and reads back from either name."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )


def _duration(text: str) -> Duration:
    return Duration.model_validate(text)


def _clock_duration(value: Duration, what: str) -> Duration:
    if value.business_days:
        raise ValueError(f"{what} must be a clock duration (s, m, h, d, w), not business days")
    if value.nanos <= 0:
        raise ValueError(f"{what} must be longer than zero")
    return value


class Indicator(Strict):
    """What is judged: a workflow end to end (no ``step``) or one step of it.

    ``threshold``: ``breach`` (default) counts a transaction good when it met its
    breach deadlines; ``warn`` holds it to the stricter warn deadlines.
    """

    workflow: str
    step: str | None = None
    threshold: Literal["breach", "warn"] = "breach"


class BurnRateWindow(Strict):
    """One multiwindow pair: fire when both windows burn faster than ``factor``.

    Windows are written for a 30-day SLO window and scaled to the SLO's own.
    """

    severity: Literal["page", "ticket"]
    factor: float = Field(gt=0)
    long: Duration
    short: Duration

    @field_validator("long", "short")
    @classmethod
    def _clock(cls, value: Duration) -> Duration:
        return _clock_duration(value, "a burn-rate window")


def _workbook_windows() -> list[BurnRateWindow]:
    """The SRE workbook's pairs for a 30-day SLO (chapter 5, table 5-8)."""
    rows = [
        ("page", 14.4, "1h", "5m"),
        ("page", 6.0, "6h", "30m"),
        ("ticket", 3.0, "1d", "2h"),
        ("ticket", 1.0, "3d", "6h"),
    ]
    return [
        BurnRateWindow(severity=s, factor=f, long=_duration(lg), short=_duration(sh))  # type: ignore[arg-type]
        for s, f, lg, sh in rows
    ]


class BurnRatePolicy(_WithFor):
    """Multiwindow, multi-burn-rate alerting for one SLO (per group)."""

    enabled: bool = True
    windows: list[BurnRateWindow] = Field(default_factory=_workbook_windows)
    # A group needs this many judged transactions in the long window before it can
    # fire: one late charge at a small clinic is not a page.
    min_events: int = Field(default=10, ge=1)
    for_: Duration = Field(default_factory=lambda: _duration("0s"), alias="for")
    annotations: dict[str, str] = Field(default_factory=dict)


class Slo(Strict):
    name: str
    description: str = ""
    indicator: Indicator
    objective: float
    # Rolling window (``28d``, ``30d``) or ``calendar: month`` in the facility's time zone.
    window: Duration = Field(default_factory=lambda: _duration("30d"))
    calendar: Literal["month"] | None = None
    budgeting: Literal["occurrences", "timeslices"] = "occurrences"
    # Timeslices: a slice is good when its compliance reaches ``timeslice_target``
    # (default: the objective); slices without transactions are not counted.
    timeslice: Duration = Field(default_factory=lambda: _duration("1h"))
    timeslice_target: float | None = None
    # One series per facility, optionally per more labels (business keys of the transaction).
    grouping: list[str] = Field(default_factory=lambda: ["facility"])
    facilities: list[str] = Field(default_factory=list)  # empty: every facility
    alerting: BurnRatePolicy = Field(default_factory=BurnRatePolicy)

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"objective {value} must be between 0 and 1 (exclusive), e.g. 0.95")
        return value

    @field_validator("timeslice_target")
    @classmethod
    def _slice_target(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"timeslice_target {value} must be in (0, 1]")
        return value

    @field_validator("window", "timeslice")
    @classmethod
    def _clock(cls, value: Duration) -> Duration:
        return _clock_duration(value, "a window")

    @field_validator("grouping")
    @classmethod
    def _facility_first(cls, value: list[str]) -> list[str]:
        if not value or value[0] != "facility":
            raise ValueError("grouping must start with facility, e.g. [facility, department]")
        if len(set(value)) != len(value):
            raise ValueError("grouping names a label twice")
        return value

    @property
    def window_ns(self) -> int:
        return 31 * _DAY_NS if self.calendar == "month" else self.window.nanos

    @property
    def window_label(self) -> str:
        return "calendar month" if self.calendar == "month" else self.window.text


class Feed(Strict):
    """A declared feed: events from ``system`` at ``facility`` (optionally one operation)."""

    system: str
    facility: str
    operation: str | None = None
    idle_after: Duration | None = None


class BusinessHours(Strict):
    """Local hours (facility time zone) on business days when idle feeds are judged."""

    start: int = Field(default=7, ge=0, le=23)
    end: int = Field(default=19, ge=1, le=24)

    @model_validator(mode="after")
    def _order(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("business_hours end must be after start")
        return self


class IdleFeedRule(_WithFor):
    enabled: bool = True
    idle_after: Duration = Field(default_factory=lambda: _duration("30m"))
    # Feeds seen within this long are discovered from traffic.
    discover_within: Duration = Field(default_factory=lambda: _duration("1d"))
    # ...with at least this many events in that window: a feed that sends a few
    # messages a day is not judged by minutes of silence (declare it to judge it).
    discover_min_events: int = Field(default=100, ge=1)
    business_hours: BusinessHours | None = None
    feeds: list[Feed] = Field(default_factory=list)
    severity: Literal["page", "ticket"] = "page"
    for_: Duration = Field(default_factory=lambda: _duration("0s"), alias="for")
    annotations: dict[str, str] = Field(default_factory=dict)


class OverdueRule(_WithFor):
    """Overdue transactions: one of at least ``amount``, or ``count`` per facility x workflow."""

    enabled: bool = True
    amount: float | None = Field(default=10000, gt=0)
    count: int | None = Field(default=25, ge=1)
    severity: Literal["page", "ticket"] = "page"
    for_: Duration = Field(default_factory=lambda: _duration("0s"), alias="for")
    annotations: dict[str, str] = Field(default_factory=dict)


class ErrorSpikeRule(_WithFor):
    """Failed hops per feed (system x facility) in ``window`` at or above ``threshold``."""

    enabled: bool = True
    window: Duration = Field(default_factory=lambda: _duration("10m"))
    threshold: int = Field(default=5, ge=1)
    severity: Literal["page", "ticket"] = "ticket"
    for_: Duration = Field(default_factory=lambda: _duration("0s"), alias="for")
    annotations: dict[str, str] = Field(default_factory=dict)


class UnmatchedRule(_WithFor):
    """Fan-in events no transaction carries (a GL journal whose charge batch, a cash
    posting whose remittance is unknown), per workflow x step x facility: one waiting
    ``older_than`` or longer, or ``count`` of them waiting."""

    enabled: bool = True
    older_than: Duration | None = Field(default_factory=lambda: _duration("3d"))
    count: int | None = Field(default=100, ge=1)
    severity: Literal["page", "ticket"] = "ticket"
    for_: Duration = Field(default_factory=lambda: _duration("0s"), alias="for")
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("older_than")
    @classmethod
    def _clock(cls, value: Duration | None) -> Duration | None:
        return None if value is None else _clock_duration(value, "older_than")


class BackfillHold(Strict):
    """While a feed delivers a backlog (events sent long before they are received: a
    history replay, an interface engine draining its queue after an outage), new
    burn-rate, overdue and unmatched alerts of the workflows it feeds at its facility
    wait."""

    enabled: bool = True
    # An event sent at least this long before it was received comes from a backlog.
    lag: Duration = Field(default_factory=lambda: _duration("15m"))
    # A feed is backfilling while at least half of what it sent in this long, and at
    # least ``min_events``, came from a backlog.
    window: Duration = Field(default_factory=lambda: _duration("1m"))
    min_events: int = Field(default=10, ge=1)
    # A hold ends after this long whatever the backlog does: a real page goes out.
    max_hold: Duration = Field(default_factory=lambda: _duration("10m"))

    @field_validator("lag", "window", "max_hold")
    @classmethod
    def _clock(cls, value: Duration, info: ValidationInfo) -> Duration:
        return _clock_duration(value, str(info.field_name))


class Route(Strict):
    """Alertmanager's routing knobs for every alert."""

    group_by: list[str] = Field(default_factory=lambda: ["rule", "facility", "workflow"])
    group_wait: Duration = Field(default_factory=lambda: _duration("30s"))
    group_interval: Duration = Field(default_factory=lambda: _duration("5m"))
    repeat_interval: Duration = Field(default_factory=lambda: _duration("4h"))
    # Channel names; empty: every channel.
    channels: list[str] = Field(default_factory=list)
    # Severity -> channel names (overrides ``channels`` for that severity).
    by_severity: dict[str, list[str]] = Field(default_factory=dict)


class Channel(Strict):
    """Where notifications go. ``*_env`` fields name environment variables."""

    name: str
    type: Literal["log", "webhook", "pagerduty", "apprise"]
    url: str | None = None  # webhook URL or PagerDuty endpoint (not a secret)
    url_env: str | None = None  # webhook URL from the environment
    hmac_secret_env: str | None = None  # webhook: sign the body (X-Stitchboard-Signature)
    routing_key_env: str | None = None  # pagerduty integration key
    apprise_urls_env: str | None = None  # apprise URLs (space separated): mailto://, slack://
    timeout: Duration = Field(default_factory=lambda: _duration("10s"))
    retries: int = Field(default=4, ge=0, le=10)
    backoff: Duration = Field(default_factory=lambda: _duration("1s"))

    @model_validator(mode="after")
    def _needs(self) -> Channel:
        if self.type == "webhook" and not (self.url or self.url_env):
            raise ValueError("a webhook channel needs url or url_env")
        if self.type == "pagerduty" and not self.routing_key_env:
            raise ValueError("a pagerduty channel needs routing_key_env")
        if self.type == "apprise" and not self.apprise_urls_env:
            raise ValueError("an apprise channel needs apprise_urls_env")
        return self

    def secret(self, env_name: str | None) -> str | None:
        return os.environ.get(env_name) if env_name else None


class AlertsConfig(Strict):
    evaluation_interval: Duration = Field(default_factory=lambda: _duration("15s"))
    external_url: str = "http://127.0.0.1:8050"
    overdue: OverdueRule = Field(default_factory=OverdueRule)
    idle_feeds: IdleFeedRule = Field(default_factory=IdleFeedRule)
    error_spike: ErrorSpikeRule = Field(default_factory=ErrorSpikeRule)
    unmatched: UnmatchedRule = Field(default_factory=UnmatchedRule)
    route: Route = Field(default_factory=Route)
    # An idle feed of a system at a facility mutes that facility's burn-rate and
    # overdue alerts of workflows with a step from that system.
    inhibit_idle_feeds: bool = True
    backfill: BackfillHold = Field(default_factory=BackfillHold)
    channels: list[Channel] = Field(default_factory=lambda: [Channel(name="log", type="log")])

    @field_validator("evaluation_interval")
    @classmethod
    def _interval(cls, value: Duration) -> Duration:
        return _clock_duration(value, "evaluation_interval")


def _deadline_ns(config: SlasConfig, workflow: str, step: str | None) -> int:
    """The longest breach deadline the indicator can wait for (business days ~ 1.4 days)."""
    wf = next(w for w in config.workflows if w.name == workflow)
    if step is None:
        limits = [wf.within.breach or wf.within.warn] if wf.within else []
    else:
        found = wf.step(step)
        limits = [found.within.breach or found.within.warn] if found and found.within else []
    longest = 0
    for limit in limits:
        if limit is None:
            continue
        ns = limit.nanos or int(limit.business_days * 1.4 * _DAY_NS)
        longest = max(longest, ns)
    return longest


def slo_problems(config: SlasConfig) -> list[str]:
    """Cross-checks of slos: and alerts: against the rest of slas.yaml, each with its path."""
    problems: list[str] = []
    workflows = {w.name: w for w in config.workflows}
    facilities = config.facility_index()
    names: set[str] = set()
    for i, slo in enumerate(config.slos):
        at = f"slos[{i}]"
        if slo.name in names:
            problems.append(f"{at}.name: SLO {slo.name!r} is declared twice")
        names.add(slo.name)
        wf = workflows.get(slo.indicator.workflow)
        if wf is None:
            problems.append(f"{at}.indicator.workflow: unknown workflow {slo.indicator.workflow!r}")
            continue
        if slo.indicator.step is not None and wf.step(slo.indicator.step) is None:
            problems.append(
                f"{at}.indicator.step: workflow {wf.name!r} has no step {slo.indicator.step!r}"
            )
            continue
        for fi, facility in enumerate(slo.facilities):
            if facility not in facilities:
                problems.append(f"{at}.facilities[{fi}]: unknown facility {facility!r}")
        for gi, label in enumerate(slo.grouping[1:], start=1):
            if label not in config.keys:
                problems.append(
                    f"{at}.grouping[{gi}]: {label!r} is neither facility nor a declared key"
                )
        deadline = _deadline_ns(config, wf.name, slo.indicator.step)
        if deadline and slo.window_ns < deadline:
            problems.append(
                f"{at}.window: {slo.window_label} is shorter than the deadline it judges"
            )
        if slo.budgeting == "timeslices" and slo.timeslice.nanos > slo.window_ns:
            problems.append(f"{at}.timeslice: longer than the window")
    channels = {c.name for c in config.alerts.channels}
    seen: set[str] = set()
    for ci, channel in enumerate(config.alerts.channels):
        if channel.name in seen:
            problems.append(f"alerts.channels[{ci}].name: channel {channel.name!r} twice")
        seen.add(channel.name)
    route = config.alerts.route
    for ri, name in enumerate(route.channels):
        if name not in channels:
            problems.append(f"alerts.route.channels[{ri}]: unknown channel {name!r}")
    for severity, names_ in route.by_severity.items():
        for ri, name in enumerate(names_):
            if name not in channels:
                problems.append(
                    f"alerts.route.by_severity.{severity}[{ri}]: unknown channel {name!r}"
                )
    for fi, feed in enumerate(config.alerts.idle_feeds.feeds):
        if feed.facility not in facilities:
            problems.append(
                f"alerts.idle_feeds.feeds[{fi}].facility: unknown facility {feed.facility!r}"
            )
    return problems
