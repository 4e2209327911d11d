"""Routing in SQL: slas.yaml step matches as ClickHouse expressions (pure: text only).

The expression of a workflow gives, for one row of ``events``, the step index the
Python ``Router`` gives (``correlator.matching``): the first step in definition
order whose match passes, else ``UNEXPECTED`` (-1) when one of the workflow's
``unexpected`` matches passes, else ``NOT_ROUTED`` (-2). Patterns translate one
to one: ``exact`` is ``=``, ``prefix`` is ``startsWith``, ``regex`` is
``match`` (unanchored, search semantics like ``re.search``). Regexes run on RE2
here: a regex using a feature RE2 lacks (lookaround, backreferences) is refused
by the engine when the batch pass runs. An attribute test fails when the event
lacks the attribute, as in Python (``mapContains`` first: a missing map key reads
as the empty string).

Also here: the per-step key lists a stitcher reads (chain keys of core steps,
carried values fan-in steps look up, lookup keys of fan-in steps, the chain keys
an unexpected hop joins by), as ``multiIf`` over the routed step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from correlator.matching import UNEXPECTED
from stitchboard.config.workflows import Pattern, StepMatch, Workflow

NOT_ROUTED = -2


def literal(value: str) -> str:
    """A ClickHouse string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_sql(column: str, pattern: Pattern) -> str:
    if pattern.exact is not None:
        return f"{column} = {literal(pattern.exact)}"
    if pattern.prefix is not None:
        return f"startsWith({column}, {literal(pattern.prefix)})"
    return f"match({column}, {literal(pattern.regex or '')})"


def match_sql(match: StepMatch, system: str = "system", operation: str = "operation") -> str:
    """One step match as a boolean expression over an ``events`` row."""
    tests = []
    if match.system is not None:
        tests.append(pattern_sql(f"toString({system})", match.system))
    if match.operation is not None:
        tests.append(pattern_sql(f"toString({operation})", match.operation))
    for name, pattern in match.attributes.items():
        value = f"attributes[{literal(name)}]"
        present = f"mapContains(attributes, {literal(name)})"
        tests.append(f"({present} AND {pattern_sql(value, pattern)})")
    return " AND ".join(f"({t})" for t in tests) if tests else "1"


def step_sql(workflow: Workflow) -> str:
    """The step index of an event in ``workflow``: >= 0, UNEXPECTED or NOT_ROUTED."""
    branches = [f"{match_sql(s.match)}, {i}" for i, s in enumerate(workflow.steps)]
    branches += [f"{match_sql(m)}, {UNEXPECTED}" for m in workflow.unexpected]
    return f"toInt16(multiIf({', '.join(branches)}, {NOT_ROUTED}))"


def _string_array(names: Sequence[str]) -> str:
    return "CAST([" + ", ".join(literal(n) for n in names) + "] AS Array(String))"


def per_step_sql(lists: Sequence[Sequence[str]], unexpected: Sequence[str] = ()) -> str:
    """An ``Array(String)`` expression over ``step``: the list of the routed step."""
    branches = [f"step = {i}, {_string_array(names)}" for i, names in enumerate(lists) if names]
    if unexpected:
        branches.append(f"step = {UNEXPECTED}, {_string_array(unexpected)}")
    if not branches:
        return _string_array(())
    return f"multiIf({', '.join(branches)}, {_string_array(())})"


class KeyPlan:
    """Which keys each step of a workflow chains, carries for fan-in, or looks up.

    Mirrors ``WorkflowStitcher``: core steps chain their ``keys``; a core step carries
    its keys and ``carries`` restricted to keys some fan-in step looks up; a fan-in
    step looks up its ``fan_in`` keys; an unexpected hop joins by every chain key
    (sorted)."""

    def __init__(self, workflow: Workflow):
        steps = workflow.steps
        lookup_keys = {k for s in steps for k in s.fan_in}
        self.core = tuple(i for i, s in enumerate(steps) if not s.fan_in)
        self.fan_in = tuple(i for i, s in enumerate(steps) if s.fan_in)
        self.chain = [list(s.keys) if not s.fan_in else [] for s in steps]
        self.carried = [
            [k for k in dict.fromkeys((*s.keys, *s.carries)) if k in lookup_keys]
            if not s.fan_in
            else []
            for s in steps
        ]
        self.lookup = [list(s.fan_in) for s in steps]
        self.unexpected = sorted(workflow.chain_keys)

    def stitch_keys_sql(self) -> str:
        """The keys a hop is stitched by: chain keys (core), lookup keys (fan-in), or
        every chain key (unexpected); a hop with no value for any is not stitchable."""
        lists = [lookup or chain for lookup, chain in zip(self.lookup, self.chain, strict=True)]
        return per_step_sql(lists, self.unexpected)

    def carried_sql(self) -> str:
        return per_step_sql(self.carried)


def values_sql(names_sql: str, keys: str = "keys") -> str:
    """The non-empty ``key\\x1fvalue`` strings of the named keys, in list order."""
    return (
        f"arrayFilter(x -> x != '', arrayMap(k -> if({keys}[k] != '',"
        f" concat(k, '\\x1f', {keys}[k]), ''), {names_sql}))"
    )


def regexes(workflows: Sequence[Workflow]) -> Iterator[tuple[str, str]]:
    """Every regex of the workflows' matches with where it is written in slas.yaml."""
    for wi, workflow in enumerate(workflows):
        matches = [(f"steps[{si}].match", s.match) for si, s in enumerate(workflow.steps)]
        matches += [(f"unexpected[{ui}]", m) for ui, m in enumerate(workflow.unexpected)]
        for where, match in matches:
            tests = [("system", match.system), ("operation", match.operation)]
            tests += [(f"attributes.{n}", p) for n, p in match.attributes.items()]
            for field, pattern in tests:
                if pattern is not None and pattern.regex is not None:
                    yield f"workflows[{wi}].{where}.{field}", pattern.regex


def regex_problems(workflows: Sequence[Workflow], compile_re2: Callable[[str], None]) -> list[str]:
    """Regexes the engine (RE2) refuses, each with where it is and why; ``compile_re2``
    raises for a pattern it cannot compile."""
    problems = []
    for where, regex in regexes(workflows):
        try:
            compile_re2(regex)
        except Exception as exc:  # noqa: BLE001 - any refusal is the answer we want
            reason = str(exc).split("\n", 1)[0]
            problems.append(f"{where}: regex {regex!r} is not RE2 syntax ({reason[:200]})")
    return problems
