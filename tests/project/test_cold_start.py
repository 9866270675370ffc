"""A command pays only for what it uses: no CLIP for ``enhance``, no torch for ``--help``, a PNG
writer set for speed (benchmarks/bench_cold_start.py measures the whole-process times)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.support.data import OFFICIAL_WEIGHTS, REPO, require_shared

HEAVY = ("torch", "open_clip", "huggingface_hub", "torchvision", "timm")


def _modules_after(code: str) -> set[str]:
    """Top-level modules imported by ``code`` run in a fresh interpreter (from the repository root)."""
    probe = (f"import sys\n{code}\n"
             f"print('MODULES=' + __import__('json').dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("MODULES=")]
    assert line, run.stderr[-2000:]
    return set(json.loads(line[-1][len("MODULES="):]))


@pytest.mark.parametrize("argv", [["--help"], ["enhance", "--help"], ["score", "--help"], ["convert", "--help"]])
def test_help_imports_neither_torch_nor_clip(argv):
    loaded = _modules_after("from cliplit_core.cli.app import main\n"
                            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_enhance_does_not_import_clip(tmp_path):
    weights = require_shared(OFFICIAL_WEIGHTS)
    from PIL import Image

    Image.fromarray(np.full((20, 24, 3), 60, np.uint8)).save(tmp_path / "a.png")
    for fast in ([], ["--fast"]):
        args = ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(weights),
                "--device", "cpu", *fast]
        loaded = _modules_after(f"from cliplit_core.cli.app import main\nassert main({args!r}) == 0")
        assert "torch" in loaded
        assert not loaded & {"open_clip", "huggingface_hub", "torchvision", "timm"}, fast


def _zlib_level_flag(png: bytes) -> int:
    """FLEVEL of the first IDAT's zlib stream: 0 = level 1, 1 = levels 2-5, 2 = 6 (default), 3 = 7-9."""
    pos = 8
    while pos < len(png):
        n = int.from_bytes(png[pos:pos + 4], "big")
        if png[pos + 4:pos + 8] == b"IDAT":
            return png[pos + 9] >> 6
        pos += 12 + n
    raise AssertionError("no IDAT chunk")


@pytest.mark.parametrize("bits", [8, 16])
def test_png_results_use_the_fast_compression(tmp_path, bits):
    """auto (the default): 8-bit PNGs with zlib's run-length strategy (header flag 0), 16-bit at level 4
    (flag 1: levels 2-5), never zlib's default 6 (flag 2), never stored."""
    from cliplit_core.files.images import PNG_COMPRESS_LEVEL, read_image, write_image

    yy, xx = np.mgrid[0:40, 0:50] / 50.0
    arr = np.stack([yy, xx, (yy + xx) / 2], -1).astype(np.float32) ** 2  # smooth: compressible
    write_image(tmp_path / "r.png", arr, bits=bits)
    write_image(tmp_path / "stored.png", arr, bits=bits, png_compression=0)
    data = (tmp_path / "r.png").read_bytes()
    assert _zlib_level_flag(data) == (0 if bits == 8 else 1) and PNG_COMPRESS_LEVEL == 4
    assert len(data) < 0.8 * (tmp_path / "stored.png").stat().st_size
    back = read_image(tmp_path / "r.png")
    assert np.abs(back - arr).max() <= 0.5 / (255 if bits == 8 else 65535) + 1e-6  # lossless as before
