"""The console's additions to the store (migrations 50-59).

The console reads the correlator's ``transactions``; what it adds there serves only its
own reads, so it is added here (as the alerts stage adds its version index).

- ``decided_candidate``: when a transaction row's outcome was decided, from its stored
  status alone (``queries.DECIDED_CANDIDATE``), a column the engine computes on every
  insert (whoever writes the row), with a minmax skipping index. "Outcomes decided in
  this week" looks back 90 days of starts (a long workflow decides late); the index
  tells which days of starts hold a version decided in the week, so the exact read
  (FINAL) covers those days, not the whole look-back.
- ``open_transactions``: every open transaction (in progress or overdue) with what the
  overview and the workflow page show of it, kept by ``dashboards.open_transactions``
  from the transaction versions written since its mark (``open_transactions_marks``):
  "overdue now", aging, DNFB and the most overdue read the open set, not the table.
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


MIGRATIONS: Sequence[Migration] = (
    Migration(50, "transactions.decided_candidate with a minmax index", _decided_candidate),
    Migration(51, "open transactions and their marks", _open_transactions),
)
