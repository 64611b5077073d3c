"""Progress reporting and cancel, shared by every long job.

Library code reports through a :class:`Reporter`; front ends pass a callback that renders the events: the CLI
as tqdm bars or JSON lines (``--progress json``, read by the Slicer module), the Slicer module as its progress
bar. Cancelling is cooperative: a job checks its reporter at each step and stops with
:class:`~SyntheticImagingLib.errors.CancelledError` (after the last complete checkpoint is written).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from .errors import CancelledError

__all__ = ["ProgressEvent", "ProgressCallback", "Reporter", "as_reporter", "JsonLinesRenderer", "BarRenderer"]


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Args:
        stage: what is running (``"synthesize"``, ``"train"``, ``"evaluate:utility"``...).
        step: steps done in this stage.
        total: steps in this stage, if known.
        message: a short human-readable status.
        metrics: numbers to show (loss, ETA seconds...).
    """

    stage: str
    step: int
    total: int | None = None
    message: str = ""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON line (the ``--progress json`` protocol)."""
        return json.dumps({"type": "progress", **dataclasses.asdict(self)}, default=float)


ProgressCallback = Callable[[ProgressEvent], None]


class Reporter:
    """What library code calls to report progress and notice a cancel.

    Args:
        callback: receives every event (None: silent).
        cancel: set this event (from another thread, or a signal handler) to cancel the job.

    Example:
        >>> events = []
        >>> r = Reporter(events.append)
        >>> r.report("synthesize", 1, 2, "case 1")
        >>> events[0].step, events[0].total
        (1, 2)
    """

    def __init__(self, callback: ProgressCallback | None = None, *, cancel: threading.Event | None = None) -> None:
        self.callback = callback
        self.cancel = cancel or threading.Event()
        self._started: dict[str, float] = {}

    def check_cancel(self) -> None:
        """Raise :class:`CancelledError` if the job was cancelled."""
        if self.cancel.is_set():
            raise CancelledError()

    def report(self, stage: str, step: int, total: int | None = None, message: str = "", **metrics: float) -> None:
        """Report progress (adds an ``eta_s`` estimate) and check for cancel."""
        now = time.monotonic()
        start = self._started.setdefault(stage, now)
        if total and step > 0 and "eta_s" not in metrics:
            metrics["eta_s"] = (now - start) / step * (total - step)
        if self.callback is not None:
            self.callback(ProgressEvent(stage, step, total, message, {k: float(v) for k, v in metrics.items()}))
        self.check_cancel()

    def child(self, prefix: str) -> Reporter:
        """A reporter for a sub-job whose stages are prefixed (``"evaluate:" + stage``), sharing the cancel."""
        parent = self

        def forward(event: ProgressEvent) -> None:
            if parent.callback is not None:
                parent.callback(dataclasses.replace(event, stage=f"{prefix}:{event.stage}"))

        return Reporter(forward, cancel=self.cancel)


def as_reporter(progress: Reporter | ProgressCallback | None) -> Reporter:
    """Accept a reporter, a bare callback or None wherever a job takes ``progress=``."""
    return progress if isinstance(progress, Reporter) else Reporter(progress)


class JsonLinesRenderer:
    """Writes one JSON object per line (flushed) for another process to read."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: ProgressEvent) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def result(self, **payload: Any) -> None:
        """The final line: what the job produced."""
        self.stream.write(json.dumps({"type": "result", **payload}, default=str) + "\n")
        self.stream.flush()


class BarRenderer:
    """tqdm progress bars, one per stage (on stderr, so stdout stays clean for results)."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        bar = self._bars.get(event.stage)
        if bar is None:
            for other in self._bars.values():
                other.close()
            bar = self._bars[event.stage] = tqdm(total=event.total, desc=event.stage, unit="step", file=sys.stderr,
                                                 dynamic_ncols=True, leave=True)
        bar.n = event.step
        shown = {k: f"{v:.4g}" for k, v in event.metrics.items() if k != "eta_s"}
        if event.message:
            shown["at"] = event.message
        bar.set_postfix(shown, refresh=False)
        bar.refresh()

    def close(self) -> None:
        """Close all bars."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
