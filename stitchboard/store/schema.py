"""Versioned schema migrations, recorded in ``schema_migrations``.

A migration is a version, a name and a function from the schema context to DDL
statements. Statements are idempotent (IF NOT EXISTS), and a migration is
recorded only after all of its statements ran, so an interrupted run is simply
repeated. Append new migrations; never edit an applied one.

``otel_traces`` and ``otel_logs`` keep the column names and types of the
OpenTelemetry Collector contrib ClickHouse exporter (exporter/clickhouseexporter,
internal/sqltemplates: traces_table.sql as of contrib commit 2bf6b9e1, with the
ResourceAttributeItems/SpanAttributeItems ALIAS columns, and logs_table.sql as
of commit e3bd2d1d, with EventName), pinned by tests/store/test_schema.py. Their
engine is ReplacingMergeTree keyed on the record's identity, so a re-sent batch
collapses; Stitchboard's own reads
use FINAL and are exact before merges. The official Collector can insert into
the same tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stitchboard.audit import AUDIT_LOG
from stitchboard.config_history import CONFIG_VERSIONS
from stitchboard.credentials import API_TOKEN_USAGE, API_TOKENS, USERS
from stitchboard.store.ddl import SchemaContext, Table

if TYPE_CHECKING:
    from stitchboard.store.client import Store

log = logging.getLogger(__name__)

OTEL_TRACES = Table(
    name="otel_traces",
    columns="""\
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2),
        CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2),
        CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1""",
    engine="ReplacingMergeTree",
    tail="""PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp, TraceId, SpanId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1""",
    shard_key="cityHash64(TraceId)",
)

OTEL_LOGS = Table(
    name="otel_logs",
    columns="""\
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8""",
    engine="ReplacingMergeTree",
    tail="""PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp, TraceId, SpanId, cityHash64(Body, LogAttributes))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1""",
    shard_key="cityHash64(TraceId)",
)

EVENTS = Table(
    name="events",
    columns="""\
    event_id String,
    event_time DateTime64(9, 'UTC'),
    observed_time DateTime64(9, 'UTC'),
    source_kind LowCardinality(String),
    source LowCardinality(String),
    facility LowCardinality(String),
    system LowCardinality(String),
    operation LowCardinality(String),
    status LowCardinality(String),
    status_message String,
    duration_ns UInt64,
    amount Nullable(Decimal(18, 2)),
    trace_id String,
    span_id String,
    keys Map(LowCardinality(String), String),
    attributes Map(LowCardinality(String), String),
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_key_values mapValues(keys) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_inserted_at inserted_at TYPE minmax GRANULARITY 1""",
    engine="ReplacingMergeTree(inserted_at)",
    tail="""PARTITION BY toYYYYMM(event_time)
ORDER BY event_id""",
    shard_key="cityHash64(event_id)",
)

DEAD_LETTERS = Table(
    name="dead_letters",
    columns="""\
    id String,
    received_time DateTime64(9, 'UTC'),
    source LowCardinality(String),
    content_type LowCardinality(String),
    payload String,
    reason String,
    replayed UInt8 DEFAULT 0,
    replayed_time Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)""",
    engine="ReplacingMergeTree(updated_at)",
    tail="""PARTITION BY toYYYYMM(received_time)
ORDER BY id""",
    shard_key="cityHash64(id)",
)

SCHEMA_MIGRATIONS = Table(
    name="schema_migrations",
    columns="""\
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)""",
    engine="ReplacingMergeTree(applied_at)",
    tail="ORDER BY version",
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[SchemaContext], list[str]]


def _tables(*tables: Table) -> Callable[[SchemaContext], list[str]]:
    return lambda ctx: [sql for table in tables for sql in ctx.create(table)]


EVENT_SOURCES = Table(
    name="event_sources",
    columns="""\
    event_id String,
    source_kind LowCardinality(String),
    source LowCardinality(String),
    received_time DateTime64(9, 'UTC')""",
    engine="MergeTree",
    tail="""PARTITION BY toYYYYMM(received_time)
ORDER BY (event_id, received_time)""",
    shard_key="cityHash64(event_id)",
)


def _event_sources(ctx: SchemaContext) -> list[str]:
    """Every delivery of an event, by source and time, filled by ClickHouse from each
    ``events`` insert (a later copy replaces the event row, never its provenance)."""
    db = ctx.database
    local = "_local" if ctx.cluster else ""
    on_cluster = f" ON CLUSTER `{ctx.cluster}`" if ctx.cluster else ""
    select = (
        "SELECT event_id, source_kind, source, observed_time AS received_time"
        f" FROM `{db}`.`events{local}`"
    )
    # Events stored before this migration have no rows here: readers fall back to the
    # event row, all that is known of them.
    return [
        *ctx.create(EVENT_SOURCES),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{db}`.`event_sources_mv`{on_cluster}"
        f" TO `{db}`.`event_sources{local}` AS {select}",
    ]


# Versions are grouped by stage so stages can add theirs independently:
# 1-9 kernel and collector, 10-19 correlator, 20-29 message logs, 30-39 alerts,
# 40-49 audit and access, 50-59 dashboards. Stages hand theirs over through
# ``Stage.migrations()`` (see ``stitchboard.stages``).
KERNEL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "otel tables, events, dead letters",
        _tables(OTEL_TRACES, OTEL_LOGS, EVENTS, DEAD_LETTERS),
    ),
    Migration(
        2,
        "events: the hop's send time beside its event time",
        # Rows stored before keep their event time as the send time.
        lambda ctx: ctx.alter(
            "events",
            "ADD COLUMN IF NOT EXISTS sent_time DateTime64(9, 'UTC') DEFAULT event_time",
        ),
    ),
    Migration(3, "event sources: every delivery of an event, first one kept", _event_sources),
    Migration(40, "users and api tokens", _tables(USERS, API_TOKENS, API_TOKEN_USAGE)),
    Migration(41, "hash-chained audit log", _tables(AUDIT_LOG)),
    Migration(43, "slas.yaml versions", _tables(CONFIG_VERSIONS)),
)


def all_migrations(stage_migrations: Sequence[Migration] = ()) -> list[Migration]:
    """The kernel's migrations and the stages', by version.

    Two migrations with one version are a programming error, reported with both names.
    """
    by_version: dict[int, Migration] = {}
    for migration in (*KERNEL_MIGRATIONS, *stage_migrations):
        existing = by_version.get(migration.version)
        if existing is not None and existing.name != migration.name:
            raise ValueError(
                f"migration version {migration.version} is taken twice:"
                f" {existing.name!r} and {migration.name!r}"
            )
        by_version[migration.version] = migration
    return [by_version[v] for v in sorted(by_version)]


def all_statements(ctx: SchemaContext, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Every DDL statement, in order: for review and for the cluster DDL test."""
    return [
        *_tables(SCHEMA_MIGRATIONS)(ctx),
        *(sql for m in all_migrations(migrations or ()) for sql in m.statements(ctx)),
    ]


def applied_versions(store: Store) -> set[int]:
    return {
        row[0]
        for row in store.rows(f"SELECT version FROM {store.table('schema_migrations')} FINAL")
    }


def migrate(store: Store, migrations: Sequence[Migration] = ()) -> list[int]:
    """Apply the kernel's and the given stage migrations that are pending.

    Returns the versions applied now.
    """
    ctx = SchemaContext(store.database, store.cluster)
    for sql in _tables(SCHEMA_MIGRATIONS)(ctx):
        store.command(sql)
    done = applied_versions(store)
    applied = []
    for migration in all_migrations(migrations):
        if migration.version in done:
            continue
        log.info("applying migration %s: %s", migration.version, migration.name)
        for sql in migration.statements(ctx):
            store.command(sql)
        store.insert(
            "schema_migrations", ("version", "name"), [(migration.version, migration.name)]
        )
        applied.append(migration.version)
    return applied


def schema_version(store: Store) -> int:
    return max(applied_versions(store), default=0)
