"""Benchmark: does the privacy check catch memorized patients in disguise, and leave honest generators alone?

On the 10 shared BraTS 2018 cases (quick profile grid, 4 mm, 40x48x40), two splits (cases 0-4 train / 5-9 holdout,
and the reverse). Each draw builds a synthetic set of 20 cases:

* **copier, k = 1, 2, 5**: k disguised copies of training patients (:data:`~SyntheticImagingLib.checks.disguise.
  DISGUISE`: flip, rotation, scale, shift, elastic, bias, gamma, noise; drawn at random every draw) among 20 - k
  honest cases. A draw counts as *detected* when the set is flagged, at least one copy is called a copy and
  every case called a copy names the patient it was made from (and no honest case is called one).
* **honest** (20 honest cases, false alarms): altered copies of *holdout* patients (the same family), the
  ``lesion-insertion`` generator fitted on the holdout (new lesions in holdout backgrounds) and ``label-to-image``
  fitted on the holdout; and, reported apart, both generators fitted on the *training* cases (lesion insertion
  reuses real training backgrounds, so it is a copy of those patients and should be flagged; label-to-image draws
  new images on deformed training anatomy layouts).

Only the aligned per-case detector is run per draw (:func:`~SyntheticImagingLib.checks.privacy_aligned.
run_aligned`, calibrated once per split): it is what decides disguised copies; the encoder / voxel rate tests
add their own flags and are validated by ``Testing/integration/test_privacy_brats.py``.

Then the cost of 1,000 synthetic x 1,000 training cases (plus 1,000 holdout cases available for the baseline):
normalisation, fast features, calibration and gated registration, timed from prepared cases. Ten real patients
cannot make 1,000 distinct ones, so these are procedural subjects on the same grid (see :func:`_scale`); the share
of honest BraTS cases that pass the registration gate is in the draws' rows (``registered``).

Usage::

    python Testing/benchmarks/bench_privacy_disguise.py --draws 40 --json /tmp/disguise.json
    python Testing/benchmarks/bench_privacy_disguise.py --draws 5 --scale 0      # quick look, no 1,000 x 1,000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

__all__ = ["main"]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "brats2018"


def _load(data: Path):  # noqa: ANN202
    from SyntheticImagingLib.checks.base import PROFILES
    from SyntheticImagingLib.checks.prepare import prepare_case
    from SyntheticImagingLib.io.datasets import load_dataset
    from SyntheticImagingLib.preprocessing import resample_case

    profile = PROFILES["quick"]
    ds = load_dataset(data, layout="brats")
    raw = [resample_case(ds[i], profile.spacing) for i in range(len(ds))]
    return raw, [prepare_case(c, profile) for c in raw], profile


#: settings per family: lesion insertion keeps the backgrounds' own tumours, as when the published rows were measured
#: (the family fills them by default now)
SETTINGS: dict[str, dict[str, str]] = {"lesion-insertion": {"background_lesions": "keep"}}


def _generated(name: str, raw_sources, n: int, seed: int, profile):  # noqa: ANN001, ANN202
    from SyntheticImagingLib.checks.prepare import prepare_case
    from SyntheticImagingLib.generators import create_generator

    gen = create_generator(name, task="brain-tumor-mri", **SETTINGS.get(name, {})).fit(list(raw_sources))
    return [prepare_case(c, profile).replace(metadata={"generator": name}) for c in gen.synthesize(n, seed=seed)]


def _draw_set(rng: np.random.Generator, train, honest_pool, k: int, n: int, draw_seed: int):  # noqa: ANN001, ANN202
    from SyntheticImagingLib.checks.disguise import disguised_copies

    copies = disguised_copies(train, k, seed=draw_seed, prefix="copy") if k else []
    pick = rng.choice(len(honest_pool), n - k, replace=False)
    honest = [honest_pool[int(i)].replace(case_id=f"honest_{draw_seed}_{j}") for j, i in enumerate(pick)]
    return copies + honest


def _score(result, synthetic, train) -> dict:  # noqa: ANN001
    train_ids = [c.case_id for c in train]
    called = [(synthetic[i].case_id, train_ids[int(result.nearest[i])]) for i in np.flatnonzero(result.copy)]
    sources = {c.case_id: c.metadata.get("source") for c in synthetic if c.case_id.startswith("copy")}
    right = all(sources.get(s) == t for s, t in called)
    return {"flagged": bool(called), "called": len(called), "named_right": right,
            "detected": bool(called) and right, "copies_caught": sum(s in sources for s, _ in called),
            "copies": len(sources), "anatomy_matches": int(result.anatomy_match.sum()),
            "registered": int(np.isfinite(result.distance).sum())}


def _rate(hits: int, n: int) -> str:
    from SyntheticImagingLib.checks.validation import clopper_pearson

    lo, hi = clopper_pearson(hits, n)
    return f"{hits}/{n} = {hits / n:.3f} [{lo:.2f}, {hi:.2f}]"


def _subject(case_id: str, seed: int, like):  # noqa: ANN001, ANN202
    """A distinct procedural subject on the grid of ``like`` (head, smooth anatomy, lesion; normalised units)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = like.shape
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape) - 1) / 2 + rng.uniform(-1.5, 1.5, 3)
    radii = np.asarray(shape) * 0.4 * rng.uniform(0.9, 1.1, 3)
    head = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii)) < 1
    texture = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 2.0)
    texture /= texture.std()
    inside = np.argwhere(ndimage.binary_erosion(head, iterations=5))
    c = inside[rng.integers(len(inside))]
    lesion = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < rng.uniform(3.0, 6.0) ** 2
    flair = np.where(head, 0.2 + 0.3 * texture + 0.8 * lesion, -1.0).astype(np.float32)
    t1 = np.where(head, 0.5 - 0.25 * texture - 0.3 * lesion, -1.0).astype(np.float32)
    return like.replace(case_id=case_id, channels=dict(zip(like.channel_names, (flair, t1))),
                        label=lesion.astype(np.int16), brain_mask=head, metadata={})


def _scale(prepared, n: int, threads: int) -> dict:  # noqa: ANN001
    """Time the aligned check on n synthetic x n training cases, every one a distinct subject on the BraTS grid.

    Ten real patients cannot make 1,000 distinct ones (variants of one patient would be each other's copies), so
    the subjects are procedural (head, smooth anatomy, lesion) on the quick grid with the real cases' channels;
    2 % of the synthetic cases are disguised copies of training subjects.
    """
    from SyntheticImagingLib.checks.disguise import disguised_copies
    from SyntheticImagingLib.checks.privacy_aligned import run_aligned

    t0 = time.monotonic()
    like = prepared[0]
    train = [_subject(f"train_{i}", i, like) for i in range(n)]
    holdout = [_subject(f"hold_{i}", 10**6 + i, like) for i in range(n)]
    n_copy = max(1, n // 50)
    synthetic = disguised_copies(train, n_copy, seed=3, prefix="copy") + [
        _subject(f"honest_{i}", 2 * 10**6 + i, like) for i in range(n - n_copy)]
    made = time.monotonic() - t0
    t0 = time.monotonic()
    result = run_aligned(train, holdout, synthetic, channels=tuple(like.channel_names), seed=0)
    seconds = time.monotonic() - t0
    sources = {c.case_id: c.metadata["source"] for c in synthetic[:n_copy]}
    ids = [c.case_id for c in train]
    called = [(synthetic[i].case_id, ids[int(result.nearest[i])]) for i in np.flatnonzero(result.copy)]
    return {"n": n, "seconds": seconds, "threads": threads, "data_made_seconds": made,
            "registered_synthetic": int(np.isfinite(result.distance).sum()), "planted_copies": n_copy,
            "copies_called": len(called), "called_right": sum(sources.get(s) == t for s, t in called),
            "separated": result.calibration.separated}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its tables.

    Args:
        argv: command-line arguments.
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--draws", type=int, default=40, help="random draws per setting")
    p.add_argument("--set-size", type=int, default=20)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5])
    p.add_argument("--scale", type=int, default=1000, help="cases per side of the timing run (0: skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import SimpleITK as sitk
    import torch

    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    from SyntheticImagingLib.checks.disguise import DISGUISE, disguised_copies
    from SyntheticImagingLib.checks.privacy_aligned import run_aligned

    t_all = time.monotonic()
    raw, prepared, profile = _load(args.data)
    channels = tuple(prepared[0].channel_names)
    splits = [(list(range(5)), list(range(5, 10))), (list(range(5, 10)), list(range(5)))]
    rows: list[dict] = []
    calib: list[dict] = []
    for s, (tr_i, ho_i) in enumerate(splits):
        train, holdout = [prepared[i] for i in tr_i], [prepared[i] for i in ho_i]
        raw_train, raw_hold = [raw[i] for i in tr_i], [raw[i] for i in ho_i]
        memo: dict = {}
        t0 = time.monotonic()
        first = run_aligned(train, holdout, train[:1], channels=channels, memo=memo, seed=0)
        cal = first.calibration
        calib.append({"split": s, "seconds": time.monotonic() - t0, "threshold": cal.threshold,
                      "anatomy_threshold": cal.anatomy_threshold, "lesion_threshold": cal.lesion_threshold,
                      "separated": cal.separated, "copy_max": float(cal.copy_distances.max()),
                      "copy_median": float(np.median(cal.copy_distances)),
                      "distinct_min": float(cal.null_distances.min()),
                      "distinct_median": float(np.median(cal.null_distances)), "gate": cal.gate})
        pools = {
            "altered holdout patients": disguised_copies(holdout, 60, seed=50 + s, prefix="althold"),
            "lesion-insertion (holdout backgrounds)": _generated("lesion-insertion", raw_hold, 40, 60 + s, profile),
            "label-to-image (fitted on holdout)": _generated("label-to-image", raw_hold, 40, 70 + s, profile),
            "label-to-image (fitted on training)": _generated("label-to-image", raw_train, 40, 80 + s, profile),
            "lesion-insertion (training backgrounds)": _generated("lesion-insertion", raw_train, 40, 90 + s,
                                                                  profile),
        }
        mixed = [c for name in list(pools)[:3] for c in pools[name]]
        rng = np.random.default_rng(1000 + s)
        per_split = (args.draws + 1 - s) // 2  # the draws alternate between the two splits
        for d in range(per_split):
            seed = 10_000 * (s + 1) + d
            for k in args.ks:
                syn = _draw_set(rng, train, mixed, k, args.set_size, seed + 100 * k)
                t0 = time.monotonic()
                res = run_aligned(train, holdout, syn, channels=channels, memo=memo, seed=0)
                rows.append({"split": s, "draw": d, "setting": f"copier k={k}", "k": k,
                             "seconds": time.monotonic() - t0, **_score(res, syn, train)})
            for name, pool in pools.items():
                syn = _draw_set(rng, train, pool, 0, args.set_size, seed)
                res = run_aligned(train, holdout, syn, channels=channels, memo=memo, seed=0)
                rows.append({"split": s, "draw": d, "setting": name, "k": 0, **_score(res, syn, train)})
        print(f"split {s}: calibration {calib[-1]}", flush=True)

    print("\n| synthetic set of 20 | draws | flagged | detected, right patient named | copies caught "
          "| anatomy matches |")
    print("|---|---|---|---|---|---|")
    out_rows = []
    for setting in [f"copier k={k}" for k in args.ks] + list(pools):
        sel = [r for r in rows if r["setting"] == setting]
        n = len(sel)
        flagged = sum(r["flagged"] for r in sel)
        detected = sum(r["detected"] for r in sel)
        caught, planted = sum(r["copies_caught"] for r in sel), sum(r["copies"] for r in sel)
        anatomy = sum(r["anatomy_matches"] for r in sel)
        line = {"setting": setting, "draws": n, "flagged": flagged, "detected": detected, "copies_caught": caught,
                "copies_planted": planted, "anatomy_matches": anatomy}
        out_rows.append(line)
        print(f"| {setting} | {n} | {_rate(flagged, n)} | {_rate(detected, n) if planted else '-'} | "
              f"{f'{caught}/{planted}' if planted else '-'} | {anatomy} of {n * args.set_size} cases |")
    times = [r["seconds"] for r in rows if "seconds" in r]
    print(f"\nmedian seconds per set of {args.set_size} (aligned detector, calibration cached): "
          f"{statistics.median(times):.2f}")
    result = {"family": DISGUISE.describe(), "calibration": calib, "table": out_rows, "rows": rows,
              "median_seconds_per_set": statistics.median(times), "threads": args.threads}
    if args.scale:
        result["scale"] = _scale(prepared, args.scale, args.threads)
        print(f"\n{args.scale} x {args.scale}: {json.dumps(result['scale'])}")
    result["seconds_total"] = time.monotonic() - t_all
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
