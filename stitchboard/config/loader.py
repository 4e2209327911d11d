"""Read slas.yaml and report every problem at once, each with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import slo_problems
from stitchboard.config.workflows import workflow_problems
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
        raise ConfigError(source, validation_problems(exc)) from exc
    problems = workflow_problems(config)
    if not problems:
        problems = slo_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> SlasConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path.name, [f"file not found ({path})"]) from exc
    return parse_config(text, source=path.name)
