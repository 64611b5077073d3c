"""Every click path of the module panel, as a user takes it, on the bundled sample data, in the Slicer-runtime
harness (``runtime/``): shared by ``test_panel_click_paths.py`` (which asserts the outcomes) and
``Testing/benchmarks/bench_panel_handlers.py`` (which reports each handler's main-thread time).

Clicks go through the widgets (``button.click()`` emits the signal the panel connected); jobs run for real
(CLI processes and worker threads) and the panel's QTimer is fired until they end, as Slicer's event loop would.
Each click's main-thread time is recorded, and so is the longest timer round while its job ran (the
completion step: nodes made from what the job read).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "Resources" / "SampleData" / "brats2018_2mm"

__all__ = ["PanelScenario", "HandlerTiming", "SAMPLE"]


@dataclasses.dataclass
class HandlerTiming:
    """Main-thread seconds of one click and of its job's completion step (0 without a job)."""

    handler: str
    click_s: float
    completion_s: float = 0.0
    job: str = ""
    job_s: float = 0.0


class PanelScenario:
    """Drives the real panel in a harness runtime ``rt`` (see ``runtime.slicer_runtime``)."""

    def __init__(self, rt: Any, work: Path) -> None:
        self.rt = rt
        self.work = Path(work)
        self.widget = rt.make_module_widget()
        self.ui = self.widget.ui
        self.p = self.widget._parameterNode
        self.timings: list[HandlerTiming] = []
        self.p.outputDirectory = self.work / "runs"
        self.wait()  # the output folder change has no job; a describe job may run after set-up

    # -- driving ----------------------------------------------------------------------------------------------
    def busy(self) -> bool:
        """A job of the panel runs (CLI, thread, or the dataset description)."""
        return self.widget.jobs.anyRunning or self.widget._describeJob is not None

    def wait(self, timeout: float = 900.0) -> float:
        """Fire the panel's timer until no job runs; returns the longest timer round (main-thread seconds)."""
        deadline = time.monotonic() + timeout
        longest = 0.0
        while self.busy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout} s: {self.widget.jobs._running}")
            start = time.perf_counter()
            self.rt.process_timers()
            longest = max(longest, time.perf_counter() - start)
            time.sleep(0.02)
        return longest

    def click(self, handler: str, action: Callable[[], Any], *, wait: bool = True) -> HandlerTiming:
        """Run ``action`` (a click or an edit), record its main-thread time and, with ``wait``, its job's."""
        before = self.widget._lastJob
        start = time.perf_counter()
        action()
        timing = HandlerTiming(handler, time.perf_counter() - start)
        job = self.widget._lastJob if self.widget._lastJob is not before else self.widget._describeJob
        if wait and self.busy():
            jobStart = time.monotonic()
            timing.completion_s = self.wait()
            timing.job_s = time.monotonic() - jobStart
            timing.job = getattr(job, "name", "") if job is not None else ""
        self.timings.append(timing)
        return timing

    def button(self, name: str) -> Callable[[], Any]:
        """The click on a button of the .ui."""
        return getattr(self.ui, name).click

    # -- the sections -------------------------------------------------------------------------------------------
    def loadSampleCases(self, caseIds: list[str]) -> list[tuple[list[Any], Any]]:
        """Load sample cases as a user does (File > Add Data): FLAIR, T1 and the label as a segmentation."""
        import slicer

        loaded = []
        for caseId in caseIds:
            folder = SAMPLE / caseId
            flair = slicer.util.loadVolume(str(folder / "FLAIR.nii.gz"), {"name": f"{caseId} FLAIR"})
            t1 = slicer.util.loadVolume(str(folder / "T1.nii.gz"), {"name": f"{caseId} T1"})
            segmentation = slicer.util.loadSegmentation(str(folder / "label.nii.gz"), {"name": f"{caseId} label"})
            loaded.append(([flair, t1], segmentation))
        return loaded

    def addSceneCases(self, loaded: list[tuple[list[Any], Any]]) -> None:
        """Data > Scene cases: check the channel volumes, pick the segmentation, Add; then write the dataset."""
        import qt

        for volumes, segmentation in loaded:
            combo = self.ui.sceneVolumesComboBox
            for node in combo.checkedNodes():
                combo.setCheckState(node, qt.Qt.Unchecked)
            for node in volumes:
                combo.setCheckState(node, qt.Qt.Checked)
            self.ui.sceneSegmentationComboBox.setCurrentNode(segmentation)
            self.click("onAddSceneCase", self.button("addSceneCaseButton"))
        self.click("onWriteSceneDataset", self.button("writeSceneDatasetButton"))

    def setPath(self, handler: str, lineEdit: str, path: Path) -> HandlerTiming:
        """Type a path into a path line edit (its change signal starts what the panel does with it)."""
        widget = getattr(self.ui, lineEdit)
        return self.click(handler, lambda: setattr(widget, "currentPath", str(path)))

    def train(self, family: str = "label-to-image", steps: int = 2) -> HandlerTiming:
        """Generator: pick the family, set the steps, Train (a CLI process); the checkpoint becomes the panel's."""
        self.ui.generatorFamilyComboBox.select(family)
        self.ui.trainStepsSpinBox.value = steps
        self.ui.deviceComboBox.select("cpu")
        return self.click("onTrain", self.button("trainButton"))

    def synthesize(self, n: int = 2, seed: int = 0) -> HandlerTiming:
        """Synthesize n cases from the trained generator (CLI process); the first is shown when done."""
        self.ui.numberOfCasesSpinBox.value = n
        self.ui.seedSpinBox.value = seed
        self.ui.lesionVolumeRangeWidget.setValues(5.0, 20.0)
        return self.click("onSynthesize", self.button("synthesizeButton"))

    def showSyntheticCase(self, caseId: str) -> HandlerTiming:
        """Pick a synthetic case, Show (read in a thread, nodes made on the main thread)."""
        self.ui.syntheticCaseComboBox.select(caseId)
        return self.click("onShowSyntheticCase", self.button("showSyntheticCaseButton"))

    def evaluate(self, realTest: Path, checks: tuple[str, ...]) -> HandlerTiming:
        """Checks: held-out real cases, the checks to run, Run (a CLI process); results shown when done."""
        self.setPath("onRealTestPathChanged", "realTestPathLineEdit", realTest)
        for name in ("utility", "adherence", "fidelity", "privacy"):
            getattr(self.ui, f"check{name.capitalize()}CheckBox").checked = name in checks
        self.ui.profileComboBox.select("quick")
        return self.click("onEvaluate", self.button("evaluateButton"))

    def readerStudy(self, answers: int) -> None:
        """Reader study: Start, answer ``answers`` cases (alternating), Finish and save."""
        self.ui.readerNameLineEdit.text = "Dr Test"
        self.ui.readerCasesPerClassSpinBox.value = 2
        self.click("onStartReaderStudy", self.button("startReaderStudyButton"))
        for i in range(answers):
            self.click("onReaderAnswer", self.button("answerRealButton" if i % 2 else "answerSyntheticButton"))
        self.click("onFinishReaderStudy", self.button("finishReaderStudyButton"))

    def table(self) -> list[tuple[str, float, float, str]]:
        """(handler, median click s, max completion s, job) per handler, in first-click order."""
        import statistics

        rows: dict[str, list[HandlerTiming]] = {}
        for t in self.timings:
            rows.setdefault(t.handler, []).append(t)
        return [(h, statistics.median(t.click_s for t in ts), max(t.completion_s for t in ts),
                 next((t.job for t in ts if t.job), "")) for h, ts in rows.items()]
