"""The module's logic on real MRML (slicer-core, no Qt): BraTS nodes -> cases, cases -> nodes, results -> tables.

Each test gets a fresh scene with Slicer's segmentation converter rules and real module logics exposed as
``slicer.modules.<name>.logic()``; the fixture puts ``slicer.mrmlScene`` / ``slicer.modules`` back afterwards.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
vtk = pytest.importorskip("vtk")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
BRATS = DATA / "brats2018"
sys.path.insert(0, str(ROOT / "SyntheticImaging"))

from slicer_harness import register_segmentation_converters  # noqa: E402  (same folder, on sys.path)
from SyntheticImagingModule.logic import SyntheticImagingLogic, geometryFromVolumeNode  # noqa: E402

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, Modality  # noqa: E402
from SyntheticImagingLib.io import (  # noqa: E402
    from_canonical,
    load_dataset,
    read_image,
    to_canonical,
    to_source_orientation,
)

_MISSING = object()


@pytest.fixture()
def scene():
    """A fresh MRML scene with the logics Slicer's application would provide; global state restored after."""
    saved = {name: getattr(slicer, name, _MISSING) for name in ("mrmlScene", "modules")}
    mrml = slicer.vtkMRMLScene()
    register_segmentation_converters()
    logics = {}
    for name, cls in (("segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
                      ("volumes", slicer.vtkSlicerVolumesLogic), ("colors", slicer.vtkSlicerColorLogic)):
        logic = cls()
        logic.SetMRMLScene(mrml)
        logics[name] = types.SimpleNamespace(logic=lambda logic=logic: logic)
    slicer.mrmlScene = mrml
    slicer.modules = types.SimpleNamespace(**logics)
    try:
        yield mrml
    finally:
        mrml.Clear(1)
        for name, value in saved.items():
            if value is _MISSING:
                if hasattr(slicer, name):
                    delattr(slicer, name)
            else:
                setattr(slicer, name, value)


def _ijkToRAS(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def _loadBratsCase(index: int):
    """FLAIR, T1 and the whole-tumour label of one BraTS case, loaded the way Slicer loads files."""
    folder = BRATS / f"case_{index}"
    volumes = slicer.modules.volumes.logic()
    flair = volumes.AddArchetypeVolume(str(folder / "FLAIR.nii.gz"), f"case_{index} FLAIR")
    t1 = volumes.AddArchetypeVolume(str(folder / "T1.nii.gz"), f"case_{index} T1")
    labelmap = volumes.AddArchetypeVolume(str(folder / "GT_W.nii.gz"), f"case_{index} GT", 1)
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"case_{index} segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(flair)
    assert slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
    return flair, t1, labelmap, segmentation


needs_brats = pytest.mark.skipif(not (BRATS / "case_1" / "GT_W.nii.gz").exists(), reason="shared BraTS data missing")


@needs_brats
def test_brats_nodes_to_cases_keep_node_geometry(scene):
    logic = SyntheticImagingLogic()
    for index in (0, 1):
        flair, t1, labelmap, segmentation = _loadBratsCase(index)
        case = logic.caseFromNodes([flair, t1], segmentation, task="brain-tumor-mri")
        # the case's grid is the nodes' grid, exactly
        np.testing.assert_allclose(case.geometry.ijk_to_ras(), _ijkToRAS(flair), atol=1e-6)
        np.testing.assert_allclose(case.geometry.ijk_to_ras(), _ijkToRAS(t1), atol=1e-6)
        assert case.shape == slicer.util.arrayFromVolume(flair).shape == (155, 240, 240)
        # ... and the file's grid as the library reads it (ITK/LPS)
        array, fileGeometry = read_image(BRATS / f"case_{index}" / "FLAIR.nii.gz")
        assert case.geometry.differences(fileGeometry) == []
        assert case.channel_names == ["FLAIR", "T1"]
        np.testing.assert_array_equal(case.channels["FLAIR"], array.astype(np.float32))
        np.testing.assert_array_equal(case.channels["T1"], slicer.util.arrayFromVolume(t1))
        truth = slicer.util.arrayFromVolume(labelmap) > 0
        np.testing.assert_array_equal(case.label > 0, truth)
        assert case.label_table.names == {1: "tumor"} and case.metadata["segments"] == [f"case_{index} GT"]
        assert case.modality == Modality.MR and case.case_id == f"case_{index}_segmentation"
        # the library's own loader of the same files agrees voxel for voxel
        reference = load_dataset(BRATS, layout="brats").subset([f"case_{index}"])[0]
        np.testing.assert_array_equal(case.label, reference.label)
        assert case.geometry.differences(reference.geometry) == []
        # a labelmap node works as the label too
        fromLabelmap = logic.caseFromNodes([flair, t1], labelmap, task="brain-tumor-mri")
        np.testing.assert_array_equal(fromLabelmap.label, case.label)


@needs_brats
def test_nodes_on_different_grids_are_refused_not_resampled(scene):
    logic = SyntheticImagingLogic()
    flair, t1, _, segmentation = _loadBratsCase(0)
    flair.SetSpacing(1.0, 1.0, 2.0)
    problems = logic.nodesGeometryProblems([flair, t1], segmentation)
    assert any("T1" in p and "spacing" in p for p in problems)
    assert any("segment" in p for p in problems)
    with pytest.raises(Exception, match="not on the grid"):
        logic.caseFromNodes([flair, t1], segmentation)


def _syntheticCase(ct: bool = False) -> Case:
    rng = np.random.default_rng(0)
    shape = (12, 14, 16)
    label = np.zeros(shape, np.int16)
    label[3:7, 4:9, 5:10] = 1
    label[7:9, 4:9, 5:10] = 2
    geometry = Geometry(spacing=(1.5, 2.0, 2.5), origin=(-30.0, 12.0, 7.5),
                        direction=tuple(np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], float).ravel()))
    channels = {"CT": rng.normal(30, 10, shape).astype(np.float32)} if ct else {
        "FLAIR": rng.random(shape, dtype=np.float32) * 100, "T1": rng.random(shape, dtype=np.float32) * 50}
    return Case("synthetic_0001", channels, geometry, modality=Modality.CT if ct else Modality.MR,
                lesion_kind="hemorrhage" if ct else "tumor", label=label,
                label_table=LabelTable({1: "tumor core", 2: "edema"}), metadata={"generator": "test"})


@pytest.mark.parametrize("ct", [False, True])
def test_case_to_nodes_round_trip(scene, ct):
    logic = SyntheticImagingLogic()
    case = _syntheticCase(ct)
    nodes = logic.caseToNodes(case)
    assert list(nodes.volumes) == case.channel_names
    for channel, node in nodes.volumes.items():
        assert node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode")
        np.testing.assert_allclose(_ijkToRAS(node), case.geometry.ijk_to_ras(), atol=1e-9)
        assert geometryFromVolumeNode(node).differences(case.geometry) == []
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), case.channels[channel])
        assert node.GetAttribute("SyntheticImaging.CaseId") == case.case_id
    if ct:  # a CT is shown in a brain window
        display = nodes.referenceVolume.GetDisplayNode()
        assert (display.GetWindow(), display.GetLevel()) == (80.0, 40.0)
    segmentation = nodes.segmentation.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["tumor core", "edema"]
    assert nodes.segmentation.GetSegmentation().ContainsRepresentation("Closed surface")
    for value, name in case.label_table.names.items():
        assert segmentation.GetSegment(name).GetLabelValue() == value
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, name, nodes.referenceVolume)
        np.testing.assert_array_equal(mask > 0, case.label == value)
    back = logic.caseFromNodes(list(nodes.volumes.values()), nodes.segmentation, caseId=case.case_id,
                               channelNames=case.channel_names, modality=case.modality, lesionKind=case.lesion_kind)
    # the nodes' grid is ALS (a rotated direction); a case from nodes is in the library's canonical LPS
    assert back.metadata["source_orientation"]["code"] == "ALS"
    canonical = to_canonical(case)
    np.testing.assert_array_equal(back.label, canonical.label)
    assert back.label_table.names == case.label_table.names
    assert back.geometry.differences(canonical.geometry) == []
    np.testing.assert_allclose(back.geometry.direction_matrix, np.eye(3), atol=1e-12)
    for channel in case.channel_names:
        np.testing.assert_array_equal(back.channels[channel], canonical.channels[channel])
    # ... and back in the nodes' own voxel order it is the case as given
    source = to_source_orientation(back)
    assert source.geometry.differences(case.geometry) == []
    np.testing.assert_array_equal(source.label, case.label)


def test_scene_cases_written_as_dataset(scene, tmp_path):
    logic = SyntheticImagingLogic()
    case = _syntheticCase()
    nodes = logic.caseToNodes(case)
    again = logic.caseToNodes(case)  # same names: the written case ids must still differ
    out = logic.writeDataset([nodes, (list(again.volumes.values()), again.segmentation)], tmp_path / "scene")
    dataset = load_dataset(out)
    assert len(dataset) == 2 and len(set(dataset.case_ids)) == 2
    loaded = dataset[0]
    canonical = to_canonical(case)  # loaded cases are in the canonical orientation, placed where they were
    assert loaded.geometry.differences(canonical.geometry) == []
    np.testing.assert_array_equal(loaded.label, canonical.label)
    assert loaded.label_table.names == case.label_table.names
    # the files keep the nodes' own voxel order and grid
    array, fileGeometry = read_image(out / dataset.case_ids[0] / "FLAIR.nii.gz")
    assert fileGeometry.differences(case.geometry) == []
    np.testing.assert_array_equal(array, case.channels["FLAIR"])
    shown = logic.loadDatasetCase(out, dataset.case_ids[1])
    np.testing.assert_allclose(_ijkToRAS(shown.referenceVolume), canonical.geometry.ijk_to_ras(), atol=1e-6)
    # a canonical case shown in the scene: each voxel at the same physical (RAS) place as in the source nodes
    ijk = np.array([3.0, 5.0, 7.0, 1.0])  # (i, j, k) of the shown canonical grid
    ras = _ijkToRAS(shown.referenceVolume) @ ijk
    sourceIjk = np.linalg.inv(_ijkToRAS(nodes.referenceVolume)) @ ras
    np.testing.assert_allclose(sourceIjk, np.round(sourceIjk), atol=1e-6)
    z, y, x = (int(round(v)) for v in sourceIjk[2::-1])
    assert slicer.util.arrayFromVolume(shown.referenceVolume)[7, 5, 3] == case.channels["FLAIR"][z, y, x]


UTILITY_TABLES = {
    "regimes": [
        {"regime": "TRTR", "kind": "real", "n_real": 4, "n_synthetic": 0, "seeds": 3, "dice": 0.58,
         "dice_lo": 0.50, "dice_hi": 0.65, "dice_sd": 0.04, "hd95_mm": 9.5},
        {"regime": "TSTR", "kind": "synthetic", "n_real": 0, "n_synthetic": 3, "seeds": 3, "dice": 0.41,
         "dice_lo": 0.33, "dice_hi": 0.49, "dice_sd": 0.05, "hd95_mm": 14.0},
        {"regime": "real+synthetic", "kind": "mixed", "n_real": 4, "n_synthetic": 4, "seeds": 3, "dice": 0.63,
         "dice_lo": 0.57, "dice_hi": 0.69, "dice_sd": 0.03, "hd95_mm": 8.1},
    ],
    "runs": [{"regime": "TRTR", "seed": s, "dice": 0.55 + 0.02 * s} for s in range(3)],  # no CI: no chart
}
PRIVACY_TABLES = {
    "closest_pairs": [
        {"space": "encoder", "rank": 1, "synthetic_id": "synthetic_0002", "training_id": "case_7", "distance": 2.1},
        {"space": "intensity", "rank": 1, "synthetic_id": "synthetic_0003", "training_id": "case_1", "distance": 0.4},
    ],
    "per_synthetic_case": [
        {"synthetic_id": f"synthetic_{i:04d}", "encoder_dcr": d, "encoder_nearest_training_id": real,
         "intensity_dcr": 9.0 - d, "intensity_nearest_training_id": "case_0", "mask_max_dice": 0.3,
         "mask_nearest_training_id": ""}
        for i, (d, real) in enumerate([(4.5, "case_3"), (2.1, "case_7"), (3.3, "case_1")], start=1)
    ],
    "holdout_baseline": [{"holdout_id": f"case_{i}", "encoder_dcr": 2.0 + i, "intensity_dcr": 1.0 + i}
                         for i in range(8, 10)],
}


def _writeReport(folder: Path) -> None:
    """A report written by the library's own report writer (the exact report.json the CLI produces)."""
    from SyntheticImagingLib.checks.base import CheckResult
    from SyntheticImagingLib.checks.report import write_report

    results = [CheckResult("utility", summary={"tstr_over_trtr_dice": 0.71, "verdict": "helps"},
                           tables=UTILITY_TABLES),
               CheckResult("privacy", summary={"verdict": "not flagged", "encoder_dcr_median": 3.3},
                           tables=PRIVACY_TABLES)]
    write_report(folder, results=results, settings={"profile": "quick"},
                 data={"real_train": {"cases": 10, "root": str(BRATS)}, "synthetic": {"root": "/synthetic"}},
                 requested=["utility", "fidelity", "privacy"], skipped={"fidelity": "not installed"})


def test_results_become_table_and_plot_nodes(scene, tmp_path):
    logic = SyntheticImagingLogic()
    _writeReport(tmp_path)
    tables = logic.resultsToTables(tmp_path)
    assert set(tables) == {"summary", "utility regimes", "utility runs", "privacy closest_pairs",
                           "privacy per_synthetic_case", "privacy holdout_baseline"}
    summary = logic.tableRows(tables["summary"])
    assert {"check": "utility", "metric": "tstr_over_trtr_dice", "value": "0.71"} in summary
    assert {"check": "fidelity", "metric": "status", "value": "skipped: not installed"} in summary
    regimes = tables["utility regimes"]
    assert regimes.IsA("vtkMRMLTableNode") and regimes.GetNumberOfRows() == 3
    assert regimes.GetColumnName(0) == "regime" and regimes.GetTable().GetColumnByName("dice").IsA("vtkDoubleArray")
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(regimes, "dice_hi"), [0.65, 0.49, 0.69])
    perCase = logic.tableRows(tables["privacy per_synthetic_case"])
    assert perCase[1]["encoder_nearest_training_id"] == "case_7" and perCase[0]["mask_nearest_training_id"] == ""

    charts = logic.resultsToPlots(tmp_path)  # from the typed report: tables by name, columns by the checks' names
    assert set(charts) == {"utility regimes Dice", "privacy encoder distance histogram",
                           "privacy intensity distance histogram"}
    diceChart = charts["utility regimes Dice"]
    series = [slicer.mrmlScene.GetNodeByID(diceChart.GetNthPlotSeriesNodeID(i))
              for i in range(diceChart.GetNumberOfPlotSeriesNodes())]
    assert [s.GetYColumnName() for s in series] == ["dice", "dice_lo", "dice_hi"]
    assert series[0].GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeBar
    assert series[1].GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter
    assert all(s.GetTableNode() is not None and s.GetLabelColumnName() == "label" for s in series)
    histogram = charts["privacy encoder distance histogram"]
    histogramSeries = {slicer.mrmlScene.GetNodeByID(histogram.GetNthPlotSeriesNodeID(i)).GetYColumnName()
                       for i in range(histogram.GetNumberOfPlotSeriesNodes())}
    assert histogramSeries == {"synthetic", "holdout"}  # synthetic cases beside the holdout baseline
    data = slicer.mrmlScene.GetNodeByID(histogram.GetNthPlotSeriesNodeID(0)).GetTableNode()
    assert slicer.util.arrayFromTableColumn(data, "synthetic").sum() == 3
    assert slicer.util.arrayFromTableColumn(data, "holdout").sum() == 2

    pair = logic.nearestPair(tmp_path)  # from the per-case table (all synthetic cases), encoder space
    assert (pair.synthetic_id, pair.real_id, pair.distance) == ("synthetic_0002", "case_7", 2.1)
    assert logic.nearestPair(tmp_path, "synthetic_0001").real_id == "case_3"
    assert logic.datasetRoots(tmp_path) == {"real_train": str(BRATS), "synthetic": "/synthetic"}

    logic.removeResultNodes()
    assert not [n for n in slicer.util.getNodesByClass("vtkMRMLTableNode") if n.GetAttribute("SyntheticImaging.Result")]
    assert not slicer.util.getNodesByClass("vtkMRMLPlotChartNode")


def test_check_result_shaped_dict_becomes_tables(scene):
    report = {"checks": {"privacy": {"summary": {"verdict": "not flagged"}, "tables": PRIVACY_TABLES}}}
    tables = SyntheticImagingLogic().resultsToTables(report)
    assert tables["privacy closest_pairs"].GetNumberOfRows() == 2
    pair = SyntheticImagingLogic.nearestPair(report, "synthetic_0003")
    assert (pair.real_id, pair.distance) == ("case_1", 3.3)


def test_per_label_and_region_tables_become_nodes(scene):
    rows = [{"regime": g, "kind": k, "label": n, "values": v, "seeds": 2, "dice": d, "dice_lo": d - 0.1,
             "dice_hi": d + 0.1, "hd95_mm": 5.0} for g, k in (("TRTR", "real"), ("TSTR", "synthetic"))
            for n, v, d in (("necrosis", "1", 0.4), ("edema", "2", 0.7))]
    regions = [{**{k: v for k, v in r.items() if k != "label"}, "region": "whole tumor", "values": "1,2"}
               for r in rows[::2]]
    report = {"checks": {"utility": {"status": "ok", "summary": {}, "tables": {"per_label": rows,
                                                                               "per_region": regions}}}}
    tables = SyntheticImagingLogic().resultsToTables(report)
    labels = tables["utility per_label"]
    assert labels.GetName() == "SyntheticImaging utility per_label" and labels.GetNumberOfRows() == 4
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(labels, "dice"), [0.4, 0.7, 0.4, 0.7])
    assert tables["utility per_region"].GetNumberOfRows() == 2


def test_results_from_csv_folder(scene, tmp_path):
    (tmp_path / "dice.csv").write_text("regime,dice\nreal,0.5\nreal+synthetic,0.6\n")
    tables = SyntheticImagingLogic().resultsToTables(tmp_path)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(tables["dice"], "dice"), [0.5, 0.6])


def test_lesion_location_is_converted_from_ras_to_lps(scene):
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode") \
        if hasattr(slicer, "vtkMRMLMarkupsFiducialNode") else None
    options = SyntheticImagingLogic.lesionOptions(lesionVolumeMl=(10, 40.5), lesionCount=2, location=(10, -20, 30),
                                                  subtypes=["subdural"])
    assert options == {"lesion_volume": "10:40.5", "lesion_count": 2, "location": "-10,20,30",
                       "subtypes": ["subdural"]}
    if points is not None:
        points.AddControlPointWorld(vtk.vtkVector3d(1, 2, 3))
        assert SyntheticImagingLogic.lesionOptions(location=points)["location"] == "-1,-2,3"


@needs_brats
@pytest.mark.slow
def test_synthesize_runs_the_cli_in_a_process_and_loads_nodes(scene, tmp_path):
    """The console API end to end: the library's CLI in a child process (JSON progress), output loaded as nodes."""
    real = tmp_path / "real"
    real.mkdir()
    try:
        for case in ("case_0", "case_1"):
            (real / case).symlink_to(BRATS / case, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available")
    events = []
    logic = SyntheticImagingLogic()
    job = logic.cliJob("synthesize", {"generator": "label-to-image", "data": real, "task": "brain-tumor-mri",
                                      "n": 1, "seed": 0, "out": tmp_path / "synth", "label_format": "seg.nrrd",
                                      **logic.lesionOptions(lesionVolumeMl=(10, 30), location=(-120, 120, 77))},
                       logDir=tmp_path / "logs", onEvent=events.append)
    outcome = job.start().wait(timeout=600).check()
    assert Path(outcome.result["out"]) == tmp_path / "synth" and outcome.result["cases"] == 1
    assert {e.stage for e in events if e.kind == "progress"} >= {"fit", "synthesize"}
    assert job.log_path.exists() and '"type": "result"' in job.log_path.read_text()

    nodes = logic.loadDatasetCase(tmp_path / "synth")
    case = load_dataset(tmp_path / "synth")[0]
    assert list(nodes.volumes) == ["FLAIR", "T1"] and case.label.any()
    np.testing.assert_allclose(_ijkToRAS(nodes.referenceVolume), case.geometry.ijk_to_ras(), atol=1e-6)
    segmentation = nodes.segmentation.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["tumor"]
    # the lesion lies near the requested point (RAS -120, 120, 77 = LPS 120, -120, 77; the generator keeps it
    # inside the brain, so "near" is within a few centimetres)
    centre = case.geometry.index_to_physical(np.argwhere(case.label > 0).mean(axis=0))
    assert np.linalg.norm(centre - np.array([120.0, -120.0, 77.0])) < 40.0


def _adherenceEvaluation(tmp_path: Path) -> tuple[Path, Case, np.ndarray]:
    """A synthetic set of one case and an evaluation folder as the adherence check writes it: the reference
    segmenter's prediction saved on a coarser grid (every second voxel, spacing doubled: same physical place)."""
    from SyntheticImagingLib.checks.base import CheckResult
    from SyntheticImagingLib.checks.report import write_report
    from SyntheticImagingLib.io import write_dataset, write_image

    case = _syntheticCase()
    dataset = write_dataset([case], tmp_path / "synthetic")
    evaluation = tmp_path / "evaluation"
    mask = (case.label[::2, ::2, ::2] > 0).astype(np.uint8)
    mask[0, 0, 0] = 1  # a false positive far from the label
    coarse = Geometry(tuple(2 * s for s in case.geometry.spacing), case.geometry.origin, case.geometry.direction)
    write_image(evaluation / "adherence" / "predictions" / f"{case.case_id}.nii.gz", mask, coarse)
    relative = f"adherence/predictions/{case.case_id}.nii.gz"
    row = {"case_id": case.case_id, "dice": 0.83, "detection": 1.0, "below_threshold": False, "reason": "",
           "prediction": relative}
    predictions = {"folder": "adherence/predictions", "files": {case.case_id: relative}}
    result = CheckResult("adherence", summary={"verdict": "follows labels like real cases"},
                         tables={"per_case": [row]}, details={"predictions": predictions})
    write_report(evaluation, results=[result], settings={"profile": "quick"},
                 data={"synthetic": {"cases": 1, "root": str(dataset)}})
    return evaluation, case, mask


def test_adherence_case_shows_label_and_prediction(scene, tmp_path):
    from SyntheticImagingModule.result_nodes import PREDICTION_COLOR, PREDICTION_SEGMENT_NAME

    evaluation, case, mask = _adherenceEvaluation(tmp_path)
    logic = SyntheticImagingLogic()
    tables = logic.resultsToTables(evaluation)
    assert logic.tableRows(tables["adherence per_case"])[0]["prediction"].endswith(f"{case.case_id}.nii.gz")
    assert logic.adherenceCaseIds(evaluation) == [case.case_id]
    assert logic.adherenceRow(evaluation, case.case_id)["dice"] == 0.83

    nodes = logic.loadAdherenceCase(evaluation)  # the first case; its dataset from the report
    assert nodes.caseId == case.case_id and nodes.prediction in nodes.nodes()
    prediction = nodes.prediction.GetSegmentation()
    assert prediction.GetNumberOfSegments() == 1
    assert prediction.GetNthSegment(0).GetName() == PREDICTION_SEGMENT_NAME
    np.testing.assert_allclose(prediction.GetNthSegment(0).GetColor(), PREDICTION_COLOR)
    assert nodes.prediction.GetAttribute("SyntheticImaging.CaseId") == case.case_id
    assert not slicer.util.getNodesByClass("vtkMRMLLabelMapVolumeNode")  # the helper grid node is gone
    labelDisplay, predictionDisplay = nodes.segmentation.GetDisplayNode(), nodes.prediction.GetDisplayNode()
    assert labelDisplay.GetVisibility2DFill() and labelDisplay.GetVisibility2DOutline()
    assert not predictionDisplay.GetVisibility2DFill() and predictionDisplay.GetVisibility2DOutline()
    assert predictionDisplay.GetSliceIntersectionThickness() == 3
    # on the case's grid (nearest neighbour), the coarse prediction covers the label's voxels it was made from; the
    # case is shown as loaded, in the canonical orientation: back in the written (ALS) voxel order to compare
    canonical = to_canonical(case)
    onCase = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.prediction, "prediction", nodes.referenceVolume) > 0
    inCaseOrder = from_canonical(canonical.replace(label=onCase), canonical.metadata["source_orientation"]).label
    np.testing.assert_array_equal(inCaseOrder[::2, ::2, ::2] > 0, mask > 0)
    # the label segmentation is the case's label, on its grid
    label = slicer.util.arrayFromSegmentBinaryLabelmap(nodes.segmentation, "tumor core", nodes.referenceVolume)
    np.testing.assert_array_equal(label > 0, canonical.label == 1)

    with pytest.raises(Exception, match="no adherence prediction for case"):
        logic.loadAdherenceCase(evaluation, "no_such_case")
    logic.removeCaseNodes(nodes)
    assert not slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
    (evaluation / "report.json").write_text('{"checks": {}}')
    with pytest.raises(Exception, match="no prediction of the adherence check"):
        logic.loadAdherenceCase(evaluation)


def test_ranking_folder_becomes_tables(scene, tmp_path):
    from SyntheticImagingLib.checks.ranking import RANKING_COLUMNS
    from SyntheticImagingLib.checks.report import write_csv

    folder = tmp_path / "ranking"
    rows = [{c: None for c in RANKING_COLUMNS} for _ in range(2)]
    for rank, (row, name, dice) in enumerate(zip(rows, ("l2i", "gan"), (0.61, 0.42)), start=1):
        row.update(rank=rank, generator=name, utility_tstr_dice=dice, adherence_dice=dice + 0.1, warning="")
        _writeReport(folder / name)
    write_csv(folder / "ranking.csv", rows)
    tables = SyntheticImagingLogic().rankingToTables(folder)
    assert next(iter(tables)) == "ranking"
    ranking = SyntheticImagingLogic().tableRows(tables["ranking"])
    assert [r["generator"] for r in ranking] == ["l2i", "gan"] and [r["rank"] for r in ranking] == [1.0, 2.0]
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(tables["ranking"], "utility_tstr_dice"), [0.61, 0.42])
    assert {"l2i utility regimes", "gan privacy per_synthetic_case", "gan summary"} <= set(tables)
    assert all(n.GetAttribute("SyntheticImaging.Result") == "table" for n in tables.values())


def test_rank_generators_passes_every_set_to_the_cli(scene, tmp_path, monkeypatch):
    from SyntheticImagingModule.jobs import cli_arguments

    from SyntheticImagingLib.io import write_dataset

    logic = SyntheticImagingLogic()
    sets = {name: write_dataset([_syntheticCase()], tmp_path / "sets" / folder)
            for name, folder in (("gan", "gan"), ("diffusion", "run-2024"))}
    calls = []

    def fakeRun(command, options, **kwargs):
        calls.append(cli_arguments(command, options))
        out = Path(options["out"])
        out.mkdir(parents=True)
        (out / "ranking.csv").write_text("rank,generator,utility_tstr_dice\n1,gan,0.5\n2,diffusion,0.4\n")

    monkeypatch.setattr(logic, "runCli", fakeRun)
    tables = logic.rankGenerators(tmp_path / "train", tmp_path / "test", sets, outDir=tmp_path / "out")
    args = calls[0]
    synthetic = args[args.index("--synthetic") + 1: args.index("--synthetic") + 3]
    assert Path(synthetic[0]) == sets["gan"]  # named by its folder already: passed as it is
    assert Path(synthetic[1]).name == "diffusion" and load_dataset(synthetic[1]).case_ids == ["synthetic_0001"]
    assert args[args.index("--checks") + 1] == "utility,adherence,fidelity,privacy"
    # segmenters kept across evaluations in the module's work folder, in words the CLI reads
    assert Path(args[args.index("--cache-dir") + 1]) == tmp_path / "cache"
    from SyntheticImagingLib.cli import build_parser

    assert build_parser().parse_args(args[args.index("evaluate"):]).cache_dir == str(tmp_path / "cache")
    assert [r["generator"] for r in logic.tableRows(tables["ranking"])] == ["gan", "diffusion"]
    with pytest.raises(Exception, match="two or more"):
        logic.rankGenerators(tmp_path / "train", tmp_path / "test", [sets["gan"]], outDir=tmp_path / "out2")


def test_aligned_copy_is_shown_as_compared(scene, tmp_path):
    """A case the privacy check calls a copy is loaded as saved (registered onto its patient's grid) and the pair
    to compare is the aligned match, not the encoder's nearest case."""
    from SyntheticImagingLib.checks.base import CheckResult
    from SyntheticImagingLib.checks.report import write_report
    from SyntheticImagingLib.io import write_image

    geometry = Geometry((4.0, 4.0, 4.0), (10.0, -20.0, 5.0))
    image = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    label = np.zeros((6, 7, 8), np.uint8)
    label[2:4, 3:5, 3:6] = 1
    (tmp_path / "privacy" / "aligned_copies").mkdir(parents=True)
    write_image(tmp_path / "privacy" / "aligned_copies" / "syn_1.nii.gz", image, geometry)
    write_image(tmp_path / "privacy" / "aligned_copies" / "syn_1_label.nii.gz", label, geometry)
    per_case = [{"synthetic_id": "syn_1", "encoder_dcr": 0.2, "encoder_nearest_training_id": "case_5",
                 "aligned_copy": True, "aligned_training_id": "case_2", "aligned_distance": 0.55},
                {"synthetic_id": "syn_2", "encoder_dcr": 0.1, "encoder_nearest_training_id": "case_1",
                 "aligned_copy": False, "aligned_training_id": "case_1", "aligned_distance": 1.2}]
    copies = [{"synthetic_id": "syn_1", "copies_training_id": "case_2", "aligned_distance": 0.55,
               "aligned_image": "privacy/aligned_copies/syn_1.nii.gz",
               "aligned_label": "privacy/aligned_copies/syn_1_label.nii.gz"}]
    write_report(tmp_path, results=[CheckResult("privacy", summary={"verdict": "flagged"},
                                                tables={"per_synthetic_case": per_case, "copies": copies})],
                 settings={}, data={})
    logic = SyntheticImagingLogic()
    pair = logic.nearestPair(tmp_path)
    assert (pair.synthetic_id, pair.real_id, pair.distance) == ("syn_1", "case_2", 0.55)
    nodes, copy = logic.loadAlignedCopy(tmp_path, "syn_1")
    assert copy.training_id == "case_2"
    assert geometryFromVolumeNode(nodes.referenceVolume).spacing == pytest.approx(geometry.spacing)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(nodes.referenceVolume), image, atol=1e-6)
    assert nodes.segmentation is not None
    assert logic.loadAlignedCopy(tmp_path, "syn_2") is None
