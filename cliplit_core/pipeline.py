"""A folder run as a pipeline: while the calling thread runs the network on one image, worker
threads read the next images and write the finished ones.

Three stages, each seeing the items in input order:

* **read** runs ahead in ``jobs - 1`` threads, at most ``jobs - 1`` items beyond the one being
  worked on (Pillow's decoders and zlib release the GIL, so reading overlaps the network);
* **work** runs in the calling thread, one item at a time (the network keeps all of torch's
  threads and the main thread's signal handling);
* **finish** runs in one writer thread, strictly in input order (messages, encoding, the atomic
  writes): the messages, the files and the point where a run stops are those of a sequential run.

So at most ``jobs`` items are read but not yet worked through, and at most two results wait for
or are in the writer: memory is bounded by ``jobs + 2`` images, never by the folder. ``jobs`` 1
runs every stage in the calling thread, one item after another.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

_END = object()


def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Writer(threading.Thread):
    """Runs ``finish`` on each handed-over job in order; stops finishing (but keeps draining its
    inbox) once ``finish`` returned False or raised, or ``stopped`` was set. Ends when ``close``
    was called and the inbox is empty."""

    def __init__(self, finish: Callable[[Any, Any], bool | None]):
        super().__init__(name="cliplit-writer", daemon=True)
        self.finish = finish
        self.inbox: queue.Queue = queue.Queue(maxsize=1)
        self.stopped = threading.Event()
        self.closed = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            try:
                job = self.inbox.get(timeout=0.05)
            except queue.Empty:
                if self.closed.is_set() and self.inbox.empty():  # closed after the last hand-over
                    return
                continue
            if self.stopped.is_set():
                continue
            try:
                if self.finish(*job) is False:
                    self.stopped.set()
            except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
                self.error = e
                self.stopped.set()
            del job

    def hand_over(self, job) -> bool:
        """Queue a job (waits while one is already queued); False when the writer has stopped."""
        while not self.stopped.is_set():
            try:
                self.inbox.put(job, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Finish the queued jobs (unless stopped), then end; waits for that. An interrupt that
        arrives while waiting stops the writer, is still waited through (the writer lets go of
        its current item, its own clean-up done), and is raised afterwards."""
        self.closed.set()
        interrupted: BaseException | None = None
        while self.is_alive():
            try:
                self.join()
            except BaseException as e:  # noqa: BLE001 - raised again once the writer has ended
                self.stopped.set()
                interrupted = interrupted or e
        if interrupted is not None:
            raise interrupted


def run_in_order(items: Iterable[T], read: Callable[[T], Any], work: Callable[[T, Any], Any],
                 finish: Callable[[T, Any], bool | None], *, jobs: int = 1) -> bool:
    """``finish(item, work(item, read(item)))`` for each item, in order, pipelined as the module
    says. A ``finish`` that returns False stops the run: no later item is finished. An exception
    from any stage (or an interrupt) stops the workers and is raised here, after the writer has
    let go of its current item (its own clean-up done). Returns False when the run was stopped."""
    items = list(items)
    if jobs <= 1:
        for item in items:
            if finish(item, work(item, read(item))) is False:
                return False
        return True
    ahead = jobs - 1
    readers = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="cliplit-read")
    writer = _Writer(finish)
    writer.start()
    pending: deque = deque()
    completed = True
    for item in items[:ahead]:
        pending.append(readers.submit(read, item))
    submitted = len(pending)
    try:
        for item in items:
            value = pending.popleft().result()
            if writer.stopped.is_set():
                completed = False
                break
            if submitted < len(items):  # ``ahead`` reads go on while this item is worked on
                pending.append(readers.submit(read, items[submitted]))
                submitted += 1
            result = work(item, value)
            del value  # the input is not needed while its result is written
            if not writer.hand_over((item, result)):
                completed = False
                break
            del result
    except BaseException:
        writer.stopped.set()  # an interrupt or a failure: nothing more is finished
        raise
    finally:
        writer.closed.set()  # the writer ends even if this thread is interrupted below
        try:
            for f in pending:
                f.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
        finally:
            writer.close()
    if writer.error is not None:
        raise writer.error
    return completed and not writer.stopped.is_set()
