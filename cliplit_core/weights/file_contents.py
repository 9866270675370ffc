"""What a weights file holds, from a cheap look inside it: for a host's file lists (Load CLIP-LIT
offers enhancement networks in ``model_name`` and prompt pairs in ``prompt_pair``).

Only the names of the tensors are read, never the tensors, so a multi-GB file costs a few
kilobytes of reading:

* a safetensors file: its JSON header;
* a PyTorch zip (``torch.save``): the pickled structure ``data.pkl``, read as a stream of pickle
  opcodes whose strings are the state dict's keys (nothing is unpickled or executed); a
  TorchScript archive (a ``code/`` folder, e.g. OpenAI's ``ViT-B-32.pt``) is a program, not weights
  of ours;
* a legacy PyTorch file or a plain pickle: the opcodes of its first pickles, which come before
  the tensor data.

A file holds the enhancement network when a key (after the ``enhancer.`` / ``module.`` prefixes)
belongs to one of the network's layers, a prompt pair when a key is ``prompt_pair`` (ours) or
``embedding_prompt`` (the authors'). CLIP weights, other models and files of ours without that part
are known not to hold it. A file that cannot be read this way (empty, truncated, not a checkpoint,
a pickle that would run code) is unknown: :func:`may_hold_network` keeps it, so that choosing it
gives the loader's clear error. Results are cached per path, size and modification time.
"""
from __future__ import annotations

import json
import os
import pickletools
import struct
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..light.network import HEAD_LAYERS, STEM_LAYERS
from .checkpoint import ENHANCER_PREFIX, PROMPT_PAIR_KEY

NETWORK_MODULES = frozenset(name for name, _ in STEM_LAYERS + HEAD_LAYERS) | {"PPM1"}
PROMPT_KEYS = frozenset({PROMPT_PAIR_KEY, "embedding_prompt"})  # ours, the authors' (prompts.AUTHORS_PROMPT_KEY)
MAX_HEADER_BYTES = 100 << 20  # the safetensors format's own limit
MAX_PICKLE_BYTES = 64 << 20   # of pickled structure read before giving up (a state dict's is kilobytes)
LEGACY_PICKLES = 5            # magic number, protocol, system info, the object, the storage keys
SAFE_GLOBALS = ("torch", "collections", "builtins.set", "builtins.frozenset")  # what plain state dicts reference
CACHE_ENTRIES = 1024


@dataclass(frozen=True)
class Contents:
    """What a file holds: True / False, or None when it could not be read cheaply."""

    network: bool | None
    prompt_pair: bool | None


UNKNOWN = Contents(None, None)
NOT_OURS = Contents(False, False)


def contents_of_keys(keys) -> Contents:
    """Contents of a file whose tensors (or strings) have these names."""
    network = prompt = False
    for key in keys:
        name = key[len(ENHANCER_PREFIX):] if key.startswith(ENHANCER_PREFIX) else key
        name = name.removeprefix("module.")
        network = network or name.split(".", 1)[0] in NETWORK_MODULES and "." in name
        prompt = prompt or name in PROMPT_KEYS
    return Contents(network, prompt)


# --------------------------------------------------------------------------- reading names only
def _open(path: Path):
    return open(path, "rb")


def _safetensors_keys(f, size: int) -> list[str] | None:
    head = f.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
        return None
    try:
        header = json.loads(f.read(n))
    except (UnicodeDecodeError, ValueError):
        return None
    return [k for k in header if k != "__metadata__"] if isinstance(header, dict) else None


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                         "BINSTRING", "STRING"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _pickle_strings(f, pickles: int = 1) -> list[str] | None:
    """The strings in the next ``pickles`` pickles of ``f`` (fewer if the file ends), read as opcodes;
    None when they are not pickles, are cut off, or reference anything but torch's tensor rebuilding."""
    strings: list[str] = []
    start = f.tell()
    try:
        for _ in range(pickles):
            if not f.read(1):
                break
            f.seek(-1, os.SEEK_CUR)
            pushed: list[str | None] = []  # what each opcode pushed (strings only), for STACK_GLOBAL
            memo: dict[int, str | None] = {}
            for op, arg, _ in pickletools.genops(f):
                if f.tell() - start > MAX_PICKLE_BYTES:
                    return None
                if op.name in _STRING_OPS:
                    strings.append(str(arg))
                    pushed.append(str(arg))
                elif op.name in _GET_OPS:
                    pushed.append(memo.get(int(arg)))
                elif op.name in _PUT_OPS or op.name == "MEMOIZE":
                    memo[len(memo) if op.name == "MEMOIZE" else int(arg)] = pushed[-1] if pushed else None
                else:
                    pushed.append(None)
                if op.name == "GLOBAL":
                    name = str(arg).replace(" ", ".")
                elif op.name == "STACK_GLOBAL":
                    name = ".".join(str(x) for x in pushed[-3:-1])
                else:
                    continue
                if not name.startswith(SAFE_GLOBALS):
                    return None  # a pickle that would run other code: loading refuses it, with the reason
    except (ValueError, EOFError, struct.error, OSError, UnicodeDecodeError):
        return None
    return strings


def _zip_keys(f) -> list[str] | None:
    try:
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
            if any("/code/" in n or n.endswith("constants.pkl") for n in names):
                return []  # TorchScript: a program (e.g. OpenAI's CLIP), no state dict of ours
            data = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if not data:
                return None
            with z.open(min(data, key=len)) as member:
                return _pickle_strings(member)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None


def _read_contents(path: Path) -> Contents:
    try:
        size = path.stat().st_size
        with _open(path) as f:
            head = f.read(16)
            f.seek(0)
            if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
                keys = _zip_keys(f)
            elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                keys = _pickle_strings(f, LEGACY_PICKLES)
            elif len(head) >= 9 and head[8:9] == b"{":
                keys = _safetensors_keys(f, size)
            else:
                keys = None
    except OSError:
        return UNKNOWN
    if keys is None:
        return UNKNOWN
    return contents_of_keys(keys)


# --------------------------------------------------------------------------- cached look-ups
_cache: OrderedDict[str, tuple[tuple[int, int], Contents]] = OrderedDict()
_lock = threading.Lock()


def contents(path: str | os.PathLike) -> Contents:
    """What ``path`` holds (cached while its size and modification time stay the same)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return UNKNOWN
    key, stamp = str(path.resolve()), (st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            _cache.move_to_end(key)
            return hit[1]
    found = _read_contents(path)
    with _lock:
        _cache[key] = (stamp, found)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return found


def may_hold_network(path: str | os.PathLike) -> bool:
    """For a list of enhancement networks: the file holds one, or it cannot be told (choosing it
    then gives the loader's error saying what is wrong with it)."""
    return contents(path).network is not False


def holds_prompt_pair(path: str | os.PathLike) -> bool:
    """For a list of prompt pairs: the file is known to hold one."""
    return contents(path).prompt_pair is True
