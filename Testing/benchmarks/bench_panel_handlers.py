"""Main-thread time of every panel handler on the bundled sample data (Slicer-runtime harness).

Runs the main-path click test (``Testing/slicer/test_panel_click_paths.py``: load sample cases, add them as scene
cases, check, train a tiny GAN, synthesize, show, run the four checks, compare, adherence view, DICOM and file
export, reader study) ``--repeats`` times and prints, per handler, the median main-thread time of the click
(what blocks Slicer when the user clicks), the longest main-thread step while its job ran (the completion: scene
nodes made from what the job read) and the job it starts. The goal: no click over 0.2 s.

    python Testing/benchmarks/bench_panel_handlers.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "Testing/slicer/test_panel_click_paths.py::test_main_path_from_loaded_volumes_to_dicom"


def run_once(out: Path) -> list[list]:
    env = {**os.environ, "SYNTHETIC_IMAGING_PANEL_TIMINGS": str(out)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeats):
            runs.append(run_once(Path(folder) / f"timings-{i}.json"))
    handlers = [row[0] for row in runs[0]]
    print(f"{args.repeats} runs, {os.cpu_count()} CPUs; medians over runs (each run: the median over its clicks)")
    print("| handler | click, main thread (ms) | completion step, main thread (ms) | job it starts |")
    print("|---|---|---|---|")
    for handler in handlers:
        rows = [next(r for r in run if r[0] == handler) for run in runs]
        click = statistics.median(r[1] for r in rows) * 1000
        completion = statistics.median(r[2] for r in rows) * 1000
        job = rows[0][3] or "none"
        print(f"| {handler} | {click:.1f} | {completion:.0f} | {job} |")


if __name__ == "__main__":
    main()
