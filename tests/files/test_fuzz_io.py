"""Fuzzing the reader and the command line (seeded, a few seconds): random bytes, every supported
format truncated, headers declaring huge or zero sizes, flipped bytes. Nothing may raise a
traceback, a damaged file may never come back as a wrong image, and the command line writes
exactly the files it planned and touches nothing else."""
from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliplit_core.cli.app import main
from cliplit_core.errors import ImageReadError
from cliplit_core.files.images import IMAGE_EXTENSIONS, encode_png16, list_images, read_image
from cliplit_core.files.outputs import MANIFEST_NAME, plan_outputs

from tests.support.data import synthetic_photo
from tests.support.imagefiles import png_chunk

SEED = 20231
CLI_MAX_PIXELS = 5_000  # the command-line run refuses bigger declared sizes quickly (--max-pixels 0.005)


def _valid_files() -> dict[str, bytes]:
    """One small valid file per format variant we read."""
    rgb = (synthetic_photo(24, 32) * 255).astype(np.uint8)
    rgba = (synthetic_photo(24, 32, 4) * 255).astype(np.uint8)
    out = {}
    for name, im, kw in [("rgb.png", Image.fromarray(rgb), {}), ("rgba.png", Image.fromarray(rgba), {}),
                         ("gray.png", Image.fromarray(rgb[..., 0]), {}),
                         ("base.jpg", Image.fromarray(rgb), {"quality": 90}),
                         ("prog.jpeg", Image.fromarray(rgb), {"quality": 90, "progressive": True}),
                         ("lossy.webp", Image.fromarray(rgb), {"quality": 90}),
                         ("lossless.webp", Image.fromarray(rgba), {"lossless": True}),
                         ("plain.bmp", Image.fromarray(rgb), {}), ("plain.tif", Image.fromarray(rgb), {}),
                         ("deflate.tiff", Image.fromarray(rgb), {"compression": "tiff_deflate"}),
                         ("pal.gif", Image.fromarray(rgb).convert("P"), {})]:
        buf = io.BytesIO()
        im.save(buf, format={".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
            Path(name).suffix, Path(name).suffix[1:].upper()), **kw)
        out[name] = buf.getvalue()
    out["deep16.png"] = encode_png16((synthetic_photo(24, 32) * 65535).astype(np.uint16))
    assert {Path(n).suffix for n in out} == set(IMAGE_EXTENSIONS)  # every format we list is fuzzed
    return out


def _declared_sizes(rng) -> list[tuple[int, int]]:
    return [(0, 0), (0, 24), (32, 0), (1, 1), (65535, 65535), (70000, 3000), (2 ** 31 - 1, 2 ** 31 - 1),
            (int(rng.integers(1, 200)), int(rng.integers(1, 200)))]


def _with_size(name: str, data: bytes, w: int, h: int) -> bytes | None:
    """``data`` with its header changed to declare w x h (None where the format cannot say so)."""
    b = bytearray(data)
    ext = Path(name).suffix
    if ext == ".png":
        ihdr = b[16:29]
        ihdr[0:8] = struct.pack(">II", w, h)
        return bytes(b[:8] + png_chunk(b"IHDR", bytes(ihdr)) + b[33:])
    if ext == ".bmp":
        b[18:26] = struct.pack("<ii", min(w, 2 ** 31 - 1), min(h, 2 ** 31 - 1))
        return bytes(b)
    if ext == ".gif":
        w16, h16 = min(w, 65535), min(h, 65535)
        b[6:10] = struct.pack("<HH", w16, h16)
        desc = b.find(b"\x2c")
        if desc > 0:
            b[desc + 5:desc + 9] = struct.pack("<HH", w16, h16)
        return bytes(b)
    if ext in (".jpg", ".jpeg"):
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            i = b.find(marker)
            if i > 0:
                b[i + 5:i + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
                return bytes(b)
        return None
    if ext in (".tif", ".tiff") and b[:2] == b"II":
        ifd = struct.unpack("<I", b[4:8])[0]
        for k in range(struct.unpack("<H", b[ifd:ifd + 2])[0]):
            e = ifd + 2 + 12 * k
            tag, typ = struct.unpack("<HH", b[e:e + 4])
            if tag in (256, 257):
                v = w if tag == 256 else h
                b[e + 8:e + 12] = struct.pack("<HH", min(v, 65535), 0) if typ == 3 else struct.pack("<I", v)
        return bytes(b)
    if ext == ".webp" and b[12:16] == b"VP8 ":
        b[26:30] = struct.pack("<HH", min(w, 16383), min(h, 16383))
        return bytes(b)
    return None


def fuzz_corpus(seed: int = SEED) -> dict[str, tuple[bytes, str, np.ndarray | None]]:
    """name -> (bytes, kind, the original's pixels for truncated files that must read exactly or not at all)."""
    rng = np.random.default_rng(seed)
    valid = _valid_files()
    corpus: dict[str, tuple[bytes, str, np.ndarray | None]] = {}
    for ext in IMAGE_EXTENSIONS:
        for k in range(3):
            n = int(rng.integers(0, 3000))
            corpus[f"random{k}{ext}"] = (rng.integers(0, 256, n, dtype=np.uint8).tobytes(), "random", None)
    for name, data in valid.items():
        stem, ext = Path(name).stem, Path(name).suffix
        corpus[f"whole_{stem}{ext}"] = (data, "valid", None)
        magic = data[:16]
        corpus[f"magic_{stem}{ext}"] = (magic + rng.integers(0, 256, 600, dtype=np.uint8).tobytes(), "random", None)
        cuts = sorted({0, 1, 8, 16, 40, len(data) // 2, len(data) - 1, *rng.integers(1, len(data), 6).tolist()})
        for cut in cuts:
            corpus[f"cut{cut}_{stem}{ext}"] = (data[:cut], "truncated", name)
        for i, (w, h) in enumerate(_declared_sizes(rng)):
            forged = _with_size(name, data, w, h)
            if forged is not None:
                corpus[f"size{i}_{w}x{h}_{stem}{ext}"] = (forged, "header", None)
        for k in range(3):
            b = bytearray(data)
            for pos in rng.integers(0, len(b), 4):
                b[pos] = int(rng.integers(0, 256))
            corpus[f"flip{k}_{stem}{ext}"] = (bytes(b), "flipped", None)
    return corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz") / "in"
    d.mkdir()
    corpus = fuzz_corpus()
    originals = {}
    for name, data in _valid_files().items():
        (d.parent / name).write_bytes(data)
        originals[name] = read_image(d.parent / name)
    for name, (data, _, _) in corpus.items():
        (d / name).write_bytes(data)
    return d, corpus, originals


def test_reader_never_raises_anything_else_nor_returns_a_wrong_image(corpus_dir):
    d, corpus, originals = corpus_dir
    outcomes = {"read": 0, "refused": 0}
    for name, (_, kind, source) in corpus.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                arr = read_image(d / name)
            except ImageReadError as e:
                arr = None
                assert name in str(e) and "\n" not in str(e)
        assert [str(w.message) for w in caught] == [], name  # no raw decoder warnings on stderr
        if arr is None:
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4), name
        assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1, name
        if kind == "truncated":  # a cut file is read in full (only trailing metadata was lost) or refused
            assert arr.shape == originals[source].shape and np.array_equal(arr, originals[source]), name
        if kind == "valid":
            assert arr.shape[:2] == (24, 32), name
    assert outcomes["read"] > 30 and outcomes["refused"] > 150, outcomes  # the corpus exercises both paths


def test_headers_declaring_absurd_sizes_are_refused_without_decoding(corpus_dir):
    d, corpus, _ = corpus_dir
    for name, (_, kind, _) in corpus.items():
        if kind == "header" and ("_2147483647x" in name or "_65535x65535" in name or "_70000x" in name
                                 or "_0x" in name or "x0_" in name):
            with pytest.raises(ImageReadError):
                read_image(d / name)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _identity_network(monkeypatch):
    """The fuzz is about files: the network is replaced by a quick stand-in (light map = 1)."""
    from cliplit_core.cli import enhance as enhance_files
    from cliplit_core.files.images import to_float32

    def enhance_photo(net, pixels, *, with_light=False, **kwargs):
        x = to_float32(pixels)
        return x.copy(), (np.ones(x.shape[:2], np.float32) if with_light else None)

    monkeypatch.setattr(enhance_files, "enhance_photo", enhance_photo)


def test_cli_writes_exactly_its_plan(corpus_dir, tmp_path, capsys, monkeypatch):
    from cliplit_core.weights.checkpoint import save_weights
    from cliplit_core.light.network import CLIPLITNet

    _identity_network(monkeypatch)
    d, corpus, _ = corpus_dir
    torch.manual_seed(0)
    weights = tmp_path / "random.safetensors"
    save_weights(weights, enhancer=CLIPLITNet().state_dict())
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb.png").write_bytes(b"a file of the user's that must survive")
    before_in, before_out = _snapshot(d), _snapshot(out)

    paths, _ = list_images([d])
    assert len(paths) == len(corpus)
    readable = {}
    for p in paths:
        try:
            readable[p] = read_image(p, max_pixels=CLI_MAX_PIXELS).shape
        except ImageReadError:
            pass
    plan, _ = plan_outputs(paths, out, [".png", "_light.png"])
    rc = main(["enhance", str(d), "-o", str(out), "--weights", str(weights), "--device", "cpu", "--save-light",
               "--max-pixels", str(CLI_MAX_PIXELS / 1e6)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"enhanced {len(readable)} of {len(paths)} images" in err
    assert _snapshot(d) == before_in  # the inputs are untouched
    expected = {MANIFEST_NAME} | set(before_out)
    for planned in plan:
        if planned.src in readable:
            expected |= {f.name for f in planned.files}
            h, w, _ = readable[planned.src]
            assert Image.open(planned.main).size == (w, h)
        else:
            assert planned.src.name in err
    assert {p.name for p in out.iterdir()} == expected  # nothing partial, nothing outside the plan
    assert (out / "rgb.png").read_bytes() == before_out["rgb.png"]


def test_score_cli_on_the_corpus(corpus_dir, tmp_path, capsys):
    pytest.importorskip("open_clip")
    from tests.support.clip_fixtures import VIT_TINY, build_random, write_config
    from safetensors.torch import save_file

    from cliplit_core.clip.prompts import PromptPair

    d, corpus, _ = corpus_dir
    backbone = build_random(write_config(tmp_path, "vit_tiny", VIT_TINY), seed=0)
    save_file({k: v.contiguous() for k, v in backbone.model.state_dict().items()}, str(tmp_path / "clip.safetensors"))
    pair = PromptPair.random(backbone, 4, generator=torch.Generator().manual_seed(1))
    pair.clip_pretrained = str(tmp_path / "clip.safetensors")
    pair.save(tmp_path / "model.safetensors")
    before = _snapshot(d)
    rc = main(["score", str(d), "--model", str(tmp_path / "model.safetensors"), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    scored = [json.loads(line) for line in out.splitlines()]
    assert scored and all(0 <= r["light_score"] <= 1 for r in scored)
    assert len(scored) + err.count("error: ") == len(corpus)
    assert _snapshot(d) == before
