"""Video results are the program's own files like image results: listed in the output folder's
manifest, replaced by a rerun, never taken as inputs; a user's file is never touched, and an
interrupted or failed encode leaves nothing under the final name and no temporary file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

from cliplit_core.cli import videos as cli_videos
from cliplit_core.cli.app import main
from cliplit_core.engine.frames import FrameStream
from cliplit_core.engine.run_context import RunContext
from cliplit_core.files import video
from cliplit_core.files.images import write_png
from cliplit_core.files.outputs import OurFiles

from tests.support.data import REPO, synthetic_photo
from tests.support.videos import frame_times, video_timing, write_video

av = pytest.importorskip("av")


def _enhance(weights, *args):
    return main(["enhance", *map(str, args), "--weights", str(weights), "--device", "cpu"])


def _visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".cliplit-outputs.jsonl")


@pytest.fixture
def inputs(tmp_path):
    """tmp_path/in with a variable-rate video, an .avi (written as .mp4) and a photo."""
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "v.mp4", frame_times((0.05, 0.15), 8))
    write_video(src / "w.avi", frame_times((0.04,), 6), encoder="mpeg4", time_base=Fraction(1, 25))
    write_png(src / "p.png", synthetic_photo(24, 32))
    return src


def test_a_rerun_replaces_its_own_video_results_like_its_images(inputs, tmp_path, official_weights_path, capsys):
    out = tmp_path / "out"
    assert _enhance(official_weights_path, inputs, "-o", out) == 0
    assert _visible(out) == ["p.png", "v.mp4", "w.mp4"]
    ours = OurFiles(out)
    assert all(ours.owns(out / n) for n in _visible(out))  # videos are listed like images
    first = {n: (out / n).stat().st_ino for n in _visible(out)}
    capsys.readouterr()
    assert _enhance(official_weights_path, inputs, "-o", out) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "not written by this program" not in err, err
    assert _visible(out) == ["p.png", "v.mp4", "w.mp4"]  # no v_2.mp4: our own results were replaced
    assert all((out / n).stat().st_ino != first[n] for n in first)  # written anew, atomically (renamed)
    assert _hidden(out) == []
    assert len(video_timing(out / "v.mp4").times) == 8


def test_in_place_reruns_do_not_enhance_their_own_video_results(inputs, official_weights_path, capsys):
    assert _enhance(official_weights_path, inputs, "-o", inputs) == 0
    names = ["p.png", "p_enhanced.png", "v.mp4", "v_enhanced.mp4", "w.avi", "w.mp4"]
    assert _visible(inputs) == names
    assert _enhance(official_weights_path, inputs, "-o", inputs) == 0  # v_enhanced.mp4, w.mp4 are ours, not inputs
    assert _visible(inputs) == names
    err = capsys.readouterr().err
    assert err.count("enhanced 3 of 3 inputs") == 2  # our results were not taken as inputs
    assert "_enhanced_enhanced" not in err and "_2" not in err


def test_a_users_video_is_never_replaced(inputs, tmp_path, official_weights_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "v.mp4").write_bytes(b"the user's own film")
    assert _enhance(official_weights_path, inputs, "-o", out) == 0
    assert "v.mp4 would overwrite the existing file" in capsys.readouterr().err
    assert _visible(out) == ["p.png", "v.mp4", "v_2.mp4", "w.mp4"]
    assert _enhance(official_weights_path, inputs, "-o", out) == 0  # v_2.mp4 is ours now: replaced
    assert _visible(out) == ["p.png", "v.mp4", "v_2.mp4", "w.mp4"]
    assert (out / "v.mp4").read_bytes() == b"the user's own film"
    changed = out / "w.mp4"  # our result, changed by the user since: theirs now
    changed.write_bytes(changed.read_bytes() + b"\0")
    keep = changed.read_bytes()
    assert _enhance(official_weights_path, inputs, "-o", out) == 0
    assert changed.read_bytes() == keep and "w_2.mp4" in _visible(out)


def test_an_interrupted_encode_leaves_the_earlier_result_and_no_partial_file(inputs, tmp_path, official_weights_path,
                                                                            monkeypatch, capsys):
    out = tmp_path / "out"
    assert _enhance(official_weights_path, inputs / "v.mp4", "-o", out) == 0
    earlier = (out / "v.mp4").read_bytes()

    class InterruptingBar:  # Ctrl-C after the third frame was encoded
        n, total = 0, None

        def update(self, k):
            self.n += k
            if self.n >= 3:
                raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(cli_videos, "_frame_bar", lambda name: InterruptingBar())
    assert _enhance(official_weights_path, inputs / "v.mp4", "-o", out, "--strength", "0.5") == 130
    assert (out / "v.mp4").read_bytes() == earlier  # nothing of the interrupted encode
    assert _visible(out) == ["v.mp4"] and _hidden(out) == []
    assert OurFiles(out).owns(out / "v.mp4")


def test_a_failed_encode_leaves_nothing(inputs, tmp_path, official_net, monkeypatch):
    real = FrameStream.push
    calls = []

    def failing(self, *a):
        calls.append(1)
        if len(calls) == 4:
            raise av.error.InvalidDataError(1094995529, "invalid data")
        return real(self, *a)

    monkeypatch.setattr(FrameStream, "push", failing)
    with pytest.raises(video.VideoError, match="v.mp4: video failed"):
        video.enhance_video(official_net, inputs / "v.mp4", tmp_path / "o.mp4", run=RunContext(device="cpu"))
    assert os.listdir(tmp_path) == ["in"]


def test_sigterm_during_an_encode_leaves_no_partial_file(tmp_path, official_weights_path):
    src = tmp_path / "long.mkv"
    write_video(src, frame_times((0.04,), 400))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "cliplit_core", "enhance", str(src), "-o", str(out), "--weights",
                             str(official_weights_path), "--device", "cpu"], env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(out.glob(".long.mkv.tmp-*")) if out.exists() else []
        if temps and temps[0].stat().st_size > 0:  # frames are being written
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err
    assert os.listdir(out) == []  # no result, no temporary file (and no manifest line)
