"""Make the bundled sample set from the shared real data (run from the repository root).

    python Resources/SampleData/make_sample_data.py --shared ../shared/data

* ``brats2018_2mm/case_*``: the ten BraTS 2018 cases (FLAIR, T1, whole-tumour label), resampled to 2 mm
  (linear for images, nearest for labels) and cropped to a fixed 80x96x80 grid around the brain; intensities
  rounded to int16 (they are integer-valued in the source).
* ``ct_head/``: Rorden's scct head CT template with skull, converted from Cormack units to HU
  (formula in ``PROVENANCE.md``), 2 mm, int16, plus the skull-stripped HU template's brain mask.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.anatomy import cormack_to_hu  # noqa: E402
from SyntheticImagingLib.cases import Modality  # noqa: E402
from SyntheticImagingLib.io import load_dataset, read_image, write_image  # noqa: E402
from SyntheticImagingLib.preprocessing import crop_or_pad, resample_case  # noqa: E402

SHAPE = (80, 96, 80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", type=Path)
    parser.add_argument("--out", default=Path(__file__).resolve().parent, type=Path)
    args = parser.parse_args()

    brats = load_dataset(args.shared / "brats2018", layout="brats")
    for case in brats:
        small = crop_or_pad(resample_case(case, (2.0, 2.0, 2.0)), SHAPE)
        folder = args.out / "brats2018_2mm" / case.case_id
        for name, array in small.channels.items():
            write_image(folder / f"{name}.nii.gz", np.rint(array).astype(np.int16), small.geometry)
        write_image(folder / "label.nii.gz", small.label.astype(np.uint8), small.geometry)
        print(case.case_id, small.shape, f"{small.lesion_volume_ml():.1f} ml")

    ct_dir = args.out / "ct_head"
    cormack, geometry = read_image(args.shared / "ct_head_templates" / "scct_cormack.nii.gz")
    hu = np.clip(np.rint(cormack_to_hu(cormack)), -1024, 3071).astype(np.int16)
    write_image(ct_dir / "CT.nii.gz", hu, geometry)
    stripped, sgeom = read_image(args.shared / "ct_head_templates" / "scct_stripped_hu.nii.gz")
    assert not sgeom.differences(geometry), "stripped and full templates must share a grid"
    write_image(ct_dir / "brain_mask.nii.gz", (stripped != 0).astype(np.uint8), geometry)
    print("ct_head", hu.shape, Modality.CT.value, "brain", int((stripped != 0).sum()) * 0.008, "ml")


if __name__ == "__main__":
    main()
