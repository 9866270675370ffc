"""Processes started by ``torchrun``: each one's rank, device and the process group, set up in one
place for the ``enhance`` command and the trainer (``trainer.distributed`` adds the training
collectives on top).

The ``enhance`` command under ``torchrun``: every process (rank) takes its share of the inputs.

``torchrun --nproc_per_node=N -m cliplit_core enhance ...`` starts N copies of the
command. Each one lists and names the outputs of *all* inputs the same way (so the
files are those a single process writes), then enhances every N-th of them, on its
own GPU (``cuda:LOCAL_RANK``) or, on a CPU, with its share of the cores. The
process group (NCCL on GPUs, gloo on CPU) only adds up the counts for the summary
and the exit status. Without torchrun everything is a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch

from .errors import CLIPLITError

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def rank_device(requested: str | None, local_rank: int, default: torch.device) -> torch.device:
    """The device of one rank: ``cuda`` (or nothing on a CUDA machine) means ``cuda:LOCAL_RANK``."""
    dev = torch.device(requested) if requested else default
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIPLITError(f"--device {requested}: CUDA is not available on this machine")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


@dataclass
class Ranks:
    """This process's place among the ranks (rank 0 of 1 for a plain run)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    group_here: bool = False  # the process group was started here (and is ended by finish)
    local_rank: int = 0       # the rank among the processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process (the collectives do something)."""
        return self.world > 1

    def share(self, items: Sequence[T]) -> list[T]:
        """Every ``world``-th item from ``rank`` on (neighbours in a folder are often alike in size)."""
        return list(items[self.rank::self.world])

    def total(self, *counts: int) -> tuple[int, ...]:
        """The counts summed over all ranks (every rank gets the sums)."""
        if self.world == 1:
            return counts
        import torch.distributed as dist

        t = torch.tensor(counts, dtype=torch.int64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return tuple(int(v) for v in t.tolist())

    def wait_for_all(self) -> None:
        """A barrier: returns when every rank has called it."""
        if self.world > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def finish(self) -> None:
        if self.group_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def start(requested_device: str | None, default: torch.device) -> Ranks:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo otherwise; on a CPU
    the ranks on one machine split its cores); a single process otherwise. ``default`` is the
    device when none is requested (a CUDA one without index becomes ``cuda:LOCAL_RANK``)."""
    if not launched_by_torchrun():
        return Ranks(device=rank_device(requested_device, 0, default))
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(requested_device, local_rank, default)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    here = not dist.is_initialized()
    if here:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    return Ranks(rank, world, device, group_here=here, local_rank=local_rank)
