"""cliplit_core/command_line.py: the parser both command lines use (``cliplit`` and ``python -m
trainer``): one-line errors with a hint, negative numbers taken as option values."""
from __future__ import annotations

import pytest

from cliplit_core.cli.app import main as cliplit_main
from cliplit_core.command_line import OneLineParser


def test_negative_numbers_are_values_and_options_still_options():
    p = OneLineParser(prog="t")
    p.add_argument("--x", type=float)
    p.add_argument("--n", type=int)
    p.add_argument("--pair", type=float, nargs=2)
    p.add_argument("-v", action="store_true")
    ns = p.parse_args(["--x", "-1e9", "--n", "-3", "--pair", "-1.5e-3", "-inf", "-v"])
    assert (ns.x, ns.n, ns.pair, ns.v) == (-1e9, -3, [-1.5e-3, float("-inf")], True)


def test_errors_are_one_line_with_a_hint(capsys):
    p = OneLineParser(prog="t")
    p.add_argument("--x", type=float)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--x", "-1e9", "--y"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == "t: error: unrecognized arguments: --y (see --help)\n"


def test_cliplit_uses_it(tmp_path, capsys):
    """A negative value reaches the option's range check (plain argparse: 'expected one argument')."""
    rc = cliplit_main(["enhance", str(tmp_path / "x.png"), "-o", str(tmp_path), "--strength", "-1e-3"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "--strength: must be a number from 0 to 2" in err and "-1e-3" in err
