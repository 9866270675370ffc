"""A folder run as a pipeline: while the calling thread runs the network on one image, worker
threads read the next images, encode finished ones and write them.

Four stages; the messages, the files and the point where a run stops are those of a sequential run:

* **read** runs ahead in ``jobs - 1`` threads, at most ``jobs - 1`` items beyond the one being
  worked on (Pillow's decoders and zlib release the GIL, so reading overlaps the network);
* **work** runs in the calling thread, one item at a time (the network keeps all of torch's
  threads and the main thread's signal handling);
* **encode** (optional) runs in ``min(jobs - 1, MAX_ENCODERS)`` threads, in any order: what can
  be done to a result without side effects (e.g. compressing it in memory), so that on many
  cores several results are encoded at once instead of one after another in the writer;
* **finish** runs in one writer thread, strictly in input order (messages, the atomic writes).

So at most ``jobs`` items are read but not yet worked through, and at most ``encoders + 2``
results are being encoded, wait for the writer or are in it (three for results that skip the
encode stage, as without one): memory is bounded by the number of jobs, never by the folder.
``jobs`` 1 runs every stage in the calling thread, one item after another.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

# At most this many results are encoded at once: enough to keep up with a fast network (a GPU)
# on photos, while a folder of huge results holds a few of them, not one per core.
MAX_ENCODERS = 4


def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Writer(threading.Thread):
    """Runs ``finish`` on each handed-over job in order; stops finishing (but keeps taking and
    dropping what is handed over) once ``finish`` returned False or raised, or ``stopped`` was
    set. Ends once ``no_more_jobs`` was called and the jobs handed over before are done or dropped.

    A job is ``(item, result)``; a result that is a Future (an encode stage's) is waited for first.
    Queued jobs weigh at most ``depth`` in all (``_jobs``; a job weighs 1 to ``depth``, and one job
    may always wait); both threads block on one Condition, none polls."""

    def __init__(self, finish: Callable[[Any, Any], bool | None], depth: int = 1):
        super().__init__(name="cliplit-writer", daemon=True)
        self.finish = finish
        self.depth = max(1, depth)
        self._cv = threading.Condition()
        self._jobs: deque = deque()  # (job, weight) handed over, not yet taken
        self._weight = 0
        self._closed = False
        self.stopped = threading.Event()
        # set as run() returns: what close() waits for, not join(), since a join interrupted by a
        # signal handler's exception can mark a live thread dead (Python <= 3.11, python/cpython#90882)
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def _take(self) -> Any:
        """The next job; None once no more jobs come and none waits."""
        with self._cv:
            while not self._jobs and not self._closed:
                self._cv.wait()
            if not self._jobs:
                return None
            job, weight = self._jobs.popleft()
            self._weight -= weight
            self._cv.notify_all()  # hand_over may be waiting for a free place
            return job

    def _halt(self) -> None:  # not _stop: threading.Thread uses that name itself
        with self._cv:
            self.stopped.set()
            self._cv.notify_all()

    def run(self) -> None:
        try:
            while (job := self._take()) is not None:
                if not self.stopped.is_set():
                    self._finish(job)
                elif isinstance(job[1], Future):
                    job[1].cancel()  # dropped: its encoding need not start
                del job
        finally:
            self.ended.set()

    def _finish(self, job) -> None:
        try:
            item, result = job
            if isinstance(result, Future):
                result = result.result()
                if self.stopped.is_set():  # stopped while this result was being encoded
                    return
            if self.finish(item, result) is False:
                self._halt()
        except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
            self.error = e
            self._halt()

    def hand_over(self, job, weight: int = 1) -> bool:
        """Queue a job of ``weight`` (waits while it does not fit beside the queued ones); False when
        the writer has stopped (it never waits past that: the writer takes every job, and wakes this
        wait on stopping)."""
        weight = min(max(1, weight), self.depth)
        with self._cv:
            while self._jobs and self._weight + weight > self.depth and not self.stopped.is_set():
                self._cv.wait()
            if self.stopped.is_set() or self._closed:
                return False
            self._jobs.append((job, weight))
            self._weight += weight
            self._cv.notify_all()
            return True

    def no_more_jobs(self) -> None:
        """The writer ends after the jobs handed over before (does not wait for that; may be
        called again)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def close(self) -> None:
        """Finish the queued jobs (unless stopped), then end; waits for that. An interrupt that
        arrives while waiting stops the writer, is still waited through (the writer lets go of
        its current item, its own clean-up done), and is raised afterwards."""
        interrupted: BaseException | None = None
        while True:
            try:
                self.no_more_jobs()
                self.ended.wait()
                self.join()
                break
            except BaseException as e:  # noqa: BLE001 - raised again once the writer has ended
                self.stopped.set()
                interrupted = interrupted or e
        if interrupted is not None:
            raise interrupted


def run_in_order(items: Iterable[T], read: Callable[[T], Any], work: Callable[[T, Any], Any],
                 finish: Callable[[T, Any], bool | None], *, jobs: int = 1,
                 encode: Callable[[T, Any], Any] | None = None,
                 encodes: Callable[[T, Any], bool] | None = None) -> bool:
    """``finish(item, encode(item, work(item, read(item))))`` for each item (without ``encode``:
    ``finish(item, work(item, read(item)))``), finished in order, pipelined as the module says.
    ``encodes(item, result)`` says which results go through ``encode`` (default: all); the others
    go to the writer as they are, one at a time, as without an encode stage (e.g. results too big
    to hold encoded in memory, which ``finish`` encodes into their file).
    A ``finish`` that returns False stops the run: no later item is finished. An exception from
    any stage (or an interrupt) stops the workers and is raised here, after the writer has let go
    of its current item (its own clean-up done). Returns False when the run was stopped."""
    items = list(items)

    def encoded(item, result) -> bool:
        return encode is not None and (encodes is None or encodes(item, result))

    if jobs <= 1:
        for item in items:
            result = work(item, read(item))
            if finish(item, encode(item, result) if encoded(item, result) else result) is False:
                return False
        return True
    ahead = jobs - 1
    n_encoders = min(ahead, MAX_ENCODERS)
    readers = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="cliplit-read")
    encoders = ThreadPoolExecutor(max_workers=n_encoders, thread_name_prefix="cliplit-encode") if encode else None
    writer = _Writer(finish, depth=n_encoders if encode else 1)
    writer_started = False
    pending: deque = deque()
    completed = True
    try:
        writer.start()  # inside the try: an interrupt here still closes the pools, and the writer's inbox
        writer_started = True
        for item in items[:ahead]:
            pending.append(readers.submit(read, item))
        submitted = len(pending)
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
            if encoders is not None and encoded(item, result):
                result, weight = encoders.submit(encode, item, result), 1
            else:  # as without an encode stage: it waits alone
                weight = writer.depth
            if not writer.hand_over((item, result), weight):
                if isinstance(result, Future):
                    result.cancel()
                completed = False
                break
            del result
    except BaseException:
        writer.stopped.set()  # an interrupt or a failure: nothing more is finished
        raise
    finally:
        try:
            writer.no_more_jobs()  # first: a writer thread, if it started, ends on its own after this
            for f in pending:
                f.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
        finally:
            try:
                if writer_started:
                    writer.close()
            finally:
                if encoders is not None:
                    encoders.shutdown(wait=True, cancel_futures=True)
    if writer.error is not None:
        raise writer.error
    return completed and not writer.stopped.is_set()
