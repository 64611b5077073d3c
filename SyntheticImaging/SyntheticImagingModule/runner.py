"""The panel's running jobs: CLI processes (:class:`.jobs.BackgroundJob`) and file work in threads
(:class:`.thread_jobs.ThreadJob`), one at a time per lane, polled from the panel's timer.

Lanes keep unrelated work apart: a training run of an hour (lane ``"process"``) must not stop the user from
showing a synthetic case (lane ``"view"``), while two trainings at once would fight for the same CPU or GPU.
Nothing here imports Qt or Slicer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from .jobs import JobEvent, JobOutcome

__all__ = ["Job", "JobRunner", "RunningJob", "PROCESS", "FILES", "VIEW"]

#: Lanes: CLI processes (one at a time: they share the CPU/GPU); file work the user waits for; loading cases to
#: show (may run beside a training).
PROCESS, FILES, VIEW = "process", "files", "view"


class Job(Protocol):
    """What the runner needs of a job (both job kinds have it)."""

    name: str
    on_event: Callable[[JobEvent], None] | None

    def start(self) -> Any: ...

    def poll(self) -> bool: ...

    def cancel(self, grace_s: float = ...) -> None: ...

    def outcome(self) -> JobOutcome: ...

    @property
    def elapsed_s(self) -> float: ...


@dataclasses.dataclass
class RunningJob:
    """A started job, its lane and what to do when it succeeds."""

    lane: str
    job: Job
    onSuccess: Callable[[JobOutcome], None] | None = None


class JobRunner:
    """Starts and polls jobs, one per lane.

    Args:
        onEvent: ``onEvent(running, event)`` for every event a job reports (on the polling thread).
        onFinished: ``onFinished(running, outcome)`` once a job ended; it runs ``running.onSuccess`` when the job
            succeeded (the panel wraps it in its error display). Without it, the runner calls ``onSuccess``.
    """

    def __init__(self, *, onEvent: Callable[[RunningJob, JobEvent], None] | None = None,
                 onFinished: Callable[[RunningJob, JobOutcome], None] | None = None) -> None:
        self.onEvent = onEvent
        self.onFinished = onFinished
        self._running: dict[str, RunningJob] = {}
        self.latest: RunningJob | None = None

    def busy(self, lane: str) -> bool:
        """A job runs in ``lane``."""
        return lane in self._running

    def job(self, lane: str) -> Job | None:
        """The job running in ``lane``."""
        running = self._running.get(lane)
        return running.job if running else None

    @property
    def anyRunning(self) -> bool:
        """Some job runs."""
        return bool(self._running)

    def start(self, lane: str, job: Job, onSuccess: Callable[[JobOutcome], None] | None = None) -> RunningJob:
        """Start ``job`` in ``lane``.

        Raises:
            RuntimeError: a job already runs in that lane (nothing is started).
            OSError: the job's process could not start (nothing is left running).
        """
        if lane in self._running:
            raise RuntimeError(f"{self._running[lane].job.name} is still running; wait for it or cancel it")
        running = RunningJob(lane, job, onSuccess)
        job.on_event = lambda event: self.onEvent(running, event) if self.onEvent else None
        job.start()
        self._running[lane] = running
        self.latest = running
        return running

    def poll(self) -> bool:
        """Poll every job; finish those that ended. Returns True while any job runs."""
        for lane, running in list(self._running.items()):
            if running.job.poll():
                continue
            del self._running[lane]
            outcome = running.job.outcome()
            if self.onFinished is not None:
                self.onFinished(running, outcome)
            elif outcome.status == "succeeded" and running.onSuccess is not None:
                running.onSuccess(outcome)
        return bool(self._running)

    def cancel(self, lane: str | None = None, *, grace_s: float = 15.0) -> Job | None:
        """Ask the job of ``lane`` (default: the latest started that still runs) to stop; returns it."""
        running = self._running.get(lane) if lane else (
            self.latest if self.latest is not None and self.latest.lane in self._running else
            next(iter(self._running.values()), None))
        if running is None:
            return None
        running.job.cancel(grace_s=grace_s)
        return running.job

    def cancelAll(self) -> None:
        """Stop every job now (the application closes): processes are killed, threads asked to stop."""
        for running in list(self._running.values()):
            running.job.cancel(grace_s=0)
            running.job.poll()
