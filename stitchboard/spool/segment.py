"""Spool segment files: a magic header, then framed records, append-only.

The framing is the write-ahead-log record of LevelDB and Kafka: each record
starts with its payload length and a CRC-32 over the rest of the record, so a
reader finds where the valid data ends after a crash. A record that is short
(the file ends inside it), has length 0 (a zero-filled tail the filesystem left
behind) or fails its checksum is *torn*: it and everything after it in that
segment were never acknowledged (the acknowledgement waits for ``fdatasync``
of the whole record), so the reader stops there and keeps every record before it.

Record layout, little-endian::

    u32 length   payload bytes
    u32 crc      CRC-32 of the 12 bytes below and the payload
    i64 time_ns  when the record was appended (for the age of the oldest unloaded record)
    u32 rows     rows the payload holds (for the spool's bounds and health)
    payload
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

MAGIC = b"SBSPOOL1"
FRAME = struct.Struct("<IIqI")
_CHECKED = struct.Struct("<qI")  # the framed fields the checksum covers
SUFFIX = ".seg"


class Position(NamedTuple):
    """A place in the spool: a segment and a byte offset in it (records start there)."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    position: Position
    end: int  # offset just past the record
    time_ns: int
    rows: int
    payload: bytes

    @property
    def size(self) -> int:
        return self.end - self.position.offset


def encode(payload: bytes, time_ns: int, rows: int) -> bytes:
    checked = _CHECKED.pack(time_ns, rows)
    crc = zlib.crc32(payload, zlib.crc32(checked))
    return FRAME.pack(len(payload), crc, time_ns, rows) + payload


def segment_name(segment: int) -> str:
    return f"{segment:020d}{SUFFIX}"


def segment_ids(directory: Path) -> list[int]:
    ids = []
    for path in directory.glob(f"*{SUFFIX}"):
        stem = path.name.removesuffix(SUFFIX)
        if stem.isdigit():
            ids.append(int(stem))
    return sorted(ids)


class Torn(NamedTuple):
    """Where the valid records of a segment end, and why."""

    offset: int
    reason: str


def read_records(
    stream: BinaryIO, segment: int, start: int, stop: int | None, max_rows: int
) -> tuple[list[Record], Torn | None]:
    """Records from ``start`` up to ``stop`` (None: the end of the file), up to ``max_rows``.

    At least one record is returned when there is one, however many rows it holds.
    The second value says where a torn record was found (None when none was).
    """
    records: list[Record] = []
    rows = 0
    offset = start
    stream.seek(offset)
    while stop is None or offset < stop:
        if records and rows >= max_rows:
            break
        head = stream.read(FRAME.size)
        if not head and stop is None:
            break
        if len(head) < FRAME.size:
            return records, Torn(offset, f"short record header ({len(head)} bytes)")
        length, crc, time_ns, count = FRAME.unpack(head)
        if length == 0:
            return records, Torn(offset, "empty record (zero-filled tail)")
        payload = stream.read(length)
        if len(payload) < length:
            return records, Torn(offset, f"record of {length} bytes cut at {len(payload)}")
        if zlib.crc32(payload, zlib.crc32(head[8:])) != crc:
            return records, Torn(offset, "checksum mismatch")
        end = offset + FRAME.size + length
        records.append(Record(Position(segment, offset), end, time_ns, count, payload))
        rows += count
        offset = end
    return records, None


def scan(path: Path, segment: int, start: int) -> Iterator[Record | Torn]:
    """Every valid record of a segment file from ``start``, then the Torn marker if any."""
    with path.open("rb") as stream:
        offset = start
        while True:
            records, torn = read_records(stream, segment, offset, None, 10_000)
            yield from records
            if torn is not None:
                yield torn
                return
            if not records:
                return
            offset = records[-1].end


def check_magic(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(len(MAGIC)) == MAGIC
