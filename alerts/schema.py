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


def _create(ctx: SchemaContext) -> list[str]:
    return [*ctx.create(ALERT_STATE), *ctx.create(SILENCES), *ctx.create(NOTIFICATION_LOG)]


MIGRATIONS: Sequence[Migration] = (
    Migration(30, "alert state, silences, notification log", _create),
)
