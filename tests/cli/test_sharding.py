"""``torchrun -m cliplit_core enhance``: the ranks share the inputs; the files are a single process's."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from cliplit_core.cli.app import main
from cliplit_core.files.images import write_png
from cliplit_core.sharding import Ranks

from tests.support.data import REPO, synthetic_photo


def test_shares_cover_every_input_once():
    items = list(range(7))
    shares = [Ranks(rank=r, world=3).share(items) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


def _torchrun(tmp_path, *args, module="cliplit_core", timeout=600):
    """``torchrun --nproc-per-node 2 -m MODULE ARGS`` on the CPU (gloo)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", module, *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=timeout)


def _photos(folder, count=5):
    folder.mkdir()
    for k in range(count):
        write_png(folder / f"p{k}.png", synthetic_photo(24 + 4 * k, 40, seed=k))
    return folder


def _visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _ranks_exited_with(err, status):
    """Every rank ended with ``status``: none was stopped by the SIGTERM torchrun sends the others
    when the first one exits with a failure (torchrun's own failure report lists each rank's)."""
    assert "terminated" not in err, err
    assert set(re.findall(r"exitcode\s*:\s*(-?\d+)", err)) == {str(status)}, err


@pytest.mark.slow
def test_torchrun_two_cpu_processes_write_the_single_process_files(tmp_path, official_weights_path):
    src = _photos(tmp_path / "in")
    (src / "p9_broken.png").write_bytes(b"not a png")   # the share of one rank ...
    (src / "p1_broken.png").write_bytes(b"not a png")   # ... and of the other (inputs p0 p1 p1_broken p2 ...)
    (src / "v_broken.mp4").write_bytes(b"not a video")
    opts = ["--weights", str(official_weights_path), "--device", "cpu", "--save-light"]
    single = main(["enhance", str(src), "-o", str(tmp_path / "one")] + opts)
    assert single == 1
    # rank 0 lingers at exit, so rank 1 exits first and torchrun sends rank 0 its SIGTERM
    run = _torchrun(tmp_path, "linger", "-", 60, "enhance", src, "-o", tmp_path / "two", *opts,
                    module="tests.support.sharding_driver")
    err = run.stderr
    assert run.returncode == single, err  # the ranks agreed on the single process's status
    _ranks_exited_with(err, 1)
    for name in ("p9_broken.png: cannot read", "p1_broken.png: cannot read", "v_broken.mp4: cannot read video"):
        assert err.count(name) == 1, err  # one line per failed file, as from one process
    assert err.count("enhanced 5 of 8 inputs") == 1 and "(2 processes)" in err
    one = _visible(tmp_path / "one")
    assert one == _visible(tmp_path / "two")
    assert len(one) == 10
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    from cliplit_core.files.outputs import OurFiles

    ours = OurFiles(tmp_path / "two")  # both processes recorded what they wrote (a rerun replaces it)
    assert all(ours.owns(tmp_path / "two" / name) for name in one)


@pytest.mark.parametrize("case", ["no inputs", "bad weights"])
def test_an_error_every_rank_meets_is_said_once_with_the_single_process_status(tmp_path, official_weights_path, case,
                                                                              capsys):
    src = _photos(tmp_path / "in", 2 if case == "bad weights" else 0)
    weights = official_weights_path
    if case == "bad weights":
        weights = tmp_path / "broken.pth"
        weights.write_bytes(b"not a weights file")
    args = ["enhance", src, "-o", tmp_path / "out", "--weights", weights, "--device", "cpu"]
    single = main(list(map(str, args)))
    single_errors = re.findall(r"^error: .*", capsys.readouterr().err, re.M)
    assert single == (1 if case == "no inputs" else 2) and single_errors
    run = _torchrun(tmp_path, *args, timeout=300)
    err = run.stderr
    _ranks_exited_with(err, single)  # every rank ends as one process would (torchrun itself: 1)
    assert re.findall(r"^error: .*", err, re.M) == single_errors  # the same lines, once
    assert "Traceback" not in err.split("failed (exitcode")[0]  # torchrun's own report comes after ours


def test_a_rank_that_raises_lets_the_others_finish_their_shares(tmp_path, official_weights_path):
    src = _photos(tmp_path / "in")  # rank 0: p0 p2 p4, rank 1: p1 p3
    run = _torchrun(tmp_path, "raise", "p1.png", 60, "enhance", src, "-o", tmp_path / "out", "--weights",
                    official_weights_path, "--device", "cpu", module="tests.support.sharding_driver", timeout=300)
    err = run.stderr
    assert run.returncode == 1, err
    _ranks_exited_with(err, 1)
    assert err.count("RuntimeError: injected failure at p1.png") == 1  # the error itself, shown once
    assert "error: 1 of 2 processes stopped on an error" in err and "enhanced 3 of 5 images" in err
    assert _visible(tmp_path / "out") == ["p0.png", "p2.png", "p4.png"]  # the other rank's whole share


def test_a_rank_killed_mid_run_ends_the_run_without_partial_files(tmp_path, official_weights_path):
    src = _photos(tmp_path / "in")
    start = time.monotonic()
    run = _torchrun(tmp_path, "die", "p3.png", 60, "enhance", src, "-o", tmp_path / "out", "--weights",
                    official_weights_path, "--device", "cpu", module="tests.support.sharding_driver", timeout=300)
    assert run.returncode != 0 and "rank 1 fails at p3.png (die)" in run.stderr
    assert time.monotonic() - start < 240  # torchrun stops the survivor; nobody waits for the dead rank
    out = tmp_path / "out"
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and "tmp" in p.name] == []
    for name in _visible(out):  # what was written is complete
        assert Image.open(out / name).size[0] == 40


def test_without_torchrun_a_dead_rank_is_noticed_by_its_silence(tmp_path, official_weights_path):
    """Two processes started by hand (no torchrun agent to stop the survivor): rank 1 is killed at its
    first input; rank 0 enhances its share, then waits for rank 1 only until its heartbeat has
    been silent for LOST_AFTER_S (3 s here), and ends with one line and exit status 1."""
    src = _photos(tmp_path / "in")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHELASTIC", "LOCAL_"))}
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), WORLD_SIZE="2", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tests.support.sharding_driver", "die", "p1.png", "3", "enhance", str(src), "-o",
           str(tmp_path / "out"), "--weights", str(official_weights_path), "--device", "cpu"]
    procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        err0 = procs[0].communicate(timeout=300)[1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[1].returncode == -signal.SIGKILL
    assert procs[0].returncode == 1, err0
    assert "error: process 1 of 2 stopped (no sign of life for 3 s)" in err0
    assert "Traceback" not in err0
    assert _visible(tmp_path / "out") == ["p0.png", "p2.png", "p4.png"]  # rank 0 finished its share


def test_the_trainer_joins_processes_through_the_core():
    from trainer import distributed

    assert distributed.DistInfo is Ranks  # one process-group setup, the core's
    info = distributed.init(None)  # not launched by torchrun: one process, nothing to join
    assert (info.rank, info.world, info.local_rank, info.enabled, info.group_here) == (0, 1, 0, False, False)
    assert info.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    distributed.barrier(info)  # no-ops for one process
    distributed.shutdown(info)
    assert Ranks(rank=1, world=2, local_rank=1).enabled and not Ranks(rank=1, world=2).is_main
