"""Tiled runs on 8/16-bit pixels: the same files as the float path, without image-sized float copies."""
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from cliplit_core.cli.app import main
from cliplit_core.files.images import read_image_info, to_float32, write_image, write_png
from cliplit_core.engine.inference import enhance
from cliplit_core.engine.options import EnhanceOptions
from cliplit_core.engine import tiled_pixels
from cliplit_core.engine.core import enhance_photo
from cliplit_core.engine.run_context import RunContext

from tests.support.data import synthetic_photo
from tests.support.imagefiles import write_png16


def float_path_files(net, src, dst, *, tile, strength, bits):
    """What the command wrote before tiled runs kept the pixels as they are: float32 throughout."""
    arr, info = read_image_info(src)
    res = enhance(net, torch.from_numpy(arr).permute(2, 0, 1)[None], strength=strength, tile=tile)
    write_image(dst, res.image[0].permute(1, 2, 0).numpy(), bits=bits, info=info)
    light = dst.with_name(dst.stem + "_light.png")
    write_png(light, res.light[0, 0].clamp(0, 1).numpy())
    return dst.read_bytes(), light.read_bytes()


@pytest.mark.parametrize("kind,bits,strength", [("rgb8", 8, 1.0), ("rgba8", 8, 0.5), ("gray8", 8, 1.0),
                                                 ("rgb16", 16, 1.0), ("rgb16", 8, 0.5), ("gray16", 16, 1.0)])
@pytest.mark.slow
def test_tiled_files_are_byte_identical_to_the_float_path(tmp_path, official_net, official_weights_path,
                                                          kind, bits, strength):
    photo = synthetic_photo(61, 67, 4 if kind == "rgba8" else 3, seed=5)
    photo[5:20, 10:40] *= np.linspace(0.2, 1, 30, dtype=np.float32)[:, None]  # some structure to correct
    src = tmp_path / f"{kind}.png"
    if kind.endswith("16"):
        deep = (photo[..., :1] if kind == "gray16" else photo) * 65535
        write_png16(src, deep.astype(np.uint16))
    else:
        write_png(src, photo[..., :1] if kind == "gray8" else photo)
    want_image, want_light = float_path_files(official_net, src, tmp_path / "want.png", tile=24,
                                              strength=strength, bits=bits)
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--weights", str(official_weights_path),
                 "--tile", "24", "--strength", str(strength), "--bits", str(bits), "--save-light",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "out" / f"{kind}.png").read_bytes() == want_image
    assert (tmp_path / "out" / f"{kind}_light.png").read_bytes() == want_light


@pytest.mark.slow
def test_tiled_run_holds_no_float_copy_of_the_image(random_net):
    """Python-side (numpy) memory of a tiled run: the 8-bit input and output, not float32 images
    (4 bytes per channel each); the float path held several."""
    h, w = 300, 400
    pixels = (synthetic_photo(h, w, seed=2) * 255).astype(np.uint8)
    tracemalloc.start()
    try:
        out, light = enhance_photo(random_net, pixels, options=EnhanceOptions(tile=64), with_light=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.dtype == np.uint8 and out.shape == pixels.shape and light.shape == (h, w)
    # output (1x) + light map (1/3) + tile-sized temporaries; one float32 copy of the image alone is 4x
    assert peak < 2 * pixels.nbytes


def test_native_pixels_convert_to_the_float_read(tmp_path):
    photo = synthetic_photo(9, 11, 4, seed=1)
    write_png16(tmp_path / "deep.png", (photo * 65535).astype(np.uint16))
    write_png(tmp_path / "rgba.png", photo)
    Image.fromarray((photo[..., 0] * 255).astype(np.uint8)).convert("I").save(tmp_path / "int.tif")
    for name, dtype in (("deep.png", np.uint16), ("rgba.png", np.uint8), ("int.tif", np.uint8)):
        native, _ = read_image_info(tmp_path / name, native=True)
        floats, _ = read_image_info(tmp_path / name)
        assert native.dtype == dtype
        assert to_float32(native).dtype == np.float32 and np.array_equal(to_float32(native), floats)


def test_automatic_tiles_on_a_cpu_stay_small_whatever_the_free_memory(monkeypatch):
    """Half of a big machine's free RAM would make tiles of ~2000 pixels (4 GB of activations)."""
    from cliplit_core.engine import run_plan
    from cliplit_core.light.network import CLIPLITNet

    seen = []
    monkeypatch.setattr(tiled_pixels, "enhance_pixels", lambda net, pixels, tile, **kw: seen.append(tile) or (pixels, None))
    pixels = np.zeros((2000, 3000, 3), np.uint8)
    enhance_photo(CLIPLITNet(), pixels, options=EnhanceOptions(tile="auto"),
                  run=RunContext(device="cpu", memory_budget=4 << 30))
    assert seen == [run_plan.CPU_MAX_TILE] == [768]
