"""``python -m tests.support.sharding_driver MODE NAME LOST_AFTER_S ARGS...`` (from the repo root, under
torchrun or with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set): ``python -m cliplit_core ARGS...``
in which the rank that reads the input named NAME fails there. MODE ``raise``: an unexpected
RuntimeError; ``die``: the process kills itself (SIGKILL, no clean-up); ``linger``: no failure,
but rank 0 takes 3 s more to exit after the command returned (as a process tearing down a big
GPU context may), so that another rank surely exits first. LOST_AFTER_S replaces
``sharding.LOST_AFTER_S`` (how long a silent rank is waited for). Test-only: the patch lives here."""
import atexit
import os
import signal
import sys
import time

from cliplit_core import sharding
from cliplit_core.cli import enhance
from cliplit_core.cli.app import main

MODE, NAME = sys.argv[1], sys.argv[2]
sharding.LOST_AFTER_S = float(sys.argv[3])
_read = enhance.read_image_info


def read_image_info(path, *args, **kwargs):
    if os.path.basename(path) == NAME:
        print(f"rank {os.environ.get('RANK')} fails at {NAME} ({MODE})", file=sys.stderr, flush=True)
        if MODE == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure at {NAME}")
    return _read(path, *args, **kwargs)


if MODE == "linger":
    if os.environ.get("RANK") == "0":
        atexit.register(time.sleep, 3)
else:
    enhance.read_image_info = read_image_info
sys.exit(main(sys.argv[4:]))
