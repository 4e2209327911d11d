"""The correlator's batch pass: every stored event into transactions, grouped in ClickHouse.

``routing`` turns slas.yaml step matches into SQL; ``components`` groups one
workflow's events into transactions by min-label propagation over chain-key
values, attaches fan-in and unexpected hops, and derives the transaction ids;
``rebuild`` streams the groups back into the pure ``summarize`` and writes them.
"""

from correlator.batch.rebuild import RebuildReport, rebuild

__all__ = ["RebuildReport", "rebuild"]
