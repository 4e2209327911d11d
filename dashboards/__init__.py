"""Dashboards: the Dash console (mounted by ``dashboards.stage``).

What others may use, for tools such as the benchmarks: ``queries``, the console's
read functions over the store (every page reads through it), and ``objectives``,
the overview's SLO figures from the alerts stage's rollup.
"""

from dashboards import objectives, queries

__all__ = ["objectives", "queries"]
