"""Helpers shared by the tests (and some benchmarks): paths, fixtures, fakes, image files."""
