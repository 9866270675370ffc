"""Every benchmark still imports as ``benchmarks.NAME`` (how it is run: ``python -m benchmarks.NAME``): they are run by hand (and by tools/gpu_check.sh on a GPU), so a
renamed core function would otherwise surface only on the machine that needed the figure."""
from __future__ import annotations

import importlib

import pytest

from tests.support.data import REPO

BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports(path):
    module = importlib.import_module(f"benchmarks.{path.stem}")  # module level only: each runs under __main__
    assert callable(getattr(module, "main", None)) or path.stem in {"bench_env", "procmem", "authors_formulation",
                                                                    "preview_extra_set"}
