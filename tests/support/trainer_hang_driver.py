"""``python -m tests.support.trainer_hang_driver STEP ARGS...`` (from the repo root): ``python -m trainer ARGS...`` that stops
making progress right after logging global step STEP (so a test can SIGKILL it at a known
point). Test-only: the patch lives here, not in the trainer."""
import sys
import time

from trainer import logging_utils
from trainer.cli import main

HANG_AT = int(sys.argv[1])
_write = logging_utils.JsonlLog.write


def write(self, record):
    _write(self, record)
    if "loss" in record and record.get("step") == HANG_AT:
        self.flush()
        print(f"HANGING at step {HANG_AT}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


logging_utils.JsonlLog.write = write
sys.exit(main(sys.argv[2:]))
