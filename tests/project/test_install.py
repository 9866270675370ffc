"""``pip install .`` gives working commands from any folder: ``cliplit``, ``cliplit-train``,
``python -m cliplit_core`` and ``python -m trainer`` (no dependency is downloaded: the test venv
sees this interpreter's packages)."""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import venv

import pytest

from pathlib import Path

from tests.support.data import REPO

PACKAGE_FILES = ("pyproject.toml", "README.md", "cliplit_core", "trainer")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the project installed from a copy of its packaging files."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, open_clip, ... and pip itself) come from this interpreter
    (Path(purelib) / "_outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", str(src)], capture_output=True, text=True, cwd=tmp)
    assert run.returncode == 0, run.stderr[-2000:]
    work = tmp / "elsewhere"
    work.mkdir()
    return env_dir / "bin", work




@pytest.mark.parametrize("command, usage", [
    (["cliplit", "--help"], "{enhance,convert,score}"),
    (["python", "-m", "cliplit_core", "enhance", "--help"], "--fast"),
    (["cliplit-train", "--help"], "--backlit"),
    (["python", "-m", "trainer", "--help"], "--backlit"),
])
def test_commands_work_from_any_folder(installed, command, usage):
    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(bin_dir / command[0]), *command[1:]], capture_output=True, text=True, cwd=work,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert usage in run.stdout
