"""Simulator figures, and pre-generated traffic for the other benchmarks.

``traffic_file(...)`` returns a JSON Lines file of hops (and one of their
truth) under ``bench-results/traffic/``, generating it once: benchmarks that
replay it measure ingest or correlation, not the generator.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from simulator import (
    DAY,
    EVENTS_PER_SECOND_AT_SCALE_1,
    NS,
    Hop,
    dumps,
    estate_from_config,
    evaluate,
    plan,
    read_hops,
    write_hops,
)
from stitchboard.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench-results" / "traffic"
# A fixed "now" so the files are the same on every machine and every run.
UNTIL = int(dt.datetime(2026, 3, 16, tzinfo=dt.UTC).timestamp()) * NS


def traffic_file(days: int = 3, rate: float = 1.0, seed: int = 1) -> tuple[Path, Path]:
    """(hops file, truth file) of ``days`` of history at ``rate`` events/s, made once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"estate-s{seed}-r{rate:g}-{days}d"
    hops_path, truth_path = stem.with_suffix(".hops.jsonl.gz"), stem.with_suffix(".truth.jsonl")
    if not (hops_path.exists() and truth_path.exists()):
        config = load_config(ROOT / "slas.yaml")
        estate = estate_from_config(config, seed, scale=rate / EVENTS_PER_SECOND_AT_SCALE_1)
        p = plan(estate, UNTIL - days * DAY, UNTIL)
        write_hops(hops_path, (h for h in p.by_sent() if h.sent <= UNTIL))
        truths = evaluate(config, estate.sites, p.opened, p.hops, UNTIL, p.scenario)
        truth_path.write_text("".join(dumps(t) + "\n" for t in truths), encoding="utf-8")
    return hops_path, truth_path


def load_traffic(days: int = 3, rate: float = 1.0, seed: int = 1) -> list[Hop]:
    return list(read_hops(traffic_file(days, rate, seed)[0]))


def run() -> list[str]:
    config = load_config(ROOT / "slas.yaml")
    rate = 1.0
    days = 3
    estate = estate_from_config(config, 1, scale=rate / EVENTS_PER_SECOND_AT_SCALE_1)
    started = time.perf_counter()
    p = plan(estate, UNTIL - days * DAY, UNTIL)
    took = time.perf_counter() - started
    events = sum(h.event_count for h in p.hops)
    simulated = sum(h.event_count for h in p.hops if UNTIL - days * DAY <= h.sent <= UNTIL)
    started = time.perf_counter()
    truths = evaluate(config, estate.sites, p.opened, p.hops, UNTIL, p.scenario)
    truth_took = time.perf_counter() - started
    # In-run reference: serializing the same hops to JSON (the cheapest thing done per hop).
    started = time.perf_counter()
    for hop in p.hops:
        dumps(hop)
    json_took = time.perf_counter() - started
    hops_path, _ = traffic_file()
    return [
        f"generated {events:,} events ({len(p.hops):,} hops, {len(p.opened):,} transactions)"
        f" in {took:.1f} s: {events / took:,.0f} events/s",
        f"reference, JSON-encoding the same hops: {len(p.hops) / json_took:,.0f} hops/s;"
        f" generation is {(len(p.hops) / took) / (len(p.hops) / json_took):.2f}x of it",
        f"{days} days of history at {rate:g} events/s ({simulated:,} events due) generated"
        f" {simulated / took / rate:,.0f}x faster than real time",
        f"ground truth of {len(truths):,} transactions in {truth_took:.1f} s",
        f"pre-generated traffic for other benchmarks: {hops_path.relative_to(ROOT)}",
    ]
