"""Workflow definitions in slas.yaml (the correlator's input).

A workflow is an ordered list of steps. A step matches hop events (system,
operation, attributes: exact, prefix or regex) and says which business keys it
carries and how they stitch:

- ``keys`` chain: events of the workflow that share a value of one of these
  keys are the same transaction (visit → charge → ...);
- ``carries`` are recorded on the transaction (searchable, and what ``fan_in``
  steps look up) but never merge two transactions — a charge batch or a payment
  run is shared by many transactions;
- ``fan_in`` makes the step a summary of many transactions (a GL journal posted
  for a charge batch): its event joins every transaction that carries one of
  these key values, without merging them.

Deadlines (``within``) are measured from the previous step, the workflow start
or a named step, at warn and breach levels; durations may be business days in
the facility's time zone and calendar.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_serializer, model_validator

from stitchboard.config.base import Strict
from stitchboard.times import parse_duration

if TYPE_CHECKING:
    from stitchboard.config.model import SlasConfig

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Duration(Strict):
    """``90s``, ``15m``, ``24h``, ``3d``, ``2w`` or ``1bd`` (business days).

    N business days after an instant means the end of the Nth business day after
    that instant's local date in the facility's time zone (``1bd`` = by the end
    of the next business day, the usual "T+1").
    """

    text: str
    nanos: int = 0
    business_days: int = 0

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            return value
        parsed = parse_duration(value)
        if parsed.business_days:
            return {"text": value.strip(), "business_days": parsed.business_days}
        return {"text": value.strip(), "nanos": parsed.nanos}

    @model_serializer
    def _as_text(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


class Pattern(Strict):
    """One value test: ``exact``, ``prefix`` or ``regex`` (a plain string is exact)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        return {"exact": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Pattern:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of exact, prefix, regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"bad regex {self.regex!r}: {exc}") from exc
        return self

    @model_serializer
    def _compact(self) -> str | dict[str, str]:
        if self.exact is not None:
            return self.exact
        return {"prefix": self.prefix} if self.prefix is not None else {"regex": self.regex or ""}

    def describe(self) -> str:
        if self.exact is not None:
            return self.exact
        if self.prefix is not None:
            return f"{self.prefix}*"
        return f"/{self.regex}/"


class StepMatch(Strict):
    """Which events a step takes. Every given test must pass; attributes are event attributes."""

    system: Pattern | None = None
    operation: Pattern | None = None
    attributes: dict[str, Pattern] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> StepMatch:
        if self.system is None and self.operation is None and not self.attributes:
            raise ValueError("a match needs at least one of system, operation, attributes")
        return self


class Deadline(Strict):
    """Warn and breach limits measured from ``after``.

    ``after``: ``previous`` (the step just before; default), ``start`` (the
    workflow's first step), or the name of an earlier step. The clock starts
    when that anchor step happens: while it is pending, this step is not due
    (the anchor's own deadline is what can be missed). Only an ``optional``
    anchor that was skipped (a later step happened) passes the anchor back to
    the step before it. ``from``: which time of the anchor's first event the
    clock counts from: ``occurred`` (when the business event happened, HL7
    EVN-6; default) or ``sent`` (when the message was sent, HL7 MSH-7): an
    interface is judged from the send.
    """

    # Written and shown as ``from`` (a Python keyword, hence the attribute name).
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    after: str = "previous"
    from_: Literal["occurred", "sent"] = Field(default="occurred", alias="from")
    warn: Duration | None = None
    breach: Duration | None = None

    @model_validator(mode="after")
    def _some_level(self) -> Deadline:
        if self.warn is None and self.breach is None:
            raise ValueError("a deadline needs warn, breach or both")
        return self


class Step(Strict):
    name: str
    description: str = ""
    match: StepMatch
    keys: list[str] = Field(default_factory=list)
    carries: list[str] = Field(default_factory=list)
    fan_in: list[str] = Field(default_factory=list)
    within: Deadline | None = None
    repeat: bool = False
    optional: bool = False
    # The step may legitimately happen before the steps listed before it (inpatient
    # charges post during the stay, before the discharge): never ``out_of_order``.
    may_precede: bool = False
    # How long this step may be missing after a later step happened before the
    # transaction is flagged ``missing_step`` and overdue (the workflow's by default).
    grace: Duration | None = None

    @field_validator("name")
    @classmethod
    def _step_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"step name {value!r} must be lower_snake_case")
        return value


class EndToEnd(Strict):
    """The whole workflow: from its start to the time every required step has happened."""

    warn: Duration | None = None
    breach: Duration | None = None

    @model_validator(mode="after")
    def _some_level(self) -> EndToEnd:
        if self.warn is None and self.breach is None:
            raise ValueError("a deadline needs warn, breach or both")
        return self


class Workflow(Strict):
    name: str
    description: str = ""
    steps: list[Step] = Field(min_length=1)
    within: EndToEnd | None = None
    # Systems' clocks drift; an earlier step stamped up to this much later than a
    # later one is not reported out of order.
    clock_skew: Duration = Field(default_factory=lambda: Duration.model_validate("0s"))
    # Events that chain to a transaction of this workflow but should not happen
    # in it (an A13 discharge cancel): recorded and flagged ``unexpected_step``.
    unexpected: list[StepMatch] = Field(default_factory=list)
    # How long a required step may be missing after a later step happened (a charge
    # with no discharge yet is a visit in progress); none: flagged at once.
    grace: Duration | None = None

    @field_validator("name")
    @classmethod
    def _workflow_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"workflow name {value!r} must be lower_snake_case")
        return value

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def chain_keys(self) -> frozenset[str]:
        return frozenset(k for s in self.steps if not s.fan_in for k in s.keys)


Kind = Literal["keys", "carries", "fan_in"]


def workflow_problems(config: SlasConfig) -> list[str]:
    """Cross-checks pydantic cannot do field by field, each with its slas.yaml path."""
    declared = set(config.keys) | {"trace"}
    problems: list[str] = []
    seen_workflows: set[str] = set()
    for wi, workflow in enumerate(config.workflows):
        where = f"workflows[{wi}]"
        if workflow.name in seen_workflows:
            problems.append(f"{where}.name: workflow {workflow.name!r} is declared twice")
        seen_workflows.add(workflow.name)
        names: list[str] = []
        for si, step in enumerate(workflow.steps):
            at = f"{where}.steps[{si}]"
            if step.name in names:
                problems.append(f"{at}.name: step {step.name!r} is declared twice")
            kinds: tuple[Kind, ...] = ("keys", "carries", "fan_in")
            for kind in kinds:
                for ki, key in enumerate(getattr(step, kind)):
                    if key not in declared:
                        problems.append(f"{at}.{kind}[{ki}]: key {key!r} is not declared in keys")
            if si == 0 and step.fan_in:
                problems.append(f"{at}.fan_in: the first step cannot be a fan-in step")
            if not step.keys and not step.fan_in:
                problems.append(f"{at}.keys: a step needs keys or fan_in to be stitched")
            after = step.within.after if step.within else "previous"
            if after not in ("previous", "start") and after not in names:
                problems.append(
                    f"{at}.within.after: {after!r} is not an earlier step"
                    " (use previous, start or the name of an earlier step)"
                )
            names.append(step.name)
        if not workflow.chain_keys:
            problems.append(f"{where}.steps: no step has chaining keys")
        for si, step in enumerate(workflow.steps):
            for ki, key in enumerate(step.fan_in):
                carried = any(
                    key in s.keys or key in s.carries for s in workflow.steps if not s.fan_in
                )
                if not carried:
                    problems.append(
                        f"{where}.steps[{si}].fan_in[{ki}]: no non-fan-in step keys or carries"
                        f" {key!r}"
                    )
    return problems
