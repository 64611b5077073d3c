"""Background jobs: the ``--progress json`` line parser (pure), and real child processes read, failed and cancelled
(with their children) the way the module runs the CLI. No Qt, no Slicer."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "SyntheticImaging"))

from SyntheticImagingModule.jobs import (  # noqa: E402
    BackgroundJob,
    JobError,
    LineSplitter,
    cli_arguments,
    cli_command,
    format_status,
    library_environment,
    parse_line,
)

# -- the line parser ----------------------------------------------------------------------------------------------


def test_progress_line():
    line = json.dumps({"type": "progress", "stage": "train", "step": 25, "total": 100, "message": "epoch 1",
                       "metrics": {"loss": 0.25, "eta_s": 90.0, "note": "text", "flag": True, "bad": float("nan")}})
    event = parse_line(line + "\n")
    assert event.kind == "progress" and event.stage == "train" and (event.step, event.total) == (25, 100)
    assert event.fraction == 0.25 and event.message == "epoch 1"
    assert dict(event.metrics) == {"loss": 0.25, "eta_s": 90.0}  # text, bool and NaN metrics are dropped
    assert format_status(event) == "train: step 25/100 (25%), loss 0.25, 2 min left - epoch 1"


@pytest.mark.parametrize("total", [None, 0, -3, "ten"])
def test_progress_without_usable_total_has_no_fraction(total):
    event = parse_line(json.dumps({"type": "progress", "stage": "s", "step": 3, "total": total}))
    assert event.kind == "progress" and event.fraction is None
    assert format_status(event).startswith("s: step 3")


def test_result_and_error_lines():
    result = parse_line('{"type": "result", "out": "/tmp/x", "cases": 4}\r\n')
    assert result.kind == "result" and dict(result.payload) == {"out": "/tmp/x", "cases": 4}
    error = parse_line('{"type": "error", "message": "case_3: label is empty. Fix: drop it"}')
    assert error.kind == "error" and error.message == "case_3: label is empty. Fix: drop it"
    assert parse_line('{"type": "error"}').message  # never an empty error message


@pytest.mark.parametrize("line", [
    "Warning: torch.cuda not available",
    '{"type": "progress", "stage": "tr',          # a partial line (the rest never came)
    '{"stage": "train", "step": 1}',             # JSON, but not the protocol
    '["progress"]',
    '{"type": "debug", "x": 1}',
    "",
    "   {not json}",
])
def test_other_lines_are_log_lines(line):
    event = parse_line(line)
    assert event.kind == "log" and event.message == line


def test_stderr_is_never_parsed_as_protocol():
    event = parse_line('{"type": "error", "message": "x"}', stream="stderr")
    assert event.kind == "log" and event.stream == "stderr"


def test_line_splitter_handles_partial_lines_and_crlf():
    splitter = LineSplitter()
    assert splitter.feed('{"type": "prog') == []
    assert splitter.feed('ress", "step": 1}\r\n{"type"') == ['{"type": "progress", "step": 1}']
    assert splitter.feed(': "result"}\nlog line\n\n') == ['{"type": "result"}', "log line", ""]
    assert splitter.feed("tail without newline") == []
    assert splitter.flush() == ["tail without newline"]
    assert splitter.flush() == []


def test_cli_arguments():
    args = cli_arguments("synthesize", {"generator": "label-to-image", "n": 4, "seed": 0, "lesion_volume": "10:40",
                                        "subtypes": ("subdural", "epidural"), "resume": False, "data": None,
                                        "overwrite": True})
    assert args == ["--progress", "json", "synthesize", "--generator", "label-to-image", "--n", "4", "--seed", "0",
                    "--lesion-volume", "10:40", "--subtypes", "subdural,epidural", "--overwrite"]
    assert cli_arguments("info", positional=[Path("/data/x")]) == ["--progress", "json", "info", "/data/x"]
    command = cli_command("demo", {"out": "/tmp/d"}, python="/opt/PythonSlicer")
    assert command == ["/opt/PythonSlicer", "-m", "SyntheticImagingLib", "--progress", "json", "demo", "--out",
                       "/tmp/d"]


def test_library_environment_finds_the_library(tmp_path):
    env = library_environment({"PYTHONPATH": str(tmp_path)})
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert (Path(paths[0]) / "SyntheticImagingLib" / "__init__.py").exists() and str(tmp_path) in paths
    assert env["PYTHONUNBUFFERED"] == "1"


# -- real processes -----------------------------------------------------------------------------------------------

def _script(tmp_path: Path, code: str) -> list[str]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(code))
    return [sys.executable, str(path)]


def test_job_reads_progress_result_and_split_writes(tmp_path):
    args = _script(tmp_path, """
        import json, sys, time
        out = sys.stdout.buffer
        for i in range(3):
            print(json.dumps({"type": "progress", "stage": "synthesize", "step": i + 1, "total": 3}), flush=True)
        # one line written in pieces, a UTF-8 character split between writes
        line = (json.dumps({"type": "progress", "stage": "s", "step": 1, "total": 1, "message": "Schütte"},
                           ensure_ascii=False) + "\\n").encode()
        cut = line.index("ü".encode()) + 1
        out.write(line[:cut]); out.flush(); time.sleep(0.3); out.write(line[cut:]); out.flush()
        print("a plain print", flush=True)
        print("a warning", file=sys.stderr, flush=True)
        out.write(b'{"type": "result", "out": "done"}')   # the last line, without a newline
        out.flush()
    """)
    events = []
    job = BackgroundJob(args, log_path=tmp_path / "logs" / "job.log", on_event=events.append).start()
    outcome = job.wait(timeout=60)
    assert outcome.status == "succeeded" and outcome.returncode == 0 and outcome.result == {"out": "done"}
    progress = [e for e in events if e.kind == "progress"]
    assert [(e.stage, e.step) for e in progress] == [("synthesize", 1), ("synthesize", 2), ("synthesize", 3),
                                                       ("s", 1)]
    assert progress[-1].message == "Schütte"
    logs = [(e.stream, e.message) for e in events if e.kind == "log"]
    assert ("stdout", "a plain print") in logs and ("stderr", "a warning") in logs
    text = (tmp_path / "logs" / "job.log").read_text(encoding="utf-8")
    assert "Schütte" in text and "[stderr] a warning" in text and "# exit code 0" in text
    assert job.finished and not job.running and not job.poll()


def test_job_failure_keeps_the_error_message(tmp_path):
    args = _script(tmp_path, """
        import json, sys
        print(json.dumps({"type": "progress", "stage": "train", "step": 1, "total": 10}), flush=True)
        print(json.dumps({"type": "error", "message": "data: 2 cases have no label. Fix: add labels"}), flush=True)
        sys.exit(2)
    """)
    outcome = BackgroundJob(args).start().wait(timeout=60)
    assert outcome.status == "failed" and outcome.returncode == 2
    assert outcome.message == "data: 2 cases have no label. Fix: add labels"
    with pytest.raises(JobError, match="no label"):
        outcome.check()


def test_job_crash_without_error_line_reports_exit_code_and_stderr(tmp_path):
    args = _script(tmp_path, """
        raise RuntimeError("boom in the CLI")
    """)
    outcome = BackgroundJob(args).start().wait(timeout=60)
    assert outcome.status == "failed" and outcome.returncode == 1
    assert "exited with code 1" in outcome.message and "boom in the CLI" in outcome.message


def test_missing_executable_fails_to_start(tmp_path):
    with pytest.raises(OSError):
        BackgroundJob([str(tmp_path / "no-such-python")]).start()


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(")")[-1].split()[0] != "Z"  # a zombie is dead
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
@pytest.mark.parametrize("ignore_term", [False, True])
def test_cancel_ends_the_whole_process_tree(tmp_path, ignore_term):
    # like PythonSlicer: a launcher process whose child does the work; the child may ignore the polite signal
    args = _script(tmp_path, f"""
        import signal, subprocess, sys
        if {ignore_term}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # the child reports its pid itself once its own signal set-up is done
        code = ("import json, os, signal, time\\n"
                + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if {ignore_term} else "")
                + "print(json.dumps({{'type': 'progress', 'stage': 'train', 'step': 0, 'message': str(os.getpid())}}),"
                + " flush=True)\\n"
                + "time.sleep(120)")
        subprocess.Popen([sys.executable, "-c", code]).wait()
    """)
    events = []
    job = BackgroundJob(args, on_event=events.append).start()
    deadline = time.monotonic() + 30
    while not any(e.kind == "progress" for e in events) and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.05)
    child = int(next(e for e in events if e.kind == "progress").message)
    assert _alive(job.pid) and _alive(child)
    start = time.monotonic()
    job.cancel(grace_s=1.0)
    outcome = job.wait(timeout=30)
    assert outcome.status == "cancelled"
    elapsed = time.monotonic() - start
    assert (elapsed >= 1.0) == ignore_term and elapsed < 15  # SIGKILL only after the grace period
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(job.pid) and not _alive(child)


def test_wait_timeout_cancels(tmp_path):
    args = _script(tmp_path, "import time; time.sleep(60)\n")
    start = time.monotonic()
    outcome = BackgroundJob(args).start().wait(timeout=0.5)
    assert outcome.status == "cancelled" and time.monotonic() - start < 20


# -- in-process thread jobs (short file work the panel must not run on the GUI thread) ----------------------------


def test_thread_job_reports_progress_on_the_polling_thread_and_returns_its_value():
    import threading

    from SyntheticImagingModule.thread_jobs import ThreadJob

    seen = []

    def work(report):
        for i in range(3):
            report(i + 1, 3, f"item {i}")
        return {"answer": 42}

    job = ThreadJob(work, name="count", on_event=lambda e: seen.append((e.step, threading.current_thread().name)))
    outcome = job.wait(10)
    assert outcome.status == "succeeded" and outcome.result["value"] == {"answer": 42}
    assert [s for s, _ in seen] == [1, 2, 3]
    assert {name for _, name in seen} == {threading.current_thread().name}  # never the worker thread
    assert not job.running and job.elapsed_s > 0


def test_thread_job_failure_and_cancel():
    from SyntheticImagingModule.thread_jobs import JobCancelled, ThreadJob

    def fail(report):
        raise ValueError("case_3: label grid differs from FLAIR")

    errors = []
    outcome = ThreadJob(fail, on_event=lambda e: errors.append(e.message) if e.kind == "error" else None).wait(10)
    assert outcome.status == "failed" and "label grid differs" in outcome.message
    assert errors == ["case_3: label grid differs from FLAIR"]

    def endless(report):
        step = 0
        while report(step, None, ""):
            step += 1
            time.sleep(0.005)
        raise JobCancelled()

    job = ThreadJob(endless, name="endless").start()
    time.sleep(0.05)
    job.cancel()
    assert job.wait(10).status == "cancelled"
