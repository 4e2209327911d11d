"""The live path (state in a store, a tiny LRU cache) equals one batch pass of the core:
any order, duplicates, replays, batch splits, and components evicted and reloaded."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.engine import correlate
from correlator.live import LiveCorrelator
from correlator.memory_index import MemoryIndex
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from tests.correlator_helpers import DAY, HOUR, MINUTE, discharge_chain, ev, shipped_config
from tests.unit.test_correlator_property import NOW, streams, workflows


def replay(config: SlasConfig, batches: list[list[Event]], cache: int, now: int) -> MemoryIndex:
    index = MemoryIndex()
    live = LiveCorrelator(config, index, cache_hops=cache)
    for batch in batches:
        index.store_events(batch)  # durable before it is correlated, as in the writer
        update = live.correlate(batch, now)
        index.write(update)
        live.commit(update)
    return index


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_live_path_with_eviction_equals_batch(data) -> None:
    config = data.draw(workflows())
    events = data.draw(streams(config))
    expected = {t.id: t for t in correlate(config, events, NOW)}
    replays = data.draw(st.lists(st.sampled_from(events), max_size=10))
    arrival = data.draw(st.permutations(events + replays))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=8)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]
    cache = data.draw(st.sampled_from([0, 1, 3, 1000]))  # 0: every component reloaded
    index = replay(config, batches, cache, NOW)
    assert index.rows == expected
    assert set(index.live) == set(expected)


def test_a_replayed_batch_writes_nothing() -> None:
    config = shipped_config()
    t0 = 1_773_064_800 * 1_000_000_000
    events = discharge_chain(t0, 1) + discharge_chain(t0 + HOUR, 2, batch="B2")
    index = MemoryIndex()
    live = LiveCorrelator(config, index, cache_hops=0)
    index.store_events(events)
    first = live.correlate(events, t0 + DAY)
    index.write(first)
    live.commit(first)
    assert len(first.changes.upserts) == len(correlate(config, events, t0 + DAY)) == 4
    again = live.correlate(events[::-1], t0 + DAY)
    assert again.changes.upserts == () and again.changes.retired == ()
    assert again.changes.fan_in == ()


def test_a_late_event_for_an_evicted_transaction_reloads_it_whole() -> None:
    config = shipped_config()
    t0 = 1_773_064_800 * 1_000_000_000
    chain = discharge_chain(t0, 1)
    journal = [e for e in chain if e.system == "ERP_GL"]
    rest = [e for e in chain if e.system != "ERP_GL"]
    other = ev("EHR_ADT", "ADT^A03", t0 + MINUTE, msg="M2", visit="V2", account="A2")
    index = MemoryIndex()
    live = LiveCorrelator(config, index, cache_hops=1)  # V2 evicts V1
    for batch in (rest, [other], journal):
        index.store_events(batch)
        update = live.correlate(batch, t0 + DAY)
        index.write(update)
        live.commit(update)
    expected = {t.id: t for t in correlate(config, chain + [other], t0 + DAY)}
    assert index.rows == expected
    assert live.loaded_from_store >= 1
    [v1] = [t for t in index.rows.values() if ("visit", "V1") in t.keys]
    assert len(v1.event_ids) == len(chain)
