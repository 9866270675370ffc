"""Benchmarks, each run as ``python -m benchmarks.NAME`` from the repository root; every figure is a
ratio against a baseline measured in the same run (docs/performance.md)."""
