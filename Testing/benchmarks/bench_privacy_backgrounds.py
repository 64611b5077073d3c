"""Does the privacy check still flag lesion insertion and copy-paste on training patients' scans when their own
tumours are filled (``background_lesions="fill"``, the default) rather than kept?

Both families paint (or paste) new lesions into real backgrounds. With ``keep`` each case is a training patient's
scan with that patient's tumour plus a new one; with ``fill`` the patient's tumour is painted over first, so the
lesion is new but the anatomy is still the patient's. For each family and mode: fitted on BraTS 2018 cases 0-4
(2 mm), ``--n`` cases (seed 0, default controls), then ``evaluate(..., checks="privacy")`` (quick profile, 4 mm)
with cases 5-9 as the real holdout. Prints the verdict and the per-space counts of cases taken for copies.

Usage::

    python Testing/benchmarks/bench_privacy_backgrounds.py --out /tmp/privacy_backgrounds   # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.cases import LesionKind  # noqa: E402
from SyntheticImagingLib.checks.evaluate import evaluate  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.io import load_dataset  # noqa: E402
from SyntheticImagingLib.lesions import LesionControls  # noqa: E402
from SyntheticImagingLib.preprocessing import resample_case  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COLUMNS = ("verdict", "aligned_copies", "aligned_anatomy_matches", "voxel_memorization_rate",
           "encoder_memorization_rate", "aligned_mask_dice_max")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--n", type=int, default=10, help="synthetic cases per set")
    p.add_argument("--families", nargs="+", default=["lesion-insertion", "copy-paste"])
    args = p.parse_args(argv)
    cases = [resample_case(c, (2.0, 2.0, 2.0)) for c in load_dataset(args.data / "brats2018", layout="brats")]
    train, holdout = cases[:5], cases[5:]
    rows: list[dict[str, Any]] = []
    for family in args.families:
        for mode in ("fill", "keep"):
            t0 = time.monotonic()
            gen = create_generator(family, task="brain-tumor-mri", background_lesions=mode).fit(train)
            synthetic = list(gen.synthesize(args.n, seed=0, controls=LesionControls(kind=LesionKind.TUMOR)))
            report = evaluate(train, holdout, synthetic, out_dir=args.out / f"{family}-{mode}", checks="privacy",
                              profile="quick", seed=0, device="cpu", overwrite=True)
            summary = report["checks"]["privacy"]["summary"]
            rows.append({"family": family, "background_lesions": mode, **{k: summary.get(k) for k in COLUMNS},
                         "seconds": round(time.monotonic() - t0)})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"| family | background_lesions | verdict | aligned copies (of {args.n}) | anatomy matches | voxel "
             "memorization | encoder memorization | largest registered lesion Dice |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['background_lesions']} | {r['verdict']} | {r['aligned_copies']} | "
                     f"{r['aligned_anatomy_matches']} | {r['voxel_memorization_rate']:.1f} | "
                     f"{r['encoder_memorization_rate']:.1f} | {r['aligned_mask_dice_max']:.2f} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "privacy_backgrounds.md").write_text(text + "\n")
    (args.out / "privacy_backgrounds.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
