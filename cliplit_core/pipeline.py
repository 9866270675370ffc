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
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Writer(threading.Thread):
    """Runs ``finish`` on each handed-over job in order; stops finishing (but keeps taking and
    dropping what is handed over) once ``finish`` returned False or raised, or ``stopped`` was
    set. Ends once ``no_more_jobs`` was called and the job handed over before is done or dropped.

    One job waits at most (``_job``); both threads block on one Condition, none polls."""

    def __init__(self, finish: Callable[[Any, Any], bool | None]):
        super().__init__(name="cliplit-writer", daemon=True)
        self.finish = finish
        self._cv = threading.Condition()
        self._job: Any = None  # handed over, not yet taken (a job is an (item, result) tuple, never None)
        self._closed = False
        self.stopped = threading.Event()
        # set as run() returns: what close() waits for, not join(), since a join interrupted by a
        # signal handler's exception can mark a live thread dead (Python <= 3.11, python/cpython#90882)
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def _take(self) -> Any:
        """The next job; None once no more jobs come and none waits."""
        with self._cv:
            while self._job is None and not self._closed:
                self._cv.wait()
            job, self._job = self._job, None
            self._cv.notify_all()  # hand_over may be waiting for the free place
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
                del job
        finally:
            self.ended.set()

    def _finish(self, job) -> None:
        try:
            if self.finish(*job) is False:
                self._halt()
        except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
            self.error = e
            self._halt()

    def hand_over(self, job) -> bool:
        """Queue a job (waits while one is already queued); False when the writer has stopped
        (it never waits past that: the writer takes every job, and wakes this wait on stopping)."""
        with self._cv:
            while self._job is not None and not self.stopped.is_set():
                self._cv.wait()
            if self.stopped.is_set() or self._closed:
                return False
            self._job = job
            self._cv.notify_all()
            return True

    def no_more_jobs(self) -> None:
        """The writer ends after the job handed over before (does not wait for that; may be
        called again)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def close(self) -> None:
        """Finish the queued job (unless stopped), then end; waits for that. An interrupt that
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
        try:
            writer.no_more_jobs()  # first: the writer ends even if this thread is interrupted below
            for f in pending:
                f.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
        finally:
            writer.close()
    if writer.error is not None:
        raise writer.error
    return completed and not writer.stopped.is_set()
