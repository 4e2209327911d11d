"""Records of an HL7, JSON Lines or CSV file (or request body), each with its end offset.

The end offset of a record is where an interrupted import resumes. Formats:
``hl7`` (one message after another, CR/LF/CRLF, FHS/BHS batches, MLLP dumps),
``jsonl`` (one JSON object per line) and ``csv`` (a header row, then one record
per row; quoted fields may span lines).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from collector.hl7.framing import split_hl7_file
from collector.hl7.message import decode
from collector.intake import Intake, Outcome

FORMATS = ("hl7", "jsonl", "csv")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".hl7": "hl7",
    ".er7": "hl7",
    ".txt": "hl7",
    ".mllp": "hl7",
}


@dataclass(frozen=True, slots=True)
class Record:
    end: int  # byte offset just past the record
    kind: str  # hl7 | jsonl | csv
    data: Any  # bytes (hl7, jsonl) or dict (csv)
    raw: bytes = b""  # the record's bytes as read (csv: the row's lines)
    problem: str = ""  # a reason to reject it whatever it holds (a truncated frame)


def detect_format(path: Path, head: bytes | None = None) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt:
        return fmt
    if head is None:
        with path.open("rb") as stream:
            head = stream.read(4096)
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] in (b"{", b"["):
        return "jsonl"
    if start[:1] == b"\x0b" or start[:3] in (b"MSH", b"FHS", b"BHS"):
        return "hl7"
    return "csv"


def records(stream: BinaryIO, fmt: str, start: int = 0, delimiter: str = ",") -> Iterator[Record]:
    if fmt == "hl7":
        for piece in split_hl7_file(stream, start):
            yield Record(piece.end, "hl7", piece.data, piece.data, piece.problem)
    elif fmt == "jsonl":
        yield from _jsonl(stream, start)
    elif fmt == "csv":
        yield from _csv(stream, start, delimiter)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _jsonl(stream: BinaryIO, start: int) -> Iterator[Record]:
    stream.seek(start)
    offset = start
    for line in stream:
        offset += len(line)
        body = line.strip()
        if body:
            yield Record(offset, "jsonl", body, body)


def csv_header(stream: BinaryIO) -> bytes:
    stream.seek(0)
    return stream.readline()


def _csv(stream: BinaryIO, start: int, delimiter: str) -> Iterator[Record]:
    header_line = csv_header(stream)
    header_problem = ""
    try:
        header = next(
            csv.reader([decode(header_line).lstrip("\ufeff").rstrip("\r\n")], delimiter=delimiter),
            [],
        )
    except csv.Error as exc:
        header, header_problem = [], f"the CSV header row is not valid CSV ({exc})"
    header = [h.strip() for h in header]
    position = max(start, len(header_line))
    stream.seek(position)
    consumed: list[bytes] = []

    def lines() -> Iterator[str]:
        for line in stream:
            consumed.append(line)
            yield decode(line)

    reader = csv.reader(lines(), delimiter=delimiter)
    while True:
        problem = header_problem
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            values, problem = [], f"not valid CSV ({exc})"
        raw = b"".join(consumed)
        position += len(raw)
        consumed.clear()
        if problem:
            yield Record(position, "csv", _split_row(raw, header, delimiter), raw, problem)
            continue
        if not any(v.strip() for v in values):
            continue
        row: dict[Any, Any] = dict(zip(header, values, strict=False))
        if len(values) > len(header):
            row[None] = values[len(header) :]
        yield Record(position, "csv", row, raw)


def _split_row(raw: bytes, header: list[str], delimiter: str) -> dict[str, Any]:
    """A row the csv module refused, split naively so PHI columns can still be masked."""
    values = decode(raw).rstrip("\r\n").split(delimiter)
    names = header + [f"column_{i + 1}" for i in range(len(header), len(values))]
    return dict(zip(names, values, strict=False))


def body_records(body: bytes, fmt: str, delimiter: str = ",") -> Iterator[Record]:
    """Records of an HTTP request body (same rules as files)."""
    return records(io.BytesIO(body), fmt, 0, delimiter)


def judge(intake: Intake, record: Record, source: str, dead_letter_source: str) -> Outcome:
    if record.kind == "hl7":
        return intake.hl7(record.data, source, dead_letter_source, record.problem)
    if record.kind == "jsonl":
        return intake.json_line(record.data, source, dead_letter_source)
    return intake.row(dict(record.data), source, dead_letter_source, problem=record.problem)
