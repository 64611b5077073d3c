"""Benchmark of the chunked exact k-NN search and of the privacy statistics at scale.

For each size N, N query embeddings are searched against N reference embeddings (d = 1000 by default, k = 5,
leave-one-out as the privacy check's training-to-training DCR does), in a fresh subprocess so that its peak
resident memory is its own. A dense N x N float64 distance matrix is printed beside it for comparison: the
chunked search stays linear in N. Then one full privacy assessment of 1,000 synthetic against 1,000 training and
1,000 holdout cases (``assess_space``: DCRs, overfitting ratio with its permutation test, MIA, identifiability,
1-NN accuracy) is timed.

Usage::

    python Testing/benchmarks/bench_nearest.py                 # 100, 1000, 10000 cases x 1000 d
    python Testing/benchmarks/bench_nearest.py --sizes 100 1000 --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

__all__ = ["main", "worker"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def worker(*, n: int, dim: int, k: int, repeats: int, block: int, threads: int, mode: str) -> dict[str, float]:
    """Time one size in this process (run through the ``--worker`` flag, one process per size).

    Args:
        n: cases on each side.
        dim: embedding dimension.
        k: neighbours.
        repeats: timed repeats (the median is reported).
        block: rows per block.
        threads: torch threads.
        mode: ``knn`` (the search alone) or ``privacy`` (``assess_space`` on n x n x n cases).
    """
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from SyntheticImagingLib.checks.nearest import knn
    from SyntheticImagingLib.checks.privacy import assess_space

    rng = np.random.default_rng(0)
    base_rss = _peak_rss_mb()
    times = []
    if mode == "knn":
        x = rng.normal(size=(n, dim)).astype(np.float32)
        for _ in range(repeats):
            t = time.perf_counter()
            d, i = knn(x, x, k=k, exclude_self=True, block_size=block)
            times.append(time.perf_counter() - t)
        assert d.shape == (n, k) and np.all(i != np.arange(n)[:, None])
    else:
        train, holdout = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
        synthetic = np.concatenate([train[: n // 10] + 0.01, rng.normal(size=(n - n // 10, dim))])  # 10 % copies
        for _ in range(repeats):
            t = time.perf_counter()
            res = assess_space("bench", train=train, holdout=holdout, synthetic=synthetic,
                               calibration=np.array([0.5]), max_permutations=1000)
            times.append(time.perf_counter() - t)
        assert abs(res.memorization_rate - 0.1) < 1e-9
    return {"n": n, "dim": dim, "k": k, "mode": mode, "threads": threads, "block": block, "repeats": repeats,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": base_rss,
            "dense_matrix_mb": n * n * 8 / 2**20}


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    """Run every size in its own subprocess and print a table (and optionally JSON).

    Args:
        argv: command-line arguments.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--repeats", type=int, nargs="+", default=[5, 5, 3], help="per size (last one repeats)")
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--privacy-size", type=int, default=1000, help="0 skips the privacy assessment benchmark")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="knn", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        out = worker(n=args.sizes[0], dim=args.dim, k=args.k, repeats=args.repeats[0], block=args.block,
                     threads=args.threads, mode=args.mode)
        print(json.dumps(out))
        return [out]
    jobs = [(n, args.repeats[min(i, len(args.repeats) - 1)], "knn") for i, n in enumerate(args.sizes)]
    if args.privacy_size:
        jobs.append((args.privacy_size, 1, "privacy"))
    results = []
    for n, repeats, mode in jobs:
        cmd = [sys.executable, __file__, "--worker", "--sizes", str(n), "--dim", str(args.dim), "--k", str(args.k),
               "--repeats", str(repeats), "--block", str(args.block), "--threads", str(args.threads), "--mode", mode]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"benchmark worker failed:\n{done.stderr}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(row)
        print(f"{mode:8s} n={n:6d} x {n:6d}, d={args.dim}: median {row['median_s']:8.3f} s "
              f"(min {row['min_s']:.3f}, max {row['max_s']:.3f}, {repeats} runs); "
              f"peak RSS {row['peak_rss_mb']:7.1f} MB "
              f"(after imports {row['rss_before_mb']:.1f} MB; a dense distance matrix alone would be "
              f"{row['dense_matrix_mb']:.1f} MB)", flush=True)
    thousand = [r for r in results if r["n"] == 1000 and r["mode"] == "knn"]
    if thousand:
        verdict = "OK" if thousand[0]["median_s"] < 60 else "TOO SLOW"
        print(f"1,000 x 1,000 k-NN under 60 s: {verdict} ({thousand[0]['median_s']:.3f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
