"""Benchmarks run by ``make bench``: figures printed beside in-run references."""

__all__: list[str] = []  # a tool: nothing here is for other packages
