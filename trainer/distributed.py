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

import torch
import torch.distributed as dist

from cliplit_core.sharding import Ranks, launched_by_torchrun, start

# The process group, ranks and devices are the core's (cliplit_core.sharding); this module adds
# what training needs on top of them.
DistInfo = Ranks
__all__ = ["DistInfo", "launched_by_torchrun", "init", "shutdown", "barrier", "all_reduce_sum", "all_reduce_grads",
           "broadcast_tensors"]


def init(requested_device: str | None) -> DistInfo:
    """Set up the process group when launched by torchrun; a plain single process otherwise.
    Without ``--device``: CUDA when available (``cuda:LOCAL_RANK``), else the CPU."""
    return start(requested_device, torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))


def shutdown(info: DistInfo) -> None:
    info.finish()


def barrier(info: DistInfo) -> None:
    info.wait_for_all()


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
