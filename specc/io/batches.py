"""Batches of a dataset, prepared ahead: while one batch trains, a background thread gathers the next from
the mapped files (reading and casting their rows). The batches are the same, in the same order, as taking
them one after another, so training gives the same weights bit for bit.

The thread is for data read from disk: mapped data whose pages are mostly in memory (the page cache) is taken
in line, faster than a thread would hand it over on two cores (benchmarks/README.md, "Data bigger than
memory")."""
from __future__ import annotations

import collections
import queue
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

from .data import Dataset

AHEAD = 2  # batches prepared beyond the one in use
READ_AHEAD = 4  # batches whose rows are asked of the disk before their turn
FROM_DISK_SECONDS = 30e-6  # a row taken slower than this came from disk (a page fault on cached data: ~1-5 µs)
AHEAD_BELOW_RESIDENT = 0.5  # mapped data with less of its pages in memory than this is prepared ahead
_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class _Prefetcher:
    """A thread taking `data`'s rows at each index in turn into a queue of AHEAD batches."""

    def __init__(self, data: Dataset, indexes: Iterable):
        self.data, self.indexes = data, indexes
        self.ready: queue.Queue = queue.Queue(AHEAD)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._gather, name="specc-batches", daemon=True)

    def _gather(self):
        """Takes each batch in turn. Once a batch shows its rows came from disk (slower than FROM_DISK_SECONDS a
        row), the rows of READ_AHEAD batches are asked of the disk at once, so that it reads them side by side;
        rows in the page cache are not asked for (each request costs a system call per row)."""
        expected: collections.deque = collections.deque()
        from_disk = False
        try:
            for index in self.indexes:
                expected.append(index)
                if from_disk and not isinstance(index, slice):
                    self.data.expect(index)
                    if len(expected) <= READ_AHEAD:
                        continue
                start = time.perf_counter()
                batch = self.data.take(expected.popleft())
                from_disk = from_disk or time.perf_counter() - start > FROM_DISK_SECONDS * batch.rows
                if not self._put(batch):
                    return
            while expected:
                if not self._put(self.data.take(expected.popleft())):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the training thread, which raises it
            self._put(_Failed(e))

    def _put(self, item) -> bool:
        """Queue `item` once there is room; False when asked to stop meanwhile."""
        while not self.stopping.is_set():
            try:
                self.ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            item = self.ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def stop(self):
        self.stopping.set()
        self.thread.join()


@contextmanager
def prefetched(data: Dataset, indexes: Iterable, shuffled: bool = False) -> Iterator[Iterator[Dataset]]:
    """The rows at each index in turn (`shuffled`: in no order), gathered ahead by a thread when the data is
    mapped from files mostly not in memory (below AHEAD_BELOW_RESIDENT of their pages), else taken in line.
    Leaving the block, at the end, on an error or on Ctrl-C, stops the thread and waits for it; a mapped file
    rewritten since it was opened is a DataChanged error before any batch."""
    if data.mapped:
        data.check_unchanged()
        data.advise(shuffled)
    if not data.mapped or data.resident() >= AHEAD_BELOW_RESIDENT:
        yield (data.take(index) for index in indexes)
        return
    prefetcher = _Prefetcher(data, indexes)
    prefetcher.thread.start()
    try:
        yield iter(prefetcher)
    finally:
        prefetcher.stop()
