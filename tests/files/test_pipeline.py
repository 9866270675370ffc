"""The pipelined folder run: reads ahead and an ordered writer overlap the network, with a bounded
number of images in flight, and the same files, messages and exit status as one image after another."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from cliplit_core.cli import enhance as enhance_files
from cliplit_core.cli.app import main
from cliplit_core.files.images import read_image, write_png
from cliplit_core.files import pipeline
from cliplit_core.files.pipeline import run_in_order

from tests.support.data import synthetic_photo


# --------------------------------------------------------------------------- the pipeline itself
class Flight:
    """Counts items read but not yet through ``work`` and results not yet finished."""

    def __init__(self):
        self.lock = threading.Lock()
        self.read_waiting = self.max_read_waiting = 0
        self.results_waiting = self.max_results_waiting = 0
        self.finished: list[int] = []
        self.threads: set[str] = set()

    def read(self, i):
        time.sleep(0.03 if i % 3 == 0 else 0.0)  # some reads take longer: they end out of order
        with self.lock:
            self.read_waiting += 1
            self.max_read_waiting = max(self.max_read_waiting, self.read_waiting)
        return i * 10

    def work(self, i, value):
        assert value == i * 10
        time.sleep(0.02)
        with self.lock:
            self.read_waiting -= 1
            self.results_waiting += 1
            self.max_results_waiting = max(self.max_results_waiting, self.results_waiting)
        return i

    encoding = max_encoding = 0

    def encode(self, i, result):
        assert result == i
        with self.lock:
            self.encoding += 1
            self.max_encoding = max(self.max_encoding, self.encoding)
        time.sleep(0.06)  # slower than the network: with one encoder at a time, results would pile up
        self.threads.add(threading.current_thread().name.split("_")[0])
        with self.lock:
            self.encoding -= 1
        return ("encoded", i)

    def finish(self, i, result):
        assert result in (i, ("encoded", i))
        time.sleep(0.03)  # the writer is the slowest stage: results would pile up without a bound
        self.threads.add(threading.current_thread().name)
        with self.lock:
            self.results_waiting -= 1
        self.finished.append(i)


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_items_are_finished_in_order_with_a_bounded_number_in_flight(jobs):
    f = Flight()
    assert run_in_order(range(20), f.read, f.work, f.finish, jobs=jobs) is True
    assert f.finished == list(range(20))
    assert f.max_read_waiting <= jobs  # the one being worked on and jobs - 1 read ahead, never the folder
    assert f.max_results_waiting <= 3  # one being written, one queued, one waiting to be queued
    if jobs == 1:
        assert f.max_read_waiting == 1 and f.threads == {threading.current_thread().name}
    else:
        assert f.max_read_waiting >= 2  # the reads do run ahead
        assert f.threads == {"cliplit-writer"}


@pytest.mark.parametrize("jobs", [1, 3, 4, 8])
def test_an_encode_stage_runs_in_parallel_and_its_results_are_finished_in_order(jobs):
    f = Flight()
    t0 = time.perf_counter()
    assert run_in_order(range(20), f.read, f.work, f.finish, jobs=jobs, encode=f.encode) is True
    elapsed = time.perf_counter() - t0
    assert f.finished == list(range(20))
    assert f.max_read_waiting <= jobs
    encoders = min(jobs - 1, pipeline.MAX_ENCODERS)
    assert f.max_results_waiting <= max(encoders + 2, 3)  # encoding / queued for the writer, in it, handed over
    if jobs == 1:
        assert f.threads == {threading.current_thread().name}
    else:
        assert f.threads == {"cliplit-writer", "cliplit-encode"}
        # 20 encodes of 0.06 s one after another take 1.2 s; the encoders share them
        assert elapsed < 20 * 0.06 * 0.8
        assert f.max_encoding <= encoders


@pytest.mark.parametrize("encodes", [lambda i, r: False, lambda i, r: i % 3 == 0])
def test_results_that_skip_the_encode_stage_wait_one_at_a_time(encodes):
    """Results that go to the writer as they are (too big to encode in memory) take the whole queue:
    no more of them wait than without an encode stage, however many encoders there are."""
    f = Flight()
    assert run_in_order(range(20), f.read, f.work, f.finish, jobs=8, encode=f.encode, encodes=encodes) is True
    assert f.finished == list(range(20))
    skipped_only = encodes(1, 1) is False and encodes(0, 0) is False
    assert f.max_results_waiting <= (3 if skipped_only else pipeline.MAX_ENCODERS + 2)


def test_an_interrupt_while_the_pipeline_starts_leaves_no_thread(monkeypatch):
    """Ctrl-C while the first reads are being submitted (before the main loop): the writer thread,
    already started, still ends."""
    class InterruptedPool(pipeline.ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args, **kwargs):
            if self._thread_name_prefix == "cliplit-read":
                InterruptedPool.submitted += 1
                if InterruptedPool.submitted == 2:
                    raise KeyboardInterrupt
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", InterruptedPool)
    with pytest.raises(KeyboardInterrupt):
        run_in_order(range(10), lambda i: i, lambda i, v: v, lambda i, r: None, jobs=4)
    deadline = time.monotonic() + 2
    while any(t.name.startswith("cliplit-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("cliplit-")]


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_finish_that_returns_false_stops_the_run(jobs):
    finished, worked = [], []

    def finish(i, r):
        finished.append(i)
        return i != 2

    assert run_in_order(range(10), lambda i: i, lambda i, v: worked.append(i) or v, finish, jobs=jobs) is False
    assert finished == [0, 1, 2]
    assert len(worked) <= 3 + (0 if jobs == 1 else 3)  # a few may have been worked on, none finished


@pytest.mark.parametrize("jobs", [1, 3])
@pytest.mark.parametrize("stage", ["read", "work", "encode", "finish"])
def test_an_error_in_any_stage_is_raised_in_the_caller_after_the_writer_stopped(jobs, stage):
    finished = []

    def step(name, i):
        if name == stage and i == 3:
            raise KeyboardInterrupt
        return i

    with pytest.raises(KeyboardInterrupt):
        run_in_order(range(10), lambda i: step("read", i), lambda i, v: step("work", v),
                     lambda i, r: finished.append(step("finish", r)), jobs=jobs,
                     encode=lambda i, r: step("encode", r))
    if jobs == 1 or stage in ("encode", "finish"):
        assert finished == [0, 1, 2]
    else:  # an interrupt stops the run soon: results not yet written are dropped, in order
        assert finished == list(range(len(finished))) and len(finished) <= 3
    assert not any(t.name.startswith(("cliplit-writer", "cliplit-encode")) for t in threading.enumerate())


@pytest.mark.parametrize("items", [1, 3])  # the caller waits in close (1 item) or in hand_over (3)
def test_an_interrupt_while_the_caller_waits_for_the_writer_is_raised_after_its_clean_up(items):
    """SIGINT sent during a write reaches the calling thread while it waits for the writer: it is
    raised there only after the writer let go of that item, and the writer has ended. (A plain
    Thread.join would return early on Python 3.11: python/cpython#90882.)"""
    events = []

    def finish(i, r):
        if i == 0:
            time.sleep(0.2)  # the caller is waiting by now
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # e.g. removing a half-written file
            events.append("cleaned up 0")
        else:
            events.append(f"finished {i}")

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_in_order(range(items), lambda i: i, lambda i, v: v, finish, jobs=2)
            time.sleep(5)  # not reached: the interrupt is raised by run_in_order
        assert events == ["cleaned up 0"]  # the queued item 1 was dropped, not finished
    finally:
        signal.signal(signal.SIGINT, old)
    assert not any(t.name == "cliplit-writer" for t in threading.enumerate())


# --------------------------------------------------------------------------- the enhance command
def _run(weights, *args):
    return main(["enhance", *map(str, args), "--weights", str(weights), "--device", "cpu"])


def _messages(err: str) -> list[str]:
    """stderr without the progress bar's lines."""
    return [ln.strip() for ln in err.replace("\r", "\n").splitlines()
            if ln.strip().startswith(("error:", "warning:", "enhanced"))]


def _folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for k, size in enumerate([(20, 28), (33, 17), (24, 24)]):
        write_png(src / f"p{k}.png", synthetic_photo(*size, seed=k))
    Image.fromarray((synthetic_photo(18, 22, seed=5) * 255).astype(np.uint8)).save(src / "p1b.jpg", quality=90)
    (src / "p1c_broken.png").write_bytes(b"not a png")  # in the middle of the folder
    rgba = synthetic_photo(16, 16, channels=4, seed=6)
    write_png(src / "p3_alpha.png", rgba)
    return src


@pytest.mark.slow
def test_jobs_1_and_3_write_the_same_bytes_with_the_same_messages_and_status(tmp_path, official_weights_path,
                                                                             capsys):
    src = _folder(tmp_path)
    runs = {}
    for jobs in (1, 3):
        out = tmp_path / f"out{jobs}"
        out.mkdir()
        (out / "p2.png").write_bytes(b"the user's own p2.png")  # kept: p2's result goes to p2_2.png
        assert _run(official_weights_path, src, "-o", out, "--save-light", "--jobs", jobs) == 1
        first = [m.replace(str(out), "OUT") for m in _messages(capsys.readouterr().err)]
        # a rerun replaces its own results: the same names, the same bytes
        assert _run(official_weights_path, src, "-o", out, "--save-light", "--jobs", jobs) == 1
        assert [m.replace(str(out), "OUT") for m in _messages(capsys.readouterr().err)] == first
        runs[jobs] = ({p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}, first)
    (one, msgs1), (three, msgs3) = runs[1], runs[3]
    assert msgs1 == msgs3
    assert any("p1c_broken.png: cannot read" in m for m in msgs1)
    assert "enhanced 5 of 6 images" in msgs1[-1] and "1 inputs failed" in msgs1[-1]
    assert sorted(one) == sorted(three) == ["p0.png", "p0_light.png", "p1.png", "p1_light.png", "p1b.png",
                                            "p1b_light.png", "p2.png", "p2_2.png", "p2_2_light.png",
                                            "p3_alpha.png", "p3_alpha_light.png"]
    for name in one:
        assert one[name] == three[name], name


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["png", "jpg", "tiff"])
def test_results_are_encoded_in_the_encode_threads_to_the_bytes_the_writer_would_write(
        tmp_path, official_weights_path, monkeypatch, fmt):
    """With --jobs above 1 the results are compressed in memory in the encode threads; results over
    ENCODE_IN_MEMORY_MAX_PIXELS are encoded by the writer into their file. Both give the same bytes."""
    src = _folder(tmp_path)
    real, threads = enhance_files.encode_image, []

    def encode_image(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(enhance_files, "encode_image", encode_image)
    files = {}
    for limit in (enhance_files.ENCODE_IN_MEMORY_MAX_PIXELS, 0):
        monkeypatch.setattr(enhance_files, "ENCODE_IN_MEMORY_MAX_PIXELS", limit)
        out = tmp_path / f"out{limit}"
        assert _run(official_weights_path, src, "-o", out, "--save-light", "--jobs", 3, "--format", fmt) == 1
        files[limit] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    in_memory, streamed = files.values()
    assert len(in_memory) == 10 and in_memory == streamed
    assert len(threads) == 10 and all(t.startswith("cliplit-encode") for t in threads)  # none when streamed


def test_messages_come_in_input_order_when_reads_end_out_of_order(tmp_path, official_weights_path, monkeypatch,
                                                                  capsys):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(6):
        if k in (0, 1, 3, 5):
            (src / f"b{k}.png").write_bytes(b"broken %d" % k)
        else:
            write_png(src / f"b{k}.png", synthetic_photo(12, 12, seed=k))
    real = enhance_files.read_image_info
    ends = []

    def slow_first(path, **kw):  # b0 is read while b1 is, and ends after it
        time.sleep(0.5 if path.name == "b0.png" else 0.0)
        try:
            return real(path, **kw)
        finally:
            ends.append(path.name)

    monkeypatch.setattr(enhance_files, "read_image_info", slow_first)
    assert _run(official_weights_path, src, "-o", tmp_path / "o", "--jobs", 3) == 1
    msgs = _messages(capsys.readouterr().err)
    assert ends.index("b1.png") < ends.index("b0.png")  # the reads did end out of order ...
    cannot = "cannot read image (not a PNG, JPEG, WEBP, BMP, TIFF, GIF file) -- skipped"
    assert msgs == [f"error: {src / name}: {cannot}" for name in ("b0.png", "b1.png", "b3.png", "b5.png")] + [
        f"enhanced 2 of 6 images into {tmp_path / 'o'}; 4 inputs failed"]  # ... the messages did not


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", "nan", "99999"])
def test_bad_jobs_is_a_one_line_error(tmp_path, value, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    rc = main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", "/nonexistent.pth",
               f"--jobs={value}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "argument --jobs: must be an integer from 1 to 1024" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["-1", "10", "4.5", "fast"])
def test_bad_png_compression_is_a_one_line_error(tmp_path, value, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    rc = main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", "/nonexistent.pth",
               f"--png-compression={value}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "argument --png-compression: must be auto or an integer from 0 to 9" in err


@pytest.mark.slow
@pytest.mark.parametrize("bits", ["8", "16"])
def test_png_compression_changes_the_size_not_the_pixels(tmp_path, official_weights_path, bits):
    src = tmp_path / "a.png"
    write_png(src, synthetic_photo(48, 64, seed=3))
    sizes, pixels = {}, {}
    for level in (0, 4, 9, "auto"):
        out = tmp_path / f"l{level}"
        assert _run(official_weights_path, src, "-o", out, "--png-compression", level, "--bits", bits) == 0
        sizes[level] = (out / "a.png").stat().st_size
        pixels[level] = read_image(out / "a.png")
    assert sizes[0] > sizes[4] >= sizes[9]
    assert sizes[0] >= 48 * (1 + 64 * 3 * int(bits) // 8)  # level 0 stores the scanlines uncompressed
    assert all(np.array_equal(pixels[0], p) for p in pixels.values())
    assert sizes["auto"] < sizes[0]
