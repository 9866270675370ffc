"""What the command line writes: never a user's file, never a partial file, never its own output
as an input; bad output folders and devices are one-line errors before the weights are loaded."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cliplit_core.cli.app import main
from cliplit_core.files.atomic import JOURNAL_PREFIX, TEMP_TAG
from cliplit_core.files.images import write_png

from tests.support.data import REPO, synthetic_photo
from tests.support.unprivileged import as_unprivileged

MISSING_WEIGHTS = "/nonexistent/weights.pth"  # a run that got past the checks would fail on these


def _photo(path, seed=0, size=(12, 16)):
    arr = synthetic_photo(*size, seed=seed)
    if path.suffix == ".jpg":
        Image.fromarray((arr * 255).astype(np.uint8)).save(path, quality=95)
    else:
        write_png(path, arr)
    return path


def _in_and_out(tmp_path, *names):
    """A folder tmp_path/in with a photo under each name (seeds 0, 1, ...) and the path of a
    folder tmp_path/out (not created)."""
    src = tmp_path / "in"
    src.mkdir()
    for seed, name in enumerate(names):
        _photo(src / name, seed=seed)
    return src, tmp_path / "out"


def _snapshot(folder):
    """name -> bytes of every file in a folder (hidden ones included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _enhance(weights, *args):
    return main(["enhance", *map(str, args), "--weights", str(weights), "--device", "cpu"])


# --------------------------------------------------------------------------- the plan reserves every file
def test_save_light_in_place_never_replaces_the_users_light_file(tmp_path, official_weights_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    _photo(d / "b.jpg")
    _photo(d / "b_light.png", seed=1)  # the user's own file, named like our side file
    before = _snapshot(d)
    assert _enhance(official_weights_path, d, "-o", d, "--save-light") == 0
    after = _snapshot(d)
    assert {k: after[k] for k in before} == before
    assert _visible(d) == ["b.jpg", "b_enhanced.png", "b_enhanced_light.png", "b_light.png",
                           "b_light_enhanced.png", "b_light_enhanced_light.png"]
    assert Image.open(d / "b_enhanced_light.png").mode == "L"          # b's light map
    assert Image.open(d / "b_light_enhanced.png").mode == "RGB"        # the user's file, enhanced
    err = capsys.readouterr().err
    assert "writing b_enhanced.png, b_enhanced_light.png instead" in err


def test_save_light_side_files_and_results_never_collide(tmp_path, official_weights_path, capsys):
    src, out = _in_and_out(tmp_path, "a.png", "a_light.png")
    assert _enhance(official_weights_path, src, "-o", out, "--save-light") == 0
    assert _visible(out) == ["a.png", "a_light.png", "a_light_2.png", "a_light_2_light.png"]
    assert Image.open(out / "a_light.png").mode == "L"     # a's light map ...
    assert Image.open(out / "a_light_2.png").mode == "RGB"  # ... and the enhanced a_light, both kept
    assert "a_light.png would overwrite the result of" in capsys.readouterr().err


def test_existing_user_files_in_the_output_folder_are_kept_and_reruns_replace_only_our_files(
        tmp_path, official_weights_path, capsys):
    src, out = _in_and_out(tmp_path, "a.png")
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own a.png")
    assert _enhance(official_weights_path, src, "-o", out) == 0
    assert (out / "a.png").read_bytes() == b"the user's own a.png"
    assert "the existing file" in capsys.readouterr().err and _visible(out) == ["a.png", "a_2.png"]
    first = (out / "a_2.png").read_bytes()
    # a second run replaces its own result (same name), a third after the user edited it does not
    assert _enhance(official_weights_path, src, "-o", out) == 0
    assert _visible(out) == ["a.png", "a_2.png"] and (out / "a_2.png").read_bytes() == first
    (out / "a_2.png").write_bytes(b"edited by the user")
    assert _enhance(official_weights_path, src, "-o", out) == 0
    assert (out / "a_2.png").read_bytes() == b"edited by the user" and _visible(out) == ["a.png", "a_2.png", "a_3.png"]


@pytest.mark.slow
def test_reruns_into_the_input_folder_do_not_snowball_and_warnings_name_the_real_file(
        tmp_path, official_weights_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    _photo(d / "a.png")
    _photo(d / "b.png", seed=2)
    _photo(d / "b_enhanced.png", seed=3)  # the user's file
    for _ in range(2):
        assert _enhance(official_weights_path, d, "-o", d) == 0
        err = capsys.readouterr().err
        assert _visible(d) == ["a.png", "a_enhanced.png", "b.png", "b_enhanced.png", "b_enhanced_2.png",
                               "b_enhanced_enhanced.png"]
        assert "enhanced 3 of 3" in err  # its own results are not inputs the second time
    # the clash warning names the file really written
    assert "b.png: b.png would overwrite the input" in err and "writing b_enhanced_2.png instead" in err


# --------------------------------------------------------------------------- interrupted and failed writes
def test_leftover_temp_files_are_not_inputs(tmp_path, official_weights_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    _photo(d / "a.png")
    good = (d / "a.png").read_bytes()
    (d / ".b.png.tmp-4242.png").write_bytes(good[: len(good) // 2])  # what a killed run leaves
    (d / "._a.png").write_bytes(b"macOS resource fork")
    assert _enhance(official_weights_path, d, "-o", tmp_path / "o") == 0
    assert "enhanced 1 of 1" in capsys.readouterr().err


KILLED_MID_WRITE = """
import os, signal, sys
from cliplit_core.cli import enhance as enhance_files
from cliplit_core.cli.app import main
from cliplit_core.files.atomic import JOURNAL_PREFIX, TEMP_TAG

def write(path, content):
    path.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n half a file")
    os.kill(os.getpid(), signal.SIGKILL)

enhance_files.write_content = write
main(sys.argv[1:])
"""


def test_a_run_killed_mid_write_leaves_only_a_hidden_temp_file_that_the_next_run_removes(
        tmp_path, official_weights_path, capsys):
    src, out = _in_and_out(tmp_path, "a.png")
    r = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, "enhance", str(src), "-o", str(out), "--weights",
                        str(official_weights_path), "--device", "cpu"], cwd=REPO, capture_output=True, timeout=300)
    assert r.returncode == -signal.SIGKILL
    left = sorted(p.name for p in out.iterdir())  # no partial a.png: its temporary file and the run's journal
    assert len(left) == 2 and left[0].startswith(".a.png" + TEMP_TAG) and left[1].startswith(JOURNAL_PREFIX)
    (out / ".draft.tmp-99999.txt").write_text("the user's")  # looks like a temporary file, is not ours
    assert _enhance(official_weights_path, src, "-o", out) == 0
    assert "enhanced 1 of 1" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".cliplit-outputs.jsonl", ".draft.tmp-99999.txt", "a.png"]


def _failing_save(monkeypatch, fail_on, exc):
    """Make the folder run's file writer write half a file, then fail, on its ``fail_on``-th call."""
    from cliplit_core.cli import enhance as enhance_files

    calls = {"n": 0}
    real = enhance_files.write_content

    def write(path, content):
        calls["n"] += 1
        if calls["n"] == fail_on:
            path.write_bytes(b"\x89PNG\r\n\x1a\n half a file")
            if callable(exc):
                exc()
            raise exc
        return real(path, content)

    monkeypatch.setattr(enhance_files, "write_content", write)
    return calls


def test_disk_full_mid_run_stops_and_leaves_nothing_partial(tmp_path, official_weights_path, monkeypatch, capsys):
    src, out = _in_and_out(tmp_path, "a.png", "b.png", "c.png")
    # second image: its result is written, its light map hits a full disk -> neither is kept
    _failing_save(monkeypatch, 4, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    rc = _enhance(official_weights_path, src, "-o", out, "--save-light")
    err = capsys.readouterr().err
    assert rc == 1
    assert "cannot write" in err and "No space left on device" in err and "stopped" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [".cliplit-outputs.jsonl", "a.png", "a_light.png"]
    assert Image.open(out / "a.png").size == (16, 12)


def _fast_network(monkeypatch):
    """For tests about files only: the network is replaced by a quick stand-in."""
    from cliplit_core.cli import enhance as enhance_files
    from cliplit_core.files.images import to_float32

    def stand_in(net, pixels, *, with_light=False, **kw):
        x = to_float32(pixels)
        return x.copy(), (np.full(x.shape[:2], 0.5, np.float32) if with_light else None)

    monkeypatch.setattr(enhance_files, "enhance_photo", stand_in)


@pytest.mark.parametrize("fmt, shape, limit", [("jpg", (2, 66000), "65500"), ("jpg", (65501, 2), "65500"),
                                               ("webp", (2, 16384), "16383"), ("webp", (16400, 3), "16383")])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_image_its_format_cannot_hold_is_refused_before_any_work_and_the_run_goes_on(
        tmp_path, official_weights_path, monkeypatch, capfd, fmt, shape, limit, jobs):
    """A JPEG cannot be over 65,500 pixels a side, a WebP over 16,383: such an input is refused when the
    outputs are planned, with one line naming the limit (no stray libjpeg line, no ValueError traceback),
    before the network sees it; the others are still written."""
    from cliplit_core.cli import enhance as enhance_files

    _fast_network(monkeypatch)
    seen = []
    stand_in = enhance_files.enhance_photo
    monkeypatch.setattr(enhance_files, "enhance_photo", lambda net, pixels, **kw: seen.append(pixels.shape)
                        or stand_in(net, pixels, **kw))
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, size in (("a.png", (12, 16)), ("b_big.png", shape), ("c.png", (12, 16))):
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(src / name)
    rc = _enhance(official_weights_path, src, "-o", out, "--format", fmt, "--jobs", jobs)
    captured = capfd.readouterr()
    err = captured.err
    assert rc == 1 and "Traceback" not in err and captured.out == ""
    lines = err.splitlines()
    refusal = [line for line in lines if "b_big.png" in line]
    assert len(refusal) == 1 and limit in refusal[0] and "choose another --format" in refusal[0]
    assert lines.index(refusal[0]) == 0  # first, before any work
    assert "enhanced 2 of 3" in err and "Maximum supported" not in err and "JPEG" not in err.replace(
        "than JPEG allows", "")
    assert seen == [(12, 16, 3), (12, 16, 3)]
    assert _visible(out) == [f"a.{fmt}", f"c.{fmt}"]
    assert not any(TEMP_TAG in p.name or p.name.startswith(JOURNAL_PREFIX) for p in out.iterdir())


def test_a_result_too_big_for_its_format_is_refused_by_the_writer_too(tmp_path, capfd):
    """The Python API refuses before the encoder: one OSError naming the limit, nothing on stderr."""
    from cliplit_core.files.images import write_image

    for name, shape in (("x.jpg", (2, 65501)), ("x.webp", (16384, 2))):
        with pytest.raises(OSError) as e:
            write_image(tmp_path / name, np.zeros((*shape, 3), np.float32))
        assert "allows" in e.value.strerror
    assert capfd.readouterr().err == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stem", ["a" * 246, "照" * 82, "é" * 123])  # 246 bytes: 250 with ".png"
def test_long_names_are_written_and_side_files_fit_the_name_limit(tmp_path, official_weights_path, monkeypatch,
                                                                  capsys, stem):
    """A 250-byte name could not be written (its temporary name passed 255 bytes); with --save-light
    the side file would pass 255 too: the pair is shortened together, with a note."""
    _fast_network(monkeypatch)
    src = tmp_path / "in"
    src.mkdir()
    _photo(src / f"{stem}.png")
    assert _enhance(official_weights_path, src, "-o", tmp_path / "o1") == 0
    assert _visible(tmp_path / "o1") == [f"{stem}.png"]
    assert _enhance(official_weights_path, src, "-o", tmp_path / "o2", "--save-light") == 0
    names = _visible(tmp_path / "o2")
    assert len(names) == 2 and all(len(n.encode()) <= 255 for n in names)
    short = names[0][:-len(".png")]
    assert names == [f"{short}.png", f"{short}_light.png"] and stem.startswith(short)
    err = capsys.readouterr().err
    assert "longer than the 255 bytes a file name may have here" in err and "Traceback" not in err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB tmpfs (needs the right to mount, e.g. root in a container); skipped elsewhere."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (the injected-ENOSPC test covers the logic)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_really_full_disk_stops_the_run_with_complete_files_only(tmp_path, tiny_disk, official_weights_path,
                                                                   monkeypatch, capsys):
    _fast_network(monkeypatch)
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # noise does not compress: about 12 KiB per PNG
        write_png(src / f"n{i:02d}.png", rng.random((64, 64, 3)).astype(np.float32))
    rc = _enhance(official_weights_path, src, "-o", tiny_disk)
    err = capsys.readouterr().err
    assert rc == 1 and "No space left on device" in err and "stopped" in err and "Traceback" not in err
    written = _visible(tiny_disk)
    assert 0 < len(written) < 12
    assert not any(TEMP_TAG in p.name or p.name.startswith(JOURNAL_PREFIX) for p in tiny_disk.iterdir())
    for name in written:  # every file there is complete
        assert np.asarray(Image.open(tiny_disk / name)).shape == (64, 64, 3)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_interrupt_during_a_write_leaves_no_file(tmp_path, official_weights_path, monkeypatch, capsys, how):
    src, out = _in_and_out(tmp_path, "a.png")
    if how == "sigterm":
        _failing_save(monkeypatch, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    else:
        _failing_save(monkeypatch, 1, KeyboardInterrupt())
    handler = signal.getsignal(signal.SIGTERM)
    rc = _enhance(official_weights_path, src, "-o", out)
    assert rc == (143 if how == "sigterm" else 130)
    assert "Traceback" not in capsys.readouterr().err
    assert list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == handler  # ours is only there during a run


# --------------------------------------------------------------------------- bad outputs and devices
@pytest.mark.parametrize("command", ["enhance", "score"])
def test_output_option_naming_a_file_is_a_one_line_error(tmp_path, command, capsys):
    _photo(tmp_path / "a.png")
    target = tmp_path / "results.png"
    target.write_bytes(b"keep me")
    args = (["enhance", str(tmp_path / "a.png"), "-o", str(target), "--weights", MISSING_WEIGHTS] if command == "enhance"
            else ["score", str(tmp_path / "a.png"), "--heatmap", str(target), "--model", MISSING_WEIGHTS])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.png: is an existing file, not a folder" in err
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("device, message", [("foo", "'foo' is not a device name"),
                                             ("cuda:99", "CUDA"), ("mps", "not available")])
@pytest.mark.parametrize("command", ["enhance", "score"])
def test_bad_or_missing_device_is_a_one_line_error_before_the_weights(tmp_path, device, message, command, capsys,
                                                                    monkeypatch):
    if device == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    _photo(tmp_path / "a.png")
    args = (["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", MISSING_WEIGHTS]
            if command == "enhance" else ["score", str(tmp_path / "a.png"), "--model", MISSING_WEIGHTS])
    assert main([*args, "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["enhance", "score"])
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_unwritable_output_folder_is_named_before_any_work(tmp_path, command, where):
    _photo(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    target = locked if where == "folder" else locked / "new"
    locked.chmod(0o555)
    try:
        if command == "enhance":
            cmd = [sys.executable, "-m", "cliplit_core", "enhance", str(tmp_path / "a.png"), "-o", str(target),
                   "--weights", MISSING_WEIGHTS]
        else:
            cmd = [sys.executable, "-m", "cliplit_core", "score", str(tmp_path / "a.png"), "--heatmap", str(target),
                   "--model", MISSING_WEIGHTS]
        r = subprocess.run(as_unprivileged(cmd), cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert str(target) in r.stderr and "Permission denied" in r.stderr
    assert list(locked.iterdir()) == []
