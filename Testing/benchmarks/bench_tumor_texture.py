"""Texture inside brain tumours and brain tissue: real BraTS 2018 cases against synthetic ones, before and after.

    python Testing/benchmarks/bench_tumor_texture.py [--n 6] [--spacing 4] [--fit 0 2 5]
        [--families lesion-insertion label-to-image]

Real: the 10 BraTS 2018 cases of ``shared/data/brats2018`` (FLAIR + T1, whole tumour), resampled to
``--spacing`` mm. Each family is fitted on the ``--fit`` cases and makes ``--n`` cases twice: "before" with
``inner_structure=False`` (and ``tissue_texture=0`` for label-to-image), "after" with the defaults (hidden BraTS
sub-structure, real heterogeneity, tissue texture). Per set the table gives the mean and range over cases of:

* inside the (new) tumour, per channel: SD and 5th-95th percentile spread over the normal-brain median, the
  tumour's median over the normal-brain median (its brightness), and SD over mean (heterogeneity);
* normal brain (T1 k-means tissue classes, as label-to-image's anatomy maps: 1 CSF-like, 2 grey, 3 white):
  within-class SD over mean, per channel, the same way on real and synthetic cases.

Lesion insertion backgrounds are the real cases with their own tumours: only the new tumour is measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.cases import Case, LesionKind  # noqa: E402
from SyntheticImagingLib.checks.lesion_texture import region_stats  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.generators.label_to_image import anatomy_map  # noqa: E402
from SyntheticImagingLib.generators.references import Reference, prepare_reference  # noqa: E402
from SyntheticImagingLib.io import load_dataset  # noqa: E402
from SyntheticImagingLib.lesions.controls import LesionControls  # noqa: E402
from SyntheticImagingLib.preprocessing import resample_case  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "brats2018"
METRICS = ("sd", "spread", "brightness", "cv")


def case_numbers(case: Case, lesion: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Texture numbers of one case (see the module docstring).

    Args:
        case: the case.
        lesion: the tumour to measure.
        brain: its brain mask.
    """
    out: dict[str, float] = {}
    all_lesion = case.label > 0 if case.label is not None else lesion
    normal = brain & ~ndimage.binary_dilation(all_lesion, iterations=2)
    amap = anatomy_map(Reference(case.replace(label=all_lesion.astype(np.int16)), brain), classes=3)
    for name, image in case.channels.items():
        ref = float(np.median(image[normal]))
        s = region_stats(image[lesion])
        out[f"{name} sd"] = s["sd"] / ref
        out[f"{name} spread"] = s["spread_5_95"] / ref
        out[f"{name} brightness"] = s["median"] / ref
        out[f"{name} cv"] = s["sd"] / float(image[lesion].mean())
        for k in (2, 3):
            v = image[amap == k]
            out[f"{name} class{k} cv"] = float(v.std() / v.mean())
    return out


def tumour(case: Case) -> np.ndarray:
    """The case's whole labelled tumour (every case here is labelled)."""
    assert case.label is not None, case.case_id
    return case.label > 0


def summary(rows: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    """Mean, min and max per key.

    Args:
        rows: per-case numbers.
    """
    return {k: (float(np.mean([r[k] for r in rows])), float(np.min([r[k] for r in rows])),
                float(np.max([r[k] for r in rows]))) for k in rows[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6, help="synthetic cases per family and setting")
    parser.add_argument("--spacing", type=float, default=4.0, help="grid spacing in mm")
    parser.add_argument("--fit", type=int, nargs="+", default=[0, 2, 5], help="real cases the families fit on")
    parser.add_argument("--families", nargs="+", default=["lesion-insertion", "label-to-image"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.time()
    ds = load_dataset(DATA, layout="brats")
    real = [resample_case(ds[i], (args.spacing,) * 3) for i in range(len(ds))]
    refs = {c.case_id: prepare_reference(c) for c in real}
    sets: dict[str, list[dict[str, float]]] = {
        "real BraTS 2018": [case_numbers(c, tumour(c), refs[c.case_id].brain) for c in real]}
    controls = LesionControls(kind=LesionKind.TUMOR, volume_ml=(30.0, 90.0), count=1)
    fit = [real[i] for i in args.fit]
    for family in args.families:
        for after in (False, True):
            off = {"inner_structure": False, **({"tissue_texture": 0.0} if family == "label-to-image" else {})}
            # lesion insertion keeps the backgrounds' own tumours (subtracted below), as when the rows were measured
            keep = {"background_lesions": "keep"} if family == "lesion-insertion" else {}
            gen = create_generator(family, task="brain-tumor-mri", **keep, **({} if after else off)).fit(fit)
            rows = []
            for case in gen.synthesize(args.n, seed=args.seed, controls=controls):
                lesion = tumour(case)
                if family == "lesion-insertion":
                    lesion = lesion & ~tumour(refs[case.metadata["background"]].case)
                rows.append(case_numbers(case, lesion, case.brain_mask))
            sets[f"{family} {'after' if after else 'before'}"] = rows
    stats = {name: summary(rows) for name, rows in sets.items()}
    keys = list(stats["real BraTS 2018"])
    print(f"{args.spacing:g} mm grid; real: {len(real)} cases; synthetic: {args.n} per row, fitted on "
          f"{[real[i].case_id for i in args.fit]}; mean (min-max) over cases; {time.time() - t0:.0f} s")
    print("| measure | " + " | ".join(stats) + " |")
    print("|---" * (len(stats) + 1) + "|")
    for key in keys:
        cells = [f"{m:.3f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in (stats[s][key] for s in stats)]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
