"""Writers for test image files Pillow cannot produce (16-bit RGB/RGBA PNG)."""
import struct
import zlib

import numpy as np


def write_png16(path, arr16: np.ndarray) -> None:
    """Write uint16 H x W x C (C = 1, 2, 3, 4) as a 16-bit PNG (filter 0, no interlace)."""
    if arr16.ndim == 2:
        arr16 = arr16[..., None]
    h, w, c = arr16.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, idat: bytes = b"", depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but that carries only ``idat`` (compressed) data:
    what a decompression bomb or a damaged file looks like to the reader."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
            + png_chunk(b"IDAT", idat or zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
