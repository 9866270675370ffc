import numpy as np
import pytest
from PIL import Image

from cliplit_core.errors import ImageReadError
from cliplit_core.files.images import list_images, read_image, to_uint8, to_uint16, write_png

from tests.support.imagefiles import write_png16


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_png_keeps_full_precision(tmp_path, channels):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    write_png16(tmp_path / "x.png", a)
    got = read_image(tmp_path / "x.png")
    assert got.shape == (7, 9, channels) and got.dtype == np.float32
    assert np.abs(got * 65535 - a).max() < 0.01


def test_16bit_gray_png(tmp_path):
    a = (np.arange(30, dtype=np.uint16) * 2000).reshape(5, 6)
    write_png16(tmp_path / "g.png", a)
    got = read_image(tmp_path / "g.png")
    assert got.shape == (5, 6, 1) and np.abs(got[..., 0] * 65535 - a).max() < 0.01


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4), ("P", 3), ("1", 1)])
def test_8bit_modes(tmp_path, mode, channels):
    base = Image.new("RGBA", (5, 4), (10, 200, 30, 128))
    im = (base if "A" in mode else base.convert("RGB")).convert(mode)
    im.save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (4, 5, channels)


@pytest.mark.parametrize("ext", ["jpg", "webp", "bmp", "tiff"])
def test_other_formats(tmp_path, ext):
    Image.new("RGB", (6, 5), (255, 128, 0)).save(tmp_path / f"a.{ext}")
    got = read_image(tmp_path / f"a.{ext}")
    assert got.shape == (5, 6, 3) and abs(got[2, 2, 0] - 1.0) < 0.02


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (6, 4))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (6, 4, 3)


def test_unreadable_files_raise_clear_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.png: cannot read image"):
        read_image(tmp_path / "bad.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:60])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_rounding_matches_torchvision_save_image():
    x = np.array([0, 0.5 / 255, 0.49 / 255, 1.0, 1.2, -0.1, np.nan, np.inf, -np.inf], dtype=np.float32)
    assert to_uint8(x).tolist() == [0, 1, 0, 255, 255, 0, 0, 255, 0]
    assert to_uint16(x).tolist() == [0, 129, 126, 65535, 65535, 0, 0, 65535, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounding_is_the_formula_on_every_value(dtype):
    """The in-place rounding gives exactly floor(top * x + 0.5) clamped, NaN -> 0 (the formula as
    written before it was made faster), on strided arrays too (a permuted tensor's view)."""
    rng = np.random.default_rng(7)
    x = (rng.random((3, 40, 50)) * 1.4 - 0.2).astype(dtype)
    x[0, :3, :4] = np.nan
    x[1, 5, :6] = [np.inf, -np.inf, 0.5 / 255, 1.5 / 255, 2.5 / 65535, 1.0]
    x = x.transpose(1, 2, 0)  # not contiguous
    with np.errstate(over="ignore", invalid="ignore"):
        for top, fn, dt in ((255.0, to_uint8, np.uint8), (65535.0, to_uint16, np.uint16)):
            want = np.clip(np.floor(np.nan_to_num(x) * top + 0.5), 0, top).astype(dt)
            got = fn(x)
            assert got.dtype == dt and np.array_equal(got, want)


def test_write_png_round_trip(tmp_path):
    a = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    write_png(tmp_path / "o.png", a)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), to_uint8(a))
    write_png(tmp_path / "g.png", a[..., :1])
    assert Image.open(tmp_path / "g.png").mode == "L"


def test_list_images_expands_folders_and_reports_problems(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    for n in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / "d" / n).write_bytes(b"x")
    paths, problems = list_images([tmp_path / "d", tmp_path / "e", tmp_path / "missing.png"])
    assert [p.name for p in paths] == ["a.JPG", "b.png"]
    assert len(problems) == 2 and "no images" in problems[0] and "no such file" in problems[1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_upright_and_metadata_is_kept(tmp_path, orientation):
    from PIL import ImageOps

    from cliplit_core.files.images import read_image_info, write_image

    a = (np.arange(5 * 7 * 3) % 251).astype(np.uint8).reshape(5, 7, 3)
    im = Image.fromarray(a)
    ex = im.getexif()
    ex[0x0112] = orientation
    ex[0x010F] = "TestCam"
    im.save(tmp_path / "o.png", exif=ex.tobytes(), icc_profile=b"icc-bytes")
    arr, info = read_image_info(tmp_path / "o.png")
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")), dtype=np.float32) / 255
    assert arr.shape == want.shape and np.array_equal(arr, want)
    assert info.icc_profile == b"icc-bytes" and info.bits == 8
    for name, bits in (("r.png", 16), ("r.jpg", 8)):
        write_image(tmp_path / name, arr, bits=bits, info=info)
        back = Image.open(tmp_path / name)
        assert back.size == (arr.shape[1], arr.shape[0])
        assert back.getexif().get(0x0112) == 1 and back.getexif().get(0x010F) == "TestCam"
        assert back.info.get("icc_profile") == b"icc-bytes"


def test_float16_pixels_round_like_float32():
    x = np.array([0.0059, 0.5, 1.0, np.nan], dtype=np.float16)
    assert to_uint16(x).tolist() == to_uint16(x.astype(np.float32)).tolist() == [387, 32768, 65535, 0]
    assert to_uint8(x).tolist() == to_uint8(x.astype(np.float32)).tolist()


def test_png_compression_is_parsed_once_into_a_tagged_value(tmp_path):
    import zlib

    from cliplit_core.files.images import PNG_AUTO, PngCompression, write_image
    from cliplit_core.validation import OptionError

    for text in ("auto", " AUTO ", None, PNG_AUTO):
        assert PngCompression.parse(text) == PNG_AUTO and str(PngCompression.parse(text)) == "auto"
    assert PngCompression.parse("9") == PngCompression.parse(9) == PngCompression.parse(np.int64(9)) == PngCompression(9)
    assert PNG_AUTO.zlib_settings(8) == (1, zlib.Z_RLE) and PNG_AUTO.zlib_settings(16) == (4, zlib.Z_DEFAULT_STRATEGY)
    assert PngCompression(0).zlib_settings(8) == (0, zlib.Z_DEFAULT_STRATEGY)
    for bad in (-1, 10, 4.5, "4.5", "fast", "", True, "\u00b2"):
        with pytest.raises(OptionError, match=r"^png-compression must be auto or an integer from 0 to 9 .*, got") as e:
            PngCompression.parse(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(OptionError, match="png-compression"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32), png_compression="max")
    assert not (tmp_path / "x.png").exists()
