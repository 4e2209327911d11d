"""Traffic files: hops as JSON Lines, written once and replayed by tests and benchmarks."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from simulator.records import Hop, dumps


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def write_hops(path: Path, hops: Iterable[Hop]) -> int:
    n = 0
    with _open(path, "w") as out:
        for hop in hops:
            out.write(dumps(hop) + "\n")
            n += 1
    return n


def read_hops(path: Path) -> Iterator[Hop]:
    with _open(path, "r") as source:
        for line in source:
            if line.strip():
                yield Hop.from_json(json.loads(line))
