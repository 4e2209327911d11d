"""Read slas.yaml and report every problem at once, each with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stitchboard.config.model import KeyRule, SlasConfig
from stitchboard.config.slos import slo_problems
from stitchboard.config.workflows import Workflow, workflow_problems
from stitchboard.errors import ConfigError


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "extra_forbidden":
        return f"unknown field {error['loc'][-1]!r}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        if error["type"] == "extra_forbidden":
            loc = loc[:-1]
        where = _location(loc)
        problems.append(f"{where}: {_message(error)}" if where else _message(error))
    return problems


def parse_config(text: str, source: str = "slas.yaml") -> SlasConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(source, [f"{where}not valid YAML ({problem})"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping"])
    try:
        config = SlasConfig.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc) + _cross_problems(data)
        raise ConfigError(source, list(dict.fromkeys(problems))) from exc
    # Every problem in one run: the workflows' and the SLOs' cross-checks together.
    problems = workflow_problems(config) + slo_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _cross_problems(data: dict[str, Any]) -> list[str]:
    """The cross-checks (undeclared keys, anchors) of every workflow that is valid on its
    own, when another part of the file is not: every problem in one run."""
    keys = data.get("keys")
    workflows = data.get("workflows")
    if not isinstance(workflows, list):
        return []
    # Only the names matter to the cross-checks; each key's own problems are listed already.
    rule = KeyRule(attributes=["-"])
    declared = {str(k): rule for k in keys} if isinstance(keys, dict) else {}
    problems: list[str] = []
    for index, raw in enumerate(workflows):
        try:
            workflow = Workflow.model_validate(raw)
        except ValidationError:
            continue  # its own problems are already listed
        alone = SlasConfig.model_construct(keys=declared, workflows=[workflow])
        problems += [
            f"workflows[{index}]" + p.removeprefix("workflows[0]") for p in workflow_problems(alone)
        ]
    return problems


def load_config(path: str | Path) -> SlasConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path.name, [f"file not found ({path})"]) from exc
    return parse_config(text, source=path.name)
