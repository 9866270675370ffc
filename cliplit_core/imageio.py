"""Reading and writing image files as float32 arrays in 0..1 (H x W x C, C in 1..4).

Pillow decodes 16-bit RGB(A) PNGs to 8 bits; we keep the full precision by
letting Pillow decode (and un-filter) the same stream twice, once keeping the
high bytes and once the low bytes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from .errors import ImageReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file to float32 H x W x C (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) in 0..1.

    EXIF orientation is applied. Raises ImageReadError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            wide = _sixteen_bit_rgb(path, im)
            if wide is not None:
                arr = wide
                orientation = im.getexif().get(0x0112, 1)
            else:
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
                arr = _to_float(im)
                orientation = 1
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from None
    if orientation != 1:
        arr = _apply_orientation(arr, orientation)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _apply_orientation(a: np.ndarray, o: int) -> np.ndarray:
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.transpose(1, 0, 2), 6: lambda x: x.transpose(1, 0, 2)[:, ::-1],
           7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1], 8: lambda x: x.transpose(1, 0, 2)[::-1]}
    return ops.get(o, lambda x: x)(a)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round like torchvision's ``save_image``: ``floor(255 * x + 0.5)`` clamped to 0..255."""
    return np.clip(np.floor(np.nan_to_num(arr) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def write_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write float H x W x C (C 1..4) in 0..1 as an 8-bit PNG, atomically."""
    a = to_uint8(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    try:
        Image.fromarray(a).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
