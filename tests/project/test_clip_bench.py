"""Smoke test of benchmarks/bench_clip_scoring.py on tiny configs (keeps the script from rotting)."""
from __future__ import annotations

import json

import pytest
from benchmarks import bench_clip_scoring as bench
from tests.support.clip_fixtures import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_benchmark_runs_and_both_formulations_agree(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(["--tiny", "--device", "cpu", "--batch", "3", "--size", "48", "--repeats", "1",
                       "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["case"] for r in results] == ["score", "L_clip", "L_identity"]
    for r in results:
        assert r["loop_ms"] > 0 and r["batched_ms"] > 0 and r["speedup"] > 0
        assert r["max_rel_diff"] < 1e-4  # fp32 on the CPU: the loop and the batch compute the same thing
    assert "ratio" in capsys.readouterr().out
