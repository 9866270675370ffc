"""The trainer's command line as a user meets it: one-line errors, negative numbers as option
values, ``--plan`` into a closed pipe, and budgets that would not train the enhancement network.

Nothing here loads a model: ``--plan`` only counts files, and the runs that must be refused are
refused before any model loads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.data import REPO
from tests.support.trainer_runs import plan_folders




def _plan(capsys, *args) -> tuple[int, list[dict], str]:
    from trainer.cli import main

    rc = main([str(a) for a in args] + ["--plan"])
    out, err = capsys.readouterr()
    return rc, [json.loads(x) for x in out.strip().splitlines()], err


# --------------------------------------------------------------------------- argparse errors
@pytest.mark.parametrize("argv, says", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--epochs", "many"], "invalid int value: 'many'"),
    (["--recipe", "mine"], "invalid choice: 'mine'"),
    (["--margins", "0.9", "0.2"], "expected 3 arguments"),
])
def test_a_bad_option_is_one_line_with_a_hint(capsys, argv, says):
    from trainer.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert says in err and "(see --help)" in err and "usage:" not in err


# --------------------------------------------------------------------------- negative numbers
def _value_options():
    """(flag, nargs, type) of every trainer option that takes a number."""
    from trainer.cli import build_parser

    for a in build_parser()._actions:
        if a.option_strings and a.type in (int, float):
            yield a.option_strings[0], a.nargs, a.type


@pytest.mark.parametrize("text", ["-1e9", "-1.5e-3", "-.5", "-7", "-inf"])
def test_negative_numbers_are_values_of_every_numeric_option(text):
    from trainer.cli import build_parser

    options = list(_value_options())
    assert len(options) >= 25  # every numeric option of TrainConfig
    for flag, nargs, typ in options:
        if typ is int and not text.lstrip("-").isdigit():
            continue
        values = [text] * (nargs if isinstance(nargs, int) else 1)
        ns = build_parser().parse_args([flag, *values])
        got = getattr(ns, flag[2:].replace("-", "_"))
        assert got == ([typ(text)] * nargs if isinstance(nargs, int) else typ(text)), flag


def test_a_negative_threshold_is_accepted_with_a_space(tmp_path, capsys):
    b, w = plan_folders(tmp_path, 5, 4)
    rc, lines, err = _plan(capsys, "--backlit", b, "--welllit", w, "--thre-train", "-1e9", "--thre-prompt", "-5",
                           "--epochs", "30", "--batch-size", "2", "--prompt-batch-size", "4")
    assert rc == 0, err
    assert (lines[-1]["overrides"]["thre_train"], lines[-1]["overrides"]["thre_prompt"]) == (-1e9, -5.0)


def test_a_negative_value_out_of_range_gets_the_range_error(tmp_path, capsys):
    from trainer.cli import main

    b, w = plan_folders(tmp_path, 5, 4)
    for argv, says in ((["--epochs", "-3"], "--epochs must not be negative"),
                       (["--lr", "-1e-4"], "--lr must not be negative"),
                       (["--margins", "-0.5", "0.2", "0.1"], "--margins must be between 0 and 1")):
        rc = main(["--backlit", str(b), "--welllit", str(w), "--out", str(tmp_path / "o"), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, (argv, err)


# --------------------------------------------------------------------------- --plan into a closed pipe
@pytest.mark.parametrize("what", ["--plan", "--help"])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, what):
    """``--plan | head -1``, ``--help | head -1``: the reader is gone before anything is written."""
    b, w = plan_folders(tmp_path, 30, 30)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "--backlit", str(b), "--welllit", str(w), what,
                             "--epochs", "400", "--batch-size", "2"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader left: every write to stdout fails with EPIPE
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
