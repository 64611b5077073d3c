"""Long jobs in a separate process: the library's CLI, its ``--progress json`` lines, and cancel.

Training, synthesis, the checks and the DICOM export never run inside Slicer's process: the module starts
``PythonSlicer -m SyntheticImagingLib --progress json <command> ...`` and reads what it prints. Each stdout line
of that protocol is one JSON object::

    {"type": "progress", "stage": "train", "step": 10, "total": 200, "message": "...", "metrics": {"loss": 0.3}}
    {"type": "result", ...}                 the last line on success
    {"type": "error", "message": "..."}     the last line on failure (with a non-zero exit code)

Any other line (a warning, a stray print, stderr) is kept as a log line. Cancel ends the whole process tree
(PythonSlicer is a launcher that starts the real interpreter as its child): the job runs in its own process
group / session, is asked to stop first (SIGTERM / CTRL_BREAK, so the CLI can finish its last checkpoint) and is
killed with all its children when it has not stopped after a grace period.

Nothing here imports Qt or Slicer: the widget calls :meth:`BackgroundJob.poll` from a ``qt.QTimer`` (so Slicer
keeps drawing), the Python console and the tests call :meth:`BackgroundJob.wait`.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["JobEvent", "JobOutcome", "JobError", "BackgroundJob", "LineSplitter", "parse_line", "format_status",
           "format_duration", "cli_arguments", "cli_command", "python_executable", "library_environment",
           "CLI_MODULE"]

#: The module run with ``python -m``.
CLI_MODULE = "SyntheticImagingLib"
#: Protocol message types (anything else is a log line).
_PROTOCOL_TYPES = ("progress", "result", "error")


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """One thing a job reported.

    Args:
        kind: ``"progress"``, ``"result"``, ``"error"`` or ``"log"`` (a line outside the protocol).
        stage: what is running (progress events).
        step: steps done in the stage.
        total: steps in the stage, if known.
        message: status text, the error message, or the log line.
        metrics: numbers to show (loss, ``eta_s``...).
        payload: the whole JSON object (result and error events carry their data here).
        stream: ``"stdout"`` or ``"stderr"``.
    """

    kind: str
    stage: str = ""
    step: int = 0
    total: int | None = None
    message: str = ""
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stream: str = "stdout"

    @property
    def fraction(self) -> float | None:
        """Progress in ``[0, 1]`` when the stage has a known total, else None."""
        if self.kind != "progress" or not self.total or self.total <= 0:
            return None
        return min(max(self.step / self.total, 0.0), 1.0)


def _as_int(value: Any, default: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return int(value)


def parse_line(line: str, *, stream: str = "stdout") -> JobEvent:
    """Turn one output line into an event; never raises (a malformed line becomes a log line).

    Example:
        >>> parse_line('{"type": "progress", "stage": "train", "step": 5, "total": 10}').fraction
        0.5
        >>> parse_line("Warning: something").kind
        'log'
    """
    text = line.rstrip("\r\n")
    log = JobEvent("log", message=text, stream=stream)
    stripped = text.strip()
    if stream != "stdout" or not stripped.startswith("{"):
        return log
    try:
        obj = json.loads(stripped)
    except ValueError:  # a half-written or foreign line
        return log
    if not isinstance(obj, dict) or obj.get("type") not in _PROTOCOL_TYPES:
        return log
    kind = obj["type"]
    if kind == "progress":
        raw_metrics = obj.get("metrics") if isinstance(obj.get("metrics"), dict) else {}
        metrics = {str(k): float(v) for k, v in raw_metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        return JobEvent("progress", stage=str(obj.get("stage") or ""), step=_as_int(obj.get("step"), 0) or 0,
                        total=_as_int(obj.get("total"), None), message=str(obj.get("message") or ""),
                        metrics=metrics, payload=obj)
    if kind == "error":
        return JobEvent("error", message=str(obj.get("message") or "the job failed without a message"),
                        payload=obj)
    return JobEvent("result", message=str(obj.get("message") or ""),
                    payload={k: v for k, v in obj.items() if k != "type"})


class LineSplitter:
    """Cuts a stream of text chunks into complete lines, keeping a partial last line until its end arrives.

    Example:
        >>> s = LineSplitter()
        >>> s.feed('{"type": "pro'), s.feed('gress"}\\nnext')
        ([], ['{"type": "progress"}'])
        >>> s.flush()
        ['next']
    """

    def __init__(self) -> None:
        self._tail = ""

    def feed(self, chunk: str) -> list[str]:
        """Complete lines ended by this chunk (without line ends)."""
        lines = (self._tail + chunk).split("\n")
        self._tail = lines.pop()
        return [line.rstrip("\r") for line in lines]

    def flush(self) -> list[str]:
        """The unterminated last line at end of stream, if any."""
        tail, self._tail = self._tail.rstrip("\r"), ""
        return [tail] if tail.strip() else []


def format_duration(seconds: float) -> str:
    """Human-readable duration: ``"40 s"``, ``"3 min"``, ``"2 h 05 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min"


def format_status(event: JobEvent) -> str:
    """One status line for a progress event, e.g. ``"train: step 20/200 (10%), loss 0.31, 3 min left"``."""
    parts = [f"{event.stage}: " if event.stage else ""]
    if event.total:
        parts.append(f"step {event.step}/{event.total} ({100 * (event.fraction or 0):.0f}%)")
    else:
        parts.append(f"step {event.step}")
    shown = [f"{k} {v:.4g}" for k, v in event.metrics.items() if k != "eta_s"]
    if "eta_s" in event.metrics:
        shown.append(f"{format_duration(event.metrics['eta_s'])} left")
    text = "".join(parts) + "".join(f", {s}" for s in shown)
    return f"{text} - {event.message}" if event.message else text


def cli_arguments(command: str, options: Mapping[str, Any] | None = None,
                  positional: Sequence[str] = ()) -> list[str]:
    """Arguments after ``-m SyntheticImagingLib``: ``--progress json <command> [positional] --flag value ...``.

    ``None`` and ``False`` options are left out, ``True`` gives a bare flag, lists and tuples are joined with
    commas (``--checks utility,privacy``) except lists of paths, which give one value each (``--synthetic a b``),
    underscores in names become dashes.

    Example:
        >>> cli_arguments("synthesize", {"n": 2, "seed": 0, "subtypes": ["a", "b"], "resume": False})
        ['--progress', 'json', 'synthesize', '--n', '2', '--seed', '0', '--subtypes', 'a,b']
        >>> cli_arguments("evaluate", {"synthetic": [Path("/s/a"), Path("/s/b")]})[3:]
        ['--synthetic', '/s/a', '/s/b']
    """
    args = ["--progress", "json", command, *[str(p) for p in positional]]
    for key, value in (options or {}).items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Path) for v in value):
            args += [flag, *(str(v) for v in value)]
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def python_executable() -> str:
    """The interpreter that runs the CLI: Slicer's ``PythonSlicer`` (it sets up Slicer's Python environment),
    else the current interpreter when that is a plain Python (tests, PythonSlicer itself)."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    sibling = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    if sibling.exists():
        return str(sibling)
    if "slicer" in Path(sys.executable).name.lower() and "python" not in Path(sys.executable).name.lower():
        # inside the Slicer application sys.executable is Slicer itself: running it would open another Slicer
        raise RuntimeError("PythonSlicer was not found next to Slicer; the background jobs need it")
    return sys.executable


def _library_parent() -> Path | None:
    spec = importlib.util.find_spec(CLI_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def library_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a CLI process: the current one, plus the folder holding ``SyntheticImagingLib`` on
    ``PYTHONPATH`` (Slicer finds it beside the module, a fresh PythonSlicer would not) and unbuffered UTF-8 output."""
    env = dict(os.environ if base is None else base)
    parent = _library_parent()
    if parent is not None:
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(parent) not in paths:
            env["PYTHONPATH"] = os.pathsep.join([str(parent), *paths])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def cli_command(command: str, options: Mapping[str, Any] | None = None, positional: Sequence[str] = (),
                *, python: str | None = None) -> list[str]:
    """The whole command line of one CLI call."""
    return [python or python_executable(), "-m", CLI_MODULE, *cli_arguments(command, options, positional)]


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """How a job ended.

    Args:
        status: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
        returncode: the process exit code.
        message: the error message (failed), or a short summary.
        result: the payload of the ``result`` line (empty if none came).
        log_path: the file holding every line the job printed.
    """

    status: str
    returncode: int | None
    message: str
    result: Mapping[str, Any]
    log_path: Path | None

    def check(self) -> JobOutcome:
        """Raise :class:`JobError` unless the job succeeded; returns ``self`` for chaining."""
        if self.status != "succeeded":
            raise JobError(self)
        return self


class JobError(RuntimeError):
    """A job failed or was cancelled (the message says which, and where the log is)."""

    def __init__(self, outcome: JobOutcome) -> None:
        self.outcome = outcome
        where = f" (log: {outcome.log_path})" if outcome.log_path else ""
        super().__init__(f"{outcome.status}: {outcome.message}{where}")


class BackgroundJob:
    """One CLI call in its own process group, read by two threads and dispatched on the caller's thread.

    Args:
        args: the command line (see :func:`cli_command`).
        env: its environment (default: :func:`library_environment`).
        cwd: its working folder.
        log_path: file that receives every line (created with its folder).
        on_event: called on the thread that calls :meth:`poll` with every :class:`JobEvent`.
        name: label for messages (e.g. ``"train"``).
        max_log_lines: lines kept in memory (the log file keeps all).

    Example (blocking, as the Python console uses it)::

        job = BackgroundJob(cli_command("info", positional=["data/brats"]), on_event=print).start()
        outcome = job.wait().check()
    """

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, log_path: str | os.PathLike[str] | None = None,
                 on_event: Callable[[JobEvent], None] | None = None, name: str = "",
                 max_log_lines: int = 5000) -> None:
        self.args = [str(a) for a in args]
        self.env = dict(env) if env is not None else library_environment()
        self.cwd = str(cwd) if cwd is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.on_event = on_event
        self.name = name or (self.args[3] if len(self.args) > 3 else "job")
        self.log: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self.last_progress: JobEvent | None = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.started_at: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._log_file: IO[str] | None = None
        self._cancel_requested = False
        self._kill_at: float | None = None
        self._finished = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> BackgroundJob:
        """Start the process (in its own process group, so cancel reaches its children)."""
        if self._process is not None:
            raise RuntimeError("this job was already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")  # closed in _finish
            self._log_file.write(f"# {datetime.datetime.now().isoformat(timespec='seconds')} "
                                 f"{subprocess.list2cmdline(self.args)}\n")
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | 0x08000000  # | CREATE_NO_WINDOW
        else:
            kwargs["start_new_session"] = True
        self._process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=self.env, cwd=self.cwd, **kwargs)
        self.started_at = time.monotonic()
        for stream_name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            reader = threading.Thread(target=self._read, args=(stream_name, stream), daemon=True,
                                      name=f"SyntheticImaging-{self.name}-{stream_name}")
            reader.start()
            self._readers.append(reader)
        return self

    def _read(self, stream_name: str, stream: IO[bytes]) -> None:
        # Raw chunks + an incremental decoder: a line or a UTF-8 character may be split across reads.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        splitter = LineSplitter()
        try:
            while True:
                chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not chunk:
                    break
                for line in splitter.feed(decoder.decode(chunk)):
                    self._queue.put((stream_name, line))
            for line in splitter.feed(decoder.decode(b"", final=True)) + splitter.flush():
                self._queue.put((stream_name, line))
        finally:
            stream.close()
            self._queue.put((stream_name, None))  # end-of-stream marker

    @property
    def running(self) -> bool:
        """Started and not finished."""
        return self._process is not None and not self._finished

    @property
    def finished(self) -> bool:
        """The process ended and all its output was dispatched."""
        return self._finished

    @property
    def returncode(self) -> int | None:
        """Exit code once the process ended."""
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        """Process id of the launched process (the group leader)."""
        return None if self._process is None else self._process.pid

    def poll(self) -> bool:
        """Dispatch the lines read so far and advance a pending cancel. Returns True while the job runs."""
        if self._process is None or self._finished:
            return False
        while True:
            try:
                stream_name, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue
            self._dispatch(parse_line(line, stream=stream_name), line)
        if self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_at = None
            self._kill_tree(force=True)
        readers_done = all(not r.is_alive() for r in self._readers)
        if readers_done and self._queue.empty() and self._process.poll() is not None:
            self._finish()
            return False
        return True

    def _dispatch(self, event: JobEvent, raw: str) -> None:
        self.log.append(raw if event.stream == "stdout" else f"[stderr] {raw}")
        if self._log_file is not None:
            self._log_file.write((raw if event.stream == "stdout" else f"[stderr] {raw}") + "\n")
            self._log_file.flush()
        if event.kind == "progress":
            self.last_progress = event
        elif event.kind == "result":
            self.result = dict(event.payload)
        elif event.kind == "error":
            self.error = event.message
        if self.on_event is not None:
            self.on_event(event)

    def _finish(self) -> None:
        self._finished = True
        if self._log_file is not None:
            self._log_file.write(f"# exit code {self.returncode}\n")
            self._log_file.close()
            self._log_file = None

    def cancel(self, grace_s: float = 10.0) -> None:
        """Ask the job to stop now, and kill its whole process tree if it still runs after ``grace_s`` seconds
        (the kill happens in :meth:`poll`/:meth:`wait`, so this never blocks)."""
        if self._process is None or self._finished:
            return
        self._cancel_requested = True
        self._kill_tree(force=False)
        self._kill_at = time.monotonic() + max(0.0, grace_s)

    def _kill_tree(self, *, force: bool) -> None:
        assert self._process is not None
        pid = self._process.pid
        if os.name == "nt":
            if force:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
            elif self._process.poll() is None:
                try:
                    self._process.send_signal(signal.CTRL_BREAK_EVENT)  # reaches the whole console group
                except OSError:
                    pass
            return
        try:
            # the group outlives its leader while any child lives: this also ends orphaned grandchildren
            os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def cancelled(self) -> bool:
        """Cancel was requested."""
        return self._cancel_requested

    def wait(self, timeout: float | None = None, *, interval: float = 0.1) -> JobOutcome:
        """Block until the job ends (dispatching events meanwhile); cancel it when ``timeout`` seconds pass."""
        if self._process is None:
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if deadline is not None and time.monotonic() > deadline and not self._cancel_requested:
                self.cancel(grace_s=5.0)
            time.sleep(interval)
        return self.outcome()

    def outcome(self) -> JobOutcome:
        """How the job ended (call after it finished)."""
        code = self.returncode
        if self._cancel_requested:
            status, message = "cancelled", "cancelled by the user"
        elif code == 0 and self.error is None:
            status, message = "succeeded", str((self.result or {}).get("message") or "done")
        else:
            status = "failed"
            tail = [line for line in list(self.log)[-20:] if line.strip()]
            message = self.error or (f"the {self.name} process exited with code {code}"
                                     + (":\n" + "\n".join(tail[-8:]) if tail else ""))
        return JobOutcome(status, code, message, dict(self.result or {}), self.log_path)

    @property
    def elapsed_s(self) -> float:
        """Seconds since start."""
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at
