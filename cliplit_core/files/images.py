"""Reading and writing image files: float32 arrays in 0..1 (H x W x C, C in 1..4), or the pixels in
the file's own 8/16-bit form for tiled runs of huge photos (``read_image_info(native=True)``).

Pillow decodes 16-bit RGB(A) PNGs and TIFFs to 8 bits; we keep the full precision by
letting Pillow decode (and un-filter) the same data twice, once keeping the
high bytes and once the low bytes (TIFFs through libtiff). Pillow cannot write them either: 16-bit PNGs
are written by a small encoder here (filter 0, zlib). The colour profile (ICC)
and EXIF of an input can be carried over to its result (``ImageInfo``).

A damaged file is refused, never read in part: Pillow's ``LOAD_TRUNCATED_IMAGES`` is off while we
decode, whatever the host set, and before decoding, a PNG's image data is checked to hold every row
(Pillow accepts a stream that ends early) and a JPEG's size to hold its declared pixels.
"""
from __future__ import annotations

import contextlib
import errno
import io
import math
import numbers
import os
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, NamedTuple

import numpy as np
from PIL import Image, ImageFile, features

from .atomic import write_together
from ..errors import ImageReadError
from ..validation import OptionError

# The one list of file types we read: folders are listed by these extensions, and any file is
# decoded only by these Pillow decoders. Pillow's JPEG decoder opens JPEGs that carry extra
# pictures (previews, depth maps) as MPO; those are read as their primary picture.
READ_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "WEBP": (".webp",), "BMP": (".bmp",),
                "TIFF": (".tif", ".tiff"), "GIF": (".gif",)}
IMAGE_EXTENSIONS = tuple(ext for exts in READ_FORMATS.values() for ext in exts)
_DECODERS = tuple(READ_FORMATS)
_PRIMARY_PICTURE_FORMATS = ("MPO",)

# Files named by the user may hold this many pixels (the command line's --max-pixels). Pillow's own
# limit (89.5 MP warns, 179 MP refuses) would turn away real panoramas; beyond it we refuse only
# files that declare more pixels per byte of file than any photograph compresses to.
DEFAULT_MAX_PIXELS = 1_000_000_000
PILLOW_DEFAULT_MAX_PIXELS = 89_478_485
BOMB_PIXELS_PER_BYTE = 100

# zlib level of PNG results that ComfyUI's SaveImage uses; levels are PNG_LEVELS (0 = stored ... 9 = smallest).
PNG_COMPRESS_LEVEL = 4
PNG_LEVELS = range(10)


class PngCompression(NamedTuple):
    """How PNG results are compressed (``--png-compression``): ``level`` 0-9 is zlib's level with its
    default strategy; ``None`` is ``auto``, the default:

    * 8-bit: zlib's run-length strategy (``Z_RLE``) after Pillow's per-row PNG filters: on photos about
      the size of level 4's files, written in less time (measured on 11 images:
      benchmarks/bench_png_levels.py --images, docs/performance.md);
    * 16-bit: level 4 (our encoder writes unfiltered rows, where run-length coding compresses badly).

    The pixels are the same with every setting."""

    level: int | None = None

    @classmethod
    def parse(cls, value) -> "PngCompression":
        """``value``: a PngCompression, ``None`` / ``"auto"``, or a level 0-9 (int or its text).
        Anything else is one OptionError naming the allowed values."""
        if isinstance(value, PngCompression):
            return value
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return cls(None)
        if isinstance(value, str) and value.strip().isdecimal():
            value = int(value.strip())
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) in PNG_LEVELS:
            return cls(int(value))
        raise OptionError(f"png-compression must be {cls.describe()}, got {value!r}")

    @staticmethod
    def describe() -> str:
        """The values ``parse`` takes, for messages."""
        return "auto or an integer from 0 to 9 (zlib level, 0 = none, 9 = smallest)"

    def zlib_settings(self, bits: int) -> tuple[int, int]:
        """(zlib level, zlib strategy) for a PNG of ``bits`` bits per channel."""
        if self.level is not None:
            return self.level, zlib.Z_DEFAULT_STRATEGY
        # under Z_RLE every level from 1 up writes the same bytes
        return (1, zlib.Z_RLE) if bits == 8 else (PNG_COMPRESS_LEVEL, zlib.Z_DEFAULT_STRATEGY)

    def __str__(self) -> str:
        return "auto" if self.level is None else str(self.level)


PNG_AUTO = PngCompression(None)

_SIXTEEN_BIT_RAWMODES = {"RGB;16B": ("RGB;16B", "RGB;16L"), "RGBA;16B": ("RGBA;16B", "RGBA;16L")}
# libtiff hands Pillow 16-bit samples in this machine's byte order: the raw modes that keep their high
# and their low bytes
_NATIVE_HIGH_LOW = ("16L", "16B") if sys.byteorder == "little" else ("16B", "16L")
_TIFF_WIDE_LAYOUTS = {"RGB": "RGB", "RGBX": "RGBX", "RGBA": "RGBA", "RGBa": "RGBA"}  # Pillow's -> what we unpack


def list_images(inputs: Iterable[str | os.PathLike], extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                skip: Callable[[Path], bool] | None = None) -> tuple[list[Path], list[str]]:
    """Expand files and folders (not recursive) into input paths (files named ``extensions``
    in folders), sorted per folder.

    In folders, hidden files (names starting with '.': other programs' side files and our own
    unfinished writes) and files for which ``skip(path)`` is true (e.g. results of an earlier
    run into the same folder) are left out; files named directly are always taken.
    Returns (paths, problems) where problems are messages for inputs that do not exist
    or folders without images.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.suffix.lower() in extensions
                           and not c.name.startswith(".") and c.is_file() and not (skip and skip(c)))
            if not found:
                problems.append(f"{p}: folder holds no images ({', '.join(extensions)})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return paths, problems


class _Decoded(NamedTuple):
    pixels: np.ndarray
    upright: bool  # Pillow already applied the EXIF orientation while decoding (TIFF)


def _turned_by_pillow(im: Image.Image, orientation: int) -> bool:
    """Whether decoding ``im`` applied its orientation (Pillow does for TIFF and then drops the tag)."""
    return orientation != 1 and im.getexif().get(ORIENTATION_TAG, 1) != orientation


def _png16(path: Path, im: Image.Image) -> np.ndarray | None:
    tile = im.tile[0] if len(im.tile) == 1 else None
    if tile is not None and tile.codec_name == "zip" and tile.args == "LA;16B":
        # 16-bit gray + alpha (Pillow: 8-bit RGBA): its 4 bytes a pixel read as 8-bit RGBA are L, l, A, a
        with _open(path) as again:
            again.tile = [again.tile[0]._replace(args="RGBA")]
            b = np.asarray(again, dtype=np.uint16)
        return np.stack([b[..., 0] * 256 + b[..., 1], b[..., 2] * 256 + b[..., 3]], axis=-1)
    if tile is None or tile.codec_name != "zip" or tile.args not in _SIXTEEN_BIT_RAWMODES:
        return None
    halves = []
    for raw in _SIXTEEN_BIT_RAWMODES[tile.args]:
        with _open(path) as again:
            again.tile = [again.tile[0]._replace(args=raw)]
            halves.append(np.asarray(again, dtype=np.uint16))
    return halves[0] * 256 + halves[1]


def _tiff_bits(im: Image.Image) -> tuple[int, ...]:
    bits = im.tag_v2.get(258, (1,))  # BitsPerSample
    return tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)


def _tiff16(path: Path, im: Image.Image) -> _Decoded | None:
    """A TIFF of more than 8 bits per colour sample, at full precision; None for the TIFFs Pillow reads
    whole (8 bits or less, gray 16-bit, float). Pillow has no 16-bit RGB mode: its libtiff decoder runs
    twice, keeping the high then the low byte of each sample (as for PNG). Layouts this cannot read
    exactly (separate colour planes, CMYK, ...) are refused, never read at 8 bits."""
    bits = _tiff_bits(im)
    if max(bits) <= 8 or im.mode in _WIDE_MODES:
        return None
    rawmode = im.tile[0].args[0] if im.tile and isinstance(im.tile[0].args, tuple) else ""
    layout = _TIFF_WIDE_LAYOUTS.get(str(rawmode).split(";")[0])
    if (layout is None or set(bits) != {16} or im.tag_v2.get(284, 1) != 1 or im.tag_v2.get(262) != 2
            or not features.check("libtiff")):
        planes = " with separate colour planes" if im.tag_v2.get(284, 1) != 1 else ""
        raise ImageReadError(f"{path}: a {'/'.join(map(str, bits))}-bit {im.mode} TIFF{planes} cannot be read at "
                             f"full precision (16-bit TIFFs are read as gray, RGB or RGBA with interleaved "
                             f"channels); save it as a 16-bit PNG or such a TIFF")
    halves, upright = [], False
    for end in _NATIVE_HIGH_LOW:
        with _open(path) as again:
            orientation = again.getexif().get(ORIENTATION_TAG, 1)
            again.use_load_libtiff = True  # one libtiff tile for the whole image, also for raw strips
            stored = (again.tag_v2.get(256), again.tag_v2.get(257))  # (Pillow turns .size for some orientations)
            again.tile = [again.tile[0]._replace(codec_name="libtiff", extents=(0, 0, *stored), offset=0,
                                                 args=(f"{layout};{end}", False, again.tag_v2.offset))]
            halves.append(np.asarray(again, dtype=np.uint16))
            upright = _turned_by_pillow(again, orientation)
    pixels = halves[0] * 256 + halves[1]
    if rawmode.startswith("RGBa"):  # associated (premultiplied) alpha: as Pillow's 8-bit reader, un-premultiply
        alpha = pixels[..., 3:].astype(np.float64)
        colour = np.where(alpha > 0, pixels[..., :3] * 65535.0 / np.maximum(alpha, 1), 0)
        pixels[..., :3] = np.clip(np.floor(colour + 0.5), 0, 65535).astype(np.uint16)
    return _Decoded(pixels, upright)


def _wide_pixels(path: Path, im: Image.Image) -> _Decoded | None:
    """16-bit colour pixels that Pillow would cut to 8 bits, at full precision; None for other files.
    Before anything else reads ``im`` (the PNG path needs its undecoded tiles)."""
    if im.format == "PNG":
        pixels = _png16(path, im)
        return None if pixels is None else _Decoded(pixels, False)
    if im.format == "TIFF":
        return _tiff16(path, im)
    return None


def _pixels(im: Image.Image) -> np.ndarray:
    """H x W x C in the file's own form: uint8, uint16, or float32 in 0..1 (float files)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)[..., None]
    if mode == "I":
        a = np.asarray(im, dtype=np.int64)
        wide = a.max(initial=0) > 255
        return np.clip(a, 0, 65535 if wide else 255).astype(np.uint16 if wide else np.uint8)[..., None]
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0, 1)[..., None]
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None]
    if mode == "LA":
        return np.asarray(im)
    if mode == "RGBA" or "A" in im.getbands() or "transparency" in im.info:
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im if mode == "RGB" else im.convert("RGB"))


def to_float32(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float pixels as float32 in 0..1 (what :func:`read_image` returns)."""
    if pixels.dtype == np.uint8 or pixels.dtype == np.uint16:
        out = pixels.astype(np.float32)
        out /= 255.0 if pixels.dtype == np.uint8 else 65535.0
        return out
    return np.asarray(pixels, dtype=np.float32)


@dataclass
class ImageInfo:
    """What a result may inherit from its input file besides the pixels."""

    bits: int = 8                     # bits per channel in the file (8, or 16 for 16-bit and float files)
    icc_profile: bytes | None = None  # embedded colour profile
    exif: bytes | None = None         # EXIF block, orientation reset to 1 (the pixels are read upright)


ORIENTATION_TAG = 0x0112
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _info(im: Image.Image, wide: bool) -> ImageInfo:
    """The file's ImageInfo. Sets the orientation in ``im``'s (cached) EXIF to 1: read it first."""
    exif = None
    try:
        ex = im.getexif()
        if len(ex):
            if ORIENTATION_TAG in ex:
                ex[ORIENTATION_TAG] = 1
            exif = ex.tobytes()
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the metadata, never the image
        exif = None
    return ImageInfo(bits=16 if wide or im.mode in _WIDE_MODES else 8,
                     icc_profile=im.info.get("icc_profile") or None, exif=exif)


_PILLOW_LIMIT_LOCK = threading.Lock()


def _open(path: Path) -> Image.Image:
    """Image.open with our decoders only and without Pillow's pixel limit (we check the size
    ourselves, see check_pixels). Opening reads the header only; nothing is decoded yet."""
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path, formats=_DECODERS)
        finally:
            Image.MAX_IMAGE_PIXELS = old


_STRICT_LOCK = threading.Lock()
_strict_readers = 0
_hosts_setting = False


@contextlib.contextmanager
def _strict_decoding():
    """Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` off while any of our reads runs (a host such as
    ComfyUI may switch it on: it fills what a cut file lacks with black and says nothing), then the
    host's setting back."""
    global _strict_readers, _hosts_setting
    with _STRICT_LOCK:
        if _strict_readers == 0:
            _hosts_setting = ImageFile.LOAD_TRUNCATED_IMAGES
        _strict_readers += 1
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _STRICT_LOCK:
            _strict_readers -= 1
            if _strict_readers == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _hosts_setting


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_data_size(width: int, height: int, bit_depth: int, colour_type: int, interlaced: bool) -> int:
    """Bytes of a PNG's decompressed image data: every row (of every Adam7 pass) with its filter byte."""
    bits = bit_depth * _PNG_CHANNELS.get(colour_type, 4)
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-(w * bits) // 8))
    return total


def _check_png_data(path: Path) -> None:
    """Refuse a PNG whose image data holds fewer bytes than its header's rows need (Pillow's decoder
    stops where the compressed stream ends and leaves the rest black, whatever LOAD_TRUNCATED_IMAGES
    says: a 185-byte file declaring 9000 x 9000 was read as 81 megapixels). The data is inflated
    without being kept, up to the size needed."""
    with open(path, "rb") as f:
        f.seek(8)
        header = f.read(8 + 13)
        if len(header) < 21 or header[4:8] != b"IHDR":
            return  # Pillow has read the header; an odd file is left to its decoder
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[8:21])
        need = png_data_size(width, height, depth, colour, interlace == 1)
        f.seek(4, os.SEEK_CUR)  # IHDR's CRC
        z = zlib.decompressobj()
        got = 0
        seen_data = False
        while got < need:
            head = f.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I", head[:4])[0], head[4:]
            if kind != b"IDAT":
                if seen_data:
                    break  # the image data is one run of IDAT chunks
                f.seek(length + 4, os.SEEK_CUR)
                continue
            seen_data = True
            left = length
            while left and got < need:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                left -= len(block)
                try:
                    while block and got < need:
                        got += len(z.decompress(block, 1 << 22))
                        block = z.unconsumed_tail
                except zlib.error as e:
                    raise ImageReadError(f"{path}: damaged PNG: its image data is corrupt ({e})") from None
                if z.eof:
                    break
            if z.eof:
                break
            f.seek(left + 4, os.SEEK_CUR)
    if got < need:
        share = f"{100 * got / need:.3g} %" if need else "none"
        raise ImageReadError(f"{path}: damaged PNG: it declares {width}x{height} pixels but its image data "
                             f"holds only {share} of them (cut short?); refused")


_JPEG_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}


def _jpeg_frame_marker(path: Path) -> int | None:
    """The JPEG's start-of-frame marker (0xC0 baseline ... 0xCF), from its segment headers."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        while True:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            marker = head[1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return marker
            if marker == 0xDA:  # start of scan before any frame
                return None
            f.seek(struct.unpack(">H", head[2:])[0] - 2, os.SEEK_CUR)


def _check_jpeg_size(path: Path, width: int, height: int, file_bytes: int) -> None:
    """Refuse a Huffman-coded JPEG too small to hold its declared pixels: every 8 x 8 block of the
    brightness channel costs at least one bit (its DC code), in baseline and progressive files alike.
    (libjpeg fills what a file lacks with grey and Pillow says nothing.)"""
    need = math.ceil(width / 8) * math.ceil(height / 8) / 8
    if file_bytes < need and _jpeg_frame_marker(path) in _JPEG_HUFFMAN_FRAMES:
        raise ImageReadError(f"{path}: damaged JPEG: it declares {width}x{height} pixels, which need at least "
                             f"{math.ceil(need)} bytes, but the file has {file_bytes}; refused")


def _tiff_values(im: Image.Image, tag: int) -> tuple:
    v = im.tag_v2.get(tag, ())
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _check_tiff_layout(path: Path, im: Image.Image) -> None:
    """Refuse a TIFF whose strips (or tiles) cannot cover the size it declares: Pillow decodes the
    strips there are and leaves the rest black."""
    tags = im.tag_v2
    width, height = tags.get(256), tags.get(257)
    if not isinstance(width, int) or not isinstance(height, int):
        return
    bits = _tiff_bits(im)
    planes = len(bits) if tags.get(284, 1) == 2 else 1
    if 324 in tags:  # tiles
        tw, th = tags.get(322) or width, tags.get(323) or height
        need = math.ceil(width / tw) * math.ceil(height / th) * planes
        have, counts = _tiff_values(im, 324), _tiff_values(im, 325)
        raw_bytes = need * th * math.ceil(tw * sum(bits) / planes / 8)
    else:
        rows = min(tags.get(278) or height, height) or 1
        need = math.ceil(height / rows) * planes
        have, counts = _tiff_values(im, 273), _tiff_values(im, 279)
        raw_bytes = height * sum(math.ceil(width * b / 8) for b in (bits if planes > 1 else (sum(bits),)))
    if len(have) < need or (tags.get(259, 1) == 1 and counts and sum(c for c in counts if isinstance(c, int))
                            < raw_bytes):
        raise ImageReadError(f"{path}: damaged TIFF: it declares {width}x{height} pixels but its data holds only "
                             f"part of them ({len(have)} of {need} strips or tiles); refused")


def _check_complete(path: Path, im: Image.Image) -> None:
    """Refuse, before decoding, a file whose data cannot hold the pixels its header declares."""
    if im.format == "PNG":
        _check_png_data(path)
    elif im.format in ("JPEG", "MPO"):
        _check_jpeg_size(path, im.width, im.height, path.stat().st_size)
    elif im.format == "TIFF":
        _check_tiff_layout(path, im)


@contextlib.contextmanager
def _quiet_pillow():
    """Pillow warns on stderr about damaged metadata and short files; the image is either read
    completely or refused with our own message, so its warnings would only be noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def memory_needed(width: int, height: int, channels: int) -> int:
    """Bytes to read and enhance an image: the decoded file, its float32 copy, the float32 result
    and the light map (the network itself works in tiles of bounded size)."""
    return width * height * (channels * (1 + 4 + 4) + 4)


def check_pixels(path: Path, width: int, height: int, channels: int, file_bytes: int,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse (ImageReadError) an image above ``max_pixels``, saying how much memory it would need,
    and, beyond Pillow's own limit, a file that declares far more pixels than its size can hold."""
    px = width * height
    if px == 0:
        raise ImageReadError(f"{path}: image has no pixels ({width}x{height})")
    if px > max_pixels:
        need = memory_needed(width, height, channels)
        amount = f"{need / 2 ** 30:.1f} GiB" if need >= 2 ** 30 else f"{max(1, round(need / 2 ** 20))} MiB"
        raise ImageReadError(f"{path}: {width}x{height} is {px / 1e6:.4g} megapixels, above the limit of "
                             f"{max_pixels / 1e6:g}; it would need about {amount} of memory "
                             f"(raise the limit with --max-pixels MEGAPIXELS)")
    if px > PILLOW_DEFAULT_MAX_PIXELS and px > file_bytes * BOMB_PIXELS_PER_BYTE:
        raise ImageReadError(f"{path}: declares {width}x{height} ({px / 1e6:.0f} megapixels) in a file of only "
                             f"{file_bytes} bytes; refused as a likely decompression bomb")


def _frames(im: Image.Image) -> int:
    if im.format in _PRIMARY_PICTURE_FORMATS:
        return 1
    return int(getattr(im, "n_frames", 1) or 1)


# what Pillow's decoders raise on damaged or hostile files
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
                  struct.error, Image.DecompressionBombError)


def read_image_info(path: str | os.PathLike, *, native: bool = False,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image` plus the file's bit depth, ICC profile and EXIF (see ImageInfo).
    ``native``: the pixels in the file's own form (see ``_pixels``; :func:`to_float32` converts)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with _strict_decoding(), _quiet_pillow(), _open(path) as im:
            check_pixels(path, im.width, im.height, len(im.getbands()), path.stat().st_size, max_pixels)
            frames = _frames(im)
            if frames > 1:
                raise ImageReadError(f"{path}: {im.format} with {frames} frames; only single images are read "
                                     f"(no frame is dropped silently): save the frames as separate files first")
            _check_complete(path, im)
            decoded = _wide_pixels(path, im)
            orientation = im.getexif().get(ORIENTATION_TAG, 1)
            if decoded is None:
                decoded = _Decoded(_pixels(im), False)
                decoded = decoded._replace(upright=_turned_by_pillow(im, orientation))
            info = _info(im, wide=decoded.pixels.dtype == np.uint16)
            arr = decoded.pixels
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to read it") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: cannot read image (not a {', '.join(READ_FORMATS)} file)") from None
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from None
    if orientation != 1 and not decoded.upright:
        arr = _apply_orientation(arr, orientation)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    arr = np.ascontiguousarray(arr)
    return (arr if native else to_float32(arr)), info


def _channels(im: Image.Image) -> int:
    """How many channels :func:`_pixels` gives ``im`` (from its mode, nothing decoded)."""
    if im.mode in _WIDE_MODES or im.mode in ("1", "L"):
        return 1
    if im.mode == "LA":
        return 2
    return 4 if im.mode == "RGBA" or "A" in im.getbands() or "transparency" in im.info else 3


def read_image_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """(width, height, channels) of the image :func:`read_image` would return, from the header only
    (EXIF orientation applied; a PNG's EXIF placed after its pixels is not looked at). Raises
    ImageReadError for a file that cannot be opened."""
    path = Path(path)
    try:
        with _quiet_pillow(), _open(path) as im:
            if im.format == "PNG":  # getexif() would decode a PNG whose EXIF follows the pixels
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            orientation = exif.get(ORIENTATION_TAG, 1)
            width, height = (im.tag_v2.get(256), im.tag_v2.get(257)) if im.format == "TIFF" else im.size
            width, height = (width, height) if width and height else im.size  # (Pillow turns a TIFF's size)
            channels = _channels(im)
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: cannot read image (not a {', '.join(READ_FORMATS)} file)") from None
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height, channels


def check_output_format(path: str | os.PathLike, fmt: str) -> None:
    """Refuse (ImageReadError, one line naming the limit) an input whose result ``fmt`` cannot hold
    (WebP: 16383 pixels a side, JPEG: 65500, TIFF: 4 GiB): called when the outputs are planned, before
    any work. A file whose header cannot be read passes: reading it reports that."""
    spec = OUTPUT_FORMATS[fmt]
    if not spec.limited:
        return
    try:
        width, height, channels = read_image_size(path)
    except ImageReadError:
        return
    problem = spec.refuses(width, height, channels)
    if problem:
        raise ImageReadError(f"{path}: {problem}")


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file to float32 H x W x C (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) in 0..1.

    EXIF orientation is applied. Raises ImageReadError naming the file and the problem: unreadable,
    more than one frame (animations, multi-page TIFF), more than ``max_pixels`` pixels.
    """
    return read_image_info(path, max_pixels=max_pixels)[0]


def _apply_orientation(a: np.ndarray, o: int) -> np.ndarray:
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.transpose(1, 0, 2), 6: lambda x: x.transpose(1, 0, 2)[:, ::-1],
           7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1], 8: lambda x: x.transpose(1, 0, 2)[::-1]}
    return ops.get(o, lambda x: x)(a)


def _round_to(arr: np.ndarray, top: float, dtype) -> np.ndarray:
    """``floor(top * x + 0.5)`` clamped to 0..top, NaN -> 0, as ``dtype``: one scratch array, in-place
    passes (the same values as ``np.clip(np.floor(np.nan_to_num(x) * top + 0.5), 0, top)``; float16
    computes in float32)."""
    buf = np.multiply(arr, top, dtype=np.result_type(arr.dtype, np.float32))  # float16 cannot hold 65535
    buf += 0.5
    np.floor(buf, out=buf)
    np.clip(buf, 0, top, out=buf)  # +-inf land on the ends; NaN stays NaN ...
    np.nan_to_num(buf, copy=False)  # ... and becomes 0
    return buf.astype(dtype)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round like torchvision's ``save_image``: ``floor(255 * x + 0.5)`` clamped to 0..255 (NaN -> 0)."""
    return _round_to(arr, 255.0, np.uint8)


def to_uint16(arr: np.ndarray) -> np.ndarray:
    """``floor(65535 * x + 0.5)`` clamped to 0..65535 (NaN -> 0)."""
    return _round_to(arr, 65535.0, np.uint16)


class OutputFormat(NamedTuple):
    ext: str
    pillow_name: str
    alpha: bool        # can hold an alpha channel
    sixteen_bit: bool  # we write it with 16 bits per channel
    title: str = ""
    max_side: int | None = None   # widest / tallest image the format (its encoder) can hold
    max_bytes: int | None = None  # most uncompressed pixel bytes (TIFF: 32-bit offsets)

    @property
    def limited(self) -> bool:
        """Whether some images readable here are too big for this format (see :meth:`refuses`)."""
        return self.max_side is not None or self.max_bytes is not None

    def refuses(self, width: int, height: int, channels: int) -> str | None:
        """Why a ``width`` x ``height`` result with ``channels`` channels cannot be written in this format
        (one line naming the limit), or None."""
        if self.max_side is not None and max(width, height) > self.max_side:
            side = "wider" if width > self.max_side else "taller"
            return (f"{width}x{height} is {side} than {self.title} allows ({self.max_side} pixels); "
                    f"choose another --format")
        out_channels = channels - 1 if not self.alpha and channels in (2, 4) else channels
        if self.max_bytes is not None and width * height * out_channels > self.max_bytes:
            return (f"{width}x{height} with {out_channels} channels is more than a {self.title} file holds "
                    f"({self.max_bytes / 2 ** 30:.0f} GiB of pixels); choose another --format")
        return None


# (PNG's limit, 2^31 - 1 pixels a side, is beyond any image the readers take)
OUTPUT_FORMATS = {"png": OutputFormat(".png", "PNG", True, True, "PNG"),
                  "jpg": OutputFormat(".jpg", "JPEG", False, False, "JPEG", 65_500),
                  "webp": OutputFormat(".webp", "WEBP", True, False, "WebP", 16_383),
                  "tiff": OutputFormat(".tif", "TIFF", True, False, "TIFF", 2 ** 32 - 1, 2 ** 32 - 2 ** 20)}
_FORMAT_OF_SUFFIX = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}


def format_of(path: str | os.PathLike) -> str:
    fmt = _FORMAT_OF_SUFFIX.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot write this file type (use {', '.join(sorted(_FORMAT_OF_SUFFIX))})")
    return fmt


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png16_idat(a16: np.ndarray, rows_per_chunk: int = 256, level: int = PNG_COMPRESS_LEVEL,
                strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    """zlib stream (``level``, ``strategy``) of the filter-0 scanlines, built a band of rows at a time
    (the same bytes as compressing all scanlines at once, without a copy of the whole image)."""
    h, w, c = a16.shape
    z = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 8, strategy)
    parts = []
    for y in range(0, h, rows_per_chunk):
        band = a16[y:y + rows_per_chunk]
        rows = np.empty((band.shape[0], 1 + w * c * 2), dtype=np.uint8)
        rows[:, 0] = 0
        rows[:, 1:] = np.ascontiguousarray(band, dtype=">u2").view(np.uint8).reshape(band.shape[0], -1)
        parts.append(z.compress(rows))
    parts.append(z.flush())
    return b"".join(parts)


def encode_png16(a16: np.ndarray, info: ImageInfo | None = None, compression=PNG_AUTO) -> bytes:
    """uint16 H x W x C (C 1..4) as a 16-bit PNG (filter 0, zlib as ``compression`` says: anything
    PngCompression.parse takes), with the ICC profile (iCCP) and EXIF (eXIf) of ``info`` when given."""
    level, strategy = PngCompression.parse(compression).zlib_settings(16)
    h, w, c = a16.shape
    out = [b"\x89PNG\r\n\x1a\n",
           _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0))]
    if info is not None and info.icc_profile:
        out.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(info.icc_profile)))
    if info is not None and info.exif:
        exif = info.exif[6:] if info.exif.startswith(b"Exif\x00\x00") else info.exif
        out.append(_png_chunk(b"eXIf", exif))
    out += [_png_chunk(b"IDAT", _png16_idat(a16, level=level, strategy=strategy)), _png_chunk(b"IEND", b"")]
    return b"".join(out)


def write_image(path: str | os.PathLike, arr: np.ndarray, *, bits: int = 8, quality: int = 95,
                info: ImageInfo | None = None, fmt: str | None = None, png_compression=PNG_AUTO) -> None:
    """Write float H x W x C (C 1..4) in 0..1 (or pixels already rounded: uint8 for ``bits`` 8,
    uint16 for 16), atomically, as the file type its suffix names
    (.png, .jpg/.jpeg, .webp, .tif/.tiff). ``bits`` 16 is for PNG only; ``quality`` (1..100) for
    JPEG / WebP; ``png_compression`` (PngCompression or what its ``parse`` takes) how PNGs are compressed
    (the same pixels with every setting); ``info``
    carries the input's ICC profile and EXIF over. JPEG has no alpha: an alpha channel is dropped
    (the caller warns). ``fmt`` overrides the suffix (a key of OUTPUT_FORMATS)."""
    path = Path(path)
    fmt = fmt or format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_together([(path, lambda tmp: save_image(tmp, arr, bits=bits, quality=quality, info=info, fmt=fmt,
                                                  png_compression=png_compression))])


def save_image(path: str | os.PathLike, arr: np.ndarray, *, bits: int = 8, quality: int = 95,
               info: ImageInfo | None = None, fmt: str | None = None, png_compression=PNG_AUTO) -> None:
    """What :func:`write_image` does, but writing ``path`` directly (not atomic: for callers that
    write to a temporary file themselves, see atomic.write_together)."""
    path = Path(path)
    _encode_to(path, arr, bits=bits, quality=quality, info=info, fmt=fmt or format_of(path),
               png_compression=png_compression)


def encode_image(arr: np.ndarray, *, fmt: str, bits: int = 8, quality: int = 95, info: ImageInfo | None = None,
                 png_compression=PNG_AUTO) -> bytes:
    """The bytes :func:`save_image` would write for ``fmt`` (a key of OUTPUT_FORMATS), in memory:
    encoding that can run in any thread, ahead of the ordered, atomic write of the bytes."""
    buf = io.BytesIO()
    _encode_to(buf, arr, bits=bits, quality=quality, info=info, fmt=fmt, png_compression=png_compression)
    return buf.getvalue()


def _encode_to(target: Path | BinaryIO, arr: np.ndarray, *, bits: int, quality: int, info: ImageInfo | None,
               fmt: str, png_compression) -> None:
    """Encode ``arr`` as ``fmt`` into a file (a Path: opened only once the arguments are checked)
    or a binary buffer."""
    name = str(target) if isinstance(target, Path) else f"a {fmt} result"
    spec = OUTPUT_FORMATS[fmt]
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if bits == 16 and not spec.sixteen_bit:
        raise ValueError(f"{name}: 16-bit output needs PNG, not {fmt}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    png = PngCompression.parse(png_compression)
    if arr.dtype in (np.uint8, np.uint16) and arr.dtype != (np.uint8 if bits == 8 else np.uint16):
        raise ValueError(f"{arr.dtype} pixels cannot be written with {bits} bits")
    if arr.ndim == 2:
        arr = arr[..., None]
    too_big = spec.refuses(arr.shape[1], arr.shape[0], arr.shape[2])
    if too_big:  # refused before the encoder (libjpeg prints its own line on stderr)
        raise OSError(errno.EFBIG, f"{too_big}", name)
    if not spec.alpha and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]
    with open(target, "wb") if isinstance(target, Path) else contextlib.nullcontext(target) as f:
        if bits == 16:
            f.write(encode_png16(arr if arr.dtype == np.uint16 else to_uint16(arr), info, png))
        else:
            _save_8bit(f, arr, fmt, quality=quality, info=info, png=png)


def _save_8bit(f: BinaryIO, arr: np.ndarray, fmt: str, *, quality: int, info: ImageInfo | None,
               png: PngCompression) -> None:
    """Pillow's encoder for ``fmt``, writing ``arr`` (float in 0..1 or uint8) into ``f``."""
    spec = OUTPUT_FORMATS[fmt]
    a = arr if arr.dtype == np.uint8 else to_uint8(arr)
    im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    opts: dict = {}
    if info is not None and info.icc_profile:
        opts["icc_profile"] = info.icc_profile
    if info is not None and info.exif:
        opts["exif"] = info.exif
    if fmt == "png":
        opts["compress_level"], opts["compress_type"] = png.zlib_settings(8)
    if fmt in ("jpg", "webp"):
        opts["quality"] = int(quality)
    if fmt == "jpg" and quality >= 90:
        opts["subsampling"] = 0  # 4:4:4: no colour bleeding at the quality photographers pick
    try:
        im.save(f, format=spec.pillow_name, **opts)
    except (ValueError, TypeError, KeyError, struct.error):
        if "exif" not in opts:
            raise
        del opts["exif"]  # an EXIF block this format's writer rejects: keep the pixels and the profile
        f.seek(0)
        f.truncate()
        im.save(f, format=spec.pillow_name, **opts)


def write_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write float H x W x C (C 1..4) in 0..1 as an 8-bit PNG, atomically."""
    write_image(Path(path), arr, fmt="png")
