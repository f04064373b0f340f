"""Benchmarks: load generation, the in-process limit, the floor server and the full goal suite."""
