"""3D Slicer module SyntheticImaging: labelled synthetic brain-tumour MRI and head-CT hemorrhage volumes, the
checks that say whether they are useful and private, DICOM export and a real-vs-synthetic reader study.

This file is thin on purpose (Slicer's module, widget and test classes); the code lives in
``SyntheticImagingModule`` (widget, logic, parameters, jobs, install, reader study) and the science in the
pure-Python library ``SyntheticImagingLib``. Nothing here imports torch or monai: they are installed on first use.

Python console::

    logic = slicer.util.getModuleLogic("SyntheticImaging")   # or SyntheticImaging.SyntheticImagingLogic()
    help(logic)
"""

from pathlib import Path

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest
from SyntheticImagingModule.logic import CaseNodes, SyntheticImagingLogic
from SyntheticImagingModule.parameters import SyntheticImagingParameterNode
from SyntheticImagingModule.sample_data import registerSampleData
from SyntheticImagingModule.widget import SyntheticImagingWidget

__all__ = ["SyntheticImaging", "SyntheticImagingWidget", "SyntheticImagingLogic", "SyntheticImagingParameterNode",
           "SyntheticImagingTest", "CaseNodes"]


class SyntheticImaging(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Synthetic Imaging")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Utilities")]
        self.parent.dependencies = []  # PyTorch (an extension dependency) is only needed when a job starts
        self.parent.contributors = ["SyntheticImaging contributors"]
        self.parent.helpText = _(
            "Synthesize labelled brain-tumour MRI and head-CT hemorrhage cases, train or load a generator, check "
            "the synthetic set's utility (segmenter Dice), fidelity and privacy (distance to the closest training "
            "case), export it as DICOM or NIfTI/.seg.nrrd, and run a blinded real-vs-synthetic reader study. "
            "Long jobs run in a background process with a progress bar and Cancel. "
            "Python console: <code>logic = slicer.util.getModuleLogic('SyntheticImaging')</code>."
        )
        self.parent.acknowledgementText = _(
            "Reader study after DuMont Schuette et al. 2021 (npj Digital Medicine 4:141). Sample data: BraTS 2018 "
            "(Menze et al. 2015; Bakas et al. 2017, 2018); head CT templates by C. Rorden."
        )
        # the bundled cases in the Sample Data module, once Slicer has started (the extension template's idiom)
        slicer.app.connect("startupCompleted()", registerSampleData)


class SyntheticImagingTest(ScriptedLoadableModuleTest):
    """Self-test: the main path on the bundled sample case (load it as a user would, synthesize from the scene
    case, show it, check privacy, export DICOM into the DICOM database), then node conversions, result tables,
    background jobs and reader-study scoring. No GPU, no network, no trained model; a few minutes on a CPU."""

    def setUp(self):
        """A clean scene for each test."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run every test."""
        for test in (self.test_MainPath, self.test_CaseNodesRoundTrip, self.test_ResultsToTables,
                     self.test_BackgroundJob, self.test_ReaderStudyScore):
            self.setUp()
            test()

    def test_MainPath(self):
        """Sample case -> scene nodes -> scene case -> synthetic cases (label-to-image) shown over their labels ->
        privacy check tables -> DICOM studies in the DICOM database."""
        import tempfile

        import numpy as np
        from SyntheticImagingModule.sample_data import sampleSources

        from SyntheticImagingLib.api import sample_dataset
        from SyntheticImagingLib.io import read_image

        work = Path(tempfile.mkdtemp(prefix="SyntheticImagingTest-"))
        self.delayDisplay("Loading the sample case")
        source = next(s for s in sampleSources() if s.sampleName == "SyntheticImagingBraTS")
        flair = slicer.util.loadVolume(str(source.files[0]))
        t1 = slicer.util.loadVolume(str(source.files[1]))
        segmentation = slicer.util.loadSegmentation(str(source.files[2]))
        logic = SyntheticImagingLogic()
        case = logic.caseFromNodes([flair, t1], segmentation, task="brain-tumor-mri")
        label, geometry = read_image(source.files[2])
        self.assertEqual(case.geometry.differences(geometry), [])
        self.assertEqual(int((case.label > 0).sum()), int((label > 0).sum()))

        self.delayDisplay("Synthesizing two cases from the scene case")
        synthetic = work / "synthetic"
        nodes = logic.synthesize("label-to-image", task="brain-tumor-mri", n=2, seed=0,
                                 data=[([flair, t1], segmentation)], outDir=synthetic, showSurface=False)
        self.assertEqual(len(nodes), 2)
        for caseNodes in nodes:
            self.assertEqual(sorted(caseNodes.volumes), ["FLAIR", "T1"])
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(
                caseNodes.segmentation, caseNodes.segmentation.GetSegmentation().GetNthSegmentID(0),
                caseNodes.referenceVolume)
            self.assertGreater(int(np.count_nonzero(mask)), 0)
        logic.showCase(nodes[0])

        self.delayDisplay("Privacy check against the sample cases")
        sample = sample_dataset()
        train = logic.writeDataset(sample.subset(sample.case_ids[:6]), work / "real-train")
        test = logic.writeDataset(sample.subset(sample.case_ids[6:8]), work / "real-test")
        tables = logic.evaluate(train, test, synthetic, outDir=work / "evaluation", checks=("privacy",))
        self.assertIn("summary", tables)
        pair = logic.nearestPair(work / "evaluation")
        self.assertIsNotNone(pair)
        self.assertIn(pair.real_id, sample.case_ids[:6])

        self.delayDisplay("DICOM export")
        addToDatabase = slicer.dicomDatabase is not None and slicer.dicomDatabase.isOpen
        dicom = logic.exportDicom(synthetic, work / "dicom", addToDatabase=addToDatabase)
        self.assertGreater(len(list(dicom.rglob("*.dcm"))), 0)
        if addToDatabase:
            files = {str(Path(f).resolve()) for f in slicer.dicomDatabase.allFiles()}
            self.assertTrue(any(str(Path(f).resolve()) in files for f in dicom.rglob("*.dcm")))
        self.delayDisplay("Main path: passed")

    def test_CaseNodesRoundTrip(self):
        """A case -> volume and segmentation nodes on its grid -> the same case."""
        import numpy as np

        from SyntheticImagingLib.cases import Case, Geometry, LabelTable

        self.delayDisplay("Case <-> nodes")
        label = np.zeros((10, 12, 14), np.int16)
        label[3:6, 4:8, 5:9] = 1
        case = Case("test_case", {"FLAIR": np.random.default_rng(0).random(label.shape, dtype=np.float32)},
                    Geometry((1.0, 1.5, 2.0), (10.0, -20.0, 5.0)), label=label, label_table=LabelTable({1: "tumor"}))
        logic = SyntheticImagingLogic()
        nodes = logic.caseToNodes(case)
        back = logic.caseFromNodes(list(nodes.volumes.values()), nodes.segmentation, channelNames=["FLAIR"])
        self.assertEqual(back.geometry.differences(case.geometry), [])
        self.assertTrue(np.array_equal(back.label, case.label))
        self.assertTrue(np.array_equal(back.channels["FLAIR"], case.channels["FLAIR"]))
        self.assertEqual(nodes.segmentation.GetSegmentation().GetNthSegment(0).GetName(), "tumor")
        logic.showCase(nodes)
        self.delayDisplay("Case <-> nodes: passed")

    def test_ResultsToTables(self):
        """Check results -> table nodes and plot chart nodes."""
        report = {"checks": {"utility": {"status": "ok", "summary": {"dice": 0.6}, "tables": {"regimes": [
            {"regime": "TRTR", "kind": "real", "n_real": 8, "n_synthetic": 0, "seeds": 3, "dice": 0.6,
             "dice_lo": 0.5, "dice_hi": 0.7}]}}}}
        logic = SyntheticImagingLogic()
        tables = logic.resultsToTables(report)
        self.assertEqual(tables["utility regimes"].GetNumberOfRows(), 1)
        self.assertEqual(len(logic.resultsToPlots(report)), 1)
        self.delayDisplay("Results -> tables: passed")

    def test_BackgroundJob(self):
        """A child process's JSON progress lines are read, and cancel ends it."""
        from SyntheticImagingModule.jobs import BackgroundJob, python_executable

        code = ("import json, time\n"
                "for i in range(3): print(json.dumps({'type': 'progress', 'stage': 't', 'step': i + 1, 'total': 3}))\n"
                "print(json.dumps({'type': 'result', 'out': 'x'}))\n")
        events = []
        outcome = BackgroundJob([python_executable(), "-c", code], on_event=events.append).start().wait(60)
        self.assertEqual(outcome.status, "succeeded")
        self.assertEqual([e.step for e in events if e.kind == "progress"], [1, 2, 3])
        self.assertEqual(outcome.result, {"out": "x"})
        job = BackgroundJob([python_executable(), "-c", "import time; time.sleep(60)"]).start()
        job.cancel(grace_s=2.0)
        self.assertEqual(job.wait(30).status, "cancelled")
        self.delayDisplay("Background job: passed")

    def test_ReaderStudyScore(self):
        """A reader who is always right scores 100%, with an exact interval below 1."""
        from SyntheticImagingModule.reader_study import ReaderStudy

        study = ReaderStudy([f"r{i}" for i in range(5)], [f"s{i}" for i in range(5)], seed=3)
        while not study.done:
            study.record(study.current.source, confidence=4)
        score = study.score()
        self.assertEqual(score.accuracy, 1.0)
        self.assertAlmostEqual(score.ci_low, 0.6915, places=3)
        self.delayDisplay("Reader study: passed")
