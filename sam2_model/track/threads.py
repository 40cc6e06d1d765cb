"""Two background threads around the tracker: one decodes the next frames, one writes the
results; each hands over through a bounded queue, so memory stays bounded and an error in
either thread stops the run with its own message."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["BackgroundConsumer", "Prefetcher"]

T = TypeVar("T")
_END = object()  # the producer is done
_POLL_S = 0.1  # how often a blocked thread checks whether the run stopped


class Prefetcher(Generic[T]):
    """Iterates ``source`` in a thread, ``maxsize`` items ahead of the consumer."""

    def __init__(self, source: Iterable[T], maxsize: int, name: str = "sam2_track_decode") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self.cpu_seconds = 0.0  # CPU time the thread used (set when it ends)
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            self._put(_Failure(err))
            return
        finally:
            self.cpu_seconds = time.thread_time()
        self._put(_END)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the thread (also when the consumer stopped early)."""
        self._stop.set()
        self._thread.join()


class BackgroundConsumer(Generic[T]):
    """Calls ``consume(item)`` in a thread for every :meth:`put` item, in order, then
    ``finish()`` in the same thread (writers that must stay on one thread, like sqlite3)."""

    def __init__(
        self, consume: Callable[[T], None], finish: Callable[[], None], maxsize: int, name: str = "sam2_track_write"
    ) -> None:
        self._consume, self._finish = consume, finish
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self.cpu_seconds = 0.0  # CPU time the thread used (set when it ends)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                try:
                    self._finish()
                except BaseException as err:
                    self._error = self._error or err
                self.cpu_seconds = time.thread_time()
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as err:
                    self._error = err

    def put(self, item: T) -> None:
        """Queue an item (blocks while the queue is full); raises the thread's error if it had one."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait until every item is consumed and ``finish`` ran; raises the thread's error if it had one."""
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
