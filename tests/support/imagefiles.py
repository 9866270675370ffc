"""Writers for test image files Pillow cannot produce (16-bit RGB/RGBA PNG)."""
import struct
import zlib

import numpy as np


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _filtered(rows: np.ndarray, bpp: int, cycle: bool) -> bytes:
    """PNG scanlines of ``rows`` (uint8, one image or pass): filter 0, or filters 0..4 in turn."""
    out, prior = [], np.zeros(rows.shape[1], np.int32)
    for y, row in enumerate(rows.astype(np.int32)):
        kind = y % 5 if cycle else 0
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        if kind == 4:
            p = left + prior - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, up_left))
        else:
            pred = [np.zeros_like(row), left, prior, (left + prior) // 2][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prior = row
    return b"".join(out)


def write_png16(path, arr16: np.ndarray, interlace: bool = False, filters: bool = False) -> None:
    """Write uint16 H x W x C (C = 1, 2, 3, 4) as a 16-bit PNG, Adam7-interlaced or not, every row with
    filter 0 or (``filters``) the five PNG filters in turn, as real encoders choose them."""
    if arr16.ndim == 2:
        arr16 = arr16[..., None]
    h, w, c = arr16.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    passes = [arr16[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [arr16]
    raw = b"".join(_filtered(np.ascontiguousarray(p.astype(">u2")).view(np.uint8).reshape(p.shape[0], -1), 2 * c,
                             filters) for p in passes if p.shape[1] and p.shape[0])

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, int(interlace)))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, idat: bytes = b"", depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but that carries only ``idat`` (compressed) data:
    what a decompression bomb or a damaged file looks like to the reader."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
            + png_chunk(b"IDAT", idat or zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def tiff_bytes(arr: np.ndarray, *, byteorder: str = "<", compression: str | None = None, predictor: bool = False,
               planar: str = "contig", extrasamples: tuple[int, ...] | None = None, rows_per_strip: int | None = None,
               orientation: int | None = None) -> bytes:
    """A baseline TIFF of ``arr`` (H x W x C, uint8 or uint16; C 1, 3 or 4), which Pillow cannot write
    for 16-bit colour: byte order ``"<"`` (II) or ``">"`` (MM), ``compression`` None or ``"deflate"``
    (Adobe deflate, optionally with the horizontal ``predictor``), channels interleaved (``"contig"``) or in
    ``"separate"`` planes, ``extrasamples`` for a fourth channel (0 unspecified, 1 associated alpha,
    2 unassociated alpha), strips of ``rows_per_strip`` rows, an EXIF-style ``orientation`` tag. The
    directory comes first, then the strips: a file cut short still opens."""
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape
    bits = arr.dtype.itemsize * 8
    rows = rows_per_strip or h
    data = arr.astype(arr.dtype.newbyteorder(byteorder))
    if predictor:
        data = data.copy()
        data[:, 1:] = data[:, 1:] - data[:, :-1]  # horizontal differencing, per sample (wraps around)
    planes = [data] if planar == "contig" else [data[..., k:k + 1] for k in range(c)]
    strips = []
    for plane in planes:
        for y in range(0, h, rows):
            raw = np.ascontiguousarray(plane[y:y + rows]).tobytes()
            strips.append(zlib.compress(raw) if compression == "deflate" else raw)
    photometric = 1 if c == 1 else 2
    tags = {256: (4, [w]), 257: (4, [h]), 258: (3, [bits] * c), 259: (3, [8 if compression == "deflate" else 1]),
            262: (3, [photometric]), 273: (4, [0] * len(strips)), 277: (3, [c]), 278: (4, [rows]),
            279: (4, [len(s) for s in strips]), 284: (3, [1 if planar == "contig" else 2])}
    if predictor:
        tags[317] = (3, [2])
    if extrasamples is not None:
        tags[338] = (3, list(extrasamples))
    if orientation is not None:
        tags[274] = (3, [orientation])
    e = byteorder
    size = {3: 2, 4: 4}
    ifd_len = 2 + 12 * len(tags) + 4
    extra_at = 8 + ifd_len
    extra = b""
    entries = []
    strip_offsets_at = None
    for tag in sorted(tags):
        kind, values = tags[tag]
        payload = b"".join(struct.pack(e + ("H" if kind == 3 else "I"), v) for v in values)
        if len(payload) <= 4:
            entries.append(struct.pack(e + "HHI", tag, kind, len(values)) + payload.ljust(4, b"\0"))
            if tag == 273:
                strip_offsets_at = ("inline", len(entries) - 1)
        else:
            entries.append(struct.pack(e + "HHII", tag, kind, len(values), extra_at + len(extra)))
            if tag == 273:
                strip_offsets_at = ("extra", len(extra))
            extra += payload
    data_at = extra_at + len(extra)
    offsets, pos = [], data_at
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    packed = b"".join(struct.pack(e + "I", o) for o in offsets)
    where, index = strip_offsets_at
    if where == "inline":
        entries[index] = entries[index][:8] + packed
    else:
        extra = extra[:index] + packed + extra[index + len(packed):]
    head = (b"II*\0" if e == "<" else b"MM\0*") + struct.pack(e + "I", 8)
    ifd = struct.pack(e + "H", len(tags)) + b"".join(entries) + struct.pack(e + "I", 0)
    return head + ifd + extra + b"".join(strips)
