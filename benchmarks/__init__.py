"""Benchmarks: load generation, the in-process limit, the floor server, comparisons and the published suite."""
