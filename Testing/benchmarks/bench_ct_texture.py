"""Within-bleed texture on the real head-CT template, before and after the CT appearance model.

    python Testing/benchmarks/bench_ct_texture.py [--n 10] [--families lesion-insertion label-to-image]
        [--subtypes intraparenchymal subdural ...] [--age acute]

Inserts ``--n`` bleeds into the bundled head-CT template (Rorden's scct with skull, in HU, 2 mm; an average of
many heads, so nearly noise-free) with each family, once with ``ct_appearance=False`` ("before": uniform blood,
noise matched to the noise-free background) and once with it on ("after": scanner noise of a single head CT at
the case's slice thickness, clot heterogeneity). Prints, per family and subtype, the mean over cases of the
within-bleed 5th-95th percentile spread and SD, the normal brain's, and the blood-to-brain contrast
(:func:`SyntheticImagingLib.checks.lesion_texture.texture_stats`), and how many bleeds got a swirl sign or a
fluid level. Target (derived, see :mod:`SyntheticImagingLib.generators.ct_appearance`): a spread above 10 HU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.api import sample_ct_head  # noqa: E402
from SyntheticImagingLib.checks.lesion_texture import texture_stats  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES, LesionControls  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10, help="bleeds per family, subtype and setting")
    parser.add_argument("--families", nargs="+", default=["lesion-insertion", "label-to-image"])
    parser.add_argument("--subtypes", nargs="+", default=["intraparenchymal", "subdural", "intraventricular"],
                        choices=list(HEMORRHAGE_SUBTYPES))
    parser.add_argument("--age", default="acute", choices=["acute", "subacute", "chronic"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    background = sample_ct_head()
    print(f"background: {background.case_id} {background.shape} at {background.geometry.spacing} mm, "
          f"{args.age} blood, {args.n} bleeds per row (spread = 95th - 5th percentile, HU)")
    print(f"{'family':17s} {'subtype':17s} {'model':6s} {'bleed spread':>12s} {'bleed SD':>9s} "
          f"{'brain spread':>12s} {'brain SD':>9s} {'contrast':>9s} {'swirl':>6s} {'level':>6s}")
    for family in args.families:
        for subtype in args.subtypes:
            controls = LesionControls(kind="hemorrhage", volume_ml=(10.0, 40.0), count=1, subtypes=(subtype,),
                                      use_templates=False)
            for on in (False, True):
                gen = create_generator(family, task="head-hemorrhage-ct", hemorrhage_age=args.age, ct_appearance=on)
                gen.fit([background])
                rows, swirl, level = [], 0, 0
                for case in gen.synthesize(args.n, seed=args.seed, controls=controls):
                    stats = texture_stats(case)
                    rows += [(s["spread_5_95"], s["sd"], stats["brain"]["spread_5_95"], stats["brain"]["sd"],
                              s["contrast"]) for s in stats["lesions"].values()]
                    for info in case.metadata.get("ct_appearance", {}).get("lesions", []):
                        swirl += "swirl" in info
                        level += "fluid_level" in info
                m = np.mean(rows, axis=0)
                print(f"{family:17s} {subtype:17s} {'on' if on else 'off':6s} {m[0]:12.1f} {m[1]:9.1f} "
                      f"{m[2]:12.1f} {m[3]:9.1f} {m[4]:9.1f} {swirl:6d} {level:6d}", flush=True)


if __name__ == "__main__":
    main()
