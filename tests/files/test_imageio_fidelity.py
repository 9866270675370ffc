"""Reading fidelity: 16-bit colour TIFFs at full precision (or refused, never cut to 8 bits), TIFF
orientation applied once, and damaged files (cut short, or holding far less than their header
declares) refused quickly, whatever Pillow's LOAD_TRUNCATED_IMAGES says."""
from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cliplit_core.errors import ImageReadError
from cliplit_core.files.images import png_data_size, read_image, read_image_info, read_image_size

from tests.support.imagefiles import png_chunk, png_declaring, tiff_bytes, write_png16


def _noise(h, w, c, dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (h, w, c)).astype(dtype)


# --------------------------------------------------------------------------- 16-bit TIFF
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("compression, predictor", [(None, False), ("deflate", False), ("deflate", True)])
@pytest.mark.parametrize("channels, extrasamples", [(3, None), (4, (2,)), (4, None)])
@pytest.mark.parametrize("rows_per_strip", [None, 3])
def test_16bit_colour_tiff_is_read_at_full_precision(tmp_path, byteorder, compression, predictor, channels,
                                                       extrasamples, rows_per_strip):
    a = _noise(13, 17, channels)
    path = tmp_path / "x.tif"
    path.write_bytes(tiff_bytes(a, byteorder=byteorder, compression=compression, predictor=predictor,
                                extrasamples=extrasamples, rows_per_strip=rows_per_strip))
    native, info = read_image_info(path, native=True)
    assert native.dtype == np.uint16 and info.bits == 16
    assert np.array_equal(native, a)
    assert np.abs(read_image(path) * 65535 - a).max() < 0.02


def test_16bit_tiff_with_an_unspecified_fourth_sample_reads_as_rgb(tmp_path):
    a = _noise(5, 6, 4)
    path = tmp_path / "x.tif"
    path.write_bytes(tiff_bytes(a, extrasamples=(0,)))
    assert np.array_equal(read_image_info(path, native=True)[0], a[..., :3])


def test_16bit_tiff_with_premultiplied_alpha_is_unpremultiplied_at_16_bits(tmp_path):
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 65536, (6, 7, 3)).astype(np.float64)
    alpha = rng.integers(1000, 65536, (6, 7, 1)).astype(np.float64)
    stored = np.concatenate([np.round(colour * alpha / 65535), alpha], axis=2).astype(np.uint16)
    path = tmp_path / "x.tif"
    path.write_bytes(tiff_bytes(stored, extrasamples=(1,)))
    got = read_image_info(path, native=True)[0]
    assert got.dtype == np.uint16 and np.array_equal(got[..., 3], stored[..., 3])
    assert np.abs(got[..., :3] - colour).max() <= 65535 / (2 * alpha.min()) + 1  # not 8-bit steps (257)


def test_16bit_gray_and_8bit_tiffs_are_unchanged(tmp_path):
    gray = _noise(5, 6, 1)
    (tmp_path / "g.tif").write_bytes(tiff_bytes(gray, compression="deflate"))
    assert np.array_equal(read_image_info(tmp_path / "g.tif", native=True)[0], gray)
    rgb8 = _noise(5, 6, 3, np.uint8)
    (tmp_path / "c.tif").write_bytes(tiff_bytes(rgb8, byteorder=">", compression="deflate", predictor=True))
    got, info = read_image_info(tmp_path / "c.tif", native=True)
    assert got.dtype == np.uint8 and info.bits == 8 and np.array_equal(got, rgb8)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_16bit_tiff_with_separate_colour_planes_is_refused_not_cut_to_8_bits(tmp_path, compression):
    path = tmp_path / "x.tif"
    path.write_bytes(tiff_bytes(_noise(4, 5, 3), planar="separate", compression=compression))
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert "separate colour planes" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("filters", [False, True])
def test_16bit_pngs_are_read_at_full_precision(tmp_path, channels, interlace, filters):
    """Gray + alpha was read at 8 bits (Pillow opens it as 8-bit RGBA); colour ones keep their path."""
    a = _noise(13, 11, channels)
    write_png16(tmp_path / "x.png", a, interlace=interlace, filters=filters)
    got, info = read_image_info(tmp_path / "x.png", native=True)
    assert info.bits == 16 and np.array_equal(got, a)


# --------------------------------------------------------------------------- orientation
def _landscape_with_marker(dtype):
    top = np.iinfo(dtype).max
    a = np.zeros((20, 40, 3), dtype)
    a[:5, :5] = top  # top left
    return a


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("orientation, corner", [(1, "top-left"), (3, "bottom-right"), (6, "top-right"),
                                                 (8, "bottom-left"), (2, "top-right")])
def test_a_tiffs_orientation_is_applied_once(tmp_path, dtype, orientation, corner):
    """Pillow turns a TIFF itself while decoding it (and its reader then turned it again, or failed
    with a SystemError traceback)."""
    path = tmp_path / "x.tif"
    path.write_bytes(tiff_bytes(_landscape_with_marker(dtype), orientation=orientation))
    got = read_image(path)
    assert got.shape == ((40, 20, 3) if orientation in (6, 8) else (20, 40, 3))
    corners = {"top-left": got[:5, :5], "top-right": got[:5, -5:], "bottom-left": got[-5:, :5],
               "bottom-right": got[-5:, -5:]}
    assert {k for k, v in corners.items() if v.mean() > 0.99} == {corner}
    w, h, _ = read_image_size(path)
    assert (h, w) == got.shape[:2]


# --------------------------------------------------------------------------- damaged files
def _photo_bytes(fmt, **kw):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    a = np.stack([xx * 255 // 320, yy * 255 // 240, (xx + yy) % 256], -1)
    a = np.clip(a + rng.integers(0, 40, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **kw)
    return buf.getvalue()


FILES = {
    "png": lambda: _photo_bytes("PNG"),
    "jpg": lambda: _photo_bytes("JPEG", quality=90),
    "progressive.jpg": lambda: _photo_bytes("JPEG", quality=90, progressive=True),
    "tif": lambda: tiff_bytes(np.asarray(Image.open(io.BytesIO(_photo_bytes("PNG"))))),
    "deflate.tif": lambda: tiff_bytes(np.asarray(Image.open(io.BytesIO(_photo_bytes("PNG")))), compression="deflate",
                                      rows_per_strip=16),
    "16bit.tif": lambda: tiff_bytes(_noise(60, 80, 3), compression="deflate", rows_per_strip=8),
    "webp": lambda: _photo_bytes("WEBP", quality=90),
    "lossless.webp": lambda: _photo_bytes("WEBP", lossless=True),
    "bmp": lambda: _photo_bytes("BMP"),
    "gif": lambda: _photo_bytes("GIF"),
}


@pytest.fixture(params=[False, True], ids=["strict", "host-lenient"])
def truncated_images_setting(request, monkeypatch):
    """Pillow's LOAD_TRUNCATED_IMAGES as a host may leave it (ComfyUI's helpers switch it on)."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", request.param)
    return request.param


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_file_cut_short_is_refused(tmp_path, name, keep, truncated_images_setting):
    data = FILES[name]()
    path = tmp_path / f"x.{name}"
    path.write_bytes(data)
    read_image(path)  # whole: fine
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert "\n" not in str(e.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is truncated_images_setting  # the host's setting is back


def _png_with_rows(width, height, rows, *, depth=8, colour=2, noise=False, interlace=0):
    """A PNG declaring width x height whose (complete) zlib stream holds only ``rows`` rows."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row_bytes = 1 + -(-(width * depth * channels) // 8)
    rng = np.random.default_rng(0)
    body = b"".join(b"\0" + (rng.integers(0, 256, row_bytes - 1, np.uint8).tobytes() if noise
                             else bytes(row_bytes - 1)) for _ in range(rows))
    extra = png_chunk(b"PLTE", bytes(768)) if colour == 3 else b""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", zlib.compress(body, 9))
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("depth, colour", [(8, 2), (16, 2), (16, 6), (8, 0), (1, 0), (8, 3), (8, 4)])
def test_a_png_that_holds_a_few_rows_of_what_it_declares_is_refused_at_once(tmp_path, depth, colour,
                                                                             truncated_images_setting):
    """The 185-byte file declaring 9000 x 9000 with 4 rows was enhanced as 81 megapixels for minutes."""
    path = tmp_path / "x.png"
    path.write_bytes(_png_with_rows(9000, 9000, 4, depth=depth, colour=colour))
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert time.perf_counter() - start < 1.0
    assert "damaged PNG" in str(e.value) and "9000x9000" in str(e.value)


def test_a_png_missing_half_its_rows_is_refused_and_a_whole_one_read(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png_with_rows(300, 200, 100, noise=True))  # compresses badly: no size bound catches it
    with pytest.raises(ImageReadError, match="50 %"):
        read_image(path)
    path.write_bytes(_png_with_rows(300, 200, 200, noise=True))
    assert read_image(path).shape == (200, 300, 3)


def test_png_data_sizes_interlaced_or_not():
    assert png_data_size(9000, 9000, 8, 2, False) == 9000 * (1 + 27000)
    assert png_data_size(3, 1, 1, 0, False) == 2
    # Adam7 passes of a 5 x 3 image, 16-bit RGBA (8 bytes a pixel): passes 1..7 are 1x1, 1x1, none, 1x1,
    # 3x1, 2x2 and 5x1 pixels, each row with its filter byte
    assert png_data_size(5, 3, 16, 6, True) == 9 + 9 + 0 + 9 + 25 + 2 * 17 + 41


def test_an_interlaced_png_with_all_its_data_is_read_and_one_short_of_it_refused(tmp_path):
    need = png_data_size(37, 23, 8, 0, True)
    ihdr = struct.pack(">IIBBBBB", 37, 23, 8, 0, 0, 0, 1)
    for size, ok in ((need, True), (need - 1, False)):
        path = tmp_path / "i.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                         + png_chunk(b"IDAT", zlib.compress(bytes(size))) + png_chunk(b"IEND", b""))
        if ok:
            assert read_image(path).shape == (23, 37, 1)
        else:
            with pytest.raises(ImageReadError, match="damaged PNG"):
                read_image(path)


def _jpeg_declaring(width, height, progressive=False):
    """A small JPEG whose frame header is changed to declare width x height."""
    data = bytearray(_photo_bytes("JPEG", quality=90, progressive=progressive))
    sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_too_small_for_the_size_it_declares_is_refused_at_once(tmp_path, progressive,
                                                                      truncated_images_setting):
    path = tmp_path / "x.jpg"
    path.write_bytes(_jpeg_declaring(9000, 9000, progressive))
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert time.perf_counter() - start < 1.0 and "damaged JPEG" in str(e.value)


def test_a_tiff_declaring_far_more_rows_than_it_holds_is_refused(tmp_path, truncated_images_setting):
    a = _noise(4, 3000, 3, np.uint8)
    data = bytearray(tiff_bytes(a))
    at = data.find(struct.pack("<HHI", 257, 4, 1))  # ImageLength
    data[at + 8:at + 12] = struct.pack("<I", 3000)
    (tmp_path / "x.tif").write_bytes(bytes(data))
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "x.tif")


@pytest.mark.parametrize("lossless", [False, True])
def test_a_webp_declaring_far_more_than_it_holds_is_refused(tmp_path, lossless, truncated_images_setting):
    data = bytearray(_photo_bytes("WEBP", lossless=True) if lossless else _photo_bytes("WEBP", quality=90))
    if lossless:  # VP8L: 14-bit width - 1 and height - 1 after the signature byte
        rest = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
        data[21:25] = ((9000 - 1) | (9000 - 1) << 14 | rest).to_bytes(4, "little")
    else:  # VP8: 16-bit width and height after the start code
        data[26:30] = struct.pack("<HH", 9000, 9000)
    (tmp_path / "x.webp").write_bytes(bytes(data))
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "x.webp")


def test_the_cli_refuses_a_damaged_file_before_the_network_sees_it(tmp_path, official_weights_path, monkeypatch,
                                                                   capsys):
    from cliplit_core.cli import enhance as enhance_files
    from cliplit_core.cli.app import main

    calls = []
    monkeypatch.setattr(enhance_files, "enhance_photo", lambda *a, **kw: calls.append(1))
    (tmp_path / "bomb.png").write_bytes(png_declaring(9000, 9000, zlib.compress(b"\0" * 4 * 27001, 9)))
    assert len((tmp_path / "bomb.png").read_bytes()) < 400
    start = time.perf_counter()
    rc = main(["enhance", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "out"), "--weights",
               str(official_weights_path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and calls == [] and time.perf_counter() - start < 30
    assert "damaged PNG" in err and "Traceback" not in err and "enhanced 0 of 1" in err


def test_a_16bit_tiff_gives_a_16bit_result_with_every_level(tmp_path, official_weights_path, monkeypatch):
    """End to end with the network left out (strength 0 would still round through float32): the
    command's 16-bit PNG holds the TIFF's own 16-bit values."""
    from cliplit_core.cli import enhance as enhance_files
    from cliplit_core.cli.app import main
    from cliplit_core.files.images import to_float32

    monkeypatch.setattr(enhance_files, "enhance_photo",
                        lambda net, pixels, with_light=False, **kw: (to_float32(pixels), None))
    a = _noise(9, 7, 3)
    (tmp_path / "x.tif").write_bytes(tiff_bytes(a, compression="deflate", predictor=True))
    assert main(["enhance", str(tmp_path / "x.tif"), "-o", str(tmp_path / "out"), "--weights",
                 str(official_weights_path), "--device", "cpu"]) == 0
    got, info = read_image_info(tmp_path / "out" / "x.png", native=True)
    assert info.bits == 16 and np.array_equal(got, a)
