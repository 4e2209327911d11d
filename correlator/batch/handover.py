"""What the live correlator needs after a batch pass, written from the pass's own work tables.

A full pass through ``rebuild`` leaves the transactions (with their key rows, by the
materialized view) and the fan-in matched states. The live path continues from
there with two more things:

- ``lookup_hops``: every fan-in hop (a GL journal, a cash posting) and every
  unexpected hop under each value it joins transactions by, matched or still
  waiting for a carrier; a carrier that arrives later finds its waiting journals
  there. They are the rows of the pass's ``hops`` work table for those steps, with
  the values they were stitched by (``stitch``), so one INSERT ... SELECT per
  workflow writes them inside the engine, without Python holding a row;
- ``transaction_hops`` is not written: a transaction without a matching row is
  read back from ``events`` by id the first time the live path touches it
  (docs/correlator.md), and rewritten with its row from then on.

``LookupHandover`` is the ``after`` hook ``rebuild`` calls once per workflow, after
that workflow's transactions are written (a lookup hop is only ever found once the
transactions it changed are stored). It empties ``lookup_hops`` at its first
workflow, not before the pass: a pass refused before writing anything (an RE2
regex) leaves the stored state whole.
"""

from __future__ import annotations

from correlator.batch.components import WorkTables
from correlator.batch.routing import KeyPlan, literal
from correlator.matching import UNEXPECTED
from correlator.schema import LOOKUP_HOPS
from correlator.transaction import UNEXPECTED_NAME
from stitchboard.config.workflows import Workflow
from stitchboard.store import Store

LOOKUP_COLUMNS = ("workflow", "key", "value", "event_id", "step")


def lookup_hops_sql(store: Store, workflow: Workflow, t: WorkTables) -> str | None:
    """The INSERT of ``workflow``'s lookup hops from the ``hops`` work table (``None``: the
    workflow has no fan-in step and no unexpected matches, so no lookup hop)."""
    plan = KeyPlan(workflow)
    steps = [*plan.fan_in, *([UNEXPECTED] if workflow.unexpected else [])]
    if not steps:
        return None
    indexes = ", ".join(str(i) for i in plan.fan_in)
    names = ", ".join(literal(workflow.steps[i].name) for i in plan.fan_in)
    step_name = (
        f"transform(step, [{indexes}], [{names}], {literal(UNEXPECTED_NAME)})"
        if plan.fan_in
        else literal(UNEXPECTED_NAME)
    )
    # ``stitch`` holds ``key\x1fvalue`` (key names are slas.yaml identifiers, never \x1f):
    # a fan-in hop's lookup values, an unexpected hop's chain values, as the live path's
    # ``WorkflowStitcher.lookup_values`` gives them.
    return (
        f"INSERT INTO {store.table(LOOKUP_HOPS.name)} ({', '.join(LOOKUP_COLUMNS)})"
        f" SELECT {literal(workflow.name)}, substring(x, 1, position(x, '\\x1f') - 1),"
        f" substring(x, position(x, '\\x1f') + 1), event_id, {step_name}"
        f" FROM {t('hops')} ARRAY JOIN stitch AS x"
        f" WHERE step IN ({', '.join(str(s) for s in steps)})"
    )


class LookupHandover:
    """``rebuild``'s ``after`` hook: replaces ``lookup_hops`` with the pass's, workflow by
    workflow; ``finish`` empties it when the pass had no workflow at all."""

    def __init__(self, store: Store):
        self.store = store
        self.cleared = False

    def _clear(self) -> None:
        if not self.cleared:
            self.store.truncate(LOOKUP_HOPS.name)
            self.cleared = True

    def __call__(self, workflow: Workflow, t: WorkTables) -> None:
        self._clear()
        insert = lookup_hops_sql(self.store, workflow, t)
        if insert is not None:
            t.command(insert)

    def finish(self) -> None:
        self._clear()


__all__ = ["LookupHandover", "lookup_hops_sql"]
