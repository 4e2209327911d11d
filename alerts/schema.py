"""The alerts stage's tables (migrations 30-39).

``alert_state`` holds one row per version of an alert (newest ``version`` wins),
keyed by fingerprint: an alert's whole lifecycle (pending, firing, resolved),
its acknowledgement and what was last notified, so a restart neither pages
twice nor forgets a firing alert. ``silences`` likewise, keyed by id.
``notification_log`` appends one row per delivery attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from stitchboard.store.ddl import SchemaContext, Table
from stitchboard.store.schema import Migration

ALERT_STATE = Table(
    name="alert_state",
    columns="""\
    fingerprint String,
    rule LowCardinality(String),
    severity LowCardinality(String),
    state LowCardinality(String),
    labels Map(String, String),
    annotations Map(String, String),
    active_since DateTime64(3, 'UTC'),
    starts_at DateTime64(3, 'UTC'),
    ends_at Nullable(DateTime64(3, 'UTC')),
    value Nullable(Float64),
    silenced UInt8,
    inhibited UInt8,
    acknowledged_by Nullable(String),
    acknowledged_at Nullable(DateTime64(3, 'UTC')),
    notified_state LowCardinality(String),
    notified_severity LowCardinality(String),
    last_notified_at Nullable(DateTime64(3, 'UTC')),
    version UInt64""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY fingerprint",
    shard_key="cityHash64(fingerprint)",
)

SILENCES = Table(
    name="silences",
    columns="""\
    id String,
    matchers Map(String, String),
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    author String,
    comment String,
    created_at DateTime64(3, 'UTC'),
    expired_by Nullable(String),
    version UInt64""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY id",
    shard_key="cityHash64(id)",
)

NOTIFICATION_LOG = Table(
    name="notification_log",
    columns="""\
    time DateTime64(3, 'UTC'),
    fingerprint String,
    group_key String,
    channel LowCardinality(String),
    action LowCardinality(String),
    status LowCardinality(String),
    response String,
    error String,
    attempt UInt16""",
    engine="MergeTree",
    tail="PARTITION BY toYYYYMM(time)\nORDER BY (time, fingerprint)",
)


# The SLI rollup (alerts/rollup.py). ``slo_ledger``: what each transaction contributes
# to each SLO (one row per judgement, with n = +1; a change of judgement adds -1 for
# the old one and +1 for the new); ``slo_rollup``: the same summed per SLO, group,
# minute and kind, filled from the ledger by a materialized view; ``slo_rollup_marks``:
# which transaction versions the ledger has seen, for which SLO definitions.
SLO_LEDGER = Table(
    name="slo_ledger",
    columns="""\
    slo LowCardinality(String),
    id String,
    facility LowCardinality(String),
    labels Array(String),
    minute Int64,
    kind UInt8,
    due_ns Int64,
    amount Decimal(38, 2),
    n Int64""",
    engine="SummingMergeTree(n)",
    tail="ORDER BY (slo, id, facility, labels, minute, kind, due_ns, amount)",
    shard_key="cityHash64(id)",
)

SLO_ROLLUP = Table(
    name="slo_rollup",
    columns="""\
    slo LowCardinality(String),
    facility LowCardinality(String),
    labels Array(String),
    minute Int64,
    kind UInt8,
    due_ns Int64,
    n Int64,
    amount Decimal(38, 2)""",
    engine="SummingMergeTree((n, amount))",
    tail="ORDER BY (slo, minute, facility, labels, kind, due_ns)",
    shard_key="cityHash64(slo, facility)",
)

SLO_ROLLUP_MARKS = Table(
    name="slo_rollup_marks",
    columns="""\
    signature String,
    watermark UInt64,
    first_block Int64,
    version UInt64,
    watermark_rows UInt64 DEFAULT 0""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY tuple()",
    shard_key="0",
)


# What the overdue rule reads (alerts/overdue.py): each open transaction with a breach
# deadline (n = +1), kept current by the rollup refresh like ``slo_ledger`` (a change adds
# -1 for what was held and +1 for the new state); closed ones sum to nothing. Ordered
# by id (time-ordered ids): a refresh looks up the ids it judges again.
OPEN_DEADLINES = Table(
    name="open_deadlines",
    columns="""\
    id String,
    workflow LowCardinality(String),
    facility LowCardinality(String),
    breach_ns Int64,
    amount Decimal(18, 2),
    n Int64""",
    engine="SummingMergeTree(n)",
    tail="ORDER BY (id, workflow, facility, breach_ns, amount)",
    shard_key="cityHash64(id)",
)


# What the ledger holds for each SLO and transaction (alerts/held.py), for the refresh's
# lookup of the transactions it judges again: a key-value table (RocksDB; key: SLO, NUL,
# id), so a lookup costs per changed id, not per ledger granule the ids fall in (ids
# spread over the whole window touch every granule of the ledger's 14 M rows at 10 M
# transactions). ``n`` = 0: nothing held (a tombstone). ``slo_held_marks`` says which
# rollup mark the table matches; ``slo_refresh_scratch`` holds one refresh's judgements.
SLO_HELD = "slo_held"
SLO_HELD_MARKS = "slo_held_marks"
SLO_REFRESH_SCRATCH = "slo_refresh_scratch"
_HELD_COLUMNS = (
    "slo String, id String, facility String, labels Array(String), minute Int64,"
    " kind UInt8, due_ns Int64, amount Decimal(38, 2), n Int64"
)


def _held_by_key(ctx: SchemaContext) -> list[str]:
    # Not replicated: on a cluster each server keeps its own; the marks table tells a
    # refresh whether the one it reaches matches the rollup (else it rebuilds).
    db = ctx.database
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    return [
        f"CREATE TABLE IF NOT EXISTS `{db}`.`{SLO_HELD}`{on_cluster}"
        f" (key String, {_HELD_COLUMNS}) ENGINE = EmbeddedRocksDB PRIMARY KEY key",
        f"CREATE TABLE IF NOT EXISTS `{db}`.`{SLO_HELD_MARKS}`{on_cluster}"
        " (name String, token String) ENGINE = EmbeddedRocksDB PRIMARY KEY name",
        f"CREATE TABLE IF NOT EXISTS `{db}`.`{SLO_REFRESH_SCRATCH}`{on_cluster}"
        f" (key String, {_HELD_COLUMNS}) ENGINE = Memory",
    ]


def _rollup(ctx: SchemaContext) -> list[str]:
    db = ctx.database
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    return [
        *ctx.create(SLO_LEDGER),
        *ctx.create(SLO_ROLLUP),
        *ctx.create(SLO_ROLLUP_MARKS),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`slo_rollup_mv`{on_cluster}"
        f" TO `{db}`.`{SLO_ROLLUP.name}{local}` AS"
        " SELECT slo, facility, labels, minute, kind, due_ns, n, amount * n AS amount"
        f" FROM `{db}`.`{SLO_LEDGER.name}{local}`",
    ]


def _create(ctx: SchemaContext) -> list[str]:
    return [*ctx.create(ALERT_STATE), *ctx.create(SILENCES), *ctx.create(NOTIFICATION_LOG)]


def _changed_versions(ctx: SchemaContext) -> list[str]:
    """A minmax index on ``transactions.version``: the rollup refresh reads only the rows
    written since the previous one (``version >=`` its mark), and the index lets the
    engine skip every granule written before (whole older parts, and in merged parts the
    ranges of transactions that did not change). The correlator writes the table; only
    readers of what changed use the index, so it is added here."""
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    table = f"`{ctx.database}`.`transactions{local}`{on_cluster}"
    return [
        f"ALTER TABLE {table} ADD INDEX IF NOT EXISTS idx_version version"
        " TYPE minmax GRANULARITY 1",
        # Existing parts (a background mutation; new parts have the index as written).
        f"ALTER TABLE {table} MATERIALIZE INDEX idx_version",
        # How many transaction rows had the watermark's version: a refresh that finds no
        # newer version and no more rows at it has nothing to do.
        *ctx.alter(
            SLO_ROLLUP_MARKS.name, "ADD COLUMN IF NOT EXISTS watermark_rows UInt64 DEFAULT 0"
        ),
    ]


def _open_deadlines(ctx: SchemaContext) -> list[str]:
    # Filled by the next refresh: the rollup's signature names the ledgers it keeps, so a
    # store built before this table existed is rebuilt once.
    return ctx.create(OPEN_DEADLINES)


MIGRATIONS: Sequence[Migration] = (
    Migration(30, "alert state, silences, notification log", _create),
    Migration(31, "SLI rollup: ledger, rollup per minute, marks", _rollup),
    Migration(
        32,
        "rollup refresh: minmax index on transactions.version, rows at the mark",
        _changed_versions,
    ),
    Migration(33, "open deadlines: the overdue rule's ledger", _open_deadlines),
    Migration(34, "what the ledger holds per SLO and transaction, by key", _held_by_key),
)
