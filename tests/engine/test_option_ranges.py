"""Every numeric option of the command line, the Python API and the Backlit Enhance node is checked
by the same rule (cliplit_core.validation): NaN, infinities, negative, zero and huge values are a
clear error before any work, never a black or blown-out image."""
from __future__ import annotations

import math

import pytest
import torch

from cliplit_core import validation
from cliplit_core.cli.app import main
from cliplit_core.files.images import write_png

from tests.support.data import synthetic_photo

SWEEP = ["nan", "inf", "-inf", "-1", "0", "1e300", "99999999999"]

# option -> the values of SWEEP it accepts (all others must be refused)
ENHANCE_OPTIONS = {"--strength": {"0"}, "--quality": set(), "--max-pixels": set(), "--tile": {"0"}}
SCORE_OPTIONS = {"--batch-size": set(), "--prompt-length": set()}


def _cases(options):
    return [(opt, v) for opt, ok in options.items() for v in SWEEP if v not in ok]


@pytest.mark.parametrize("option, value", _cases(ENHANCE_OPTIONS))
def test_enhance_refuses_out_of_range_numbers(tmp_path, option, value, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    rc = main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", "/nonexistent.pth",
               f"{option}={value}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and f"argument {option}: must be" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, value", _cases(SCORE_OPTIONS))
def test_score_refuses_out_of_range_numbers(tmp_path, option, value, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    rc = main(["score", str(tmp_path / "a.png"), "--model", "/nonexistent.safetensors", f"{option}={value}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"argument {option}: must be" in err


def test_strength_nan_no_longer_writes_a_black_image(tmp_path, official_weights_path, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(8, 8))
    for bad in ("nan", "inf", "100"):
        assert main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--strength", bad,
                     "--weights", str(official_weights_path)]) == 2
    assert "must be a number from 0 to 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--strength", "2",
                 "--weights", str(official_weights_path)]) == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5, 2.5, 100.0, 1e300, "abc", None, True])
def test_python_api_checks_strength_before_any_work(random_net, value):
    from cliplit_core.engine.inference import enhance
    from cliplit_core.engine.preview import enhance_preview

    x = torch.rand(1, 3, 16, 16)
    for fn in (enhance, enhance_preview):
        with pytest.raises(validation.OptionError, match="strength must be a number from 0 to 2"):
            fn(random_net, x, strength=value)


NODE_OPTIONS = {
    "strength": [math.nan, math.inf, -math.inf, -1.0, 2.5, 1e300],
    "mask_feather": [math.nan, math.inf, -1.0, 1e9],
    "temporal_smoothing": [math.nan, math.inf, -1.0, 1e9],
    "tile_size": [math.nan, -1, 10 ** 9, 0.5],
}


@pytest.mark.parametrize("option, value", [(o, v) for o, vs in NODE_OPTIONS.items() for v in vs])
def test_node_refuses_out_of_range_numbers(option, value, monkeypatch):
    import nodes  # noqa: F401  (the pack, imported the way tests do)
    from nodes import enhance as node
    from nodes.errors import CLIPLITNodeError
    from cliplit_core.model import CLIPLITModel
    from cliplit_core.light.network import CLIPLITNet

    def no_work(*args, **kwargs):
        raise AssertionError("the node started working before checking its inputs")

    from cliplit_core.engine import run_plan

    monkeypatch.setattr(run_plan, "plan_run", no_work)
    model = CLIPLITModel(net=CLIPLITNet().eval(), source="random")
    with pytest.raises(CLIPLITNodeError, match=f"Backlit Enhance: {option} must be"):
        node.CLIPLITBacklitEnhance.execute(model, torch.rand(1, 8, 8, 3), **{option: value})


def test_node_widget_limits_are_the_checked_ranges():
    from nodes.enhance import CLIPLITBacklitEnhance

    spec = CLIPLITBacklitEnhance.INPUT_TYPES()
    widgets = {**spec["required"], **spec["optional"]}
    for rule in (validation.STRENGTH, validation.MASK_FEATHER, validation.TEMPORAL_SMOOTHING, validation.TILE_SIZE):
        opts = widgets[rule.name][1]
        assert (opts["min"], opts["max"]) == (rule.low, rule.high)
