"""Process settings: ``STITCHBOARD_*`` environment variables, an optional TOML file, flags.

Precedence (highest first): command-line flags, environment, the settings file
named by ``STITCHBOARD_SETTINGS`` (default ``./stitchboard.toml`` when present),
built-in defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _settings_file() -> Path:
    return Path(os.environ.get("STITCHBOARD_SETTINGS", "stitchboard.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STITCHBOARD_", extra="forbid")

    clickhouse: str = Field(
        "chdb://./data",
        description="Store URL: chdb://<dir> (embedded) or http(s)://user:pass@host:8123/db",
    )
    database: str = Field("stitchboard", description="Database (embedded store, or no path in URL)")
    cluster: str | None = Field(None, description="Cluster name: schema created ON CLUSTER")
    config: Path = Field(Path("slas.yaml"), description="Path of slas.yaml")
    host: str = Field("127.0.0.1", description="Address every listener binds")
    port: int = Field(8050, ge=0, le=65535, description="Dashboards and JSON API")
    otlp_http_port: int = Field(4318, ge=0, le=65535, description="OTLP/HTTP; 0 disables")
    otlp_grpc_port: int = Field(4317, ge=0, le=65535, description="OTLP/gRPC; 0 disables")
    mllp_port: int = Field(2575, ge=0, le=65535, description="HL7 v2 over MLLP; 0 disables")
    max_body_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Decompressed body limit")
    queue_max_rows: int = Field(400_000, gt=0, description="Rows buffered before 429")
    batch_max_rows: int = Field(100_000, gt=0, description="Rows per ClickHouse insert")
    correlator_cache_hops: int = Field(
        200_000,
        ge=0,
        description="Hops of recent transactions the correlator keeps in memory (the rest"
        " are read back from the store when touched)",
    )
    correlator_interval: float = Field(
        0.25,
        gt=0,
        le=60,
        description="Seconds the correlator waits between steps: each step carries every"
        " batch loaded meanwhile (longer: fewer, larger statements; shorter: fresher pages)",
    )
    native_decode: bool = Field(
        True, description="Embedded store: let the engine decode OTLP protobuf trace requests"
    )
    spool: bool = Field(
        True, description="serve: acknowledge after fdatasync to a local spool, load behind it"
    )
    spool_dir: Path = Field(Path("spool"), description="Directory of the ingest spool")
    receiver_process: bool = Field(
        True,
        description="serve, with the spool: receive MLLP and OTLP/HTTP in a process of their"
        " own, spooling into spool_dir/receivers (false: on the server's event loop)",
    )
    spool_max_bytes: int = Field(
        1 << 30, gt=0, description="Unloaded bytes the spool holds before 429/503 and AR"
    )
    spool_segment_bytes: int = Field(64 << 20, gt=0, description="Size of one spool segment file")
    disk_min_free_percent: float = Field(
        10.0,
        ge=0,
        le=100,
        description="Health warns when a store disk or the spool's filesystem has less free",
    )
    retry_after_seconds: int = Field(1, ge=1, description="Retry-After on 429/503")
    pseudonym_key: str | None = Field(None, description="HMAC key for PHI pseudonyms")
    pseudonym_key_file: Path | None = Field(None, description="File holding the HMAC key")
    log_level: str = Field("INFO", description="Python log level")
    bootstrap_token: str | None = Field(
        None, description="An admin API token given by the environment (automation, tests)"
    )
    session_key: str | None = Field(
        None, description="Key signing console sessions (default: a new one per start)"
    )
    session_minutes: int = Field(480, gt=0, description="Console session lifetime after login")
    ingest_auth: bool = Field(False, description="Ingest needs an ingest token (OTLP, messages)")
    metrics_allow: list[str] = Field(
        default_factory=list, description="Networks that may scrape /metrics without a token"
    )
    mllp_allow: list[str] = Field(
        default_factory=list, description="Sender networks MLLP accepts (empty: any)"
    )
    mllp_tls_cert: Path | None = Field(
        None, description="PEM certificate (chain): MLLP speaks only TLS when set with the key"
    )
    mllp_tls_key: Path | None = Field(None, description="PEM private key of mllp_tls_cert")
    mllp_tls_client_ca: Path | None = Field(
        None, description="CA (PEM) that MLLP senders' certificates must chain to (mutual TLS)"
    )
    audit_chain: str | None = Field(None, description="This process's audit chain (host name)")
    retention_days: dict[str, int] = Field(
        default_factory=dict,
        description="Days kept per table (events, otel_traces, otel_logs, dead_letters)",
    )
    export_key_file: Path = Field(
        Path("export-signing-key.pem"),
        description="Ed25519 key signing export manifests (created on first use)",
    )
    exports_dir: Path = Field(Path("exports"), description="Where export bundles are written")
    initial_admin_file: Path = Field(
        Path("initial-admin-password"),
        description="Where the first start writes the generated admin password",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _settings_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and file, with non-None overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
