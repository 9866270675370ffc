"""cliplit_core.weights.file_contents: what a weights file holds, from its tensor names only (for file
lists): enhancement network, prompt pair, neither (CLIP weights, other models), or unknown (unreadable);
a multi-GB file costs kilobytes of reading; results cached per path, size and modification time."""
from __future__ import annotations

import json
import os
import pickle
import struct
import time
import warnings

import pytest
import torch
from safetensors.torch import save_file
from tests.support.clip_fixtures import VIT_TINY
from tests.support.data import OFFICIAL_WEIGHTS, require_shared

from cliplit_core.light.network import CLIPLITNet
from cliplit_core.weights import file_contents as fc
from cliplit_core.weights.checkpoint import save_weights

NET = fc.Contents(network=True, prompt_pair=False)
PAIR = fc.Contents(network=False, prompt_pair=True)
BOTH = fc.Contents(network=True, prompt_pair=True)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _tiny_clip_state():
    """A CLIP state dict as open_clip saves it (visual.*, transformer.*, token_embedding ...)."""
    from open_clip.model import CLIP

    model = CLIP(VIT_TINY["embed_dim"], VIT_TINY["vision_cfg"], VIT_TINY["text_cfg"])
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> (path, expected contents) for every kind of file a model folder may hold."""
    d = tmp_path_factory.mktemp("cliplit")
    net = CLIPLITNet().state_dict()
    pair = torch.zeros(2, 77, 32)
    clip = _tiny_clip_state()
    made = {}

    def add(name, expected):
        made[name] = (d / name, expected)

    save_weights(d / "ours_both.safetensors", enhancer=net, prompt_pair=pair)
    add("ours_both.safetensors", BOTH)
    save_weights(d / "ours_network.safetensors", enhancer=net)
    add("ours_network.safetensors", NET)
    save_weights(d / "ours_pair.safetensors", prompt_pair=pair)
    add("ours_pair.safetensors", PAIR)
    save_file({f"module.{k}": v.contiguous() for k, v in net.items()}, str(d / "bare_network.safetensors"))
    add("bare_network.safetensors", NET)
    authors_prompt = {"module.embedding_prompt": torch.randn(2, 77, 512),
                      "module.text_encoder.positional_embedding": torch.zeros(77, 512)}
    torch.save(authors_prompt, d / "init_prompt_pair.pth")
    add("init_prompt_pair.pth", PAIR)
    torch.save(authors_prompt, d / "legacy_prompt_pair.pth", _use_new_zipfile_serialization=False)
    add("legacy_prompt_pair.pth", PAIR)
    for proto in (2, 4):
        torch.save({f"module.{k}": v for k, v in net.items()}, d / f"authors_p{proto}.pth", pickle_protocol=proto)
        add(f"authors_p{proto}.pth", NET)
        torch.save(net, d / f"legacy_p{proto}.pth", pickle_protocol=proto, _use_new_zipfile_serialization=False)
        add(f"legacy_p{proto}.pth", NET)
    torch.save({"state_dict": net}, d / "wrapped.pth")
    add("wrapped.pth", NET)
    save_file(clip, str(d / "open_clip_model.safetensors"))
    add("open_clip_model.safetensors", fc.NOT_OURS)
    torch.save(clip, d / "clip_state.pt")
    add("clip_state.pt", fc.NOT_OURS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still OpenAI's format
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(d / "ViT-B-32.pt"))  # TorchScript, like OpenAI's file
    add("ViT-B-32.pt", fc.NOT_OURS)
    save_file({"model.diffusion_model.input_blocks.0.weight": torch.zeros(4, 4)}, str(d / "sd.safetensors"))
    add("sd.safetensors", fc.NOT_OURS)
    for proto in (2, 4):
        with open(d / f"evil_p{proto}.pth", "wb") as f:
            pickle.dump({"cond1.weight": _Evil()}, f, protocol=proto)
        add(f"evil_p{proto}.pth", fc.UNKNOWN)
    (d / "empty.pth").write_bytes(b"")
    add("empty.pth", fc.UNKNOWN)
    (d / "notes.pth").write_bytes(b"hello, I am a text file\n" * 10)
    add("notes.pth", fc.UNKNOWN)
    (d / "random.safetensors").write_bytes(os.urandom(256))
    add("random.safetensors", fc.UNKNOWN)
    whole = (d / "authors_p2.pth").read_bytes()
    (d / "truncated.pth").write_bytes(whole[: len(whole) // 2])
    add("truncated.pth", fc.UNKNOWN)
    return made


def test_every_kind_of_file_is_told_apart(files):
    got = {name: fc.contents(path) for name, (path, _) in files.items()}
    assert got == {name: expected for name, (_, expected) in files.items()}


def test_the_authors_released_model():
    assert fc.contents(require_shared(OFFICIAL_WEIGHTS)) == NET


def test_the_lists_each_file_fits(files):
    models = sorted(n for n, (p, _) in files.items() if fc.may_hold_network(p))
    pairs = sorted(n for n, (p, _) in files.items() if fc.holds_prompt_pair(p))
    assert pairs == ["init_prompt_pair.pth", "legacy_prompt_pair.pth", "ours_both.safetensors",
                     "ours_pair.safetensors"]
    # networks, and what cannot be told (its error says why when chosen); never CLIP weights or prompt pairs only
    assert models == ["authors_p2.pth", "authors_p4.pth", "bare_network.safetensors", "empty.pth", "evil_p2.pth",
                      "evil_p4.pth", "legacy_p2.pth", "legacy_p4.pth", "notes.pth", "ours_both.safetensors",
                      "ours_network.safetensors", "random.safetensors", "truncated.pth", "wrapped.pth"]


def test_reading_the_names_runs_no_pickled_code(files, monkeypatch):
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("pickle code was executed"))
    fc._cache.clear()
    assert fc.contents(files["evil_p2.pth"][0]) == fc.UNKNOWN
    assert fc.contents(files["evil_p4.pth"][0]) == fc.UNKNOWN


# ----------------------------------------------------------------------------- big files
class _Counting:
    """A file that counts the bytes read from it."""

    def __init__(self, f, counter):
        self.f, self.counter = f, counter

    def read(self, n=-1):
        data = self.f.read(n)
        self.counter[0] += len(data)
        return data

    def readline(self, *a):
        data = self.f.readline(*a)
        self.counter[0] += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _bytes_read(monkeypatch, path) -> tuple[fc.Contents, int, float]:
    counter = [0]
    monkeypatch.setattr(fc, "_open", lambda p: _Counting(open(p, "rb"), counter))
    fc._cache.clear()
    t0 = time.perf_counter()
    found = fc.contents(path)
    return found, counter[0], time.perf_counter() - t0


def test_a_huge_safetensors_file_costs_its_header(tmp_path, monkeypatch):
    path = tmp_path / "huge.safetensors"
    header = json.dumps({"enhancer.cond1.weight": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 1 << 32]},
                         "__metadata__": {"format": "cliplit"}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + (4 << 30))  # 4 GB, sparse
    found, read, seconds = _bytes_read(monkeypatch, path)
    assert found == NET and read < 64 << 10 and seconds < 0.5, (read, seconds)


def test_a_huge_legacy_pytorch_file_costs_its_pickles(tmp_path, monkeypatch):
    path = tmp_path / "huge_legacy.pth"
    torch.save({f"module.{k}": v for k, v in CLIPLITNet().state_dict().items()}, path,
               _use_new_zipfile_serialization=False)
    with open(path, "r+b") as f:
        f.truncate(4 << 30)  # as if its tensor data were 4 GB
    found, read, seconds = _bytes_read(monkeypatch, path)
    assert found == NET and read < 256 << 10 and seconds < 0.5, (read, seconds)


def test_a_big_pytorch_zip_costs_its_structure(tmp_path, monkeypatch):
    path = tmp_path / "big.pth"
    state = dict(CLIPLITNet().state_dict())
    state["extra.big"] = torch.zeros(8 << 20)  # 32 MB of tensor data
    torch.save(state, path)
    found, read, seconds = _bytes_read(monkeypatch, path)
    assert found == NET and read < 256 << 10 and seconds < 0.5, (read, seconds)


# ----------------------------------------------------------------------------- cache
def test_results_are_cached_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_weights(path, prompt_pair=torch.zeros(2, 77, 32))
    fc._cache.clear()
    assert fc.contents(path) == PAIR
    opened = []
    real_open = fc._open
    monkeypatch.setattr(fc, "_open", lambda p: opened.append(p) or real_open(p))
    assert fc.contents(path) == PAIR and opened == []  # from the cache
    save_weights(path, enhancer=CLIPLITNet().state_dict())  # replaced under the same name
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fc.contents(path) == NET and len(opened) == 1


def test_the_cache_stays_small(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "CACHE_ENTRIES", 3)
    fc._cache.clear()
    for i in range(5):
        (tmp_path / f"{i}.pth").write_bytes(b"")
        fc.contents(tmp_path / f"{i}.pth")
    assert len(fc._cache) == 3


def test_a_missing_file_is_unknown(tmp_path):
    assert fc.contents(tmp_path / "gone.pth") == fc.UNKNOWN
