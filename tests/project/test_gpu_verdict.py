"""benchmarks/gpu_verdict.py judges the GPU benchmark's JSON (synthetic rows: no GPU needed)."""
from __future__ import annotations

import json

from benchmarks import gpu_verdict as gv

SIZE = "12.0 MP (4000x3000)"


def row(method, mps, within=100.0, dl=1e-6, section="throughput", size=SIZE, peak=None, first=None):
    r = {"method": method, "size": size, "mps": mps, "fid": {"dL": dl, "dE": 1e-3, "within": within},
         "section": section}
    if peak is not None:
        r.update(peak_gib=peak, peak_first_gib=first if first is not None else peak)
    return r


def rows(fast_mps=400.0, fast_within=99.95, peak16=0.6, first16=0.7, dl32=3e-6):
    return [
        row(gv.BASELINE, 33.0),
        row("ours fp32 whole NCHW strict (TF32 off)", 60.0),
        row("ours fp16 whole CL pad 8/8, cudnn.benchmark on", fast_mps, within=fast_within),
        row("ours bf16 whole CL", 900.0, within=98.0),  # fastest, but outside the bar
        row("light map only: ours fp16 CL whole, eager", 5000.0),  # not a whole enhancement
        row("ours DEFAULT (enhance(dtype=None, tile=None))", 90.0),
        row("ours fp32 tiled 1024 strict", 50.0, dl=dl32, section="memory", size="100.0 MP", peak=1.1),
        row("ours fp16 tiled 1024", 200.0, within=99.97, section="memory", size="100.0 MP", peak=peak16, first=first16),
        row("authors fp32 whole (image moved to GPU)", 30.0, section="memory", size="12.0 MP", peak=24.9),
    ]


def test_settings_are_read_from_variant_names():
    s = gv.settings_of("ours fp16 whole CL pad 8/8, cudnn.benchmark on")
    assert s == {"dtype": "float16", "channels_last": True, "pad_in": 8, "pad_out": 8, "fold_padding": True,
                 "cudnn_benchmark": True, "tile": None, "default": False}
    s = gv.settings_of("ours fp32 tiled 2048 (TF32)")
    assert s["dtype"] == "float32" and s["tile"] == 2048 and not s["channels_last"]
    assert gv.settings_of("ours fp16 whole CL pad_out 8")["pad_out"] == 8
    assert not gv.settings_of("ours fp16 whole CL, F.pad reflect (no folding)")["fold_padding"]


def test_both_goals_met_and_the_settings_printed(tmp_path, capsys):
    p = tmp_path / "gpu.json"
    p.write_text(json.dumps(rows()))
    assert gv.main([str(p)]) == 0
    out = capsys.readouterr().out
    assert "12.12x" in out and "MET" in out and "NOT MET" not in out  # 400 / 33, the bf16 row ignored
    assert 'AUTO_CUDA_DTYPE = "float16"' in out and "'channels_last': True, 'pad_in': 8" in out
    assert "CUDNN_BENCHMARK = True" in out


def test_each_goal_can_fail(tmp_path, capsys):
    p = tmp_path / "gpu.json"
    p.write_text(json.dumps(rows(fast_mps=300.0)))  # 9.1x
    assert gv.main([str(p)]) == 1
    assert "NOT MET (goal 10x)" in capsys.readouterr().out
    p.write_text(json.dumps(rows(first16=1.6)))  # first-call peak over the limit
    assert gv.main([str(p)]) == 1
    assert "peak 1.60 GiB" in capsys.readouterr().out
    p.write_text(json.dumps(rows(dl32=2e-5)))  # float32 tiles must stay within 1e-5
    assert gv.main([str(p)]) == 1
    p.write_text("{not json")
    assert gv.main([str(p)]) == 2


def folder_report(io=2.0, network=4.0, end_to_end=4.4, **extra):
    stage = {"io_s": io, "network_s": network, "end_to_end_s": end_to_end, "jobs": 16, "device": "cuda", **extra}
    return {"variants": [], "stages": {"fast": stage}}


def judge_folder(tmp_path, capsys, report, *argv):
    p = tmp_path / "folder.json"
    p.write_text(json.dumps(report))
    status = gv.main([*argv, "--folder", str(p)])
    return status, capsys.readouterr().out


def test_folder_goal_met_against_the_slower_stage(tmp_path, capsys):
    status, out = judge_folder(tmp_path, capsys, folder_report(io=2.0, network=4.0, end_to_end=4.4))
    assert status == 0
    assert "1.10x the slower stage (network)" in out and "MET" in out and "NOT MET" not in out
    status, out = judge_folder(tmp_path, capsys, folder_report(io=5.0, network=1.0, end_to_end=5.7))
    assert status == 0 and "1.14x the slower stage (I/O)" in out  # the bound is I/O here
    status, out = judge_folder(tmp_path, capsys, folder_report(io=2.0, network=4.0, end_to_end=4.6))
    assert status == 0 and "1.15x" in out  # at the goal: met (4.6 / 4 is 1.15 exactly in floats)


def test_folder_goal_not_met_judged_from_the_seconds(tmp_path, capsys):
    # 4.8 / 4.0 = 1.20x; the benchmark's own "met" is ignored, and 4.8 / 2.0 (the faster stage) would be worse
    status, out = judge_folder(tmp_path, capsys, folder_report(end_to_end=4.8, met=True, ratio=1.0))
    assert status == 1 and "1.20x the slower stage (network)" in out and "NOT MET (goal <= 1.15x)" in out
    # the sum of the stages (6.0) is not the bound: 5.0 / 4.0 = 1.25x
    status, out = judge_folder(tmp_path, capsys, folder_report(end_to_end=5.0))
    assert status == 1 and "1.25x" in out


def test_folder_goal_without_stage_figures(tmp_path, capsys):
    status, out = judge_folder(tmp_path, capsys, [{"mode": "fast", "variant": "pipelined", "seconds": 3.0}])
    assert status == 1 and "no stage figures (run bench_folder_throughput.py with --stages)" in out
    status, out = judge_folder(tmp_path, capsys, folder_report(network=0.0))
    assert status == 1 and "fast: no positive network_s -> NOT MET" in out


def test_folder_goal_counts_in_the_exit_status_with_the_gpu_table(tmp_path, capsys):
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps(rows()))  # both GPU goals met
    assert judge_folder(tmp_path, capsys, folder_report(), str(gpu))[0] == 0
    status, out = judge_folder(tmp_path, capsys, folder_report(end_to_end=6.0), str(gpu))
    assert status == 1 and "12.12x" in out and "NOT MET (goal <= 1.15x)" in out
    (tmp_path / "bad.json").write_text("{not json")
    assert gv.main([str(gpu), "--folder", str(tmp_path / "bad.json")]) == 2
