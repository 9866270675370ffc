"""What the reader accepts: single images of every listed format (multi-frame files are refused,
never cut to their first frame), up to a pixel limit the user can raise, and no decompression bombs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from cliplit_core.files import images as imageio
from cliplit_core.cli.app import main
from cliplit_core.errors import ImageReadError
from cliplit_core.files.images import IMAGE_EXTENSIONS, list_images, read_image, write_png

from tests.support.data import synthetic_photo
from tests.support.imagefiles import png_declaring

FRAMES = [Image.fromarray(np.full((6, 8, 3), v, dtype=np.uint8)) for v in (30, 120, 220)]


def _multi_frame(path):
    FRAMES[0].save(path, save_all=True, append_images=FRAMES[1:], **({"duration": 100} if path.suffix in
                                                                      (".gif", ".webp", ".png") else {}))
    return path


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp", "pages.tif", "anim.png"])
def test_multi_frame_files_are_refused_not_cut_to_one_frame(tmp_path, name):
    path = _multi_frame(tmp_path / name)
    with pytest.raises(ImageReadError, match=r"with 3 frames; only single images are read"):
        read_image(path)


def test_jpeg_with_extra_pictures_reads_its_primary_picture(tmp_path):
    big = Image.fromarray((synthetic_photo(16, 20) * 255).astype(np.uint8))
    big.save(tmp_path / "cam.jpg", format="MPO", save_all=True, append_images=[FRAMES[0]], quality=95)
    assert Image.open(tmp_path / "cam.jpg").format == "MPO"
    assert read_image(tmp_path / "cam.jpg").shape == (16, 20, 3)


@pytest.mark.parametrize("ext", IMAGE_EXTENSIONS)
def test_listing_and_reading_agree_on_every_format(tmp_path, ext):
    im = Image.fromarray((synthetic_photo(6, 7) * 255).astype(np.uint8))
    im.save(tmp_path / f"x{ext}")
    paths, problems = list_images([tmp_path])
    assert paths == [tmp_path / f"x{ext}"] and problems == []
    assert read_image(paths[0]).shape == (6, 7, 3)


def test_gif_is_listed_in_folders_and_other_formats_are_refused_by_name(tmp_path):
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "one.gif")
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "x.ppm")
    assert list_images([tmp_path])[0] == [tmp_path / "one.gif"]
    with pytest.raises(ImageReadError, match="not a PNG, JPEG, WEBP, BMP, TIFF, GIF file"):
        read_image(tmp_path / "x.ppm")


def test_cli_reports_an_animation_and_enhances_the_rest(tmp_path, official_weights_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    _multi_frame(d / "anim.gif")
    write_png(d / "a.png", synthetic_photo(8, 8))
    assert main(["enhance", str(d), "-o", str(tmp_path / "o"), "--weights", str(official_weights_path)]) == 1
    err = capsys.readouterr().err
    assert "anim.gif: GIF with 3 frames" in err and "enhanced 1 of 2" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.suffix == ".png") == ["a.png"]


# --------------------------------------------------------------------------- pixel limits
def test_images_beyond_pillows_limit_are_read_without_a_warning(tmp_path, monkeypatch):
    """Pillow's own limit, lowered to 1000 pixels here, stands for its 89.5 / 179 MP defaults."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    write_png(tmp_path / "pano.png", synthetic_photo(40, 60))  # 2400 px: Pillow would refuse (> 2 x 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "pano.png").shape == (40, 60, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # left as it was


def test_default_limit_is_a_gigapixel_and_real_panoramas_pass():
    assert imageio.DEFAULT_MAX_PIXELS >= 1_000_000_000
    # a 180 MP panorama JPEG of 60 MB and a 400 MP pixel-shift TIFF of 2.4 GB
    imageio.check_pixels("pano.jpg", 18000, 10000, 3, 60_000_000)
    imageio.check_pixels("shift.tif", 24000, 16667, 3, 2_400_000_000)


def test_above_the_limit_the_message_says_how_much_memory_it_needs(tmp_path):
    write_png(tmp_path / "a.png", synthetic_photo(100, 100))
    with pytest.raises(ImageReadError, match=r"100x100 is 0.01 megapixels, above the limit of 0.005; it would "
                                             r"need about 1 MiB of memory \(raise the limit with --max-pixels"):
        read_image(tmp_path / "a.png", max_pixels=5000)
    with pytest.raises(ImageReadError, match=r"40000x25000 is 1000 megapixels, above the limit of 500; it would "
                                             r"need about 28.9 GiB of memory"):
        imageio.check_pixels("giga.tif", 40000, 25000, 3, 3 * 10 ** 9, max_pixels=500_000_000)


def test_cli_max_pixels_option(tmp_path, official_weights_path, capsys):
    write_png(tmp_path / "a.png", synthetic_photo(12, 16))
    args = ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", str(official_weights_path)]
    assert main([*args, "--max-pixels", "0.0001"]) == 1
    assert "16x12 is 0.000192 megapixels, above the limit of 0.0001" in capsys.readouterr().err
    assert main([*args, "--max-pixels", "0.0002"]) == 0


@pytest.mark.parametrize("w, h", [(20000, 10000), (100000, 100000), (2 ** 31 - 1, 2 ** 31 - 1)])
def test_headers_declaring_absurd_sizes_are_refused_before_decoding(tmp_path, w, h):
    (tmp_path / "bomb.png").write_bytes(png_declaring(w, h))
    with pytest.raises(ImageReadError, match="refused as a likely decompression bomb|above the limit"):
        read_image(tmp_path / "bomb.png")
    with pytest.raises(ImageReadError, match="refused as a likely decompression bomb"):
        read_image(tmp_path / "bomb.png", max_pixels=10 ** 20)


def test_bomb_check_with_a_lowered_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(imageio, "PILLOW_DEFAULT_MAX_PIXELS", 1000)
    Image.new("L", (600, 600), 90).save(tmp_path / "flat.png")  # 360000 px in about 1600 bytes
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(
        tmp_path / "noise.png")
    with pytest.raises(ImageReadError, match="in a file of only"):
        read_image(tmp_path / "flat.png")
    assert read_image(tmp_path / "noise.png").shape == (200, 200, 3)
