"""Streaming parallel maps: many items in flight, never the whole input in memory, on every core."""
from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(pool: Executor, function: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """Like pool.map, in input order, with at most `window` items submitted and not yet yielded."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


PROCESSES_FROM = 500  # fewer items are not worth starting processes: docs/decisions.md#worker-processes


class CpuPool(Executor):
    """For CPU-bound work on picklable items (decoding, hashing, resizing): threads for the first
    PROCESSES_FROM items, then one process per core, so large jobs run on every core instead of one
    item at a time under the GIL. Stays on threads where this process may not start children (a
    daemonic worker process)."""

    def __init__(self):
        self.workers = os.cpu_count() or 1
        self.threads = ThreadPoolExecutor(self.workers)
        self.processes: ProcessPoolExecutor | None = None
        self.submitted = 0
        self.lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self.lock:
            self.submitted += 1
            if (self.processes is None and self.submitted > PROCESSES_FROM
                    and not multiprocessing.current_process().daemon):
                # fork: spawn and forkserver re-import the caller's main module, which breaks any
                # script that calls a stage without an `if __name__ == "__main__"` guard. The
                # children only run pure functions (decode, resize, hash), never the parent's threads.
                self.processes = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
            pool = self.processes or self.threads
        return pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.threads.shutdown(wait, cancel_futures=cancel_futures)
        if self.processes:
            self.processes.shutdown(wait, cancel_futures=cancel_futures)
