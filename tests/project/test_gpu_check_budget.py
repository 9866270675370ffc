"""tools/gpu_check.sh runs its steps within one time budget: a step never runs past it, and a step
that starts with too little time left is skipped (the device command is never killed mid-step)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.sh"


def _step_function() -> str:
    text = SCRIPT.read_text()
    budget = re.search(r"^BUDGET=.*$", text, re.M).group(0)
    body = re.search(r"^step\(\) \{.*?^\}$", text, re.M | re.S).group(0)
    return budget + "\n" + body


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_steps_share_one_budget(tmp_path):
    script = ("set -u\nOUT=" + str(tmp_path) + "\nT0=$SECONDS\n" + _step_function() + "\n"
              "step 60 first sleep 1\n"   # its limit is cut to the 17 s budget
              "step 60 second true\n"     # to what is left of it
              "sleep 2\n"
              "step 60 third echo never\n")  # under 15 s left: skipped
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "GPU_CHECK_BUDGET": "17"})
    out = r.stdout
    assert "=== first: start at 0 s, limit 17 s" in out and "=== first: rc 0" in out
    limit = int(re.search(r"=== second: start at \d+ s, limit (\d+) s", out).group(1))
    assert 15 <= limit <= 16 and "=== second: rc 0" in out
    assert "=== third: skipped" in out and "never" not in out
