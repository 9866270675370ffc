"""Reading and writing image files as float32 arrays in 0..1 (H x W x C, C in 1..4).

Pillow decodes 16-bit RGB(A) PNGs to 8 bits; we keep the full precision by
letting Pillow decode (and un-filter) the same stream twice, once keeping the
high bytes and once the low bytes. Pillow cannot write them either: 16-bit PNGs
are written by a small encoder here (filter 0, zlib). The colour profile (ICC)
and EXIF of an input can be carried over to its result (``ImageInfo``).
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
from PIL import Image

from .errors import ImageReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# zlib level of PNG results: 4 (as ComfyUI's SaveImage) writes a 3 MP photo about 2x faster than
# Pillow's default 6 for files about 3 % larger (benchmarks/bench_cold_start.py measures both)
PNG_COMPRESS_LEVEL = 4

_SIXTEEN_BIT_RAWMODES = {"RGB;16B": ("RGB;16B", "RGB;16L"), "RGBA;16B": ("RGBA;16B", "RGBA;16L")}


def list_images(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Expand files and folders (not recursive) into image paths, sorted per folder.

    Returns (paths, problems) where problems are messages for inputs that do not exist
    or folders without images.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return paths, problems


def _sixteen_bit_rgb(path: Path, im: Image.Image) -> np.ndarray | None:
    tile = im.tile[0] if len(im.tile) == 1 else None
    if tile is None or tile.codec_name != "zip" or tile.args not in _SIXTEEN_BIT_RAWMODES:
        return None
    halves = []
    for raw in _SIXTEEN_BIT_RAWMODES[tile.args]:
        with Image.open(path) as again:
            again.tile = [again.tile[0]._replace(args=raw)]
            halves.append(np.asarray(again, dtype=np.uint16))
    return (halves[0] * 256 + halves[1]).astype(np.float32) / 65535.0


def _to_float(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16).astype(np.float32)[..., None] / 65535.0
    if mode == "I":
        a = np.asarray(im, dtype=np.int64)
        scale = 65535.0 if a.max(initial=0) > 255 else 255.0
        return (np.clip(a, 0, scale).astype(np.float32) / scale)[..., None]
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0, 1)[..., None]
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.float32)[..., None] / 255.0
    if mode == "LA":
        return np.asarray(im, dtype=np.float32) / 255.0
    if mode == "RGBA" or "A" in im.getbands() or "transparency" in im.info:
        return np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


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


def read_image_info(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image` plus the file's bit depth, ICC profile and EXIF (see ImageInfo)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            wide = _sixteen_bit_rgb(path, im)
            orientation = im.getexif().get(ORIENTATION_TAG, 1)
            info = _info(im, wide is not None)
            if wide is not None:
                arr = wide
            else:
                arr = _to_float(im)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from None
    if orientation != 1:
        arr = _apply_orientation(arr, orientation)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    return np.ascontiguousarray(arr, dtype=np.float32), info


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file to float32 H x W x C (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) in 0..1.

    EXIF orientation is applied. Raises ImageReadError naming the file and the problem.
    """
    return read_image_info(path)[0]


def _apply_orientation(a: np.ndarray, o: int) -> np.ndarray:
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.transpose(1, 0, 2), 6: lambda x: x.transpose(1, 0, 2)[:, ::-1],
           7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1], 8: lambda x: x.transpose(1, 0, 2)[::-1]}
    return ops.get(o, lambda x: x)(a)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round like torchvision's ``save_image``: ``floor(255 * x + 0.5)`` clamped to 0..255."""
    return np.clip(np.floor(np.nan_to_num(arr) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def to_uint16(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.nan_to_num(arr) * 65535.0 + 0.5), 0, 65535).astype(np.uint16)


class OutputFormat(NamedTuple):
    ext: str
    pillow_name: str
    alpha: bool        # can hold an alpha channel
    sixteen_bit: bool  # we write it with 16 bits per channel


OUTPUT_FORMATS = {"png": OutputFormat(".png", "PNG", True, True), "jpg": OutputFormat(".jpg", "JPEG", False, False),
                  "webp": OutputFormat(".webp", "WEBP", True, False),
                  "tiff": OutputFormat(".tif", "TIFF", True, False)}
_FORMAT_OF_SUFFIX = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}


def format_of(path: str | os.PathLike) -> str:
    fmt = _FORMAT_OF_SUFFIX.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot write this file type (use {', '.join(sorted(_FORMAT_OF_SUFFIX))})")
    return fmt


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png16(a16: np.ndarray, info: ImageInfo | None = None) -> bytes:
    """uint16 H x W x C (C 1..4) as a 16-bit PNG (filter 0, zlib level 6), with the ICC profile (iCCP)
    and EXIF (eXIf) of ``info`` when given."""
    h, w, c = a16.shape
    rows = np.empty((h, 1 + w * c * 2), dtype=np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = np.ascontiguousarray(a16, dtype=">u2").view(np.uint8).reshape(h, -1)
    out = [b"\x89PNG\r\n\x1a\n",
           _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0))]
    if info is not None and info.icc_profile:
        out.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(info.icc_profile)))
    if info is not None and info.exif:
        exif = info.exif[6:] if info.exif.startswith(b"Exif\x00\x00") else info.exif
        out.append(_png_chunk(b"eXIf", exif))
    out += [_png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)), _png_chunk(b"IEND", b"")]
    return b"".join(out)


def write_image(path: str | os.PathLike, arr: np.ndarray, *, bits: int = 8, quality: int = 95,
                info: ImageInfo | None = None, fmt: str | None = None) -> None:
    """Write float H x W x C (C 1..4) in 0..1, atomically, as the file type its suffix names
    (.png, .jpg/.jpeg, .webp, .tif/.tiff). ``bits`` 16 is for PNG only; ``quality`` (1..100) for
    JPEG / WebP; ``info`` carries the input's ICC profile and EXIF over. JPEG has no alpha: an
    alpha channel is dropped (the caller warns). ``fmt`` overrides the suffix (a key of OUTPUT_FORMATS)."""
    path = Path(path)
    fmt = fmt or format_of(path)
    spec = OUTPUT_FORMATS[fmt]
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if bits == 16 and not spec.sixteen_bit:
        raise ValueError(f"{path}: 16-bit output needs PNG, not {fmt}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if not spec.alpha and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{spec.ext}")
    try:
        if bits == 16:
            tmp.write_bytes(encode_png16(to_uint16(arr), info))
        else:
            a = to_uint8(arr)
            im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
            opts: dict = {}
            if info is not None and info.icc_profile:
                opts["icc_profile"] = info.icc_profile
            if info is not None and info.exif:
                opts["exif"] = info.exif
            if fmt == "png":
                opts["compress_level"] = PNG_COMPRESS_LEVEL
            if fmt in ("jpg", "webp"):
                opts["quality"] = int(quality)
            if fmt == "jpg" and quality >= 90:
                opts["subsampling"] = 0  # 4:4:4: no colour bleeding at the quality photographers pick
            try:
                im.save(tmp, format=spec.pillow_name, **opts)
            except (ValueError, TypeError, KeyError, struct.error):
                if "exif" not in opts:
                    raise
                del opts["exif"]  # an EXIF block this format's writer rejects: keep the pixels and the profile
                im.save(tmp, format=spec.pillow_name, **opts)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write float H x W x C (C 1..4) in 0..1 as an 8-bit PNG, atomically."""
    write_image(Path(path), arr, fmt="png")
