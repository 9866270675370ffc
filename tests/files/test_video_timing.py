"""Every frame keeps its time through decode -> enhance -> encode: variable frame timing, start
offsets and odd time bases survive, constant-rate videos and their audio are unchanged."""
from fractions import Fraction

import pytest

from cliplit_core.engine.options import EnhanceOptions
from cliplit_core.engine.run_context import RunContext
from cliplit_core.files import video
from cliplit_core.files.video_timing import FrameTimes

from tests.support.videos import frame_times, video_timing, write_video

av = pytest.importorskip("av")

VFR_GAPS = (0.05, 0.15)  # what a hostile tester found turned into a uniform 0.1 s
IRREGULAR_GAPS = (0.04, 0.2, 0.033, 0.1, 0.017, 0.3)
CPU = RunContext(device="cpu")


def assert_same_times(src_times, out):
    """Each output frame at its input frame's time, within one tick of the output's time base."""
    assert len(out.times) == len(src_times)
    worst = max(abs(a - b) for a, b in zip(out.times, src_times))
    assert worst <= float(out.tick) + 1e-9, (worst, out.tick, list(zip(src_times, out.times)))


@pytest.mark.parametrize("suffix, encoder, codec, gaps, start", [
    (".mp4", "libx264", "h264", VFR_GAPS, 0.0),
    (".mkv", "libx264", "h264", VFR_GAPS, 0.0),
    (".mov", "libx264", "h264", IRREGULAR_GAPS, 0.0),
    (".mkv", "libx264", "h264", IRREGULAR_GAPS, 0.5),   # a stream that starts late
    (".mkv", "ffv1", "lossless", IRREGULAR_GAPS, 0.0),
    (".mp4", "libx264", "h265", VFR_GAPS, 0.0),
    (".webm", "libvpx-vp9", "h264", IRREGULAR_GAPS, 0.0),  # written as .mp4
])
def test_variable_frame_timing_is_kept(tmp_path, random_net, suffix, encoder, codec, gaps, start):
    src = tmp_path / f"vfr{suffix}"
    times = frame_times(gaps, 13, start)
    write_video(src, times, encoder=encoder)
    before = video_timing(src)
    assert_same_times(times, before)  # the input really is variable-rate
    dst = tmp_path / f"out{video.output_suffix(src, codec)}"
    assert video.enhance_video(random_net, src, dst, run=CPU, codec=codec) == 13
    after = video_timing(dst)
    assert_same_times(before.times, after)
    # the last frame lasts as long as in the input, so the file is as long (Matroska's tick: 1 ms)
    assert after.duration == pytest.approx(before.duration, abs=float(max(after.tick, before.tick)) + 1e-6)


def test_variable_timing_survives_temporal_smoothing_and_keeps_the_audio(tmp_path, random_net):
    src = tmp_path / "talk.mp4"
    times = frame_times(VFR_GAPS, 21)
    write_video(src, times, audio_seconds=2.0)
    before = video_timing(src)
    dst = tmp_path / "out.mp4"
    assert video.enhance_video(random_net, src, dst, options=EnhanceOptions(temporal_smoothing=1.5), run=CPU) == 21
    after = video_timing(dst)
    assert_same_times(before.times, after)
    assert len(after.audio) == len(before.audio) >= 31  # 2 s of 16 kHz in 1024-sample packets
    assert [b for b, _ in after.audio] == [b for b, _ in before.audio]  # copied byte for byte
    assert all(abs(a - b) <= 1 / 16000 for (_, a), (_, b) in zip(after.audio, before.audio))  # at their times


@pytest.mark.parametrize("suffix, rate, time_base", [(".mp4", 12, Fraction(1, 12288)), (".mkv", 25, Fraction(1, 1000)),
                                                     (".mov", Fraction(30000, 1001), Fraction(1001, 30000))])
def test_constant_rate_videos_are_unchanged(tmp_path, random_net, suffix, rate, time_base):
    src = tmp_path / f"cfr{suffix}"
    times = [k / Fraction(rate) for k in range(24)]
    write_video(src, [float(t) for t in times], audio_seconds=2.0, rate=rate, time_base=time_base)
    before = video_timing(src)
    dst = tmp_path / f"out{suffix}"
    assert video.enhance_video(random_net, src, dst, run=CPU) == 24
    after = video_timing(dst)
    assert_same_times(before.times, after)
    assert after.average_rate == before.average_rate == rate
    assert after.duration == pytest.approx(before.duration, abs=1e-3)
    assert [b for b, _ in after.audio] == [b for b, _ in before.audio]


def test_frames_without_or_with_repeated_timestamps_are_kept_in_order():
    times = FrameTimes(Fraction(1, 1000), Fraction(20))
    assert times.frame_ticks == 50
    got = [times.pts(p) for p in (None, None, 200, 200, 150, None, 400)]
    assert got == [0, 50, 200, 201, 202, 252, 400]  # no frame dropped, strictly increasing
    assert FrameTimes(None, Fraction(24)).time_base == Fraction(1, 24)
    assert FrameTimes(None, None).time_base == Fraction(1, 25)
    other = FrameTimes(Fraction(1, 1000), Fraction(25))
    assert other.pts(3, Fraction(1, 25)) == 120  # a frame in another time base is converted
