"""``torchrun -m cliplit_core enhance``: the ranks share the inputs; the files are a single process's."""
import os
import subprocess
import sys

import numpy as np
import torch

from cliplit_core.cli.app import main
from cliplit_core.files.images import write_png
from cliplit_core.sharding import Ranks

from tests.support.data import REPO, synthetic_photo


def test_shares_cover_every_input_once():
    items = list(range(7))
    shares = [Ranks(rank=r, world=3).share(items) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


def test_torchrun_two_cpu_processes_write_the_single_process_files(tmp_path, official_weights_path):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(5):
        write_png(src / f"p{k}.png", synthetic_photo(24 + 4 * k, 40, seed=k))
    (src / "p9_broken.png").write_bytes(b"not a png")
    opts = ["--weights", str(official_weights_path), "--device", "cpu", "--save-light"]
    assert main(["enhance", str(src), "-o", str(tmp_path / "one")] + opts) == 1

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "cliplit_core", "enhance", str(src), "-o", str(tmp_path / "two")] + opts,
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    err = run.stderr
    assert run.returncode != 0, err  # one input failed, so the run (every rank) fails, like one process
    assert err.count("p9_broken.png: cannot read") == 1  # the broken file was one rank's, read once
    assert err.count("enhanced 5 of 6 images") == 1 and "(2 processes)" in err
    one = sorted(p.name for p in (tmp_path / "one").iterdir() if not p.name.startswith("."))
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir() if not p.name.startswith("."))
    assert len(one) == 10
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    from cliplit_core.files.outputs import OurFiles

    ours = OurFiles(tmp_path / "two")  # both processes recorded what they wrote (a rerun replaces it)
    assert all(ours.owns(tmp_path / "two" / name) for name in one)


def test_the_trainer_joins_processes_through_the_core():
    from trainer import distributed

    assert distributed.DistInfo is Ranks  # one process-group setup, the core's
    info = distributed.init(None)  # not launched by torchrun: one process, nothing to join
    assert (info.rank, info.world, info.local_rank, info.enabled, info.group_here) == (0, 1, 0, False, False)
    assert info.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    distributed.barrier(info)  # no-ops for one process
    distributed.shutdown(info)
    assert Ranks(rank=1, world=2, local_rank=1).enabled and not Ranks(rank=1, world=2).is_main
