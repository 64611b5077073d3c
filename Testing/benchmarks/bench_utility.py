"""Benchmark of ``evaluate`` (utility check by default): wall time per stage and peak resident memory.

Usage (from the repository root)::

    python Testing/benchmarks/bench_utility.py --profile quick
    python Testing/benchmarks/bench_utility.py --profile full --device cuda   # paper-sized: GPU, hours on CPU

Real data: ``../shared/data/brats2018`` (BraTS layout), split by case into ``--train`` / ``--test`` cases. The
synthetic set is made from the training cases by the ``lesion-insertion`` generator (or, when it is not
installed, by transplanting each training case's tumour into the next case). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SyntheticImagingLib.cases import Case  # noqa: E402
from SyntheticImagingLib.checks.evaluate import evaluate  # noqa: E402
from SyntheticImagingLib.io.datasets import load_dataset  # noqa: E402
from SyntheticImagingLib.preprocessing import resample_case  # noqa: E402
from SyntheticImagingLib.progress import ProgressEvent  # noqa: E402


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def synthetic_from(train: list[Case]) -> tuple[list[Case], str]:
    """A synthetic set of ``len(train)`` cases made from the training cases."""
    from SyntheticImagingLib.generators import available_generators, create_generator

    if "lesion-insertion" in available_generators():
        # keep: the setting the published figures were measured with (the default was "keep" then)
        gen = create_generator("lesion-insertion", task="brain-tumor-mri", background_lesions="keep").fit(train)
        return list(gen.synthesize(len(train), seed=0)), "lesion-insertion"
    out = []
    for i, host in enumerate(train):
        donor = train[(i + 1) % len(train)]
        mask = donor.label > 0
        channels = {k: np.where(mask, donor.channels[k], v).astype(np.float32) for k, v in host.channels.items()}
        out.append(host.replace(case_id=f"standin_{i}", channels=channels,
                                label=((host.label > 0) | mask).astype(np.int16)))
    return out, "transplant stand-in"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", choices=("quick", "full"))
    p.add_argument("--checks", default="utility", help="comma-separated checks (default: utility)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "brats2018")
    p.add_argument("--train", type=int, default=8)
    p.add_argument("--test", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary one)")
    args = p.parse_args(argv)

    t0 = time.monotonic()
    ds = load_dataset(args.data, layout="brats")
    ids = ds.case_ids
    if len(ids) < args.train + args.test:
        p.error(f"{args.data} has {len(ids)} cases, {args.train + args.test} needed")
    train, test = ds.subset(ids[: args.train]), ds.subset(ids[args.train: args.train + args.test])
    synthetic, source = synthetic_from([resample_case(c, (2.0, 2.0, 2.0)) for c in train])
    synth_s = time.monotonic() - t0

    stage_first: dict[str, float] = {}
    stage_last: dict[str, float] = {}

    def on_event(event: ProgressEvent) -> None:
        now = time.monotonic()
        stage_first.setdefault(event.stage, now)
        stage_last[event.stage] = now

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_utility_")) / "report"
    t1 = time.monotonic()
    report = evaluate(train, test, synthetic, out_dir=out, checks=args.checks, profile=args.profile,
                      device=args.device, progress=on_event, overwrite=True)
    evaluate_s = time.monotonic() - t1
    utility = report["checks"].get("utility", {})
    runs = utility.get("tables", {}).get("runs", {}).get("rows", [])
    result = {
        "profile": args.profile, "checks": args.checks, "device": report["settings"]["device"],
        "synthetic_source": source, "train_cases": args.train, "test_cases": args.test,
        "synthesize_s": round(synth_s, 1), "evaluate_s": round(evaluate_s, 1),
        "timing_s": report["settings"]["timing_s"],
        "stage_s": {k: round(stage_last[k] - stage_first[k], 1) for k in stage_first},
        "segmenter_trainings": utility.get("details", {}).get("unique_trainings"),
        "train_s_per_run": round(float(np.mean([r["train_seconds"] for r in runs])), 2) if runs else None,
        "peak_rss_mib": round(peak_rss_mib(), 1), "report": str(out), "status": report["status"],
        "dice_trtr": utility.get("summary", {}).get("regimes", {}).get("TRTR", {}).get("dice"),
        "dice_tstr": utility.get("summary", {}).get("regimes", {}).get("TSTR", {}).get("dice"),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
