"""Reading and writing CLIP-LIT weights.

Two formats are understood:

* the authors' ``.pth`` files: a plain state dict (optionally saved from
  ``nn.DataParallel``, i.e. keys prefixed ``module.``), read with
  ``torch.load(weights_only=True)`` only -- a pickle that carries code is refused;
* our ``.safetensors`` file: tensors ``enhancer.<key>`` (the network) and
  optionally ``prompt_pair`` ([2, context, width]), plus string metadata
  (``format``, ``format_version``, ``padding`` and, when a prompt pair is stored,
  ``clip_model`` / ``clip_pretrained`` / ``prompt_length``).

The format of a file is decided by its content, not its extension.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..files.atomic import write_together
from ..errors import CheckpointError
from ..light.network import PADDING_VARIANTS, CLIPLITNet

FORMAT_NAME = "cliplit"
FORMAT_VERSION = "1"
ENHANCER_PREFIX = "enhancer."
PROMPT_PAIR_KEY = "prompt_pair"
_WRAPPER_KEYS = ("state_dict", "model", "params", "net", "model_state_dict")


@dataclass
class CLIPLITWeights:
    """Everything a weights file holds, in memory."""

    enhancer: dict[str, torch.Tensor] | None = None
    prompt_pair: torch.Tensor | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def padding(self) -> str:
        return self.metadata.get("padding", "reflect")


# --------------------------------------------------------------------------- reading
_FILE_KINDS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"RIFF", "a RIFF file (WebP image, WAV audio)"), (b"%PDF", "a PDF document"),
               (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"Rar!", "a RAR archive"))


def _file_kind(head: bytes) -> str:
    """What a file that is no checkpoint looks like, from its first bytes (for the error message)."""
    for magic, kind in _FILE_KINDS:
        if head.startswith(magic):
            return kind
    text = head.lstrip()
    if text[:1] == b"<":
        return "an HTML or XML page (a download that returned a web page?)"
    if text[:1] in (b"{", b"["):
        return "a JSON file"
    if not any(b < 32 and b not in b"\t\n\r" for b in head):
        return "a text file"
    return "a file of unknown type"


def _sniff(path: Path) -> str:
    """Return 'safetensors', 'torch' or raise a CheckpointError naming the problem."""
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a weights file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes); the download or copy was probably interrupted")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch"
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch"  # legacy (non-zip) torch.save / plain pickle
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
        if head[8:9] == b"{":
            raise CheckpointError(f"{path}: safetensors header is cut off; the file is truncated ({size} bytes)")
    raise CheckpointError(
        f"{path}: not a checkpoint: this is {_file_kind(head)}, not a PyTorch .pth or .safetensors weights file; "
        f"choose a weights file instead (e.g. the authors' enhancement_model.pth)"
    )


def safe_torch_load(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` with clear errors for every failure mode."""
    path = Path(path)
    if _sniff(path) != "torch":
        raise CheckpointError(f"{path}: expected a PyTorch .pth file, found a safetensors file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "Unsupported operand" in msg:
            raise CheckpointError(
                f"{path}: refused to load: the file contains pickled Python objects or code, not only tensors "
                f"(it may be unsafe; only plain state dicts are accepted)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({msg.splitlines()[0]})") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "central directory" in first or "failed finding" in first or isinstance(e, EOFError):
            raise CheckpointError(f"{path}: file is truncated or corrupted ({first})") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, struct.error, OSError) as e:
        raise CheckpointError(f"{path}: safetensors file is truncated or corrupted ({e})") from None
    return tensors, dict(header.get("__metadata__") or {})


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for k in _WRAPPER_KEYS:
            if k in obj and isinstance(obj[k], dict) and not isinstance(obj.get(k), torch.Tensor):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: not a state dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def read_weights(path: str | os.PathLike) -> CLIPLITWeights:
    """Read an authors' ``.pth`` or our ``.safetensors`` file (not yet checked against the network)."""
    path = Path(path)
    kind = _sniff(path)
    if kind == "safetensors":
        tensors, meta = _read_safetensors(path)
        if meta.get("format") not in (None, FORMAT_NAME):
            raise CheckpointError(f"{path}: safetensors file of format {meta.get('format')!r}, not a CLIP-LIT file")
        enhancer = {k[len(ENHANCER_PREFIX):]: v for k, v in tensors.items() if k.startswith(ENHANCER_PREFIX)}
        if not enhancer and PROMPT_PAIR_KEY not in tensors:
            # a bare enhancer state dict saved as safetensors by someone else
            enhancer = _strip_prefix(tensors, "module.")
        padding = meta.get("padding", "reflect")
        if padding not in PADDING_VARIANTS:
            raise CheckpointError(f"{path}: unknown padding variant {padding!r} in metadata")
        return CLIPLITWeights(enhancer or None, tensors.get(PROMPT_PAIR_KEY), meta, str(path))
    sd = _strip_prefix(_unwrap_state_dict(safe_torch_load(path), path), "module.")
    return CLIPLITWeights(sd, None, {"padding": "reflect"}, str(path))


def check_enhancer_state(sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError listing missing, unexpected and mis-shaped keys."""
    expected = CLIPLITNet().state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k}: {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []

        def listing(name, items):
            shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
            parts.append(f"{name}: {shown}")

        if missing:
            listing("missing keys", missing)
        if unexpected:
            listing("unexpected keys", unexpected)
        if shapes:
            listing("wrong shapes", shapes)
        raise CheckpointError(
            f"{source}: not a CLIP-LIT enhancement checkpoint -- " + "; ".join(parts)
        )
    bad = [k for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source}: weights contain NaN or Inf values in {', '.join(bad[:8])}")


def build_network(weights: CLIPLITWeights, padding: str | None = None) -> CLIPLITNet:
    """A network in eval mode with the file's enhancer weights (float32, CPU)."""
    if weights.enhancer is None:
        raise CheckpointError(f"{weights.source}: holds no enhancement network (only a prompt pair?)")
    check_enhancer_state(weights.enhancer, weights.source)
    net = CLIPLITNet(padding or weights.padding)
    net.load_state_dict({k: v.float() for k, v in weights.enhancer.items()})
    return net.eval().requires_grad_(False)


def load_network(path: str | os.PathLike, padding: str | None = None) -> CLIPLITNet:
    return build_network(read_weights(path), padding)


# --------------------------------------------------------------------------- writing
def atomic_write(path: str | os.PathLike, write, record=None) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file
    (see atomic.write_together, which also takes ``record``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_together([(path, lambda tmp: write(str(tmp)))], record=record)


def save_weights(path: str | os.PathLike, *, enhancer: dict[str, torch.Tensor] | None = None,
                 prompt_pair: torch.Tensor | None = None, metadata: dict[str, object] | None = None,
                 padding: str = "reflect", record=None) -> None:
    """Write our ``.safetensors`` format atomically (``record``: see atomic.write_together)."""
    from safetensors.torch import save

    if enhancer is None and prompt_pair is None:
        raise ValueError("nothing to save: give an enhancer state dict and/or a prompt pair")
    if padding not in PADDING_VARIANTS:
        raise ValueError(f"padding must be one of {PADDING_VARIANTS}")
    tensors: dict[str, torch.Tensor] = {}
    if enhancer is not None:
        enhancer = _strip_prefix(dict(enhancer), "module.")
        check_enhancer_state(enhancer, "enhancer state dict")
        tensors.update({ENHANCER_PREFIX + k: v.detach().float().cpu().contiguous() for k, v in enhancer.items()})
    if prompt_pair is not None:
        if prompt_pair.dim() != 3 or prompt_pair.shape[0] != 2:
            raise ValueError(f"prompt pair must have shape [2, context, width], got {tuple(prompt_pair.shape)}")
        tensors[PROMPT_PAIR_KEY] = prompt_pair.detach().float().cpu().contiguous()
    meta = {str(k): str(v) for k, v in (metadata or {}).items() if v is not None}
    meta.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, padding=padding)
    # the bytes are written into our temporary file: safetensors' save_file would write its own
    # private (0600) temporary file beside it and rename that over ours
    data = save(tensors, metadata=meta)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), record=record)


def convert(src: str | os.PathLike, dst: str | os.PathLike, padding: str | None = None, *,
            force: bool = False) -> CLIPLITWeights:
    """Convert any readable weights file to our format (validated first). ``dst`` follows the rules of
    every output: never the source, never an existing file this program did not write unless ``force``
    (outputs.prepare_output_file), written atomically and recorded in its folder's manifest."""
    from ..files.outputs import prepare_output_file

    if Path(dst).resolve() == Path(src).resolve():
        raise CheckpointError(f"{dst}: refusing to overwrite the source file")
    ours = prepare_output_file(dst, force=force)
    w = read_weights(src)
    if w.enhancer is not None:
        check_enhancer_state(w.enhancer, str(src))
    meta = {k: v for k, v in w.metadata.items() if k not in ("format", "format_version", "padding")}
    meta.setdefault("converted_from", Path(src).name)
    save_weights(dst, enhancer=w.enhancer, prompt_pair=w.prompt_pair, metadata=meta,
                 padding=padding or w.padding, record=ours.record)
    return read_weights(dst)
