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

The ranks meet at *agreements* (:meth:`Ranks.agree`), and every rank reaches each one, also a
rank whose own work failed, carrying that failure: so no rank is left waiting in a collective
for a rank that gave up. A rank that finished early waits there for the others as long as they
work, without a time limit (a share may hold an hour of video); while it waits it watches their
heartbeats (a thread in each rank counts up a key in the process group's store every few
seconds), and a rank silent for :data:`LOST_AFTER_S` seconds (killed, or frozen) ends the wait
with :class:`RankLost`. Only once all have arrived does the collective run, so it never meets
the process group's timeout.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence, TypeVar

import torch

from .errors import CLIPLITError

T = TypeVar("T")

HEARTBEAT_S = 2.0      # how often a rank shows it is alive
LOST_AFTER_S = 60.0    # a rank not seen alive for this long is gone
POLL_S = 0.2           # how often a waiting rank looks at the others


class RankLost(CLIPLITError):
    """Another rank stopped (killed, frozen or unreachable) before it reached an agreement."""


class _Heartbeat:
    """A daemon thread that counts up ``alive/RANK`` in the store every :data:`HEARTBEAT_S` seconds."""

    def __init__(self, store, rank: int):
        self.store, self.key = store, f"alive/{rank}"
        self.stopped = threading.Event()
        self.store.add(self.key, 1)
        self.thread = threading.Thread(target=self._run, name="cliplit-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                self.store.add(self.key, 1)
            except Exception:  # the store is gone: the run is ending, the others notice our silence
                return

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2 * HEARTBEAT_S)


def _store_client():
    """A client of the process group's store (torchrun's agent, or rank 0's TCPStore), keys under
    a prefix of their own per restart of the worker group."""
    import torch.distributed as dist

    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                           timeout=timedelta(seconds=LOST_AFTER_S), wait_for_workers=False)
    return dist.PrefixStore(f"cliplit/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", client)


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
    _store: object = field(default=None, repr=False)          # for agreements (set by watch_each_other)
    _heartbeat: _Heartbeat | None = field(default=None, repr=False)
    _agreements: int = field(default=0, repr=False)

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

    def wait_for_all(self) -> None:
        """A barrier: returns when every rank has called it."""
        if self.world > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def watch_each_other(self) -> None:
        """Start this rank's heartbeat, for :meth:`agree` (call it right after :func:`start`, on every rank)."""
        if self.world > 1 and self._heartbeat is None:
            self._store = _store_client()
            self._heartbeat = _Heartbeat(_store_client(), self.rank)

    def agree(self, *counts: int, status: int = 0, leaving: bool = False) -> tuple[tuple[int, ...], int]:
        """Meet every other rank: returns ``counts`` summed over the ranks and the highest
        ``status``. Every rank must call it at the same points, also after its own work failed.
        Raises :class:`RankLost` when another rank stops showing signs of life first.

        torchrun stops the other ranks with SIGTERM as soon as one exits with a failure. So each
        rank ignores SIGTERM *before* it arrives: when any rank leaves the meeting, every rank has
        stopped listening, and a rank that exits first cannot turn another's agreed status into
        "terminated". After the meeting SIGTERM is heard again only when the run goes on (the
        agreed status is 0 and the caller is not ``leaving``)."""
        if self.world == 1:
            return counts, status
        import torch.distributed as dist

        previous = _ignore_sigterm()
        self._wait_for_everyone()
        device = self.device if self.device.type == "cuda" else "cpu"
        total = torch.tensor(counts or (0,), dtype=torch.int64, device=device)
        worst = torch.tensor([status], dtype=torch.int64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        agreed = tuple(int(v) for v in total.tolist())[:len(counts)], int(worst.item())
        if not leaving and agreed[1] == 0 and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        return agreed

    def _wait_for_everyone(self) -> None:
        if self._store is None:
            self.watch_each_other()
        self._agreements += 1
        arrived = f"arrived/{self._agreements}"
        others = [r for r in range(self.world) if r != self.rank]
        last_seen = {r: (None, time.monotonic()) for r in others}  # rank -> (heartbeat count, when it changed)
        try:
            self._store.add(arrived, 1)
            while self._store.add(arrived, 0) < self.world:
                time.sleep(POLL_S)
                now = time.monotonic()
                for r in others:
                    beats = self._store.add(f"alive/{r}", 0)
                    if beats != last_seen[r][0]:
                        last_seen[r] = (beats, now)
                    elif now - last_seen[r][1] > LOST_AFTER_S:
                        raise RankLost(f"process {r} of {self.world} stopped (no sign of life for "
                                       f"{LOST_AFTER_S:.0f} s); its share of the inputs is unfinished")
        except RuntimeError as e:  # the store itself is gone (rank 0 hosted it and stopped)
            raise RankLost(f"lost contact with the other processes ({e}); their shares may be unfinished") from None

    def finish(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self.group_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _ignore_sigterm():
    """Ignore SIGTERM from here on; returns the handler it replaces (None where it cannot be set)."""
    try:
        return signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        return None


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
