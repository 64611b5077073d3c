"""3D Slicer module SyntheticImaging: labelled synthetic brain-tumour MRI and head-CT hemorrhage volumes, the
checks that say whether they are useful and private, DICOM export and a real-vs-synthetic reader study.

This file is thin on purpose (Slicer's module, widget and test classes); the code lives in
``SyntheticImagingModule`` (widget, logic, parameters, jobs, install, reader study) and the science in the
pure-Python library ``SyntheticImagingLib``. Nothing here imports torch or monai: they are installed on first use.

Python console::

    logic = slicer.util.getModuleLogic("SyntheticImaging")   # or SyntheticImaging.SyntheticImagingLogic()
    help(logic)
"""

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest
from SyntheticImagingModule.logic import CaseNodes, SyntheticImagingLogic
from SyntheticImagingModule.parameters import SyntheticImagingParameterNode
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


class SyntheticImagingTest(ScriptedLoadableModuleTest):
    """Self-test: node conversions, result tables, background jobs and reader-study scoring. It needs no GPU, no
    network and no trained model."""

    def setUp(self):
        """A clean scene for each test."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run every test."""
        for test in (self.test_CaseNodesRoundTrip, self.test_ResultsToTables, self.test_BackgroundJob,
                     self.test_ReaderStudyScore):
            self.setUp()
            test()

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
        report = {"checks": {"utility": {"summary": {"dice": 0.6}, "tables": {"dice_by_regime": [
            {"regime": "real", "dice_mean": 0.6, "dice_ci_low": 0.5, "dice_ci_high": 0.7}]}}}}
        logic = SyntheticImagingLogic()
        tables = logic.resultsToTables(report)
        self.assertEqual(tables["utility dice_by_regime"].GetNumberOfRows(), 1)
        self.assertEqual(len(logic.resultsToPlots(tables)), 1)
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
