"""Which ``slas.yaml`` was in force when: every version the server loaded, kept whole.

On each start the server records the file's SHA-256 and content when it differs
from the last version recorded, and audits the load, so an export can include
the configuration under which its verdicts were computed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from stitchboard.store.client import Store
from stitchboard.store.ddl import Table

CONFIG_VERSIONS = Table(
    name="config_versions",
    columns="""\
    sha256 String,
    loaded_at DateTime64(6, 'UTC'),
    path String,
    content String CODEC(ZSTD(3))""",
    engine="MergeTree",
    tail="ORDER BY loaded_at",
)


@dataclass(frozen=True)
class ConfigVersion:
    sha256: str
    loaded_at: dt.datetime
    content: bytes


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def record_config(store: Store, path: Path, now: dt.datetime | None = None) -> tuple[str, bool]:
    """Record the file if it is not the latest version; returns (sha256, recorded now)."""
    content = path.read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    latest = store.scalar(
        f"SELECT sha256 FROM {store.table('config_versions')} ORDER BY loaded_at DESC LIMIT 1"
    )
    if latest == sha:
        return sha, False
    store.insert(
        "config_versions",
        ["sha256", "loaded_at", "path", "content"],
        [[sha, now or dt.datetime.now(dt.UTC), str(path), content.decode("utf-8", "replace")]],
    )
    return sha, True


def versions_in_force(store: Store, since: dt.datetime, until: dt.datetime) -> list[ConfigVersion]:
    """The version in force at ``since`` and every version loaded before ``until``."""
    table = store.table("config_versions")
    rows = store.rows(
        f"SELECT sha256, loaded_at, content FROM {table}"
        " WHERE loaded_at < {until:DateTime64(6, 'UTC')} AND loaded_at >= coalesce("
        f" (SELECT max(loaded_at) FROM {table} WHERE loaded_at <= {{since:DateTime64(6, 'UTC')}}),"
        " toDateTime64(0, 6, 'UTC')) ORDER BY loaded_at",
        {"since": since, "until": until},
    )
    return [ConfigVersion(s, _utc(t), c.encode()) for s, t, c in rows]
