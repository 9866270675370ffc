"""The output manifest (.cliplit-outputs.jsonl): damaged lines are skipped with one warning, a
manifest that cannot be read or written stops a run before any work, and a result is recorded
before it is renamed into place, so a result the manifest cannot record is never written."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cliplit_core.cli.app import main
from cliplit_core.files.atomic import write_together
from cliplit_core.files.images import write_png
from cliplit_core.files.outputs import (MANIFEST_NAME, ManifestError, OurFiles, OutputError, plan_outputs,
                                        prepare_output_dir)

from tests.support.data import REPO, synthetic_photo
from tests.support.unprivileged import as_unprivileged

MISSING_WEIGHTS = "/nonexistent/weights.pth"  # a run that got past the checks would fail on these

DAMAGED_LINES = [
    '{"size": 1e999}',
    '{"name": "a.png", "size": 1e999, "mtime_ns": 1}',
    '{"name": "a.png", "size": 10, "mtime_ns": -1e999}',
    '{"name": "a.png", "size": NaN, "mtime_ns": 1}',
    '{"name": "a.png", "size": Infinity, "mtime_ns": 1}',
    '{"name": "a.png", "size": "12", "mtime_ns": 1}',
    '{"name": "a.png", "size": true, "mtime_ns": 1}',
    '{"name": "a.png", "size": -5, "mtime_ns": 1}',
    '{"name": "a.png", "size": 5, "mtime_ns": 99999999999999999999999999}',
    '{"name": 7, "size": 5, "mtime_ns": 1}',
    '{"name": "../a.png", "size": 5, "mtime_ns": 1}',
    '{"name": "", "size": 5, "mtime_ns": 1}',
    '{"name": "a.png", "size": [1], "mtime_ns": {}}',
    '["a.png", 5, 1]',
    '12',
    'null',
    '{"name": "a.png", "si',  # cut short by a crash
    '\x00\xff garbage',
    '[' * 100_000,  # nested too deep for the JSON parser
]


def _manifest_with(folder, lines):
    folder.mkdir(exist_ok=True)
    (folder / MANIFEST_NAME).write_text("".join(line + "\n" for line in lines), errors="surrogateescape")


def _record(folder, name, content=b"ours"):
    """Write folder/name as this program does (recorded in the manifest)."""
    ours = OurFiles(folder)
    write_together([(folder / name, lambda tmp: tmp.write_bytes(content))], record=ours.record)


# --------------------------------------------------------------------------- damaged lines
def test_damaged_lines_are_skipped_and_the_good_ones_kept(tmp_path):
    _record(tmp_path, "good.png")
    good_line = (tmp_path / MANIFEST_NAME).read_text()
    _manifest_with(tmp_path, DAMAGED_LINES + [good_line.strip()])
    ours = OurFiles(tmp_path)
    assert ours.damaged == len(DAMAGED_LINES)
    assert ours.owns(tmp_path / "good.png") and list(ours.entries) == ["good.png"]
    assert ours.warning.count("\n") == 0 and f"skipped {len(DAMAGED_LINES)} damaged lines" in ours.warning
    assert OurFiles(tmp_path).damaged == 0  # the manifest was rewritten without them: warned once


def test_a_record_after_a_line_cut_short_stays_readable(tmp_path):
    ours = OurFiles(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"name": "x.png", "size": 1')  # another run killed mid-line
    write_together([(tmp_path / "a.png", lambda tmp: tmp.write_bytes(b"ours"))], record=ours.record)
    again = OurFiles(tmp_path)
    assert again.owns(tmp_path / "a.png") and again.damaged == 1


@pytest.mark.parametrize("line", ['{"size": 1e999}', '{"name": "a.png", "size": 1e999, "mtime_ns": 1}',
                                  '{"name": "a.png", "size": 3, "mtime_ns": NaN}', "[" * 100_000])
def test_a_damaged_manifest_never_breaks_a_run(tmp_path, capsys, line):
    """Every later run into the folder used to end in an OverflowError traceback. The file the damaged
    line named is the user's now: kept, and the result goes beside it."""
    out = tmp_path / "out"
    _manifest_with(out, [line])
    (out / "a.png").write_bytes(b"the user's a.png")
    src = tmp_path / "a.png"
    write_png(src, synthetic_photo(8, 8))
    assert main(["enhance", str(src), "-o", str(out), "--weights", MISSING_WEIGHTS]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Overflow" not in err
    assert err.count("damaged line") == 1 and MANIFEST_NAME in err
    assert "writing a_2.png instead" in err  # planned beside the user's file ...
    assert "/nonexistent/weights.pth" in err  # ... and the run went on to load the weights
    assert (out / "a.png").read_bytes() == b"the user's a.png"


# --------------------------------------------------------------------------- a manifest that cannot be used
def test_a_folder_at_the_manifests_path_stops_the_run_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    (out / MANIFEST_NAME).mkdir(parents=True)
    src = tmp_path / "a.png"
    write_png(src, synthetic_photo(8, 8))
    assert main(["enhance", str(src), "-o", str(out), "--weights", MISSING_WEIGHTS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / MANIFEST_NAME) in err and "is a folder" in err
    assert "Is a directory" not in err and "weights" not in err  # the real cause, before the weights
    assert sorted(os.listdir(out)) == [MANIFEST_NAME]  # nothing written


@pytest.mark.parametrize("option", ["-o", "--heatmap"])
def test_every_output_folder_checks_its_manifest(tmp_path, option):
    (tmp_path / MANIFEST_NAME).mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        prepare_output_dir(tmp_path, option)
    (tmp_path / MANIFEST_NAME).rmdir()
    (tmp_path / MANIFEST_NAME).symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(OutputError, match="symbolic link"):
        prepare_output_dir(tmp_path, option)


def test_a_read_only_manifest_stops_the_run_before_any_work(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _record(out, "a.png")
    (out / MANIFEST_NAME).chmod(0o444)
    src = tmp_path / "b.png"
    write_png(src, synthetic_photo(8, 8))
    cmd = [sys.executable, "-m", "cliplit_core", "enhance", str(src), "-o", str(out), "--weights", MISSING_WEIGHTS]
    r = subprocess.run(as_unprivileged(cmd), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert str(out / MANIFEST_NAME) in r.stderr and "cannot be read and written" in r.stderr
    assert sorted(os.listdir(out)) == [MANIFEST_NAME, "a.png"]


def test_a_result_the_manifest_cannot_record_is_not_written(tmp_path):
    ours = OurFiles(tmp_path)
    (tmp_path / MANIFEST_NAME).mkdir()  # e.g. replaced while the run was going
    with pytest.raises(ManifestError) as e:
        write_together([(tmp_path / "a.png", lambda tmp: tmp.write_bytes(b"x")),
                        (tmp_path / "a_light.png", lambda tmp: tmp.write_bytes(b"y"))], record=ours.record)
    assert str(tmp_path / MANIFEST_NAME) in str(e.value) and "a.png, a_light.png" in str(e.value)
    assert sorted(os.listdir(tmp_path)) == [MANIFEST_NAME]


def test_the_manifest_breaking_mid_run_stops_it_and_writes_nothing_unrecorded(tmp_path, monkeypatch, capsys):
    """The second image's write finds a folder where the manifest was: that image is not written, the
    run stops with one line naming the manifest (exit 1, as for a full disk)."""
    from cliplit_core.cli import enhance as enhance_files
    from tests.support.data import OFFICIAL_WEIGHTS, require_shared

    weights = require_shared(OFFICIAL_WEIGHTS)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        write_png(src / name, synthetic_photo(8, 8, seed=i))
    monkeypatch.setattr(enhance_files, "enhance_photo",
                        lambda net, pixels, with_light=False, **kw: (pixels, None))
    real = enhance_files.write_content
    calls = []

    def write(tmp, content):
        calls.append(tmp)
        if len(calls) == 2:
            (out / MANIFEST_NAME).unlink()
            (out / MANIFEST_NAME).mkdir()
        real(tmp, content)

    monkeypatch.setattr(enhance_files, "write_content", write)
    rc = main(["enhance", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu", "--jobs", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"cannot record b.png in {out / MANIFEST_NAME}" in err and "stopped" in err
    assert sorted(os.listdir(out)) == [MANIFEST_NAME, "a.png"]


# --------------------------------------------------------------------------- long names
def test_planned_names_fit_the_folders_limit_in_bytes(tmp_path):
    """A 250-byte stem gets side files (and clash numbers) that would pass 255 bytes: the stem is cut
    at a character boundary, the note names the files really written."""
    inputs = [tmp_path / "in" / ("照" * 83 + "a.png"), tmp_path / "in" / ("b" * 246 + ".jpg")]
    out = tmp_path / "out"
    out.mkdir()
    (out / ("b" * 245 + ".png")).write_bytes(b"the user's")  # where b's shortened result would go
    plan, notes = plan_outputs(inputs, out, [".png", "_light.png"])
    for planned in plan:
        for f in planned.files:
            assert len(f.name.encode()) <= 255
            f.name.encode("utf-8")
    assert [f.name for f in plan[1].files] == ["b" * 243 + "_2.png", "b" * 243 + "_2_light.png"]
    assert len(notes) == 2 and "longer than the 255 bytes" in notes[0] and "writing b" in notes[1]
