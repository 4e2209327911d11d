"""Dashboards: the Dash console (mounted by ``dashboards.stage``).

What others may use, for tools such as the benchmarks: ``queries``, the console's
read functions over the store (every page reads through it), ``objectives``,
the overview's SLO figures from the alerts stage's rollup, and ``open_transactions``,
the open set those reads keep current (``refresh(store)`` builds it on a new store).
"""

from dashboards import objectives, open_transactions, queries

__all__ = ["objectives", "open_transactions", "queries"]
