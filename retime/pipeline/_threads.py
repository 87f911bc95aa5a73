"""Pass 2's two helper threads: the decoder feeding a bounded queue (:class:`_Prefetch`) and the encoder consuming
one (:class:`_Sink`); an exception in either is re-raised in the thread that renders."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

#: Decoded frames waiting between the decode thread and the renderer, and rendered frames waiting for the encoder.
#: Small, because each is a full frame (a decoded one is held twice, as the frame and its RGB array); 3 keeps both
#: threads busy (measured: docs/performance.md, change 22).
QUEUE_FRAMES = 3


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class _Prefetch:
    """Run an iterator in a daemon thread, handing its items over through a bounded queue (the decode thread).

    An exception in the thread is re-raised by the consumer; :meth:`close` stops the thread early.
    """

    def __init__(self, make: Callable[[], Iterable], maxsize: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterable]) -> None:
        iterator = None
        try:
            iterator = iter(make())
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)


class _Sink:
    """Consume items in a daemon thread (the encode thread); its first exception is re-raised by the producer."""

    def __init__(self, consume: Callable[[Any], None], maxsize: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._consume = consume
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                self._consume(item)
        except BaseException as exc:
            self._error = exc

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RuntimeError("the encode thread stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item is consumed; re-raise the thread's exception, if any."""
        self.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
