"""Pictures of the five synthetic hemorrhage subtypes on the bundled head-CT template, for a reader's eye.

One case per subtype (intraparenchymal, intraventricular, subarachnoid, subdural, epidural) is synthesized with the
training-free lesion-insertion generator; the axial slice through the lesion's largest cross-section is shown in a
brain window (W80/L40), without and with the label outlined in red. A combined panel ``hemorrhage_subtypes.png``
holds all five, and ``mass_effect.png`` shows a large intraparenchymal bleed before and after
:func:`~SyntheticImagingLib.lesions.mass_effect.apply_mass_effect` (midline shift).

Usage::

    python Testing/benchmarks/make_hemorrhage_pictures.py --out docs/images [--seed 0]

Images are shown in radiological convention: anterior at the top, patient right on the viewer's left.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from SyntheticImagingLib.api import sample_ct_head  # noqa: E402
from SyntheticImagingLib.cases import Case, Geometry  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES, LesionControls  # noqa: E402
from SyntheticImagingLib.lesions.mass_effect import apply_mass_effect, mass_effect_field  # noqa: E402

__all__ = ["SUBTYPE_VOLUMES_ML", "WINDOW", "axial_view", "largest_slice", "show_axial", "main"]

#: Volume (ml) drawn for each subtype: typical sizes seen on admission CT.
SUBTYPE_VOLUMES_ML = {"intraparenchymal": 30.0, "intraventricular": 10.0, "subarachnoid": 10.0, "subdural": 50.0,
                      "epidural": 30.0}
#: CT brain window (width, level) in HU.
WINDOW = (80.0, 40.0)


def largest_slice(mask: np.ndarray) -> int:
    """Index ``z`` of the axial slice with the largest cross-section of ``mask`` ``[z, y, x]``."""
    return int(np.argmax(np.count_nonzero(mask, axis=(1, 2))))


def axial_view(array2d: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An axial slice ``[y, x]`` turned to radiological display: anterior up, patient right on the left.

    Args:
        array2d: one axial slice of an array ``[z, y, x]``.
        geometry: the volume's geometry (axis-aligned; its direction signs decide the flips).
    """
    d = geometry.direction_matrix
    out = array2d
    if d[1, 1] < 0:  # LPS +y is posterior: rows must run from low y (anterior) at the top
        out = out[::-1, :]
    if d[0, 0] < 0:  # LPS +x is patient left: columns must run from low x (patient right) on the left
        out = out[:, ::-1]
    return out


def show_axial(ax: plt.Axes, ct: np.ndarray, mask: np.ndarray | None, geometry: Geometry, z: int, title: str) -> None:
    """Draw slice ``z`` of a CT in the brain window, with ``mask`` outlined in red (if given).

    Args:
        ax: matplotlib axes.
        ct: CT volume ``[z, y, x]`` in HU.
        mask: boolean mask ``[z, y, x]`` or None.
        geometry: the volume's geometry (aspect ratio and orientation).
        z: axial slice index.
        title: axes title.
    """
    width, level = WINDOW
    aspect = geometry.spacing[1] / geometry.spacing[0]
    ax.imshow(axial_view(ct[z], geometry), cmap="gray", vmin=level - width / 2, vmax=level + width / 2,
              aspect=aspect, interpolation="nearest")
    if mask is not None and mask[z].any():
        ax.contour(axial_view(mask[z].astype(float), geometry), levels=[0.5], colors="red", linewidths=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _synthesize(generator, subtype: str, seed: int) -> Case:
    controls = LesionControls(kind="hemorrhage", subtypes=(subtype,), volume_ml=SUBTYPE_VOLUMES_ML[subtype],
                              use_templates=False)
    return next(iter(generator.synthesize(1, seed=seed, controls=controls)))


def _mass_effect_picture(generator, out: Path, seed: int) -> dict:
    """A 60 ml lobar bleed before and after the mass effect, with the midline drawn."""
    ref = generator.references[0]
    geometry = ref.case.geometry
    # Right fronto-parietal white matter, 15 mm above the brain's centroid (the level of the ventricles' bodies).
    centroid = geometry.index_to_physical(np.argwhere(ref.head.brain).mean(axis=0))
    location = (ref.head.midline_x - 42.0, float(centroid[1]), float(centroid[2]) + 15.0)
    controls = LesionControls(kind="hemorrhage", subtypes=("intraparenchymal",), volume_ml=60.0, use_templates=False,
                              side="right", location=location, location_jitter_mm=0.0)
    case = next(iter(generator.synthesize(1, seed=seed, controls=controls)))
    lesion = case.label > 0
    field = mass_effect_field(lesion, ref.head.brain, case.geometry, midline_x=ref.head.midline_x)
    warped = apply_mass_effect(case, field, lesion=lesion, midline_x=ref.head.midline_x)
    info = warped.metadata["mass_effect"]
    # Show the level of the largest midline shift (below the falx), where a reader measures it.
    midline_col = int(round(float(case.geometry.physical_to_index(np.array([ref.head.midline_x, 0.0, 0.0]))[2])))
    z = int(np.argmax(np.abs(field[0][:, :, midline_col]).max(axis=1)))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    show_axial(axes[0], case.channels["CT"], lesion, case.geometry, z, "60 ml intraparenchymal, no mass effect")
    show_axial(axes[1], warped.channels["CT"], warped.label > 0, case.geometry, z,
               f"with mass effect: midline shift {info['midline_shift_mm']:.1f} mm")
    magnitude = np.sqrt((field**2).sum(axis=0))
    axes[2].imshow(axial_view(magnitude[z], case.geometry), cmap="magma", aspect=case.geometry.spacing[1]
                   / case.geometry.spacing[0])
    axes[2].set_title(f"displacement (max {info['max_displacement_mm']:.1f} mm)", fontsize=9)
    axes[2].set_axis_off()
    # The original midline as a vertical line: its column in the displayed slice.
    col = midline_col if case.geometry.direction_matrix[0, 0] > 0 else case.shape[2] - 1 - midline_col
    for ax in axes[:2]:
        ax.axvline(col, color="cyan", linewidth=0.6, linestyle="--")
    fig.tight_layout()
    fig.savefig(out / "mass_effect.png", dpi=120)
    plt.close(fig)
    return {"slice_z": z, **info}


def main(argv: list[str] | None = None) -> int:
    """Write the pictures; print one JSON line per subtype (volume, centroid, slice) to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--no-mass-effect", action="store_true", help="skip the mass-effect picture")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    background = sample_ct_head()
    generator = create_generator("lesion-insertion", task="head-hemorrhage-ct").fit([background])
    panel, axes = plt.subplots(1, len(HEMORRHAGE_SUBTYPES), figsize=(4.0 * len(HEMORRHAGE_SUBTYPES), 4.6))
    for ax, subtype in zip(axes, HEMORRHAGE_SUBTYPES):
        case = _synthesize(generator, subtype, args.seed)
        mask = case.label > 0
        z = largest_slice(mask)
        info = case.metadata["lesions"][0]
        title = f"{subtype} ({info['volume_ml_achieved']:.0f} ml, {info['side']})"
        fig, pair = plt.subplots(1, 2, figsize=(8.5, 4.6))
        show_axial(pair[0], case.channels["CT"], None, case.geometry, z, f"{subtype}: CT W80/L40, slice {z}")
        show_axial(pair[1], case.channels["CT"], mask, case.geometry, z, f"{title}, label in red")
        fig.tight_layout()
        fig.savefig(args.out / f"hemorrhage_{subtype}.png", dpi=120)
        plt.close(fig)
        show_axial(ax, case.channels["CT"], mask, case.geometry, z, title)
        print(json.dumps({"subtype": subtype, "slice_z": z, "volume_ml": info["volume_ml_achieved"],
                          "center_xyz": info["center_xyz"], "side": info["side"],
                          "blood_hu_median": float(np.median(case.channels["CT"][mask]))}))
    panel.suptitle("Synthetic hemorrhage subtypes on the head-CT template (axial, W80/L40, label in red)")
    panel.tight_layout()
    panel.savefig(args.out / "hemorrhage_subtypes.png", dpi=120)
    plt.close(panel)
    if not args.no_mass_effect:
        print(json.dumps({"mass_effect": _mass_effect_picture(generator, args.out, args.seed)}))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
