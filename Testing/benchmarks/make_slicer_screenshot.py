"""Screenshot of Slicer's own slice views showing a synthetic case with its label and the reference segmenter's
prediction (the label adherence check), rendered headless: the scene is built by the module's logic
(``SyntheticImagingLogic.loadAdherenceCase``) and drawn by Slicer's real displayable managers (``trame-slicer``
with ``slicer-layer-dm``: offscreen VTK, no Qt, no display).

The evaluation it shows is made here, small: 2 label-to-image cases synthesized from 6 bundled sample cases
(``Resources/SampleData/brats2018_2mm``), checked with the label adherence check against 2 held-out sample cases
on the quick grid (4 mm) with a short-trained reference segmenter (about 15 s on 2 CPU cores). Pass
``--evaluation`` to show an existing evaluation instead (it must include the adherence check).

Usage::

    pip install slicer-layer-dm trame-slicer
    python Testing/benchmarks/make_slicer_screenshot.py --out docs/images/slicer_adherence_overlay.png \\
        [--evaluation EVAL_DIR] [--case CASE_ID] [--work DIR] [--size 512]

The axial and coronal views go through the slice with the largest label cross-section; the label is filled in
its segment colour (tumour: red), the prediction outlined in cyan, as the module shows them. ``render_adherence``
(used by ``Testing/slicer/test_render_overlay.py``) returns the rendered pixels with the label's projection.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "SyntheticImaging"), str(ROOT / "Testing" / "slicer")]

__all__ = ["make_evaluation", "slicer_scene", "slice_view", "grab_rgb", "render_adherence", "AdherenceRender",
           "ViewRender", "main"]

#: Training / held-out sample cases of the small evaluation (split by case).
TRAIN_IDS = ("case_0", "case_1", "case_2", "case_3", "case_4", "case_5")
TEST_IDS = ("case_6", "case_7")


def make_evaluation(work: str | Path, *, n: int = 2, seed: int = 0, segmenter_steps: int = 30) -> Path:
    """A small evaluation with the adherence check: ``n`` label-to-image cases from 6 sample cases, checked
    against 2 held-out sample cases on the quick grid with a reference segmenter trained ``segmenter_steps``
    steps. Returns the evaluation folder (``work/evaluation``; the synthetic set is ``work/synthetic``)."""
    import torch

    from SyntheticImagingLib.api import SAMPLE_DATA
    from SyntheticImagingLib.checks.base import PROFILES
    from SyntheticImagingLib.checks.evaluate import evaluate
    from SyntheticImagingLib.generators import create_generator
    from SyntheticImagingLib.io import load_dataset, write_dataset

    work = Path(work)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    try:
        real = load_dataset(SAMPLE_DATA / "brats2018_2mm")  # auto layout: FLAIR, T1 and label.nii.gz
        train, test = real.subset(list(TRAIN_IDS)), real.subset(list(TEST_IDS))
        generator = create_generator("label-to-image", task="brain-tumor-mri").fit(list(train))
        synthetic = write_dataset(list(generator.synthesize(n, seed=seed)), work / "synthetic", overwrite=True)
        profile = dataclasses.replace(PROFILES["quick"], name="quick-screenshot", seeds=1,
                                      segmenter_steps=segmenter_steps)
        evaluate(train, test, load_dataset(synthetic), out_dir=work / "evaluation", checks=("adherence",),
                 profile=profile, device="cpu", seed=seed, overwrite=True)
    finally:
        torch.set_num_threads(threads)
    return work / "evaluation"


@contextlib.contextmanager
def slicer_scene() -> Iterator[Any]:
    """A trame-slicer application (scene, application logic, Slicer's module logics) that the module's logic
    sees as ``slicer.mrmlScene`` / ``slicer.modules``, with offscreen direct-rendering views; the globals are
    put back afterwards."""
    import slicer
    from slicer_harness import register_segmentation_converters
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory

    missing = object()
    saved = {name: getattr(slicer, name, missing) for name in ("mrmlScene", "modules")}
    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    register_segmentation_converters()
    slicer.mrmlScene = app.scene
    slicer.modules = types.SimpleNamespace(**{
        name: types.SimpleNamespace(logic=lambda logic=logic: logic)
        for name, logic in (("segmentations", app.segmentations_logic), ("volumes", app.volumes_logic),
                            ("colors", app.color_logic))})
    try:
        yield app
    finally:
        app.scene.Clear(1)
        for name, value in saved.items():
            if value is missing:
                if hasattr(slicer, name):
                    delattr(slicer, name)
            else:
                setattr(slicer, name, value)


@dataclasses.dataclass
class ViewRender:
    """One rendered slice view: ``rgb`` (height x width x 3, uint8, row 0 at the BOTTOM as VTK gives it, so rows
    are the view's y), the slice's offset, and the label's and the prediction's voxels on that slice projected to
    view pixels (``(x, y)`` rows)."""

    orientation: str
    rgb: np.ndarray
    offset: float
    label_xy: np.ndarray
    prediction_xy: np.ndarray

    def image(self) -> np.ndarray:
        """The picture the right way up (row 0 at the top)."""
        return self.rgb[::-1]


@dataclasses.dataclass
class AdherenceRender:
    """The rendered views of one case with its adherence row (Dice...) and the colours used."""

    case_id: str
    views: dict[str, ViewRender]
    row: dict[str, Any]
    label_color: tuple[float, float, float]
    prediction_color: tuple[float, float, float]


def _ras_points(mask: np.ndarray, ijk_to_ras: np.ndarray) -> np.ndarray:
    kji = np.argwhere(mask)
    ijk1 = np.c_[kji[:, ::-1], np.ones(len(kji))]
    return (ijk_to_ras @ ijk1.T).T[:, :3]


def _files_ras(evaluation: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """RAS centres of the case's label voxels and of its saved prediction's voxels, read from the files with the
    library (not from the scene: the projection checks where the module put them)."""
    from SyntheticImagingModule import results as resultsLib

    from SyntheticImagingLib.io import load_dataset, read_image

    report = resultsLib.load_report(evaluation)
    case = load_dataset(resultsLib.dataset_roots(report)["synthetic"]).subset([case_id])[0]
    mask, geometry = read_image(Path(evaluation) / resultsLib.adherence_predictions(report)[case_id])
    return (_ras_points(case.label > 0, case.geometry.ijk_to_ras()),
            _ras_points(mask > 0, geometry.ijk_to_ras()))


def _step(points: np.ndarray, axis: int) -> float:
    """Voxel spacing of a grid's points along a RAS axis (the smallest non-zero step between them)."""
    values = np.unique(np.round(points[:, axis], 3))
    steps = np.diff(values)
    return float(steps.min()) if len(steps) else 1.0


def _slice_points(points: np.ndarray, xy_to_ras: np.ndarray, slice_to_ras: np.ndarray, thickness: float
                  ) -> np.ndarray:
    """``(x, y)`` view pixels of the RAS points lying on the slice plane (within half a voxel of it)."""
    if len(points) == 0:
        return np.zeros((0, 2))
    normal = slice_to_ras[:3, 2] / np.linalg.norm(slice_to_ras[:3, 2])
    on = np.abs((points - slice_to_ras[:3, 3]) @ normal) <= thickness / 2 + 1e-3
    xyz = (np.linalg.inv(xy_to_ras) @ np.c_[points[on], np.ones(int(on.sum()))].T).T
    return xyz[:, :2]


def slice_view(app: Any, reference: Any, orientation: str, size: int) -> Any:
    """A trame-slicer slice view of ``orientation`` (Axial, Coronal, Sagittal), ``size`` pixels square, showing
    ``reference`` as its background, fitted to it."""
    from trame_slicer.views import ViewLayoutDefinition

    definition = {"Axial": ViewLayoutDefinition.axial_view, "Coronal": ViewLayoutDefinition.coronal_view,
                  "Sagittal": ViewLayoutDefinition.sagittal_view}[orientation]()
    view = app.view_manager.create_view(definition)
    view.render_window().SetSize(size, size)
    view.set_background_volume_id(reference.GetID())
    view.fit_view_to_content()
    return view


def grab_rgb(window: Any) -> np.ndarray:
    """The pixels of a rendered VTK window (height x width x 3, uint8, row 0 at the BOTTOM as VTK gives it)."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3).copy()


def render_adherence(evaluation: str | Path, case_id: str | None = None, *, size: int = 512,
                     orientations: tuple[str, ...] = ("Axial", "Coronal")) -> AdherenceRender:
    """Build the module's scene for one synthetic case of ``evaluation`` (label + reference segmenter prediction,
    :meth:`SyntheticImagingLogic.loadAdherenceCase`) and render Slicer's slice views offscreen through the label's
    largest cross-section."""
    import slicer
    from SyntheticImagingModule.logic import SyntheticImagingLogic
    from SyntheticImagingModule.result_nodes import PREDICTION_COLOR

    with slicer_scene() as app:
        logic = SyntheticImagingLogic()
        nodes = logic.loadAdherenceCase(evaluation, case_id)
        reference = nodes.referenceVolume
        label_ras, prediction_ras = _files_ras(Path(evaluation), nodes.caseId)
        segment = nodes.segmentation.GetSegmentation().GetNthSegment(0)
        out: dict[str, ViewRender] = {}
        for orientation in orientations:
            view = slice_view(app, reference, orientation, size)
            slice_node = app.scene.GetNodeByID(view.get_view_node_id())
            axis = {"Axial": 2, "Coronal": 1, "Sagittal": 0}[orientation]
            # the slice with the largest label cross-section (label voxel centres share it exactly)
            values, counts = np.unique(np.round(label_ras[:, axis], 3), return_counts=True)
            offset = float(values[np.argmax(counts)])
            view.set_slice_value(offset)
            view.render()
            rgb = grab_rgb(view.render_window())
            xy_to_ras = slicer.util.arrayFromVTKMatrix(slice_node.GetXYToRAS())
            slice_to_ras = slicer.util.arrayFromVTKMatrix(slice_node.GetSliceToRAS())
            # the prediction lies on the coarser check grid: its voxels within half ITS voxel of the plane
            out[orientation] = ViewRender(orientation, rgb, offset,
                                          _slice_points(label_ras, xy_to_ras, slice_to_ras, _step(label_ras, axis)),
                                          _slice_points(prediction_ras, xy_to_ras, slice_to_ras,
                                                        _step(prediction_ras, axis)))
        row = logic.adherenceRow(evaluation, nodes.caseId) or {}
        return AdherenceRender(nodes.caseId, out, row, tuple(segment.GetColor()), tuple(PREDICTION_COLOR))


def save_figure(render: AdherenceRender, path: str | Path) -> Path:
    """The rendered views side by side with a caption, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    views = list(render.views.values())
    fig = Figure(figsize=(4.0 * len(views), 4.6), dpi=130)
    FigureCanvasAgg(fig)
    for i, v in enumerate(views):
        ax = fig.add_subplot(1, len(views), i + 1)
        ax.imshow(v.image())
        ax.set_axis_off()
        ax.set_title(f"{v.orientation} (Slicer slice view)", fontsize=9)
    dice = render.row.get("dice")
    text = f"{render.case_id}: label adherence Dice {dice:.2f}" if isinstance(dice, float) else render.case_id
    fig.suptitle(text, fontsize=10)
    fig.legend(handles=[Patch(color=render.label_color, alpha=0.7, label="synthetic label"),
                        Line2D([], [], color=render.prediction_color, lw=2,
                               label="reference segmenter prediction (trained on real cases)")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.1, wspace=0.03)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the evaluation, render the views and write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "slicer_adherence_overlay.png")
    parser.add_argument("--evaluation", type=Path, default=None, help="an evaluation folder with the adherence check")
    parser.add_argument("--case", default=None, help="synthetic case id (default: the first of the per-case table)")
    parser.add_argument("--work", type=Path, default=None, help="where the small evaluation goes (default: temp)")
    parser.add_argument("--size", type=int, default=512, help="view size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="slicer-screenshot-") as tmp:
        evaluation = args.evaluation or make_evaluation(args.work or tmp, seed=args.seed)
        render = render_adherence(evaluation, args.case, size=args.size)
        path = save_figure(render, args.out)
    print(f"{path}: {render.case_id}, Dice {render.row.get('dice')}, {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
