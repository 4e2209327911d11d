"""Dashboards: the Dash console (mounted by ``dashboards.stage``).

What others may use: ``queries``, the console's read functions over the store
(every page reads through it), for tools such as the benchmarks.
"""

from dashboards import queries

__all__ = ["queries"]
