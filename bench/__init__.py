"""Benchmarks run by ``make bench``: figures printed beside in-run references."""
