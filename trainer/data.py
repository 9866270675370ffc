"""Training data: folder scan, in-memory image cache, deterministic batches, augmentation.

* :func:`scan_folder` decodes every image once (so truncated or corrupt files are
  found before any model loads), skips unreadable ones with a warning and counts
  them; an empty folder or one without a single valid image is a
  :class:`~trainer.config.TrainerError`.
* Each valid image is resized once (Lanczos, aspect not kept, like the authors'
  ``PIL.resize((S, S))``) to the sizes training needs and kept in memory as
  float16 ``[3, S, S]`` (about 1.5 MB per image at 512, 0.4 MB at 256). Gray
  images are repeated to RGB; an alpha channel is dropped.
* Batches are a pure function of the seed and the step's place in the schedule:
  ``--recipe authors`` reads the authors' epoch loaders (``DataLoader(shuffle=True)``,
  ``drop_last=False``): a new seeded shuffle every epoch, the last batch of an epoch
  holding what is left, and refinement pairs (backlit, well-lit) fixed each time their
  loader is built (:class:`EpochOrder`, ``slot``); ``--recipe paper`` reads an endless
  stream of seeded permutations in full batches (:class:`IndexStream`). Augmentation
  parameters come from a generator seeded per epoch (authors) or per batch (paper).
  Nothing depends on global RNG state or on DataLoader workers, so a resumed run sees
  exactly the same batches.
* Augmentation (the authors' probabilities): horizontal flip
  (p 0.5), vertical flip (0.5), transpose = 90-degree rotation (0.5), zoom with
  independent x/y factors (p 0.3; 0.7-1.3 for enhancement, 0.5-1.5 for prompts)
  and rotation by U(-90, 90) degrees (p 0.3), both as one batched
  ``affine_grid`` + ``grid_sample`` with reflection padding (cv2's BORDER_REFLECT).
"""
from __future__ import annotations

import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cliplit_core.errors import ImageReadError
from cliplit_core.files.images import IMAGE_EXTENSIONS, read_image

from .config import TrainerError

ENHANCE_ZOOM = (0.7, 1.3)
PROMPT_ZOOM = (0.5, 1.5)
P_FLIP, P_ROT90, P_ZOOM, P_ROTATE = 0.5, 0.5, 0.3, 0.3
MAX_ANGLE = 90.0

# Stable codes for seeding (never change them: they define the data order).
PHASE_CODES = {"prompt_init": 1, "reconstruction": 2, "enhance": 3, "prompt": 4, "reinit": 5, "welllit": 6}
LOADER_CODES = {"train": 7, "init": 8, "refine": 9, "pairing": 10}
LOADER_KINDS = {"train": "enhance", "init": "prompt_init", "refine": "prompt"}  # loader -> PhaseBatches kind


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (numpy SeedSequence: well mixed, platform independent)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def generator_for(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed_for(*parts))
    return g


# --------------------------------------------------------------------------- scanning
@dataclass
class ImageSet:
    """Valid images of one folder, resized and cached per size."""

    folder: Path
    paths: list[Path]
    skipped: list[tuple[Path, str]]
    images: dict[int, torch.Tensor] = field(default_factory=dict)  # size -> [N, 3, S, S] float16

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]


def _rgb(arr: np.ndarray) -> np.ndarray:
    c = arr.shape[2]
    if c in (2, 4):
        arr = arr[..., : c - 1]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def resize_square(arr: np.ndarray, size: int) -> np.ndarray:
    """H x W x 3 float in 0..1 -> size x size x 3 (Lanczos per channel, float precision kept)."""
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr.astype(np.float32)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., i]), mode="F").resize(
        (size, size), Image.LANCZOS), dtype=np.float32) for i in range(3)]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0)


def _decode(path: Path, sizes: tuple[int, ...]):
    try:
        arr = _rgb(read_image(path))
    except ImageReadError as e:
        return None, str(e)
    except (MemoryError, OSError, ValueError) as e:  # anything else the decoders throw
        return None, f"{path}: cannot read image ({type(e).__name__}: {e})"
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    out = {s: torch.from_numpy(resize_square(arr, s)).permute(2, 0, 1).to(torch.float16) for s in sizes}
    return out, None


def list_folder(folder: str | Path, what: str) -> list[Path]:
    folder = Path(folder)
    if not folder.exists():
        raise TrainerError(f"{what} folder {folder} does not exist")
    if not folder.is_dir():
        raise TrainerError(f"{what} folder {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise TrainerError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def scan_folder(folder: str | Path, what: str, sizes: tuple[int, ...], *, workers: int = 2,
                warn=None) -> ImageSet:
    """Decode every image of ``folder`` once; keep the valid ones resized to each of ``sizes``.

    ``warn(msg)`` receives one message per skipped file (default: print to stderr).
    Raises :class:`TrainerError` when the folder is missing, empty or has no valid image.
    """
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    files = list_folder(folder, what)
    sizes = tuple(sorted(set(int(s) for s in sizes)))
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        decoded = list(pool.map(lambda p: _decode(p, sizes), files))
    paths, skipped, per_size = [], [], {s: [] for s in sizes}
    for p, (imgs, err) in zip(files, decoded):
        if imgs is None:
            skipped.append((p, err))
            warn(f"skipping unreadable {what} image: {err}")
            continue
        paths.append(p)
        for s in sizes:
            per_size[s].append(imgs[s])
    if not paths:
        raise TrainerError(f"{what} folder {folder}: none of its {len(files)} image files could be read "
                           f"({skipped[0][1]}{' ...' if len(skipped) > 1 else ''})")
    if skipped:
        warn(f"{len(skipped)} of {len(files)} {what} images skipped (unreadable or corrupt)")
    images = {s: torch.stack(v) for s, v in per_size.items()}
    return ImageSet(Path(folder), paths, skipped, images)


# --------------------------------------------------------------------------- order
class IndexStream:
    """An endless stream of seeded permutations of ``range(n)``; ``batch(i, b)`` is
    positions ``[i*b, (i+1)*b)`` of it -- a pure function of the seed parts and ``i``."""

    def __init__(self, n: int, *seed_parts: int):
        self.n = int(n)
        self.seed_parts = tuple(int(p) for p in seed_parts)
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        p = self._cache.get(epoch)
        if p is None:
            if len(self._cache) > 4:
                self._cache.clear()
            p = torch.randperm(self.n, generator=generator_for(*self.seed_parts, 0xE90C, epoch))
            self._cache[epoch] = p
        return p

    def batch(self, iteration: int, size: int) -> torch.Tensor:
        start = int(iteration) * int(size)
        out = []
        for pos in range(start, start + int(size)):
            out.append(self._perm(pos // self.n)[pos % self.n])
        return torch.stack(out)


class EpochOrder:
    """One epoch of a ``DataLoader(shuffle=True, drop_last=False)`` over ``n`` items: a seeded
    permutation cut into batches of ``size``; the last batch holds the ``n mod size`` left (all
    ``n`` when there are fewer than ``size``)."""

    def __init__(self, n: int, size: int, *seed_parts: int):
        self.n, self.size = int(n), int(size)
        self.perm = torch.randperm(self.n, generator=generator_for(*seed_parts, 0xE90C))

    def __len__(self) -> int:
        return -(-self.n // self.size)

    def batch(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of an epoch of {len(self)}")
        return self.perm[int(index) * self.size:(int(index) + 1) * self.size]


# --------------------------------------------------------------------------- augmentation
@dataclass
class AugParams:
    hflip: torch.Tensor  # [B] bool
    vflip: torch.Tensor
    transpose: torch.Tensor
    zoom: torch.Tensor  # [B] bool
    zx: torch.Tensor  # [B] float
    zy: torch.Tensor
    rotate: torch.Tensor  # [B] bool
    angle: torch.Tensor  # [B] float, degrees

    def slice(self, sl: slice) -> "AugParams":
        if sl.start == 0 and sl.stop == len(self.hflip):  # one process: all of it
            return self
        return AugParams(**{k: v[sl] for k, v in self.__dict__.items()})


def sample_aug(batch: int, generator: torch.Generator, zoom_range: tuple[float, float]) -> AugParams:
    u = torch.rand(batch, 5, generator=generator, dtype=torch.float64)
    zlo, zhi = zoom_range
    z = zlo + (zhi - zlo) * torch.rand(batch, 2, generator=generator, dtype=torch.float64)
    angle = (torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * MAX_ANGLE
    return AugParams(hflip=u[:, 0] < P_FLIP, vflip=u[:, 1] < P_FLIP, transpose=u[:, 2] < P_ROT90,
                     rotate=u[:, 3] < P_ROTATE, zoom=u[:, 4] < P_ZOOM, zx=z[:, 0], zy=z[:, 1], angle=angle)


def augment(x: torch.Tensor, p: AugParams) -> torch.Tensor:
    """Apply ``p`` to a square batch ``[B, C, S, S]`` (any device); returns a new tensor."""
    if x.shape[0] != p.hflip.shape[0]:
        raise ValueError(f"batch of {x.shape[0]} images but augmentation parameters for {p.hflip.shape[0]}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError("augmentation expects square images")
    dev = x.device

    def where(mask, a, b):
        return torch.where(mask.to(dev).view(-1, 1, 1, 1), a, b)

    x = where(p.hflip, x.flip(-1), x)
    x = where(p.vflip, x.flip(-2), x)
    x = where(p.transpose, x.transpose(-1, -2), x)
    warp = (p.zoom | p.rotate)
    if bool(warp.any()):
        idx = torch.nonzero(warp).flatten()
        zx = torch.where(p.zoom, p.zx, torch.ones_like(p.zx))[idx]
        zy = torch.where(p.zoom, p.zy, torch.ones_like(p.zy))[idx]
        a = torch.where(p.rotate, p.angle, torch.zeros_like(p.angle))[idx] * (math.pi / 180.0)
        cos, sin = torch.cos(a), torch.sin(a)
        # output -> input coordinates: first undo the rotation, then the zoom (cv2 order: zoom, then rotate)
        theta = torch.zeros(len(idx), 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = cos / zx
        theta[:, 0, 1] = -sin / zx
        theta[:, 1, 0] = sin / zy
        theta[:, 1, 1] = cos / zy
        sub = x[idx.to(dev)]
        grid = F.affine_grid(theta.to(device=dev, dtype=torch.float32), list(sub.shape), align_corners=False)
        warped = F.grid_sample(sub.float(), grid, mode="bilinear", padding_mode="reflection",
                               align_corners=False).to(x.dtype)
        x = x.clone()
        x[idx.to(dev)] = warped
    return x.contiguous()


# --------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """One training step's data for this process (its share of the global batch)."""

    iteration: int  # the batch's index: in its phase (paper) or in its epoch (authors)
    tensors: dict[str, torch.Tensor]  # name -> [b, 3, S, S] float32 (not yet augmented)
    labels: torch.Tensor | None
    aug: AugParams
    global_size: int  # images (or samples) in the global batch (fewer in an epoch's last batch)
    epoch: int | None = None  # authors: the epoch it belongs to

    @property
    def local_size(self) -> int:
        return int(self.aug.hflip.shape[0])


def shard(n: int, rank: int, world: int) -> slice:
    """Contiguous share of ``n`` items for ``rank`` (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class PhaseBatches(torch.utils.data.Dataset):
    """Dataset whose item ``i`` is a whole batch.

    kinds: ``"enhance"`` (backlit at image size), ``"prompt_init"`` (backlit and
    well-lit mixed, labels 0/1, shorter list repeated), ``"prompt"`` (backlit,
    well-lit and the per-round results of the same backlit images; one shared
    augmentation per sample, like the authors' margin loader; the shorter list repeated).

    With ``slot`` (``--recipe authors``), item ``i`` is batch ``slot.index + i`` of epoch
    ``slot.epoch`` of that loader, up to the epoch's end; refinement pairs item ``j`` (backlit
    ``j mod nb``) with well-lit ``pairing[j] mod nw``, one seeded pairing per ``slot.build``, as
    their margin loader pairs two lists shuffled once when it is built. Without it (``paper``),
    item ``i`` is iteration ``start + i`` of a phase's endless stream, in full batches.
    """

    def __init__(self, kind: str, *, seed: int, phase_code: int, round_: int, batch_size: int,
                 backlit: torch.Tensor, welllit: torch.Tensor | None = None,
                 results: dict[str, torch.Tensor] | None = None, zoom_range=ENHANCE_ZOOM,
                 rank: int = 0, world: int = 1, start: int = 0, stop: int = 0, slot=None):
        self.kind = kind
        self.batch_size = int(batch_size)
        self.backlit = backlit
        self.welllit = welllit
        self.results = results or {}
        self.zoom_range = zoom_range
        self.rank, self.world = rank, world
        nb = len(backlit)
        if kind == "enhance":
            items = nb
        elif kind in ("prompt_init", "prompt"):
            self.length = max(nb, len(welllit))
            items = 2 * self.length if kind == "prompt_init" else self.length
        else:
            raise ValueError(kind)
        self.epoch = None
        if slot is not None:
            if LOADER_KINDS[slot.loader] != kind:
                raise ValueError(f"a {kind} batch from the {slot.loader} loader")
            self.epoch = int(slot.epoch)
            self.seed_parts = (int(seed), LOADER_CODES[slot.loader], self.epoch)
            self.order = EpochOrder(items, self.batch_size, *self.seed_parts)
            # one draw per item of the epoch, as their loader draws one per item it reads
            self.epoch_aug = sample_aug(items, generator_for(*self.seed_parts, 0xA06), zoom_range)
            self.start, self.stop = int(slot.index), len(self.order)
            if kind == "prompt":
                pairing = generator_for(int(seed), LOADER_CODES["pairing"], int(slot.build))
                self.pairing = torch.randperm(self.length, generator=pairing)
        else:
            self.seed_parts = (int(seed), int(phase_code), int(round_))
            self.stream = IndexStream(items, *self.seed_parts)
            self.start, self.stop = int(start), int(stop)
            if kind == "prompt":
                self.partner = IndexStream(self.length, *self.seed_parts, PHASE_CODES["welllit"])

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _indices(self, i: int) -> torch.Tensor:
        return self.order.batch(i) if self.epoch is not None else self.stream.batch(i, self.batch_size)

    def make(self, i: int) -> Batch:
        """Batch ``i`` (of the epoch with a slot, of the phase without)."""
        order = self._indices(i)
        B = len(order)
        sl = shard(B, self.rank, self.world)
        if self.epoch is not None:
            first = i * self.batch_size
            aug = self.epoch_aug.slice(slice(first + sl.start, first + sl.stop))
        else:
            aug = sample_aug(B, generator_for(*self.seed_parts, 0xA06, i), self.zoom_range).slice(sl)
        mine = order[sl]
        labels = None
        if self.kind == "enhance":
            tensors = {"backlit": self.backlit[mine].float()}
        elif self.kind == "prompt_init":
            nb, nw = len(self.backlit), len(self.welllit)
            is_well = mine >= self.length
            k = torch.where(is_well, mine - self.length, mine)
            imgs = [self.welllit[int(j) % nw] if w else self.backlit[int(j) % nb] for j, w in zip(k, is_well)]
            tensors = {"images": torch.stack(imgs).float() if imgs else self.backlit[:0].float()}
            labels = is_well.long()
        else:
            nb, nw = len(self.backlit), len(self.welllit)
            partner = self.pairing[mine] if self.epoch is not None else self.partner.batch(i, B)[sl]
            bi = mine % nb
            tensors = {"backlit": self.backlit[bi].float(), "welllit": self.welllit[partner % nw].float()}
            for name, res in self.results.items():
                tensors[name] = res[bi].float() / 255.0 if res.dtype == torch.uint8 else res[bi].float()
        return Batch(i, tensors, labels, aug, B, self.epoch)

    def __getitem__(self, i: int) -> Batch:
        return self.make(self.start + int(i))


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset
    torch.manual_seed(seed_for(*ds.seed_parts, 0x3E5, ds.start, worker_id))
    torch.set_num_threads(1)


def batch_loader(ds: PhaseBatches, workers: int):
    """Iterate the phase's batches from ``ds.start``; workers prefetch later iterations."""
    if workers <= 0 or len(ds) <= 1:
        return (ds[i] for i in range(len(ds)))
    return iter(torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, num_workers=int(workers),
                                            worker_init_fn=_worker_init, collate_fn=None,
                                            persistent_workers=False, prefetch_factor=2))
