"""What the module shows of the label adherence check, rendered by Slicer's own slice views headless.

A small real evaluation (2 label-to-image cases from the bundled sample data, adherence check on the quick grid)
is made once; the module's logic builds its scene for one synthetic case (image, label, the reference segmenter's
saved prediction) and Slicer's displayable managers render the axial and coronal slices through the lesion
offscreen (``trame-slicer`` + ``slicer-layer-dm``, no Qt, no display). The test reads the rendered pixels: the
label's colour and the prediction's colour both appear, and each sits where its mask projects into the view.
The same code makes the README screenshot (``Testing/benchmarks/make_slicer_screenshot.py``).

Note: in this headless renderer a segment's 2D fill replaces the image under it by ``colour x opacity`` (it is
not blended with the image as in the Slicer application), so colours are matched by hue, not by value.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from SyntheticImagingLib.io import load_dataset, read_image

# No skip or heavy import at module level: slicer-core's "slicer" meta-package imports every module of any folder
# named "slicer" on sys.path (this one, under pytest) while "import slicer" runs, so this file must import quietly.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("trame_slicer") is None,
                                reason="trame-slicer (headless Slicer views: pip install trame-slicer "
                                       "slicer-layer-dm) is not installed")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "Testing" / "benchmarks" / "make_slicer_screenshot.py"


@pytest.fixture(scope="module")
def screenshot():
    """The screenshot script as a module (it renders the views for the test and for the README)."""
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    sys.path.insert(0, str(ROOT / "SyntheticImaging"))
    spec = importlib.util.spec_from_file_location("make_slicer_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluation(screenshot, tmp_path_factory):
    return screenshot.make_evaluation(tmp_path_factory.mktemp("adherence"))


def _best_case(evaluation: Path) -> dict:
    from SyntheticImagingModule import results as resultsLib

    rows = resultsLib.table_rows(resultsLib.load_report(evaluation)["checks"]["adherence"]["tables"]["per_case"])
    return max(rows, key=lambda r: r["dice"])


def _hue_masks(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of the label's colour (red: tumour) and of the prediction's (cyan); grey image pixels are neither."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    red = (r - np.maximum(g, b)) > 40
    cyan = (np.minimum(g, b) - r > 40) & (np.abs(g - b) < 60)
    return red, cyan


def test_module_scene_holds_label_and_prediction(screenshot, evaluation):
    import slicer
    from SyntheticImagingModule import results as resultsLib
    from SyntheticImagingModule.logic import SyntheticImagingLogic
    from SyntheticImagingModule.result_nodes import PREDICTION_COLOR, PREDICTION_SEGMENT_NAME

    report = resultsLib.load_report(evaluation)
    predictions = resultsLib.adherence_predictions(report)
    synthetic = load_dataset(resultsLib.dataset_roots(report)["synthetic"])
    assert set(predictions) == set(synthetic.case_ids)
    with screenshot.slicer_scene():
        logic = SyntheticImagingLogic()
        tables = logic.resultsToTables(evaluation)
        perCase = logic.tableRows(tables["adherence per_case"])  # adherence per case in the results table
        assert [r["case_id"] for r in perCase] == list(predictions)
        assert all(0.0 <= r["dice"] <= 1.0 and r["prediction"] == predictions[r["case_id"]] for r in perCase)
        caseId = _best_case(evaluation)["case_id"]
        nodes = logic.loadAdherenceCase(evaluation, caseId)
        assert nodes.caseId == caseId and nodes.prediction is not None
        prediction = nodes.prediction.GetSegmentation().GetNthSegment(0)
        assert prediction.GetName() == PREDICTION_SEGMENT_NAME
        np.testing.assert_allclose(prediction.GetColor(), PREDICTION_COLOR)
        label = nodes.segmentation.GetSegmentation().GetNthSegment(0)
        assert np.linalg.norm(np.subtract(label.GetColor(), PREDICTION_COLOR)) > 0.5  # told apart at a glance
        labelDisplay, predictionDisplay = nodes.segmentation.GetDisplayNode(), nodes.prediction.GetDisplayNode()
        assert labelDisplay.GetVisibility2DFill() and labelDisplay.GetVisibility2DOutline()
        assert not predictionDisplay.GetVisibility2DFill() and predictionDisplay.GetVisibility2DOutline()
        # the prediction node holds the saved mask voxel for voxel, in world coordinates
        mask, geometry = read_image(evaluation / predictions[caseId])
        grid = slicer.util.addVolumeFromArray(mask, ijkToRAS=geometry.ijk_to_ras(), name="grid",
                                              nodeClassName="vtkMRMLLabelMapVolumeNode")
        shown = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.prediction, "prediction", grid)
        np.testing.assert_array_equal(shown > 0, mask > 0)
        logic.removeCaseNodes(nodes)
        assert nodes.prediction.GetScene() is None and nodes.segmentation.GetScene() is None


def test_rendered_overlay_sits_where_label_and_prediction_are(screenshot, evaluation, tmp_path):
    row = _best_case(evaluation)
    render = screenshot.render_adherence(evaluation, row["case_id"], size=400)
    assert render.case_id == row["case_id"] and render.row["dice"] == pytest.approx(row["dice"])
    labelRGB = np.round(np.asarray(render.label_color) * 255)
    predictionRGB = np.round(np.asarray(render.prediction_color) * 255)
    for view in render.views.values():
        rgb = view.rgb.astype(int)
        assert rgb.shape == (400, 400, 3)
        red, cyan = _hue_masks(rgb)
        # both colours are on screen: the label's opaque outline and fill, the prediction's opaque outline
        assert (np.abs(rgb - labelRGB).max(axis=-1) <= 8).sum() > 20, view.orientation
        assert (np.abs(rgb - predictionRGB).max(axis=-1) <= 8).sum() > 20, view.orientation
        # ... and nowhere without an overlay: the greyscale image alone has no such hue
        assert red.sum() > 200 and cyan.sum() > 50
        # the label as drawn is the label's cross-section on this slice, projected into the view
        assert len(view.label_xy) > 5
        lo, hi = view.label_xy.min(axis=0), view.label_xy.max(axis=0)
        voxel = _voxel_pixels(view.label_xy)
        redXY = np.argwhere(red)[:, ::-1]  # pixels as (x, y): rows are the view's y (VTK order, bottom up)
        inside = np.all((redXY >= lo - voxel) & (redXY <= hi + voxel), axis=1)
        assert inside.mean() > 0.98, (view.orientation, inside.mean())
        assert np.linalg.norm(redXY.mean(axis=0) - view.label_xy.mean(axis=0)) < 1.5 * voxel
        # drawn area ~ the label's voxels on the slice (the prediction's outline covers part of it)
        expected = len(view.label_xy) * voxel**2
        assert 0.4 * expected < red.sum() < 1.3 * expected, (red.sum(), expected)
        # the prediction's outline runs along the prediction's cross-section ...
        assert len(view.prediction_xy) > 5
        plo, phi = view.prediction_xy.min(axis=0), view.prediction_xy.max(axis=0)
        cyanXY = np.argwhere(cyan)[:, ::-1]
        half = _voxel_pixels(view.prediction_xy) / 2  # the prediction's (coarser) check-grid voxels
        pad = half + 3  # the outer voxel centres' half voxel, plus the 3-pixel outline
        assert np.all((cyanXY >= plo - pad) & (cyanXY <= phi + pad), axis=1).mean() > 0.98
        assert np.abs(cyanXY.min(axis=0) - (plo - half)).max() < 4
        assert np.abs(cyanXY.max(axis=0) - (phi + half)).max() < 4
        # ... which, for a case that follows its label, is where the label is (the prediction's box may also hold
        # a false-positive blob elsewhere on the slice: then it must at least cover most of the label's box)
        if row["dice"] >= 0.5:
            assert _box_iou((lo, hi), (plo, phi)) > 0.4 or _box_cover((lo, hi), (plo, phi)) > 0.6, view.orientation
    path = screenshot.save_figure(render, tmp_path / "overlay.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _voxel_pixels(xy: np.ndarray) -> float:
    """Pixels per voxel edge in the view: the smallest non-zero step between projected voxel centres."""
    steps = np.abs(np.diff(np.unique(np.round(xy[:, 0], 3))))
    return float(steps[steps > 1e-3].min())


def _box_cover(a, b) -> float:
    """Share of box ``a`` inside box ``b``."""
    lo, hi = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    area = np.prod(a[1] - a[0])
    return float(np.prod(np.clip(hi - lo, 0, None)) / area) if area > 0 else 0.0


def _box_iou(a, b) -> float:
    lo, hi = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    inter = np.prod(np.clip(hi - lo, 0, None))
    union = np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - inter
    return float(inter / union) if union > 0 else 0.0
