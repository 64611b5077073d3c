"""Does ``evaluate``'s default protocol (k-fold on the user's own cases, quick profile) rank generators as the
external test does? (issue 17)

Runs ``evaluate(real, None, synthetic, checks="utility")`` (k-fold by case, every real case tested once) on the
10 BraTS 2018 cases (FLAIR, whole tumour: the task of the external test) for each synthetic set written by
``bench_external.py`` (``--sets``: its ``synthetic/`` folder), then sets each generator's k-fold TSTR Dice beside
its external one (``--external``: ``external_results.json`` of ``bench_external.py``) and checks, pair by pair, that
the two protocols order the generators the same way or that their CIs overlap.

Usage::

    python Testing/benchmarks/bench_external.py --out /tmp/external_full          # first: the external test
    python Testing/benchmarks/bench_kfold_vs_external.py --sets /tmp/external_full/synthetic \\
        --external /tmp/external_full/external_results.json --out /tmp/kfold_vs_external
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from bench_external import DATA, external_cases  # noqa: E402

from SyntheticImagingLib.checks.base import PROFILES  # noqa: E402
from SyntheticImagingLib.checks.evaluate import evaluate  # noqa: E402
from SyntheticImagingLib.io.datasets import load_dataset  # noqa: E402

DEFAULT_SETS = ("lesion-insertion", "label-to-image", "gan3d", "pix2pix", "torchio")


def _external_tstr(results: dict[str, Any], name: str) -> tuple[float, float, float] | None:
    for row in results.get("rows", []):  # bench_external.py rows have "row" (and "key"), pooled ones "key"
        if row.get("row") == f"TSTR {name}" or row.get("key") == f"TSTR {name}":
            dice = row["dice"]
            return float(dice["mean"]), float(dice["lo"]), float(dice["hi"])
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", type=Path, required=True, help="bench_external.py's synthetic/ folder")
    p.add_argument("--external", type=Path, required=True,
                   help="bench_external.py's external_results.json, or bench_external_pooled.py's pooled_results.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--names", nargs="+", default=list(DEFAULT_SETS))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    real = external_cases(load_dataset(DATA / "brats2018", layout="brats"), "FLAIR")
    profile = dataclasses.replace(PROFILES["quick"], seeds=args.seeds, real_sizes=(2,), folds=args.folds)
    external = json.loads(args.external.read_text())
    rows = []
    for name in args.names:
        folder = args.out / name
        t0 = time.monotonic()
        if not (folder / "report.json").exists():
            evaluate(real, None, load_dataset(args.sets / name), out_dir=folder, checks="utility", profile=profile,
                     device=args.device, seed=0, overwrite=True)
        report = json.loads((folder / "report.json").read_text())
        s = report["checks"]["utility"]["summary"]
        tstr = s["regimes"]["TSTR"]
        rows.append({"generator": name, "kfold_tstr": tstr["dice"], "kfold_lo": tstr["dice_ci95"][0],
                     "kfold_hi": tstr["dice_ci95"][1], "kfold_trtr": s["regimes"]["TRTR"]["dice"],
                     "kfold_ratio": s["tstr_over_trtr_dice"], "kfold_real_equivalent": s["real_equivalent"]["value"],
                     "kfold_equivalent_text": s["real_equivalent"]["text"], "converged": s["convergence"]["converged"],
                     "enough_to_rank": s["test_set"]["enough_to_rank"], "external": _external_tstr(external, name),
                     "seconds": time.monotonic() - t0})
        print(f"{name}: k-fold TSTR {tstr['dice']:.3f} [{tstr['dice_ci95'][0]:.3f}, {tstr['dice_ci95'][1]:.3f}] "
              f"({rows[-1]['seconds']:.0f} s)", flush=True)

    if "test_cases" in external:
        ext_label = f"{len(external['test_cases'])} {external.get('test_source', 'BRATS 2013')}"
    else:  # pooled over both directions
        ext_label = f"{external['test_set']['cases']} cases, both directions pooled"
    lines = ["| generator | k-fold TSTR Dice [95 % CI] (10 BraTS 2018, quick) | / its TRTR | real-equivalent | "
             f"external TSTR Dice [95 % CI] ({ext_label}) |", "|---|---|---|---|---|"]
    for r in rows:
        ext = r["external"]
        ext_text = f"{ext[0]:.3f} [{ext[1]:.3f}, {ext[2]:.3f}]" if ext else "-"
        eq = r["kfold_equivalent_text"] or "-"
        lines.append(f"| {r['generator']} | {r['kfold_tstr']:.3f} [{r['kfold_lo']:.3f}, {r['kfold_hi']:.3f}] | "
                     f"{r['kfold_ratio']:.2f} | {eq} | {ext_text} |")
    agree, pairs = 0, 0
    disagreements = []
    for a, b in itertools.combinations([r for r in rows if r["external"]], 2):
        pairs += 1
        same_order = (a["kfold_tstr"] - b["kfold_tstr"]) * (a["external"][0] - b["external"][0]) >= 0
        overlap_k = a["kfold_lo"] <= b["kfold_hi"] and b["kfold_lo"] <= a["kfold_hi"]
        overlap_e = a["external"][1] <= b["external"][2] and b["external"][1] <= a["external"][2]
        if same_order or (overlap_k and overlap_e):
            agree += 1
        else:
            disagreements.append(f"{a['generator']} vs {b['generator']}")
    lines.append("")
    lines.append(f"Pairs of generators ordered the same way by both protocols, or unresolved (overlapping CIs) in "
                 f"both: {agree}/{pairs}" + (f"; disagreeing: {', '.join(disagreements)}" if disagreements else "")
                 + ".")
    lines.append(f"k-fold: {args.folds} folds by case, {args.seeds} seed(s), quick profile (4 mm, "
                 f"{profile.segmenter_steps} steps), convergence per set: "
                 + ", ".join(f"{r['generator']} {'yes' if r['converged'] else 'NO'}" for r in rows)
                 + "; enough test cases to rank: "
                 + ", ".join(f"{r['generator']} {'yes' if r['enough_to_rank'] else 'no'}" for r in rows) + ".")
    text = "\n".join(lines)
    print(text)
    (args.out / "kfold_vs_external.md").write_text(text + "\n")
    (args.out / "kfold_vs_external.json").write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
