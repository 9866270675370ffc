"""``convert`` follows the rules of every output: never a user's file (``--force`` to replace one),
never a folder, atomic, recorded, with the mode of any new file, one-line errors with
``enhance``'s exit statuses (2 nothing could be done, 1 the write failed)."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest
import torch

from cliplit_core.cli.app import main
from cliplit_core.files.atomic import JOURNAL_PREFIX, TEMP_TAG
from cliplit_core.files.outputs import MANIFEST_NAME, OurFiles
from cliplit_core.light.network import CLIPLITNet
from cliplit_core.weights.checkpoint import read_weights

from tests.support.data import REPO
from tests.support.unprivileged import as_unprivileged


@pytest.fixture
def pth(tmp_path):
    """An authors'-format .pth (a DataParallel state dict of a random network)."""
    torch.manual_seed(0)
    path = tmp_path / "model.pth"
    torch.save({f"module.{k}": v for k, v in CLIPLITNet().state_dict().items()}, path)
    return path


def _convert(*args):
    return main(["convert", *map(str, args)])


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if TEMP_TAG in p.name or p.name.startswith(JOURNAL_PREFIX)]


def test_an_existing_file_it_did_not_write_is_kept_unless_forced(tmp_path, pth, capsys):
    dst = tmp_path / "out.safetensors"
    dst.write_bytes(b"the user's file")
    assert _convert(pth, dst) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and was not written by this program" in err and "--force" in err
    assert dst.read_bytes() == b"the user's file"
    assert _convert(pth, dst, "--force") == 0
    assert read_weights(dst).enhancer is not None and OurFiles(tmp_path).owns(dst)


def test_its_own_result_is_replaced_and_an_edited_one_kept(tmp_path, pth, capsys):
    dst = tmp_path / "sub" / "out.safetensors"  # the folder is created
    assert _convert(pth, dst) == 0
    assert _convert(pth, dst, "--padding", "zero") == 0  # ours: replaced without --force
    assert read_weights(dst).padding == "zero"
    with open(dst, "ab") as f:
        f.write(b"an edit")
    capsys.readouterr()
    assert _convert(pth, dst) == 2 and "not written by this program" in capsys.readouterr().err
    assert dst.read_bytes().endswith(b"an edit")


@pytest.mark.parametrize("kind", ["folder", "link to a file"])
def test_a_destination_that_is_no_plain_file_of_ours_is_a_one_line_error(tmp_path, pth, capsys, kind):
    dst = tmp_path / "out.safetensors"
    target = tmp_path / "elsewhere.bin"
    if kind == "folder":
        dst.mkdir()
        message = "is an existing folder, not a file"
    else:
        target.write_bytes(b"the user's")
        dst.symlink_to(target)
        message = "not written by this program"
    assert _convert(pth, dst) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err and "IsADirectoryError" not in err
    assert dst.is_dir() if kind == "folder" else target.read_bytes() == b"the user's"


def test_the_source_is_never_the_destination(tmp_path, pth, capsys):
    before = pth.read_bytes()
    assert _convert(pth, pth, "--force") == 2
    assert "refusing to overwrite the source file" in capsys.readouterr().err
    assert pth.read_bytes() == before


def test_a_failed_write_leaves_nothing_and_exits_1_as_enhance_does(tmp_path, pth, monkeypatch, capsys):
    dst = tmp_path / "out.safetensors"
    dst.write_bytes(b"the user's")

    def full_disk(fd):  # a full disk shows when the file is flushed
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    assert _convert(pth, dst, "--force") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {dst}: No space left on device" in err
    assert dst.read_bytes() == b"the user's" and _leftovers(tmp_path) == []


def test_a_name_too_long_for_the_folder_is_a_one_line_error(tmp_path, pth, capsys):
    assert _convert(pth, tmp_path / ("w" * 250 + ".safetensors")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "262 bytes long, more than the 255" in err


def test_a_long_name_that_fits_is_written(tmp_path, pth):
    dst = tmp_path / ("照" * 80 + ".safetensors")  # 252 bytes
    assert _convert(pth, dst) == 0 and read_weights(dst).enhancer is not None
    assert _leftovers(tmp_path) == []


def test_an_unusable_manifest_in_the_destination_folder_stops_it_before_writing(tmp_path, pth, capsys):
    (tmp_path / MANIFEST_NAME).mkdir()
    dst = tmp_path / "out.safetensors"
    assert _convert(pth, dst) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and MANIFEST_NAME in err and not dst.exists()


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_safetensors_get_the_mode_of_any_new_file(tmp_path, pth, umask):
    """They were written 0600 (safetensors' own private temporary file), images 0644."""
    dst = tmp_path / "out.safetensors"
    r = subprocess.run([sys.executable, "-c", f"import os, sys; os.umask({umask}); from cliplit_core.cli.app "
                        f"import main; sys.exit(main(sys.argv[1:]))", "convert", str(pth), str(dst)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(dst.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_the_trainers_safetensors_get_the_mode_of_any_new_file(tmp_path, umask):
    from cliplit_core.clip.prompts import PromptPair

    pair = PromptPair(torch.zeros(2, 8, 16), prompt_length=4, clip_model="test", clip_pretrained="none")
    old = os.umask(umask)
    try:
        pair.save(tmp_path / "cliplit.safetensors", enhancer=CLIPLITNet().state_dict())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cliplit.safetensors").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_a_destination_folder_it_cannot_write_is_named_before_any_work(tmp_path, pth):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        cmd = [sys.executable, "-m", "cliplit_core", "convert", str(pth), str(locked / "out.safetensors")]
        r = subprocess.run(as_unprivileged(cmd), cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot write into the folder" in r.stderr, r.stderr
