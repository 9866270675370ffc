"""Data-parallel training across processes (``torchrun --nproc_per_node=N -m trainer ...``).

Every process builds the same batch plan; process ``r`` takes its contiguous share
of each global batch (same images, same augmentation as a single process would
use). Each process turns its share into its *contribution* to the global loss
(batch means are divided by the global batch size, batch sums are kept), the
gradients are summed with one ``all_reduce`` per step, and every process applies
the same optimiser step. The result is the single-process run with the same
global batch, up to float rounding -- ``--batch-size`` keeps its meaning
(the authors' 8 images per step, over all GPUs). NCCL on GPUs, gloo on CPU.

Only rank 0 writes checkpoints, logs, images and the output file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import TrainerError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def choose_device(requested: str | None, local_rank: int = 0) -> torch.device:
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise TrainerError(f"--device {requested}: CUDA is not available on this machine")
            if dev.index is None:
                dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init(requested_device: str | None) -> DistInfo:
    """Set up the process group when launched by torchrun; a plain single process otherwise."""
    if not launched_by_torchrun():
        return DistInfo(device=choose_device(requested_device))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    initialised = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        initialised = True
    if device.type == "cpu":
        # share the CPU cores between the processes instead of oversubscribing them
        cores = os.cpu_count() or 1
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, cores // max(1, local_world)))
    return DistInfo(rank, world, local_rank, device, initialised)


def shutdown(info: DistInfo) -> None:
    if info.enabled and info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum(info: DistInfo, t: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_grads(info: DistInfo, params) -> None:
    """Sum the gradients of ``params`` over all processes (one flat all_reduce)."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        chunk = flat[offset:offset + n].view_as(g)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def broadcast_tensors(info: DistInfo, tensors) -> None:
    """Make every process hold rank 0's values (parameters after an initialisation)."""
    if not info.enabled:
        return
    for t in tensors:
        dist.broadcast(t.data, src=0)
