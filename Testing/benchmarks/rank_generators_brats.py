"""Rank the training-free generators and a trained GAN by utility on real held-out BraTS cases (Xing et al. 2023:
most useful, not most pretty), with label adherence, KID / FD (bootstrap CIs) and privacy beside.

Split by case: the first 6 shared BraTS 2018 cases train every generator (and the real-data baselines), cases 7-8
are the real held-out test set, never seen by a generator. Each generator makes ``--n`` new labelled cases from new
tumour masks. The GAN is trained here on CPU at the check grid (4 mm) for ``--gan-steps`` steps, once per
``--gan-channels`` width list (``16,32,64,128`` is the default generator; ``8,16,32,64`` the narrow one that renders
128^3 volumes about twice as fast): each width becomes its own ranked row, so speed can be traded against utility
measured on real data.

Usage::

    python Testing/benchmarks/rank_generators_brats.py --out /tmp/ranking [--gan-steps 300 --n 6 --profile quick]
        [--gan-channels 16,32,64,128 8,16,32,64]

Prints the ranking table (``ranking.csv`` columns) and writes ``ranking.csv/json/png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.checks.base import PROFILES  # noqa: E402
from SyntheticImagingLib.checks.ranking import rank_generators  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.io.datasets import load_dataset  # noqa: E402
from SyntheticImagingLib.lesions.controls import LesionControls  # noqa: E402
from SyntheticImagingLib.preprocessing import resample_case  # noqa: E402
from SyntheticImagingLib.training import train_generator  # noqa: E402

__all__ = ["main"]

BRATS = Path(__file__).resolve().parents[3] / "shared" / "data" / "brats2018"
COLUMNS = ("rank", "generator", "utility_tstr_dice", "utility_rs_dice", "adherence_dice", "kid", "kid_lo", "kid_hi",
           "fd", "privacy_verdict", "warning")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=BRATS)
    p.add_argument("--gan-steps", type=int, default=300)
    p.add_argument("--n", type=int, default=6, help="synthetic cases per generator")
    p.add_argument("--profile", default="ranking-cpu", help="quick, full, or ranking-cpu (one seed, fewer steps)")
    p.add_argument("--device", default="auto")
    p.add_argument("--gan-channels", nargs="+", default=["16,32,64,128"],
                   help="generator widths per level; one trained GAN per list (row gan3d, or gan3d[widths])")
    args = p.parse_args(argv)

    profile = (dataclasses.replace(PROFILES["quick"], name="ranking-cpu", seeds=1, segmenter_steps=60,
                                   encoder_steps=40, real_sizes=(), synthetic_ratios=(1.0,))
               if args.profile == "ranking-cpu" else args.profile)
    t0 = time.monotonic()
    ds = load_dataset(args.data, layout="brats")
    ids = sorted(ds.case_ids, key=lambda s: int(s.split("_")[-1]) if s.split("_")[-1].isdigit() else s)
    train, test = ds.subset(ids[:6]), ds.subset(ids[6:8])
    controls = LesionControls(kind="tumor", volume_ml=(15.0, 60.0), count=1)
    train_2mm = [resample_case(c, (2.0, 2.0, 2.0)) for c in train]
    sets = {}
    timings = {}
    for family in ("lesion-insertion", "label-to-image"):
        t = time.monotonic()
        # lesion insertion as the published table measured it (its default was background_lesions="keep" then)
        settings = {"background_lesions": "keep"} if family == "lesion-insertion" else {}
        gen = create_generator(family, task="brain-tumor-mri", **settings).fit(train_2mm)
        sets[family] = list(gen.synthesize(args.n, seed=0, controls=controls))
        timings[family] = round(time.monotonic() - t, 1)
    for widths in args.gan_channels:
        channels = [int(w) for w in widths.split(",")]
        name = "gan3d" if len(args.gan_channels) == 1 else f"gan3d[{'-'.join(map(str, channels))}]"
        t = time.monotonic()
        gan = train_generator(train, task="brain-tumor-mri", family="gan3d", out_dir=args.out / f"{name}_model",
                              steps=args.gan_steps, batch_size=2, device=args.device, seed=0, resume=False,
                              cache_dir=str(args.out / "cache"), spacing=[4.0, 4.0, 4.0], shape=[40, 48, 40],
                              channels=channels,
                              progress=lambda e, name=name: print(json.dumps({name: e.step, "of": e.total,
                                                                             **(e.metrics or {})}), flush=True)
                              if e.stage == "train" and e.step % 50 == 0 else None)
        sets[name] = list(gan.synthesize(args.n, seed=0, controls=controls))
        timings[name] = round(time.monotonic() - t, 1)
    print(json.dumps({"generators_seconds": timings}), flush=True)
    result = rank_generators(train, test, sets, out_dir=args.out / "ranking", profile=profile, device=args.device,
                             seed=0, checks=("utility", "adherence", "privacy"), n_boot=300, overwrite=True)
    with open(args.out / "ranking" / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in COLUMNS if c in rows[0]]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(r[c][:60] for c in cols))
    print(json.dumps({"seconds": round(time.monotonic() - t0, 1), "gan_steps": args.gan_steps, "n": args.n,
                      "profile": getattr(profile, "name", profile), "files": result.get("files")}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
