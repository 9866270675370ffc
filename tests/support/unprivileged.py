"""Running a command without root's power to ignore file permissions (tests of unwritable folders
and files)."""
from __future__ import annotations

import os
import shlex
import shutil


def as_unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` run without the power to ignore file permissions (root has it); skips the calling
    test where that power cannot be dropped."""
    if os.geteuid() != 0:
        return cmd
    capsh = shutil.which("capsh")
    if capsh is None:
        import pytest

        pytest.skip("running as root without capsh: cannot drop the right to ignore file permissions")
    return [capsh, "--drop=cap_dac_override", "--", "-c", shlex.join(cmd)]
