"""How fast new lesion labels are drawn for a trained generator, in this process or in worker processes.

    python Testing/benchmarks/bench_lesion_draws.py [--size 128] [--n 24] [--workers 0 1 2] [--repeats 3]

On a GPU the network renders a 128^3 volume in milliseconds, so the labels it renders must come at least as fast:
this times :func:`~SyntheticImagingLib.lesions.draws.draw_labels` alone (no network) on a phantom brain,
per worker count, side by side in one run (medians; process start-up included, as a synthesis run pays it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from SyntheticImagingLib.lesions.draws import LesionDrawer, draw_labels, lesion_jobs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="128")
    parser.add_argument("--n", type=int, default=24, help="labels per timed run")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bench_synthesis import CONTROLS, _phantom, _size  # here, not at the top: spawned workers re-import this

    shape = _size(args.size)
    brain, geometry = _phantom(shape, 2.0)
    drawer = LesionDrawer(references=[(brain, geometry)], controls=CONTROLS)
    jobs = list(lesion_jobs(args.n, 1, seed=0))
    print(f"grid {shape}, {args.n} labels per run, {args.repeats} repeats (medians)")
    print(f"{'workers':>8s} {'labels/s':>9s} {'s per label':>12s} {'speedup':>8s}")
    base = None
    for workers in args.workers:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for _draw in draw_labels(drawer, jobs, workers=workers, depth=2):
                pass
            times.append(time.perf_counter() - t)
        per = statistics.median(times) / args.n
        base = base or per
        print(f"{workers:8d} {1 / per:9.2f} {per:12.4f} {base / per:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
