"""Short jobs in a worker thread of Slicer's process: reading, checking, resampling and writing files.

Describing or checking a dataset, exporting files, preparing a reader-study case or writing scene cases take
from a fraction of a second to minutes on real data: on the GUI thread they freeze Slicer. They touch files and
numpy arrays only (never the MRML scene, which belongs to the GUI thread), so a thread is enough, and cheaper
than a process. A :class:`ThreadJob` has the surface of :class:`.jobs.BackgroundJob` that the panel uses
(``start``, ``poll``, ``cancel``, ``outcome``, ``elapsed_s``, ``name``, ``log``): the panel's timer polls both
kinds alike, events reach ``on_event`` on the polling thread, and the work's return value comes back in
``outcome().result["value"]``.

Nothing here imports Qt or Slicer.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .jobs import JobEvent, JobOutcome

__all__ = ["ThreadJob", "JobCancelled", "Report", "caseProgress"]

#: ``report(step, total, message)``: progress from the work; returns False once cancel was asked for.
Report = Callable[[int, int | None, str], bool]


class JobCancelled(Exception):
    """Raised by work that saw ``report(...)`` return False."""


def caseProgress(report: Report, total: int | None) -> Callable[[int, str], None]:
    """A library ``progress(cases done, case id)`` callback that reports and raises :class:`JobCancelled` once
    cancel was asked for (the library's writers are atomic: a cancelled write leaves nothing behind)."""

    def progress(done: int, caseId: str) -> None:
        if not report(done, total, caseId):
            raise JobCancelled()

    return progress


class ThreadJob:
    """``work(report)`` in a daemon thread.

    Args:
        work: the function to run; it calls ``report(step, total, message)`` now and then and stops (raising
            :class:`JobCancelled`, or returning) when that returns False.
        name: label for messages (e.g. ``"check data"``).
        on_event: called on the thread that calls :meth:`poll` with every :class:`JobEvent`.

    Example::

        job = ThreadJob(lambda report: sum(range(10)), name="sum").start()
        outcome = job.wait()   # outcome.result["value"] == 45
    """

    log_path: Path | None = None  # no log file: the panel's log shows the messages

    def __init__(self, work: Callable[[Report], Any], *, name: str = "job",
                 on_event: Callable[[JobEvent], None] | None = None) -> None:
        self.work = work
        self.name = name
        self.on_event = on_event
        self.log: collections.deque[str] = collections.deque(maxlen=1000)
        self.started_at: float | None = None
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._finished = False

    def start(self) -> ThreadJob:
        """Start the worker thread."""
        if self._thread is not None:
            raise RuntimeError("this job was already started")
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"SyntheticImaging-{self.name}")
        self._thread.start()
        return self

    def _report(self, step: int, total: int | None, message: str = "") -> bool:
        self._events.put(JobEvent("progress", stage=self.name, step=int(step), total=total, message=message))
        return not self._cancel.is_set()

    def _run(self) -> None:
        try:
            self._value = self.work(self._report)
        except BaseException as err:  # noqa: BLE001  (handed to the GUI thread, which shows it)
            self._error = err

    @property
    def running(self) -> bool:
        """Started and not finished."""
        return self._thread is not None and not self._finished

    @property
    def cancelled(self) -> bool:
        """Cancel was requested."""
        return self._cancel.is_set()

    def poll(self) -> bool:
        """Dispatch the events so far; returns True while the job runs."""
        if self._thread is None or self._finished:
            return False
        alive = self._thread.is_alive()  # read before draining: no event is left behind after the last poll
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self.log.append(f"{event.stage}: {event.step}/{event.total} {event.message}".rstrip())
            if self.on_event is not None:
                self.on_event(event)
        if not alive:
            self._finished = True
            if self._error is not None and not isinstance(self._error, JobCancelled) and self.on_event:
                self.on_event(JobEvent("error", message=str(self._error)))
            return False
        return True

    def cancel(self, grace_s: float = 0.0) -> None:
        """Ask the work to stop at its next ``report`` (a thread cannot be killed; ``grace_s`` is ignored)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None, *, interval: float = 0.02) -> JobOutcome:
        """Block until the work ends (dispatching events meanwhile); cancel it when ``timeout`` seconds pass."""
        if self._thread is None:
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
            time.sleep(interval)
        return self.outcome()

    @property
    def error(self) -> BaseException | None:
        """The exception the work raised, if any."""
        return self._error

    def outcome(self) -> JobOutcome:
        """How the job ended (call after it finished)."""
        if self._cancel.is_set() and (self._error is None or isinstance(self._error, JobCancelled)):
            return JobOutcome("cancelled", None, "cancelled by the user", {}, None)
        if self._error is not None:
            return JobOutcome("failed", None, str(self._error) or type(self._error).__name__, {}, None)
        return JobOutcome("succeeded", 0, "done", {"value": self._value}, None)

    @property
    def elapsed_s(self) -> float:
        """Seconds since start."""
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at
