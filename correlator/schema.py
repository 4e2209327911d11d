"""The correlator's tables (migrations 10-19).

``transactions`` holds one row per version of a transaction; the newest
``version`` wins (ReplacingMergeTree), and readers use FINAL so they are exact
before merges. A transaction that stops existing (merged into another, or gone
after a config change) gets a last version with ``deleted = 1``.

The sorting key is ``(workflow, id_time, id)``: all three are fixed for an id
(the id is derived from the workflow and the earliest core event, whose time is
``id_time``), so versions of one transaction always collapse, and listings by
workflow and time read a narrow range. Lookups by id use a bloom filter.

``transaction_keys`` maps every business key value to the transactions that
carry it, sorted by value, for ``?key=`` lookups.
"""

from __future__ import annotations

from stitchboard.store.ddl import SchemaContext, Table
from stitchboard.store.schema import Migration

TRANSACTIONS = Table(
    name="transactions",
    columns="""\
    id String,
    workflow LowCardinality(String),
    id_time DateTime64(9, 'UTC'),
    facility LowCardinality(String),
    status LowCardinality(String),
    level LowCardinality(String),
    start_time DateTime64(9, 'UTC'),
    end_time Nullable(DateTime64(9, 'UTC')),
    last_time DateTime64(9, 'UTC'),
    duration_ns Nullable(Int64),
    warn_deadline Nullable(DateTime64(9, 'UTC')),
    breach_deadline Nullable(DateTime64(9, 'UTC')),
    flags Array(LowCardinality(String)),
    missed_steps Array(LowCardinality(String)),
    steps String CODEC(ZSTD(1)),
    missed String CODEC(ZSTD(1)),
    amount Nullable(Decimal(18, 2)),
    event_ids Array(String) CODEC(ZSTD(1)),
    event_steps Array(LowCardinality(String)),
    key_names Array(LowCardinality(String)),
    key_values Array(String) CODEC(ZSTD(1)),
    event_count UInt32,
    error_count UInt32,
    version UInt64,
    deleted UInt8 DEFAULT 0,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_start start_time TYPE minmax GRANULARITY 1""",
    engine="ReplacingMergeTree(version)",
    tail="""PARTITION BY toYYYYMM(id_time)
ORDER BY (workflow, id_time, id)""",
    shard_key="cityHash64(id)",
)

TRANSACTION_KEYS = Table(
    name="transaction_keys",
    columns="""\
    value String,
    key LowCardinality(String),
    transaction_id String,
    workflow LowCardinality(String),
    id_time DateTime64(9, 'UTC')""",
    engine="ReplacingMergeTree",
    tail="ORDER BY (value, key, transaction_id)",
    shard_key="cityHash64(value)",
)


def _create(ctx: SchemaContext) -> list[str]:
    return [*ctx.create(TRANSACTIONS), *ctx.create(TRANSACTION_KEYS)]


# Per-step figures as parallel arrays (index i = the i-th step of the workflow as
# the row was written; ns since the epoch, 0 = not happened), so SQL can compute
# step lags; the API recomputes full step detail from the events themselves.
_STEP_COLUMNS = (
    "DROP COLUMN IF EXISTS steps, DROP COLUMN IF EXISTS missed,"
    " ADD COLUMN IF NOT EXISTS step_names Array(LowCardinality(String)),"
    " ADD COLUMN IF NOT EXISTS step_counts Array(UInt32),"
    " ADD COLUMN IF NOT EXISTS step_first Array(Int64),"
    " ADD COLUMN IF NOT EXISTS step_last Array(Int64),"
    " ADD COLUMN IF NOT EXISTS step_levels Array(LowCardinality(String))"
)


def _steps_and_key_view(ctx: SchemaContext) -> list[str]:
    """Step arrays, and transaction_keys filled by ClickHouse from each written row."""
    db = ctx.database
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    return [
        *ctx.alter(TRANSACTIONS.name, _STEP_COLUMNS),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`transaction_keys_mv`{on_cluster}"
        f" TO `{db}`.`{TRANSACTION_KEYS.name}{local}` AS"
        " SELECT key_value AS value, key_name AS key, id AS transaction_id, workflow, id_time"
        f" FROM `{db}`.`{TRANSACTIONS.name}{local}`"
        " ARRAY JOIN key_names AS key_name, key_values AS key_value WHERE deleted = 0",
    ]


def _unmatched(ctx: SchemaContext) -> list[str]:
    from correlator.unmatched import create

    return create(ctx)


def _step_durations(ctx: SchemaContext) -> list[str]:
    # How long each step took from its anchor, as its deadline counts it (the send time
    # for an interface, never negative for a step that may come early); -1 when not
    # measured (the step or its anchor has not happened). Rewritten at every start.
    return ctx.alter(TRANSACTIONS.name, "ADD COLUMN IF NOT EXISTS step_durations Array(Int64)")


# When each deadline falls and when the transaction first missed one, so an SLO can
# count a late transaction the moment its deadline passed, not when it completed:
# per step its warn and breach deadlines (ns, 0 = none or not armed yet) and the
# status of its latest event; per transaction the earliest deadline of each level
# missed so far (``warn_missed_at`` counts a missed breach deadline's step warn
# deadline too: a transaction past its breach deadline is past its warn deadline).
_JUDGEMENT_COLUMNS = (
    "ADD COLUMN IF NOT EXISTS step_warn Array(Int64),"
    " ADD COLUMN IF NOT EXISTS step_breach Array(Int64),"
    " ADD COLUMN IF NOT EXISTS step_status Array(LowCardinality(String)),"
    " ADD COLUMN IF NOT EXISTS warn_missed_at Int64 DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS breach_missed_at Int64 DEFAULT 0,"
    # Versions grow with every write: readers of "what changed since version v" (the
    # SLI rollup) skip every granule written before it.
    " ADD INDEX IF NOT EXISTS idx_version version TYPE minmax GRANULARITY 1"
)


def _judgement_columns(ctx: SchemaContext) -> list[str]:
    return [
        *ctx.alter(TRANSACTIONS.name, _JUDGEMENT_COLUMNS),
        *ctx.alter(TRANSACTIONS.name, "MATERIALIZE INDEX idx_version"),
    ]


# The live path's state beside the transactions (see docs/correlator.md):
# - ``lookup_hops``: every fan-in and unexpected hop by the values it joins
#   transactions by, matched or still waiting for a carrier, so a new carrier
#   finds the journals that wait for it without any re-read of ``events``;
# - ``correlator_state``: named values the correlator resumes from (the
#   ``inserted_at`` watermark, the instant swept through, the slas.yaml signature);
# - ``evaluated_at`` on a transaction row: the instant its status was computed at,
#   so a deadline after it is one the row does not reflect yet.
LOOKUP_HOPS = Table(
    name="lookup_hops",
    columns="""\
    workflow LowCardinality(String),
    key LowCardinality(String),
    value String,
    event_id String,
    step LowCardinality(String)""",
    engine="ReplacingMergeTree",
    tail="ORDER BY (value, key, workflow, event_id)",
    shard_key="cityHash64(value)",
)

CORRELATOR_STATE = Table(
    name="correlator_state",
    columns="""\
    name LowCardinality(String),
    number Int64,
    text String,
    version UInt64""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY name",
    shard_key="cityHash64(name)",
)


# Migration 15's table of hop payloads, read by a sorting key that a few thousand
# scattered ids cover whole; migration 17 drops it for ``transaction_state``.
TRANSACTION_HOPS = Table(
    name="transaction_hops",
    columns="""\
    workflow LowCardinality(String),
    id_time DateTime64(9, 'UTC'),
    id String,
    version UInt64,
    hops String CODEC(ZSTD(1))""",
    engine="ReplacingMergeTree(version)",
    tail="PARTITION BY toYYYYMM(id_time)\nORDER BY (workflow, id_time, id)",
    shard_key="cityHash64(id)",
)


def _live_state(ctx: SchemaContext) -> list[str]:
    return [
        *ctx.create(LOOKUP_HOPS),
        *ctx.create(TRANSACTION_HOPS),
        *ctx.create(CORRELATOR_STATE),
        *ctx.alter(TRANSACTIONS.name, _DELTA_COLUMNS),
    ]


# A writer that knows which key values a transaction row adds to its previous version
# (the live path) sets ``key_delta = 1`` and lists only those; the key view then writes
# only them (a row's keys already indexed under its id are not written again). Any
# other writer leaves ``key_delta = 0`` and every key of the row is indexed.
_DELTA_COLUMNS = (
    "ADD COLUMN IF NOT EXISTS evaluated_at Int64 DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS key_delta UInt8 DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS delta_key_names Array(LowCardinality(String)),"
    " ADD COLUMN IF NOT EXISTS delta_key_values Array(String) CODEC(ZSTD(1))"
)


# Every deadline a written open transaction has not reached yet, by the instant it
# falls due, filled by ClickHouse from each transaction row (whoever writes it), so the
# deadline sweep is a range read of what fell due since the last sweep.
TRANSACTION_DEADLINES = Table(
    name="transaction_deadlines",
    columns="""\
    due Int64,
    workflow LowCardinality(String),
    id String,
    id_time DateTime64(9, 'UTC')""",
    engine="ReplacingMergeTree",
    tail="ORDER BY (due, workflow, id)",
    shard_key="cityHash64(id)",
)


def _deadline_index(ctx: SchemaContext) -> list[str]:
    db = ctx.database
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    return [
        # The key view again, now writing only a row's new keys when it lists them.
        f"DROP TABLE IF EXISTS `{db}`.`transaction_keys_mv`{on_cluster}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`transaction_keys_mv`{on_cluster}"
        f" TO `{db}`.`{TRANSACTION_KEYS.name}{local}` AS"
        " SELECT key_value AS value, key_name AS key, id AS transaction_id, workflow, id_time"
        f" FROM `{db}`.`{TRANSACTIONS.name}{local}`"
        " ARRAY JOIN if(key_delta = 1, delta_key_names, key_names) AS key_name,"
        " if(key_delta = 1, delta_key_values, key_values) AS key_value WHERE deleted = 0",
        *ctx.create(TRANSACTION_DEADLINES),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`transaction_deadlines_mv`{on_cluster}"
        f" TO `{db}`.`{TRANSACTION_DEADLINES.name}{local}` AS"
        " SELECT due, workflow, id, id_time"
        f" FROM `{db}`.`{TRANSACTIONS.name}{local}`"
        " ARRAY JOIN arrayFilter(d -> d > evaluated_at,"
        " [ifNull(toUnixTimestamp64Nano(warn_deadline), 0),"
        " ifNull(toUnixTimestamp64Nano(breach_deadline), 0)]) AS due"
        " WHERE deleted = 0 AND end_time IS NULL",
    ]


# The live path's state of each transaction, by id: what a reload needs (its event ids
# with their steps, when its row was evaluated, what correlation reads of each event as
# JSON), written with every transaction row the live path writes (a retired id gets a
# tombstone). EmbeddedRocksDB: a reload of a few thousand transactions is that many
# key lookups, where any MergeTree sorted by time or id reads most of its granules
# for ids spread over the history. A write replaces the key's row at once (no merge,
# no FINAL). Not replicated: on a cluster each server keeps its own, and an id a
# server does not hold is read from ``transactions`` and ``events`` instead.
TRANSACTION_STATE = "transaction_state"
STATE_COLUMNS = (
    "id",
    "workflow",
    "id_time",
    "version",
    "deleted",
    "event_ids",
    "event_steps",
    "evaluated_at",
    "hops",
)


def _transaction_state(ctx: SchemaContext) -> list[str]:
    db = ctx.database
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    drop = [f"DROP TABLE IF EXISTS `{db}`.`{TRANSACTION_HOPS.name}`{on_cluster}"]
    if ctx.cluster:
        drop.append(f"DROP TABLE IF EXISTS `{db}`.`{TRANSACTION_HOPS.name}_local`{on_cluster}")
    return [
        *drop,
        f"CREATE TABLE IF NOT EXISTS `{db}`.`{TRANSACTION_STATE}`{on_cluster} ("
        "id String, workflow String, id_time Int64, version UInt64, deleted UInt8,"
        " event_ids Array(String), event_steps Array(String), evaluated_at Int64,"
        " hops String) ENGINE = EmbeddedRocksDB PRIMARY KEY id",
    ]


MIGRATIONS = (
    Migration(10, "correlator transactions and transaction keys", _create),
    Migration(11, "transaction step arrays, transaction_keys view", _steps_and_key_view),
    Migration(12, "fan-in events no transaction carries", _unmatched),
    Migration(13, "transaction step durations from their anchors", _step_durations),
    Migration(14, "step deadlines and first missed deadlines per transaction", _judgement_columns),
    Migration(15, "lookup hops, correlator state, evaluation instants", _live_state),
    Migration(
        16, "pending deadlines by due instant; key view writes new keys only", _deadline_index
    ),
    Migration(17, "transaction state by id for the live path's reloads", _transaction_state),
)
