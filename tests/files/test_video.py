"""Video files: frames streamed through the model, audio / timing / rotation kept, streamed
temporal smoothing equal to the node's batch smoothing."""
import numpy as np
import pytest
import torch

from cliplit_core.engine import preview
from cliplit_core.engine.options import EnhanceOptions
from cliplit_core.engine.run_context import RunContext
from cliplit_core.files import video
from cliplit_core.cli.app import main
from cliplit_core.files.images import to_float32, to_uint8
from cliplit_core.engine.temporal import scene_segments

from tests.support.data import synthetic_photo

av = pytest.importorskip("av")

W, H, FPS, FRAMES, CUT = 64, 48, 12, 24, 14


def clip_frames() -> np.ndarray:
    """[FRAMES, H, W, 3] uint8: a backlit scene with exposure flicker, a cut to another scene at CUT."""
    a, b = synthetic_photo(H, W, seed=1), synthetic_photo(H, W, seed=2)[::-1] ** 2
    rng = np.random.default_rng(0)
    return np.stack([to_uint8(np.clip((a if t < CUT else b) * (1 + 0.08 * rng.standard_normal()), 0, 1))
                     for t in range(FRAMES)])


def write_clip(path, frames=None, rotation=90, with_video=True):
    """An H.264 mp4 with an AAC audio track (and a display rotation)."""
    with av.open(str(path), "w") as out:
        if with_video:
            vs = out.add_stream("libx264", rate=FPS)
            vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
            vs.options = {"crf": "10"}
            if rotation:
                vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
        if with_video:
            for t, img in enumerate(frames):
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts = t
                out.mux(vs.encode(f))
        for k in range(FRAMES * 16000 // FPS // 1024):
            samples = (0.3 * np.sin(np.arange(k * 1024, (k + 1) * 1024) / 7.0)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k * 1024
            out.mux(aus.encode(af))
        if with_video:
            out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def read_clip(path):
    """(frames as rgb24 [N, H, W, 3], average rate, first frame's rotation, audio packet bytes)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, rotation = [], None
        for f in c.decode(v):
            rotation = f.rotation if rotation is None else rotation
            frames.append(f.to_ndarray(format="rgb24"))
        rate = v.average_rate
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    return np.stack(frames), rate, rotation, audio


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_clip(path, clip_frames())
    return path


@pytest.mark.slow
def test_video_keeps_frames_rate_rotation_and_audio(clip, tmp_path, official_weights_path, capsys):
    assert main(["enhance", str(clip.parent), "-o", str(tmp_path / "out"), "--weights", str(official_weights_path),
                 "--device", "cpu"]) == 0
    assert "clip.mp4: 24 frames" in capsys.readouterr().err
    src_frames, src_rate, src_rotation, src_audio = read_clip(clip)
    frames, rate, rotation, audio = read_clip(tmp_path / "out" / "clip.mp4")
    assert frames.shape == src_frames.shape == (FRAMES, H, W, 3)
    assert rate == src_rate == FPS and rotation == src_rotation == 90
    assert audio == src_audio and len(audio) >= 31  # 2 s of 16 kHz in 1024-sample packets  # every audio packet, byte for byte
    assert frames[:CUT, :, :, :].mean() > src_frames[:CUT].mean() + 5  # the dark subject got brighter


@pytest.mark.slow
def test_a_rerun_replaces_its_own_video_and_keeps_the_users(clip, tmp_path, official_weights_path, capsys):
    """Videos are recorded in the output manifest like photos (they were not: a rerun wrote clip_2.mp4)."""
    out = tmp_path / "out"
    args = ["enhance", str(clip), "-o", str(out), "--weights", str(official_weights_path), "--device", "cpu"]
    assert main(args) == 0 and main(args) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["clip.mp4"]
    (out / "clip.mp4").write_bytes(b"the user's edit")
    assert main(args) == 0
    assert (out / "clip.mp4").read_bytes() == b"the user's edit"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["clip.mp4", "clip_2.mp4"]
    assert "writing clip_2.mp4 instead" in capsys.readouterr().err


def test_streamed_smoothing_gives_the_node_batch_light_maps(clip, tmp_path, official_weights_path, monkeypatch):
    from nodes import enhance as node
    from nodes.loader import load_cliplit_model

    from cliplit_core.engine import frames

    lights = []
    real_compose = frames.compose

    def recording_compose(color, alpha, light, strength):
        lights.append(light.clone())
        return real_compose(color, alpha, light, strength)

    monkeypatch.setattr(frames, "compose", recording_compose)
    assert main(["enhance", str(clip), "-o", str(tmp_path), "--weights", str(official_weights_path), "--device",
                 "cpu", "--temporal-smoothing", "2", "--video-codec", "lossless"]) == 0
    src_frames = read_clip(clip)[0]
    frames = read_clip(tmp_path / "clip.mkv")[0]

    batch = torch.from_numpy(to_float32(src_frames))
    assert scene_segments(batch.movedim(-1, 1)) == [(0, CUT), (CUT, FRAMES)]  # smoothing stops at the cut
    want, want_light = node.enhance_batch(load_cliplit_model(str(official_weights_path)), batch,
                                          temporal_smoothing=2.0)
    got_light = torch.cat(lights)[:, 0].clamp(0, 1)
    assert got_light.shape == want_light.shape == (FRAMES, H, W)
    assert (got_light - want_light).abs().max().item() < 1e-6
    assert np.abs(frames.astype(int) - to_uint8(want.numpy()).astype(int)).max() <= 1  # lossless output


def test_bad_videos_and_options_get_clear_errors(tmp_path, official_weights_path, capsys):
    write_clip(tmp_path / "sound.mp4", with_video=False)
    (tmp_path / "broken.mov").write_bytes(b"not a video at all")
    rc = main(["enhance", str(tmp_path), "-o", str(tmp_path / "out"), "--weights", str(official_weights_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "sound.mp4: no video stream" in err and "broken.mov: cannot read video" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing partial
    for bad in (["--crf", "60"], ["--crf", "10", "--video-codec", "lossless"], ["--temporal-smoothing", "-1"]):
        assert main(["enhance", str(tmp_path), "-o", str(tmp_path / "out")] + bad) == 2
        assert "error: --" in capsys.readouterr().err


def test_fast_videos_take_each_frames_light_map_from_the_preview(tmp_path, official_net, monkeypatch):
    frames = np.repeat(np.repeat(clip_frames()[:3], 6, axis=1), 6, axis=2)  # 288 x 384: big enough to preview
    src = tmp_path / "c.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 6 * W, 6 * H, "yuv420p"
        for t, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = t
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    calls = []
    real = preview.preview_light

    def counted(net, rgb, **kw):
        calls.append((tuple(rgb.shape), net))
        return real(net, rgb, **kw)

    monkeypatch.setattr(preview, "preview_light", counted)
    fast, cpu = EnhanceOptions(mode="preview"), RunContext(device="cpu")
    assert video.enhance_video(official_net, src, tmp_path / "f.mp4", options=fast, run=cpu) == 3
    assert [c[0] for c in calls] == [(1, 3, 6 * H, 6 * W)] * 3
    assert calls[0][1] is calls[2][1]  # the weights are converted once per video, not per frame
    assert video.enhance_video(official_net, src, tmp_path / "e.mp4", run=cpu) == 3
    assert len(calls) == 3  # the exact run does not use it

    def decoded(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])

    fast, exact = decoded(tmp_path / "f.mp4"), decoded(tmp_path / "e.mp4")
    assert fast.shape == exact.shape == (3, 6 * H, 6 * W, 3)
    assert np.abs(fast.astype(int) - exact.astype(int)).mean() < 3  # a close approximation
