"""benchmarks/bench_folder_throughput.py --stages on the CPU, two tiny photos: each stage is timed
in a child of its own and the figures land in the JSON that gpu_verdict.py --folder judges."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.support.data import REPO


def test_stages_are_timed_and_judged(tmp_path, shared_data, official_weights_path):
    report = tmp_path / "folder.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_folder_throughput", "--photos", "2",
           "--megapixels", "0.05", "--modes", "fast", "--stages", "--source", str(shared_data / "backlit"),
           "--weights", str(official_weights_path), "--json", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| fast | " in done.stdout and "end to end / bound" in done.stdout
    stage = json.loads(report.read_text())["stages"]["fast"]
    for key in ("io_s", "network_s", "end_to_end_s", "bound_s", "ratio", "io_one_encoder_s"):
        assert 0 < stage[key] < 120, (key, stage[key])
    assert stage["bound_s"] == max(stage["io_s"], stage["network_s"])
    assert stage["ratio"] == stage["end_to_end_s"] / stage["bound_s"]
    assert stage["met"] is (stage["ratio"] <= 1.15)
    assert stage["jobs"] >= 1 and stage["device"] == "cpu" and stage["photos"] == 2
    assert stage["encoders_gain"] == stage["io_one_encoder_s"] / stage["io_s"]
    assert stage["encoders"] == min(stage["jobs"] - 1, 4)
    assert stage["same_files"] is True  # the in-process end-to-end run wrote the whole-process run's files
