"""Headless screenshots of what each section of the module panel puts in Slicer's own views, rendered by Slicer's
real displayable managers (``trame-slicer`` + ``slicer-layer-dm``: offscreen VTK, no Qt, no display). The nodes
are made by the module's logic exactly as the panel makes them (``caseToNodes``, ``adherenceCaseToNodes``).

Sections (one PNG each, under ``--out``):

* ``panel_data.png``: a bundled sample case loaded as FLAIR + tumour segmentation (Data: a scene case);
* ``panel_synthesize.png``: a synthetic case over its label, axial, coronal and its segment in 3D (Synthesize);
* ``panel_checks_closest_pair.png``: a synthetic case beside its closest training case (privacy check);
* ``panel_checks_adherence.png``: label filled, reference segmenter prediction outlined (adherence check);
* ``panel_export_dicom.png``: the exported DICOM study read back (image series + SEG), as the DICOM module
  would load it;
* ``panel_reader_study.png``: a blinded reader-study case (no label, on the synthetic grid).

The charts of the Checks section are Slicer plot views, which need Qt: they are not rendered here (their data
are checked in ``Testing/slicer/test_panel_click_paths.py``).

    python Testing/benchmarks/make_panel_screenshots.py --out docs/images
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "SyntheticImaging"), str(ROOT / "Testing" / "slicer"), str(Path(__file__).parent)]

from make_slicer_screenshot import TEST_IDS, TRAIN_IDS, grab_rgb, slice_view, slicer_scene  # noqa: E402


def make_outputs(work: Path, *, seed: int = 0) -> dict[str, Path]:
    """What the panel's jobs produce, made with the library (small): 2 label-to-image cases from 6 sample
    cases, the privacy and adherence checks against 2 held-out cases, and the DICOM export."""
    import torch

    from SyntheticImagingLib.api import sample_dataset
    from SyntheticImagingLib.checks.base import PROFILES
    from SyntheticImagingLib.checks.evaluate import evaluate
    from SyntheticImagingLib.export import export_dicom_dataset
    from SyntheticImagingLib.generators import create_generator
    from SyntheticImagingLib.io import load_dataset, write_dataset

    torch.set_num_threads(2)
    real = sample_dataset()
    train, test = real.subset(list(TRAIN_IDS)), real.subset(list(TEST_IDS))
    generator = create_generator("label-to-image", task="brain-tumor-mri").fit(list(train))
    synthetic = write_dataset(list(generator.synthesize(2, seed=seed)), work / "synthetic", overwrite=True)
    profile = dataclasses.replace(PROFILES["quick"], name="quick-screenshot", seeds=1, segmenter_steps=30,
                                  encoder_steps=40, repeats=2)
    evaluate(train, test, load_dataset(synthetic), out_dir=work / "evaluation", checks=("adherence", "privacy"),
             profile=profile, device="cpu", seed=seed, overwrite=True)
    export_dicom_dataset(load_dataset(synthetic), work / "dicom", patient_prefix="SYNTH")
    return {"synthetic": synthetic, "evaluation": work / "evaluation", "dicom": work / "dicom",
            "real": real.root if hasattr(real, "root") else ROOT / "Resources" / "SampleData" / "brats2018_2mm"}


def render_slice(app: Any, reference: Any, orientation: str, center_ras: Any, size: int = 384) -> np.ndarray:
    """Slicer's slice view of ``orientation`` with ``reference`` as background, through ``center_ras``."""
    view = slice_view(app, reference, orientation, size)
    if center_ras is not None:
        view.set_slice_value(float(center_ras[{"Axial": 2, "Coronal": 1, "Sagittal": 0}[orientation]]))
    view.render()
    return grab_rgb(view.render_window())[::-1]


def render_3d(app: Any, size: int = 384) -> np.ndarray:
    """Slicer's 3D view (segments as closed surfaces)."""
    from trame_slicer.views import ViewLayoutDefinition

    view = app.view_manager.create_view(ViewLayoutDefinition.threed_view())
    view.render_window().SetSize(size, size)
    view.reset_camera()
    view.render()
    return grab_rgb(view.render_window())[::-1]


def _center(case: Any) -> Any:
    """RAS of the label's slice with the largest cross-section along each axis (where the panel jumps to)."""
    if case.label is None or not (case.label > 0).any():
        return None
    kji = np.argwhere(case.label > 0)
    ijk = np.array([np.bincount(kji[:, 2 - a]).argmax() for a in range(3)], dtype=float)
    return (case.geometry.ijk_to_ras() @ np.r_[ijk, 1.0])[:3]


def _figure(panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4 * len(panels), 3.9), dpi=120)
    FigureCanvasAgg(fig)
    for i, (caption, rgb) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(rgb)
        ax.set_axis_off()
        ax.set_title(caption, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.02, wspace=0.03)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    from SyntheticImagingModule.logic import SyntheticImagingLogic
    from SyntheticImagingModule.reader_study import readerStudyCase

    from SyntheticImagingLib.api import sample_dataset
    from SyntheticImagingLib.export.dicom_seg import read_dicom_seg
    from SyntheticImagingLib.io import load_dataset
    from SyntheticImagingLib.io.dicom import read_dicom_case

    written = []
    with tempfile.TemporaryDirectory(prefix="panel-screenshots-") as tmp:
        out = make_outputs(Path(tmp))
        synthetic = load_dataset(out["synthetic"])
        logic = SyntheticImagingLogic()
        size = args.size

        with slicer_scene() as app:  # Data: a sample case as scene nodes
            case = sample_dataset()[0]
            nodes = logic.caseToNodes(case)
            c = _center(case)
            written.append(_figure([("Axial", render_slice(app, nodes.referenceVolume, "Axial", c, size)),
                                    ("Coronal", render_slice(app, nodes.referenceVolume, "Coronal", c, size)),
                                    ("3D", render_3d(app, size))],
                                   "Data: a sample case in the scene (FLAIR, tumour segmentation) - a scene case",
                                   args.out / "panel_data.png"))
        with slicer_scene() as app:  # Synthesize: the first synthetic case over its label
            nodes = logic.caseToNodes(synthetic[0])
            c = _center(synthetic[0])
            written.append(_figure([("Axial", render_slice(app, nodes.referenceVolume, "Axial", c, size)),
                                    ("Coronal", render_slice(app, nodes.referenceVolume, "Coronal", c, size)),
                                    ("3D", render_3d(app, size))],
                                   f"Synthesize: {synthetic[0].case_id} over its label (label-to-image)",
                                   args.out / "panel_synthesize.png"))
        pair = logic.nearestPair(out["evaluation"])
        with slicer_scene() as app:  # Checks: the closest pair
            leftCase = logic.readDatasetCase(out["synthetic"], pair.synthetic_id)
            left = logic.caseToNodes(leftCase, showSurface=False)
            leftImage = render_slice(app, left.referenceVolume, "Axial", _center(leftCase), size)
        with slicer_scene() as app:
            rightCase = sample_dataset().subset([pair.real_id])[0]
            right = logic.caseToNodes(rightCase, showSurface=False)
            rightImage = render_slice(app, right.referenceVolume, "Axial", _center(rightCase), size)
        written.append(_figure([(f"synthetic {pair.synthetic_id}", leftImage),
                                (f"nearest training case {pair.real_id} (distance {pair.distance:.3g})",
                                 rightImage)], "Checks (privacy): the closest synthetic / training pair",
                               args.out / "panel_checks_closest_pair.png"))
        with slicer_scene() as app:  # Checks: the adherence overlay
            adherence = logic.readAdherenceCase(out["evaluation"])
            nodes = logic.adherenceCaseToNodes(adherence)
            c = _center(adherence.case)
            row = logic.adherenceRow(out["evaluation"], nodes.caseId) or {}
            written.append(_figure([("Axial", render_slice(app, nodes.referenceVolume, "Axial", c, size)),
                                    ("Coronal", render_slice(app, nodes.referenceVolume, "Coronal", c, size))],
                                   f"Checks (adherence): {nodes.caseId}, label filled, reference segmenter "
                                   f"outlined (Dice {float(row.get('dice') or 0):.2f})",
                                   args.out / "panel_checks_adherence.png"))
        with slicer_scene() as app:  # Export: the DICOM study read back
            study = sorted(p for p in out["dicom"].iterdir() if p.is_dir())[0]
            series = sorted(p for p in study.rglob("*") if p.is_dir() and any(p.glob("*.dcm")))
            image = next(s for s in series if "SEG" not in s.name.upper() and not any(
                "seg" in f.name.lower() for f in s.glob("*.dcm")))
            case = read_dicom_case(image, case_id=study.name)
            segFile = next(f for s in series for f in s.glob("*.dcm") if f not in set(image.glob("*.dcm"))
                           and "SEG" in _modality(f))
            label, table = read_dicom_seg(segFile, image)
            case = case.replace(label=label, label_table=table)
            nodes = logic.caseToNodes(case)
            c = _center(case)
            written.append(_figure([("Axial", render_slice(app, nodes.referenceVolume, "Axial", c, size)),
                                    ("Coronal", render_slice(app, nodes.referenceVolume, "Coronal", c, size))],
                                   f"Export: DICOM study {study.name} read back (image series + SEG)",
                                   args.out / "panel_export_dicom.png"))
        with slicer_scene() as app:  # Reader study: a blinded real case on the synthetic grid
            case = readerStudyCase(out["real"], TEST_IDS[0], like=synthetic[0])
            nodes = logic.caseToNodes(case, name="trial 01", withLabel=False, provenance=False, showSurface=False)
            written.append(_figure([("Axial", render_slice(app, nodes.referenceVolume, "Axial", None, size))],
                                   "Reader study: trial 01 - real or synthetic?", args.out / "panel_reader_study.png"))
    for path in written:
        print(path)
    print(f"{len(written)} screenshots in {time.monotonic() - t0:.0f} s")
    return 0


def _modality(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(str(path), stop_before_pixels=True).Modality)


if __name__ == "__main__":
    raise SystemExit(main())
