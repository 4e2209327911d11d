"""The console's additions to the store (migrations 50-59).

The console reads the correlator's ``transactions``; what it adds there serves only its
own reads, so it is added here (as the alerts stage adds its version index).

- ``decided_candidate``: when a transaction row's outcome was decided, from its stored
  status alone (``queries.DECIDED_CANDIDATE``), a column the engine computes on every
  insert (whoever writes the row), with a minmax index; the decided ledger takes a
  finished transaction's decision instant from it.
- ``open_transactions``: every open transaction (in progress or overdue) with what the
  overview and the workflow page show of it, kept by ``dashboards.open_transactions``
  from the transaction versions written since its mark (``open_transactions_marks``):
  "overdue now", aging, DNFB and the most overdue read the open set, not the table.
- ``decided_ledger`` and ``decided_outcomes``: every finished transaction's outcome by
  the instant it was decided, kept with the open set; "outcomes decided in a window"
  sums a range of it (and the open set's overdue ones) instead of reading 90 days of
  starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from stitchboard.store.ddl import SchemaContext, Table
from stitchboard.store.schema import Migration


def _decided_candidate(ctx: SchemaContext) -> list[str]:
    from dashboards.queries import DECIDED_CANDIDATE

    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    local = f"`{ctx.database}`.`transactions{'_local' if ctx.cluster else ''}`{on_cluster}"
    statements = [
        f"ALTER TABLE {local} ADD COLUMN IF NOT EXISTS decided_candidate Int64"
        f" MATERIALIZED {DECIDED_CANDIDATE}",
        f"ALTER TABLE {local} ADD INDEX IF NOT EXISTS idx_decided decided_candidate"
        " TYPE minmax GRANULARITY 1",
        # Existing parts (background mutations; new parts get both as they are written).
        f"ALTER TABLE {local} MATERIALIZE COLUMN decided_candidate",
        f"ALTER TABLE {local} MATERIALIZE INDEX idx_decided",
    ]
    if ctx.cluster:
        # The Distributed table reads the column the shards compute.
        statements.append(
            f"ALTER TABLE `{ctx.database}`.`transactions`{on_cluster}"
            " ADD COLUMN IF NOT EXISTS decided_candidate Int64"
        )
    return statements


# One row per open transaction and what it shows (n = +1); a transaction that closes or
# changes gets -1 on its old row, and the summing merge drops rows that sum to 0. Every
# column but ``n`` is in the key, so a summed row keeps them exactly.
OPEN_TRANSACTIONS = Table(
    name="open_transactions",
    columns="""\
    workflow LowCardinality(String),
    id_time DateTime64(9, 'UTC'),
    id String,
    facility LowCardinality(String),
    status LowCardinality(String),
    start_ns Int64,
    warn_ns Int64,
    breach_ns Int64,
    amount Decimal(18, 2),
    discharged_ns Int64,
    billed UInt32,
    n Int64""",
    engine="SummingMergeTree(n)",
    tail="ORDER BY (workflow, id_time, id, facility, status, start_ns, warn_ns, breach_ns,"
    " amount, discharged_ns, billed)",
    shard_key="cityHash64(id)",
)

# What the open set is current with: every transaction version up to ``watermark`` was
# judged, and ``watermark_rows`` rows had that version then (more later: judge it again);
# ``first_block`` notices rows removed without a new version (TRUNCATE, a dropped
# partition), which need a rebuild; ``last_block``, the newest insert block then: while
# it is the newest, nothing was written since.
OPEN_TRANSACTIONS_MARKS = Table(
    name="open_transactions_marks",
    columns="""\
    watermark UInt64,
    watermark_rows UInt64,
    first_block Int64,
    last_block Int64,
    version UInt64""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY tuple()",
    shard_key="0",
)


def _open_transactions(ctx: SchemaContext) -> list[str]:
    return [*ctx.create(OPEN_TRANSACTIONS), *ctx.create(OPEN_TRANSACTIONS_MARKS)]


# Each finished transaction's outcome (complete, late or failed) and when it was decided,
# kept with the open set (same refresh, same marks): +1 for its current row, -1 for the
# row it replaces. ``decided_ledger`` is read by id (what a changed transaction held);
# a view sums it into ``decided_outcomes``, sorted by the instant of the decision, which
# the overview reads by range: counts and amounts are sums of n, no FINAL needed.
DECIDED_LEDGER = Table(
    name="decided_ledger",
    columns="""\
    id String,
    workflow LowCardinality(String),
    facility LowCardinality(String),
    status LowCardinality(String),
    decided_ns Int64,
    id_time_ns Int64,
    amount Decimal(18, 2),
    n Int64""",
    engine="SummingMergeTree(n)",
    tail="ORDER BY (id, workflow, facility, status, decided_ns, id_time_ns, amount)",
    shard_key="cityHash64(id)",
)

DECIDED_OUTCOMES = Table(
    name="decided_outcomes",
    columns="""\
    decided_ns Int64,
    workflow LowCardinality(String),
    facility LowCardinality(String),
    status LowCardinality(String),
    id_time_ns Int64,
    n Int64,
    amount Decimal(38, 2)""",
    engine="SummingMergeTree((n, amount))",
    tail="ORDER BY (decided_ns, workflow, facility, status, id_time_ns)",
    shard_key="cityHash64(decided_ns)",
)


def _decided_outcomes(ctx: SchemaContext) -> list[str]:
    db = ctx.database
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    return [
        *ctx.create(DECIDED_LEDGER),
        *ctx.create(DECIDED_OUTCOMES),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`decided_outcomes_mv`{on_cluster}"
        f" TO `{db}`.`{DECIDED_OUTCOMES.name}{local}` AS"
        " SELECT decided_ns, workflow, facility, status, id_time_ns, n,"
        " toDecimal128(amount, 2) * n AS amount"
        f" FROM `{db}`.`{DECIDED_LEDGER.name}{local}`",
        # Kept with the open set from its marks: without a mark the next refresh rebuilds
        # both from ``transactions``.
        f"TRUNCATE TABLE IF EXISTS `{db}`.`{OPEN_TRANSACTIONS_MARKS.name}{local}`{on_cluster}",
    ]


MIGRATIONS: Sequence[Migration] = (
    Migration(50, "transactions.decided_candidate with a minmax index", _decided_candidate),
    Migration(51, "open transactions and their marks", _open_transactions),
    Migration(52, "decided outcomes: a ledger by id, sums by instant", _decided_outcomes),
)
