"""Producing items in the background, in order: a thread of this process, or worker processes.

Synthesis draws new lesion labels (NumPy/SciPy) while the network renders the previous ones: :func:`prefetch`
overlaps the two in one process (PyTorch releases the GIL); :func:`ordered_map` spreads the drawing over worker
processes when one core cannot keep up with a GPU. Both yield results in input order, bound how far they run
ahead, hand a producer's exception to the consumer at its item, and stop when the consumer stops. No torch here:
worker processes start in well under a second.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import threading
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["prefetch", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """Produce ``items`` in a background thread, up to ``depth`` ahead of the consumer, in the same order.

    Synthesis draws the next lesion masks (NumPy/SciPy) while the network renders the current ones (PyTorch
    releases the GIL), so the mask synthesis no longer adds to the network time. Exceptions reach the consumer at
    the item where they happened; a consumer that stops early stops the producer.

    Args:
        items: an iterable (consumed in the background thread only).
        depth: how many items may wait, >= 1.

    Example:
        >>> list(prefetch(range(5), depth=2))
        [0, 1, 2, 3, 4]
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            put((done, err))

    worker = threading.Thread(target=produce, name="synthesis-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, depth: int = 2,
                initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Generator[R, None, None]:
    """``fn`` over ``items`` in ``workers`` spawned processes, yielded in input order.

    Args:
        fn: a module-level function (pickled by reference).
        items: inputs (picklable).
        workers: processes, >= 1.
        depth: results that may wait per worker (bounds memory for long runs).
        initializer, initargs: run once in each worker (e.g. to install large shared inputs once).

    Example:
        >>> list(ordered_map(abs, [-3, 1, -2], workers=2))  # doctest: +SKIP
        [3, 1, 2]
    """
    context = multiprocessing.get_context("spawn")  # fork is unsafe while the network's threads run
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer,
                             initargs=initargs) as pool:
        waiting: collections.deque[Future[R]] = collections.deque()
        todo = iter(items)
        try:
            for item in todo:
                waiting.append(pool.submit(fn, item))
                if len(waiting) >= workers * max(1, depth):
                    break
            while waiting:
                result = waiting.popleft().result()
                for item in todo:  # keep the pool busy: one new item per result taken
                    waiting.append(pool.submit(fn, item))
                    break
                yield result
        finally:
            for future in waiting:
                future.cancel()
