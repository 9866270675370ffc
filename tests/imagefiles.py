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
