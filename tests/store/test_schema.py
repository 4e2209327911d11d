"""Schema: the OpenTelemetry exporter's columns, idempotent migrations, cluster DDL."""

from __future__ import annotations

from stitchboard.stages import stage_migrations
from stitchboard.store import Store
from stitchboard.store.ddl import SchemaContext
from stitchboard.store.schema import all_migrations, all_statements, migrate, schema_version

# Column names and types of the OpenTelemetry Collector contrib ClickHouse exporter
# (exporter/clickhouseexporter/internal/sqltemplates). Grafana's ClickHouse plugin
# and HyperDX read these names; the official Collector writes them.
EXPORTER_TRACE_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("ResourceAttributeItems", "Array(String)"),
    ("SpanAttributeItems", "Array(String)"),
]
EXPORTER_LOG_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TimestampTime", "DateTime"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("TraceFlags", "UInt8"),
    ("SeverityText", "LowCardinality(String)"),
    ("SeverityNumber", "UInt8"),
    ("ServiceName", "LowCardinality(String)"),
    ("Body", "String"),
    ("ResourceSchemaUrl", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeSchemaUrl", "LowCardinality(String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "LowCardinality(String)"),
    ("ScopeAttributes", "Map(LowCardinality(String), String)"),
    ("LogAttributes", "Map(LowCardinality(String), String)"),
    ("EventName", "String"),
]


def columns(store: Store, table: str) -> list[tuple[str, str]]:
    return [
        (name, type_)
        for name, type_ in store.rows(
            "SELECT name, type FROM system.columns WHERE database = {db:String}"
            " AND table = {t:String} ORDER BY position",
            {"db": store.database, "t": table},
        )
    ]


def test_otel_traces_has_exactly_the_exporter_columns(store):
    assert columns(store, "otel_traces") == EXPORTER_TRACE_COLUMNS


def test_otel_logs_has_exactly_the_exporter_columns(store):
    assert columns(store, "otel_logs") == EXPORTER_LOG_COLUMNS


def test_events_and_dead_letters_exist(store):
    names = [name for name, _ in columns(store, "events")]
    for expected in (
        "event_id",
        "event_time",
        "observed_time",
        "source_kind",
        "facility",
        "system",
        "operation",
        "status",
        "status_message",
        "duration_ns",
        "amount",
        "trace_id",
        "span_id",
        "keys",
        "attributes",
    ):
        assert expected in names
    dl = [name for name, _ in columns(store, "dead_letters")]
    assert dl[:6] == ["id", "received_time", "source", "content_type", "payload", "reason"]
    assert "replayed" in dl


def test_migrations_are_recorded_and_idempotent(store):
    assert schema_version(store) == max(m.version for m in all_migrations(stage_migrations()))
    assert migrate(store, stage_migrations()) == []
    recorded = store.rows(
        f"SELECT version FROM {store.table('schema_migrations')} FINAL ORDER BY version"
    )
    assert [v for (v,) in recorded] == [m.version for m in all_migrations(stage_migrations())]


def test_official_collector_style_insert_lands_in_otel_traces(store):
    """An insert naming only the exporter's columns works (what the Collector sends)."""
    store.command(
        f"INSERT INTO {store.table('otel_traces')} (Timestamp, TraceId, SpanId, ServiceName,"
        " SpanName, SpanAttributes, Duration, StatusCode) VALUES"
        " (now64(9), 'ab', 'cd', 'svc', 'op', map('k', 'v'), 5, 'Ok')"
    )
    assert (
        store.scalar(
            f"SELECT count() FROM {store.table('otel_traces')} FINAL WHERE ServiceName = 'svc'"
        )
        == 1
    )


def test_cluster_ddl_is_valid_clickhouse_sql(store):
    ctx = SchemaContext("stitchboard", cluster="hospital")
    statements = all_statements(ctx, stage_migrations())
    distributed = [s for s in statements if "ENGINE = Distributed(`hospital`" in s]
    replicated = [s for s in statements if "ENGINE = Replicated" in s]
    assert len(distributed) == len(replicated) >= 5
    assert all("ON CLUSTER `hospital`" in s for s in statements)
    for sql in statements:
        # formatQuery parses with the real engine's parser and raises on a syntax error.
        assert store.scalar("SELECT formatQuery({q:String})", {"q": sql})


def test_single_server_ddl_has_no_cluster_clause():
    statements = all_statements(SchemaContext("stitchboard"), stage_migrations())
    assert statements and not any("ON CLUSTER" in s or "Distributed" in s for s in statements)


def test_a_truncate_on_a_cluster_empties_every_shards_local_table(store):
    # A TRUNCATE of the Distributed table succeeds and removes nothing (ClickHouse
    # issue 50447): the rows are in each shard's local table.
    on_cluster = Store("http://ch:8123/stitchboard", cluster="hospital")
    sent: list[str] = []
    on_cluster.command = lambda sql, *args, **kwargs: sent.append(sql)  # type: ignore[method-assign]
    on_cluster.truncate("lookup_hops")
    local = "`stitchboard`.`lookup_hops_local` ON CLUSTER `hospital`"
    assert sent == [f"TRUNCATE TABLE IF EXISTS {local}"]
    assert on_cluster.local_table("lookup_hops") == local
    for sql in (sent[0], f"DELETE FROM {local} WHERE id = 'x'"):
        # formatQuery parses with the real engine's parser and raises on a syntax error.
        assert store.scalar("SELECT formatQuery({q:String})", {"q": sql})
    assert Store("chdb://x").local_table("lookup_hops") == "`stitchboard`.`lookup_hops`"
    # A table each server keeps itself (not Distributed) is reached on every server.
    assert on_cluster.server_table("transaction_state") == (
        "`stitchboard`.`transaction_state` ON CLUSTER `hospital`"
    )


def test_truncate_empties_a_table_on_one_server(store):
    store.command(
        f"CREATE TABLE IF NOT EXISTS {store.table('truncated')} (n UInt8) ENGINE = Memory"
    )
    store.insert("truncated", ("n",), [(1,), (2,)])
    store.truncate("truncated")
    assert store.scalar(f"SELECT count() FROM {store.table('truncated')}") == 0
    store.command(f"DROP TABLE {store.table('truncated')}")


def test_unsupported_store_url_is_a_clear_error():
    import pytest

    from stitchboard.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported store URL scheme 'mysql'"):
        Store("mysql://localhost/db")


def test_password_is_hidden_in_display_url():
    assert Store("http://admin:secret@db:8123/sb").display_url == "http://admin:***@db:8123/sb"
