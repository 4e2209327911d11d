"""What the live correlator needs after a batch pass, written from the pass's own work tables.

A full pass through ``rebuild`` leaves the transactions (with their key rows, by the
materialized view) and the fan-in matched states. The live path continues from
there with two more things, each written inside the engine (``INSERT ... SELECT``
per workflow; for the state, per range of transactions), without Python holding a
row:

- ``lookup_hops``: every fan-in hop (a GL journal, a cash posting) and every
  unexpected hop under each value it joins transactions by, matched or still
  waiting for a carrier; a carrier that arrives later finds its waiting journals
  there. They are the rows of the pass's ``hops`` work table for those steps, with
  the values they were stitched by (``stitch``);
- ``transaction_state``: per transaction, what a reload needs, from the
  ``members`` work table grouped by transaction: its event ids and their steps in
  the order ``summarize`` lists them (by event time, then id), the instant the pass
  judged it at, and what correlation reads of each event in the JSON
  ``repository.hops_payload`` writes. The live path then reads a transaction of the
  pass back by key lookups, not its events from ``events`` by id.

``Handover`` is the ``after`` hook ``rebuild`` calls once per workflow, after that
workflow's transactions are written (a lookup hop is only ever found once the
transactions it changed are stored). It empties ``lookup_hops`` at its first
workflow, not before the pass: a pass refused before writing anything (an RE2
regex) leaves the stored state whole. ``rebuild`` itself empties
``transaction_state`` before it writes.
"""

from __future__ import annotations

from collections.abc import Callable

from correlator.batch.components import WorkTables, pages
from correlator.batch.routing import KeyPlan, literal
from correlator.matching import UNEXPECTED
from correlator.schema import LOOKUP_HOPS, STATE_COLUMNS, TRANSACTION_STATE
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


# One event of a payload as ``repository.hops_payload`` writes it: [event_id,
# event_time, sent_time, facility, system, operation, status, amount (a decimal string
# or null), keys, attributes]. Attributes are only read to route an event, and a stored
# hop is routed already: the pass writes none, as it reads none.
_PAYLOAD_EVENT = (
    "concat('[', toJSONString(event_id), ',', toString(event_time), ',',"
    " toString(sent_time), ',', toJSONString(facility), ',', toJSONString(system), ',',"
    " toJSONString(operation), ',', toJSONString(status), ',', if(isNull(amount), 'null',"
    " concat('\"', toDecimalString(assumeNotNull(amount), 2), '\"')), ',',"
    " toJSONString(keys), ',{}]')"
)


def transaction_state_sql(
    store: Store, workflow: Workflow, t: WorkTables, version: int, now: int, where: str = "1"
) -> str:
    """The INSERT of one ``transaction_state`` row per transaction of ``workflow`` whose
    ``comp`` meets ``where``, from its members (core and attached) and its id (``ids``);
    ``now`` is the instant the pass judged the transactions at (their rows'
    ``evaluated_at``)."""
    names = ", ".join(literal(s.name) for s in workflow.steps)
    indexes = ", ".join(str(i) for i in range(len(workflow.steps)))
    step = f"transform(step, [{indexes}], [{names}], {literal(UNEXPECTED_NAME)})"
    # Sorted as summarize orders a transaction's events: by time, then id.
    ordered = f"arraySort(groupArray((event_time, event_id, {step})))"
    return (
        f"INSERT INTO {store.table(TRANSACTION_STATE)} ({', '.join(STATE_COLUMNS)})"
        f" SELECT i.id, {literal(workflow.name)}, i.id_time, toUInt64({int(version)}),"
        f" toUInt8(0), m.event_ids, m.event_steps, toInt64({int(now)}), m.hops FROM ("
        f" SELECT comp, arrayMap(x -> x.2, {ordered}) AS event_ids,"
        f" arrayMap(x -> x.3, {ordered}) AS event_steps,"
        f" concat('[', arrayStringConcat(groupArray({_PAYLOAD_EVENT}), ','), ']') AS hops"
        f" FROM {t('members')} WHERE {where} GROUP BY comp"
        f") AS m INNER JOIN (SELECT comp, id_time, id FROM {t('ids')} WHERE {where}) AS i"
        " ON m.comp = i.comp"
    )


STATE_CHUNK = 50_000  # transactions per INSERT of their state


class Handover:
    """``rebuild``'s ``after`` hook: replaces ``lookup_hops`` with the pass's and writes
    ``transaction_state``, workflow by workflow; ``finish`` empties ``lookup_hops`` when
    the pass had no workflow at all. ``version`` stamps the state rows; ``now`` is the
    instant the pass judges deadlines at."""

    def __init__(self, store: Store, version: Callable[[], int], now: int):
        self.store = store
        self.version = version
        self.now = now
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
        # A range of transactions at a time, as the pass reads them: the engine holds
        # one range's payloads (and the state table one range's write), not the
        # workflow's (over 2 M events, one statement took the pass's peak from 1.2 to
        # 2.6 GiB).
        version = self.version()
        for where in pages(self.store, t, STATE_CHUNK):
            t.command(transaction_state_sql(self.store, workflow, t, version, self.now, where))

    def finish(self) -> None:
        self._clear()


__all__ = ["Handover", "lookup_hops_sql", "transaction_state_sql"]
