"""Pass 2's two helper threads: the decoder feeding a bounded queue (:class:`_Prefetch`) and the encoder consuming
one (:class:`_Sink`); an exception in either is re-raised in the thread that renders."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator

#: Decoded frames waiting between the decode thread and the renderer, and rendered frames waiting for the encoder.
#: Small, because each is a full frame (a decoded one is held twice, as the frame and its RGB array); 3 keeps both
#: threads busy (measured: docs/performance.md, change 22).
QUEUE_FRAMES = 3


def wait_through_interrupts(event: threading.Event, timeout: float | None = None) -> bool:
    """Wait until ``event`` is set (or ``timeout`` seconds have passed), through any KeyboardInterrupt, which is
    raised again after the wait; return whether the event is set.

    The helper threads end by setting an event rather than by being joined: in CPython 3.11 a ``Thread.join``
    interrupted by a signal marks the thread stopped while it still runs, and a process that exits while a thread
    is inside torch or libav aborts (exit -6) instead of exiting with its own code.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    interrupted: BaseException | None = None
    while True:
        try:
            done = event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted
    return done


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
        self._done = threading.Event()  # set when the thread has closed its iterator and ends
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
            try:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            finally:
                self._done.set()

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
        """Stop the thread and wait until it has closed the decoder (its puts see the stop within 0.1 s)."""
        self._stop.set()
        wait_through_interrupts(self._done)


class _Sink:
    """Consume items in a daemon thread (the encode thread); its first exception is re-raised by the producer."""

    def __init__(self, consume: Callable[[Any], None], maxsize: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._consume = consume
        self._done = threading.Event()  # set when the thread ends
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
        finally:
            self._done.set()

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if self._done.is_set():
                raise RuntimeError("the encode thread stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item is consumed; re-raise the thread's exception, if any."""
        self.put(_END)
        self._done.wait()  # an interrupt here goes to abort(), which waits for the thread
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the thread after the item it is encoding, and wait for that (up to 10 s) before the caller closes
        the writer it encodes into."""
        self._stop.set()
        wait_through_interrupts(self._done, timeout=10)
