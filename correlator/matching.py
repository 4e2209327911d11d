"""Which step of which workflow an event is (pure).

A workflow takes an event at its first step (in definition order) whose match
passes; an event that matches no step but one of the workflow's ``unexpected``
matches is routed as ``UNEXPECTED``. System and operation tests are resolved
once per (system, operation) pair and cached, so the hot path is a dict lookup
plus any attribute tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from stitchboard.config.workflows import Pattern, StepMatch, Workflow

UNEXPECTED = -1

Test = Callable[[str], bool]


def compile_pattern(pattern: Pattern) -> Test:
    if pattern.exact is not None:
        exact = pattern.exact
        return lambda value: value == exact
    if pattern.prefix is not None:
        prefix = pattern.prefix
        return lambda value: value.startswith(prefix)
    # Regexes use search semantics: anchor with ^ and $ for a whole-value match.
    regex = re.compile(pattern.regex or "")
    return lambda value: regex.search(value) is not None


class _CompiledMatch:
    __slots__ = ("system", "operation", "attributes")

    def __init__(self, match: StepMatch):
        self.system = compile_pattern(match.system) if match.system else None
        self.operation = compile_pattern(match.operation) if match.operation else None
        self.attributes = tuple(
            (name, compile_pattern(pattern)) for name, pattern in match.attributes.items()
        )

    def head(self, system: str, operation: str) -> bool:
        return (self.system is None or self.system(system)) and (
            self.operation is None or self.operation(operation)
        )


AttributeTests = tuple[tuple[str, Test], ...]


def _attributes_pass(tests: AttributeTests, attributes: Mapping[str, str]) -> bool:
    for name, test in tests:
        value = attributes.get(name)
        if value is None or not test(value):
            return False
    return True


class Router:
    """Routes events to (workflow index, step index or UNEXPECTED)."""

    def __init__(self, workflows: list[Workflow]):
        self._workflows = [
            (
                [_CompiledMatch(step.match) for step in workflow.steps],
                [_CompiledMatch(m) for m in workflow.unexpected],
            )
            for workflow in workflows
        ]
        self._cache: dict[tuple[str, str], list[tuple[int, list[tuple[int, AttributeTests]]]]] = {}
        # Every attribute some match tests: the only attributes correlation needs.
        self.attribute_names = sorted(
            {
                name
                for workflow in workflows
                for match in (*(s.match for s in workflow.steps), *workflow.unexpected)
                for name in match.attributes
            }
        )

    def _candidates(
        self, system: str, operation: str
    ) -> list[tuple[int, list[tuple[int, AttributeTests]]]]:
        key = (system, operation)
        found = self._cache.get(key)
        if found is None:
            found = []
            for wi, (steps, unexpected) in enumerate(self._workflows):
                candidates = [
                    (si, m.attributes) for si, m in enumerate(steps) if m.head(system, operation)
                ]
                candidates += [
                    (UNEXPECTED, m.attributes) for m in unexpected if m.head(system, operation)
                ]
                if candidates:
                    found.append((wi, candidates))
            if len(self._cache) < 100_000:  # bounded: (system, operation) pairs are few
                self._cache[key] = found
        return found

    def route(
        self, system: str, operation: str, attributes: Mapping[str, str]
    ) -> list[tuple[int, int]]:
        routed = []
        for wi, candidates in self._candidates(system, operation):
            for si, tests in candidates:
                if not tests or _attributes_pass(tests, attributes):
                    routed.append((wi, si))
                    break
        return routed
