"""How far each imported file got: the byte offset after its last durable record.

A checkpoint row travels in the same ``Batch`` as the events it covers and is
inserted after them (the writer inserts its own tables first), so a checkpoint
never runs ahead of the data. Re-importing a file resumes at its checkpoint;
anything re-sent before it collapses on deterministic event ids anyway.

A file is known by a hash of its first 64 KiB, so a log that grows is resumed,
and a file renamed or copied elsewhere is still the same file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stitchboard.store import Store
from stitchboard.store.ddl import Table
from stitchboard.store.schema import Migration
from stitchboard.writer import Batch

MESSAGE_IMPORTS = Table(
    name="message_imports",
    columns="""\
    file_id String,
    name String,
    offset UInt64,
    records UInt64,
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)""",
    # The furthest offset wins: checkpoints of one import only ever move forward.
    engine="ReplacingMergeTree(offset)",
    tail="ORDER BY file_id",
    shard_key="cityHash64(file_id)",
)
COLUMNS = ("file_id", "name", "offset", "records")

MIGRATIONS = (Migration(20, "message import checkpoints", lambda ctx: ctx.create(MESSAGE_IMPORTS)),)

_HEAD = 64 * 1024


def file_id(path: Path) -> str:
    with path.open("rb") as stream:
        head = stream.read(_HEAD)
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def add_checkpoint(batch: Batch, file_id: str, name: str, offset: int, records: int) -> None:
    batch.add("message_imports", COLUMNS, [(file_id, name, offset, records)])


def resume_offset(store: Store, file_id: str) -> int:
    value = store.scalar(
        f"SELECT max(offset) FROM {store.table('message_imports')} WHERE file_id = {{id:String}}",
        {"id": file_id},
    )
    return int(value or 0)
