"""The console's additions to the store (migrations 50-59).

The console reads the correlator's ``transactions``; what it adds there serves only its
own reads, so it is added here (as the alerts stage adds its version index).

- ``decided_candidate``: when a transaction row's outcome was decided, from its stored
  status alone (``queries.DECIDED_CANDIDATE``), a column the engine computes on every
  insert (whoever writes the row), with a minmax skipping index. "Outcomes decided in
  this week" looks back 90 days of starts (a long workflow decides late); the index
  tells which days of starts hold a version decided in the week, so the exact read
  (FINAL) covers those days, not the whole look-back.
"""

from __future__ import annotations

from collections.abc import Sequence

from stitchboard.store.ddl import SchemaContext
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


MIGRATIONS: Sequence[Migration] = (
    Migration(50, "transactions.decided_candidate with a minmax index", _decided_candidate),
)
