"""The module panel in the Slicer-runtime harness, every click path from loaded volumes to DICOM, on the bundled
sample data, with real jobs (tiny settings): Slicer 5.12's own parameterNodeWrapper/util/DICOMUtils code, the
real MRML scene of slicer-core, stand-ins only for compiled widget classes (``runtime/``).

One long test walks the main path (it is one user session: each step needs the previous one's output); the
error paths are short tests of their own. Every user-fixable error must end in a message box carrying the
library's message, never only in a console traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from panel_scenario import SAMPLE, PanelScenario  # noqa: E402
from runtime import slicer_runtime  # noqa: E402

from SyntheticImagingLib.io import load_dataset, read_image  # noqa: E402


def _errors(rt) -> list[str]:
    return [f"{m.text} | {m.detailedText}" for m in rt.messages("error") + rt.messages("warning")]


def _assert_clean(rt) -> None:
    assert not rt.callback_errors, "exception in a VTK observer callback:\n" + rt.callback_tracebacks()
    assert not _errors(rt), _errors(rt)


def _realTest(work: Path) -> Path:
    """Held-out real cases (sample cases 8 and 9), a dataset folder as a user has one."""
    folder = work / "real-test"
    for case in ("case_8", "case_9"):
        shutil.copytree(SAMPLE / case, folder / case)
    return folder


def _geometryOf(volumeNode):
    from SyntheticImagingModule.nodes import geometryFromVolumeNode

    return geometryFromVolumeNode(volumeNode)


@pytest.mark.slow
def test_main_path_from_loaded_volumes_to_dicom(tmp_path):
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        widget, ui, p = sc.widget, sc.ui, sc.p

        # -- Data: a dataset folder is described (worker thread); volumes and segmentations loaded into the scene
        # become scene cases, written as a dataset
        sc.setPath("onDatasetChanged", "datasetPathLineEdit", SAMPLE)
        assert ui.datasetInfoLabel.text.startswith("10 cases (10 labelled), MR, channels FLAIR, T1")
        loaded = sc.loadSampleCases(["case_0", "case_1", "case_2", "case_3"])
        sc.addSceneCases(loaded)
        assert ui.sceneCasesListWidget.texts()[0] == "1: case_0 FLAIR, case_0 T1; label case_0 label"
        dataset = load_dataset(p.datasetPath)
        assert dataset.case_ids == ["case_0_label", "case_1_label", "case_2_label", "case_3_label"]
        case = dataset[0]
        _, fileGeometry = read_image(SAMPLE / "case_0" / "label.nii.gz")
        assert case.geometry.differences(fileGeometry) == []  # the nodes' geometry travelled to the files
        assert ui.datasetInfoLabel.text.startswith("4 cases (4 labelled), MR, channels FLAIR, T1")
        sc.click("onCheckDataset", sc.button("checkDatasetButton"))
        assert rt.messages("information")[-1].text == "All 4 cases load, with channels and labels on one grid."
        _assert_clean(rt)

        # -- Generator: a tiny GAN, trained in a background process
        sc.train("gan3d", steps=1)
        _assert_clean(rt)
        assert p.useCheckpoint and (Path(p.checkpointPath) / "model_card.json").exists()
        assert "gan3d" in ui.generatorInfoLabel.text

        # -- Synthesize: two cases; the first is shown over its label when the job is done
        sc.synthesize(n=2, seed=3)
        _assert_clean(rt)
        synthetic = load_dataset(p.syntheticDataset)
        assert len(synthetic) == 2 and [ui.syntheticCaseComboBox.itemText(i) for i in range(2)] == synthetic.case_ids
        shown = widget._shownCase
        assert shown is not None and shown.caseId == synthetic.case_ids[0]
        first = synthetic[0]
        assert _geometryOf(shown.referenceVolume).differences(first.geometry) == []
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(
            shown.segmentation, shown.segmentation.GetSegmentation().GetNthSegmentID(0), shown.referenceVolume)
        np.testing.assert_array_equal(mask > 0, first.label == 1)
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        assert red.GetBackgroundVolumeID() == shown.referenceVolume.GetID()
        sc.showSyntheticCase(synthetic.case_ids[1])
        assert widget._shownCase.caseId == synthetic.case_ids[1]
        assert shown.segmentation.GetScene() is None  # the previous case's nodes were removed
        _assert_clean(rt)

        # -- Checks: all four, quick profile, against two held-out real cases
        sc.evaluate(_realTest(tmp_path), ("utility", "adherence", "fidelity", "privacy"))
        _assert_clean(rt)
        evaluation = Path(p.evaluationDirectory)
        report = json.loads((evaluation / "report.json").read_text())
        assert report["status"] == "complete"
        tables = {n.GetName(): n for n in slicer.util.getNodesByClass("vtkMRMLTableNode")
                  if n.GetAttribute("SyntheticImaging.Result") == "table"}
        regimes = tables["SyntheticImaging utility regimes"]
        reportRegimes = report["checks"]["utility"]["tables"]["regimes"]["rows"]
        np.testing.assert_allclose(slicer.util.arrayFromTableColumn(regimes, "dice"),
                                   [r["dice"] for r in reportRegimes])
        chart = next(n for n in slicer.util.getNodesByClass("vtkMRMLPlotChartNode")
                     if n.GetName() == "SyntheticImaging utility regimes Dice")
        series = slicer.mrmlScene.GetNodeByID(chart.GetNthPlotSeriesNodeID(0))
        np.testing.assert_allclose(slicer.util.arrayFromTableColumn(series.GetTableNode(), series.GetYColumnName()),
                                   [r["dice"] for r in reportRegimes])
        charts = len(slicer.util.getNodesByClass("vtkMRMLPlotChartNode"))
        sc.click("onShowResults", sc.button("showResultsButton"))  # again: the earlier nodes are replaced
        assert len(slicer.util.getNodesByClass("vtkMRMLPlotChartNode")) == charts >= 3  # Dice + 2 histograms
        assert regimes.GetScene() is None
        tables = {n.GetName(): n for n in slicer.util.getNodesByClass("vtkMRMLTableNode")
                  if n.GetAttribute("SyntheticImaging.Result") == "table"}
        perCase = widget.logic.tableRows(tables["SyntheticImaging privacy per_synthetic_case"])
        assert sorted(r["synthetic_id"] for r in perCase) == sorted(synthetic.case_ids)
        # the verdict block first, the same typed summary as report.html and the CLI (report.json "summary")
        from SyntheticImagingLib.checks.report_model import read_report
        from SyntheticImagingLib.checks.summary import summarize

        verdict = ui.resultsSummaryLabel.text
        assert verdict == report["summary"]["text"] == summarize(read_report(evaluation)).to_text()
        assert verdict.startswith("Verdict: ") and all(f"{q}?" in verdict for q in
                                                       ("Useful", "Follows its labels", "Private", "Faithful"))

        # the closest pair side by side, with titles that survive a slice change (Data Probe rewrites corners)
        sc.click("onCompare", sc.button("compareButton"))
        _assert_clean(rt)
        left, right = widget._compareCases
        pair = widget.logic.nearestPair(evaluation, ui.syntheticCaseComboBox.currentText)
        assert (left.caseId, right.caseId) == (pair.synthetic_id, pair.real_id)
        layout = slicer.app.layoutManager()
        for view, nodes, title in (("Red", left, f"synthetic {pair.synthetic_id}"),
                                   ("Yellow", right, f"nearest training case {pair.real_id}")):
            sliceWidget = layout.sliceWidget(view)
            assert sliceWidget.mrmlSliceCompositeNode().GetBackgroundVolumeID() == nodes.referenceVolume.GetID()
            sliceNode = sliceWidget.mrmlSliceNode()
            sliceNode.SetSliceOffset(sliceNode.GetSliceOffset() + 6.0)  # the user scrolls
            sliceWidget.sliceView().cornerAnnotation().ClearAllTexts()  # what Data Probe does on a slice change
            texts = _viewTexts(sliceWidget)
            assert any(t.startswith(title) for t in texts), (view, texts)

        # the adherence check's view: the label filled, the reference segmenter's prediction outlined
        sc.click("onShowAdherenceCase", sc.button("showPredictionButton"))
        _assert_clean(rt)
        adherence = widget._adherenceCase
        assert adherence.prediction is not None and adherence.prediction.GetScene() is not None
        assert "label adherence Dice" in ui.resultsSummaryLabel.text

        sc.click("onOpenReport", sc.button("openReportButton"))
        assert rt.opened_urls and rt.opened_urls[-1].endswith("report.html")

        # -- Export: DICOM studies into the DICOM database, and files
        database = rt.open_dicom_database()
        ui.patientPrefixLineEdit.text = "SYNTHTEST"
        sc.click("onExportDicom", sc.button("exportDicomButton"))
        _assert_clean(rt)
        assert "added to the DICOM database" in rt.messages("information")[-1].text
        assert len(database.patients()) == 2 and all(pid.startswith("SYNTHTEST") for pid in database.patients())
        for patient in database.patients():
            (study,) = database.studiesForPatient(patient)
            series = database.seriesForStudy(study)
            modalities = {database.fileValue(database.filesForSeries(s)[0], "0008,0060") for s in series}
            assert modalities == {"MR", "SEG"}  # the image series (FLAIR, T1) and the segmentation
        ui.labelFormatComboBox.select("nii.gz")
        sc.click("onExportFiles", sc.button("exportFilesButton"))
        _assert_clean(rt)
        written = Path(rt.messages("information")[-1].text.split(" written to ")[1])
        assert sorted(load_dataset(written).case_ids) == sorted(synthetic.case_ids)
        assert all((written / c / "label.nii.gz").exists() for c in synthetic.case_ids)

        # -- Reader study: blinded cases on the synthetic grid, answers, score and CSV
        sc.readerStudy(answers=4)
        _assert_clean(rt)
        assert "accuracy" in ui.readerStudyResultLabel.text.lower()
        csv = Path(ui.readerStudyResultLabel.text.splitlines()[-1])
        assert csv.exists() and len(csv.read_text().splitlines()) == 5  # header + 4 answers
        assert not [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                    if n.GetName().startswith("trial")]  # the blinded case is gone after Finish

        # -- leaving the module, coming back, closing the scene, closing Slicer
        rt.exit(widget)
        rt.enter(widget)
        assert widget._parameterNode.syntheticDataset == p.syntheticDataset
        rt.close_scene()
        assert widget._shownCase is None and widget._compareCases == []
        rt.unload(widget)
        _assert_clean(rt)

        rows = {handler: (click, completion) for handler, click, completion, _ in sc.table()}
        if os.environ.get("SYNTHETIC_IMAGING_PANEL_TIMINGS"):  # Testing/benchmarks/bench_panel_handlers.py
            Path(os.environ["SYNTHETIC_IMAGING_PANEL_TIMINGS"]).write_text(json.dumps(sc.table()))
        assert {"onAddSceneCase", "onWriteSceneDataset", "onCheckDataset", "onTrain", "onSynthesize",
                "onShowSyntheticCase", "onEvaluate", "onCompare", "onShowAdherenceCase", "onExportDicom",
                "onExportFiles", "onStartReaderStudy", "onReaderAnswer", "onFinishReaderStudy"} <= set(rows)


def _viewTexts(sliceWidget) -> list[str]:
    """Every text a slice view's renderer holds: its corner annotation's and its text actors'."""
    import vtk

    texts = []
    renderer = sliceWidget.sliceView().renderWindow().GetRenderers().GetFirstRenderer()
    props = renderer.GetViewProps()
    props.InitTraversal()
    for _ in range(props.GetNumberOfItems()):
        prop = props.GetNextProp()
        if isinstance(prop, vtk.vtkTextActor) and prop.GetVisibility():
            texts.append(prop.GetInput())
        elif isinstance(prop, vtk.vtkCornerAnnotation):
            texts += [prop.GetText(i) for i in range(4) if prop.GetText(i)]
    return texts


@pytest.mark.slow
def test_module_self_test_runs_on_slicer_python_layer():
    """The module's own ScriptedLoadableModuleTest (what a Slicer build runs as a ctest) in the harness, in
    Slicer's testing mode, with an open DICOM database: the main path on the bundled sample case."""
    with slicer_runtime(testing=True) as rt:
        database = rt.open_dicom_database()
        rt.make_module_widget()
        module = sys.modules["SyntheticImaging"]
        module.SyntheticImagingTest().runTest()
        assert database.patients(), "the self-test's DICOM export reached the database"
        assert not rt.callback_errors and not rt.messages("error")
