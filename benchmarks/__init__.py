"""Benchmarks (`make bench`). Each module here exposes ``main() -> dict`` of named measurements.

Speed and memory targets live here, never in timed tests; results print as JSON and are written to
``.run/bench/<name>.json`` so issue notes can quote them.
"""
