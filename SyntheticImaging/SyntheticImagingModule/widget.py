"""The module panel: built from ``Resources/UI/SyntheticImaging.ui``, bound to the parameter node with
``connectGui``. Nothing slow runs on the GUI thread: training, synthesis, checks and DICOM export run the
library's CLI in a background process (:mod:`.jobs`); reading, checking, resampling and writing files run in a
worker thread (:mod:`.thread_jobs`); both report progress to the panel's progress bar and stop on Cancel. Only
creating scene nodes from what a job read happens on the GUI thread, when the job is done.

The logic is passed in (as SlicerNNUnet does), so tests give the panel a logic of their own.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from SyntheticImagingLib.errors import SyntheticImagingError
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES
from SyntheticImagingLib.registry import GENERATORS
from SyntheticImagingLib.tasks import get_task

from . import views
from .install import InstallLogic
from .jobs import JobEvent, JobOutcome, format_duration, format_status
from .logic import CaseNodes, SyntheticImagingLogic
from .nodes import stamp
from .parameters import SyntheticImagingParameterNode, isSet
from .reader_study import REAL, SYNTHETIC, ReaderStudy, readerStudyCase
from .runner import JobRunner, RunningJob
from .thread_jobs import Report, ThreadJob, caseProgress

__all__ = ["SyntheticImagingWidget"]

#: Sub-modules reloaded by the developer "Reload" button, dependencies first.
_SUBMODULES = ("jobs", "thread_jobs", "runner", "results", "reader_study", "install", "parameters", "nodes",
               "result_nodes", "jobs_logic", "logic", "views", "widget")
#: Job lanes (see :mod:`.runner`): CLI processes; file work the user waits for; loading cases to show.
PROCESS, FILES, VIEW = "process", "files", "view"


class SyntheticImagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panel of the SyntheticImaging module: Data, Generator, Synthesize, Checks, Export, Reader study."""

    def __init__(self, parent: Any = None, *, logic: SyntheticImagingLogic | None = None,
                 installLogic: InstallLogic | None = None) -> None:
        """
        Args:
            parent: the module panel's widget (Slicer passes it).
            logic: the module logic (default: a new :class:`SyntheticImagingLogic` at setup).
            installLogic: checks and installs dependencies before a job (default: :class:`InstallLogic`).
        """
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: SyntheticImagingLogic | None = logic
        self._parameterNode: SyntheticImagingParameterNode | None = None
        self._parameterNodeGuiTag = None
        self._installLogic: InstallLogic | None = installLogic
        self.jobs = JobRunner(onEvent=self._onJobEvent, onFinished=self._onJobFinished)
        self._jobTimer: qt.QTimer | None = None
        self._jobStage = ""
        self._lastJob: Any = None
        self._describeJob: ThreadJob | None = None
        self._shownCase: CaseNodes | None = None
        self._compareCases: list[CaseNodes] = []
        self._adherenceCase: CaseNodes | None = None
        self._readerStudy: ReaderStudy | None = None
        self._readerCase: CaseNodes | None = None
        self._readerReference: Any = None
        self._readerTrialStart = 0.0
        self._describedDataset: Path | None = None

    # -- set-up (template order) -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Build the panel from the .ui file and connect it."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SyntheticImaging.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = self.logic or SyntheticImagingLogic()
        self._installLogic = self._installLogic or InstallLogic(log=self._appendLog)
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(100)
        self._jobTimer.connect("timeout()", self._pollJobs)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.generatorFamilyComboBox.setEditable(True)
        self.ui.generatorFamilyComboBox.addItems(GENERATORS.names())  # names only: no torch import
        self.ui.subtypesComboBox.addItems(list(HEMORRHAGE_SUBTYPES))
        self.ui.progressBar.setRange(0, 1000)

        self.ui.datasetPathLineEdit.connect("currentPathChanged(QString)", self.onDatasetChanged)
        self.ui.checkDatasetButton.connect("clicked(bool)", self.onCheckDataset)
        self.ui.addSceneCaseButton.connect("clicked(bool)", self.onAddSceneCase)
        self.ui.clearSceneCasesButton.connect("clicked(bool)", self.onClearSceneCases)
        self.ui.writeSceneDatasetButton.connect("clicked(bool)", self.onWriteSceneDataset)
        self.ui.generatorFamilyComboBox.connect("currentTextChanged(QString)", self.onFamilyChanged)
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onCheckpointChanged)
        self.ui.trainButton.connect("clicked(bool)", self.onTrain)
        self.ui.subtypesComboBox.connect("checkedIndexesChanged()", self.onSubtypesChanged)
        self.ui.synthesizeButton.connect("clicked(bool)", self.onSynthesize)
        self.ui.syntheticDatasetPathLineEdit.connect("currentPathChanged(QString)", self.onSyntheticDatasetChanged)
        self.ui.showSyntheticCaseButton.connect("clicked(bool)", self.onShowSyntheticCase)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluate)
        self.ui.showResultsButton.connect("clicked(bool)", self.onShowResults)
        self.ui.openReportButton.connect("clicked(bool)", self.onOpenReport)
        self.ui.compareButton.connect("clicked(bool)", self.onCompare)
        self.ui.showPredictionButton.connect("clicked(bool)", self.onShowAdherenceCase)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.exportFilesButton.connect("clicked(bool)", self.onExportFiles)
        self.ui.startReaderStudyButton.connect("clicked(bool)", self.onStartReaderStudy)
        self.ui.answerRealButton.connect("clicked(bool)", lambda *_args: self.onReaderAnswer(REAL))
        self.ui.answerSyntheticButton.connect("clicked(bool)", lambda *_args: self.onReaderAnswer(SYNTHETIC))
        self.ui.finishReaderStudyButton.connect("clicked(bool)", self.onFinishReaderStudy)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelJob)
        self.ui.openLogButton.connect("clicked(bool)", self.onOpenLog)

        self.initializeParameterNode()
        self._updateReaderButtons()
        self._setJobRunning()

    def cleanup(self) -> None:
        """Called when the application closes: stop a running job (and its children) and drop observers."""
        self.jobs.cancelAll()
        if self._describeJob is not None:
            self._describeJob.cancel()
        if self._jobTimer is not None:
            self._jobTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller: Any, event: Any) -> None:
        """The scene is about to close: forget its nodes."""
        self.setParameterNode(None)
        self._shownCase, self._compareCases, self._readerCase = None, [], None
        self._adherenceCase = None
        self._readerStudy = None

    def onSceneEndClose(self, caller: Any, event: Any) -> None:
        """The scene closed: a fresh parameter node if the module is shown."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Use the scene's parameter node (created on first use) and fill in defaults."""
        self.setParameterNode(self.logic.getParameterNode())
        if not isSet(self._parameterNode.outputDirectory):
            documents = qt.QStandardPaths.writableLocation(qt.QStandardPaths.DocumentsLocation)
            self._parameterNode.outputDirectory = Path(documents) / "SyntheticImaging"

    def setParameterNode(self, inputParameterNode: SyntheticImagingParameterNode | None) -> None:
        """Bind the panel to a parameter node (and unbind the previous one)."""
        if self._parameterNode:
            if self._parameterNodeGuiTag is not None:  # exit() already disconnected it
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified):
                self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._loadManualWidgets()
            self._onParameterNodeModified()

    def _loadManualWidgets(self) -> None:
        # widgets without a parameter connector: family, subtypes
        p = self._parameterNode
        combo = self.ui.generatorFamilyComboBox
        if combo.findText(p.generatorFamily) < 0:
            combo.addItem(p.generatorFamily)
        combo.setCurrentText(p.generatorFamily)
        wanted = {s.strip() for s in p.subtypes.split(",") if s.strip()}
        model = self.ui.subtypesComboBox.checkableModel()
        wasBlocked = self.ui.subtypesComboBox.blockSignals(True)  # not back into the parameter one by one
        for row in range(model.rowCount()):
            index = model.index(row, 0)
            state = qt.Qt.Checked if self.ui.subtypesComboBox.itemText(row) in wanted else qt.Qt.Unchecked
            self.ui.subtypesComboBox.setCheckState(index, state)
        self.ui.subtypesComboBox.blockSignals(wasBlocked)
        self._updateSceneCaseList()
        self.onDatasetChanged()
        self.onSyntheticDatasetChanged()
        self.onCheckpointChanged()

    def _onParameterNodeModified(self, caller: Any = None, event: Any = None) -> None:
        p = self._parameterNode
        if p is None:
            return
        isCT = get_task(p.task).lesion_kind.value == "hemorrhage"
        self.ui.subtypesComboBox.setEnabled(isCT)
        self.ui.subtypesLabel.setEnabled(isCT)
        self._setJobRunning()

    def onReload(self) -> None:
        """Developer reload: also reload the package's sub-modules (the base class reloads the module file only)."""
        for name in _SUBMODULES:
            module = sys.modules.get(f"SyntheticImagingModule.{name}")
            if module is not None:
                importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _workDir(self) -> Path:
        return Path(self._parameterNode.outputDirectory)

    def _runDir(self, kind: str) -> Path:
        """A new dated folder for one run (the CLI wants its output folder new or empty)."""
        return self._workDir() / f"{kind}-{stamp()}"

    def _require(self, path: Path, what: str) -> Path | None:
        if not isSet(path) or not Path(path).exists():
            self._error(_("Select {what} first.").format(what=what))
            return None
        return Path(path)

    def _appendLog(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def _setJobRunning(self) -> None:
        """Buttons follow the running jobs: one CLI job at a time, Cancel while anything runs."""
        busy = self.jobs.busy(PROCESS)
        for button in (self.ui.trainButton, self.ui.synthesizeButton, self.ui.evaluateButton,
                       self.ui.exportDicomButton):
            button.setEnabled(not busy)
        self.ui.cancelButton.setEnabled(self.jobs.anyRunning)
        log = getattr(self._lastJob, "log_path", None)
        self.ui.openLogButton.setEnabled(log is not None)

    def _error(self, text: str, detail: str = "") -> None:
        """A message box, and the same text in the panel's log."""
        self._appendLog(f"ERROR: {text}")
        slicer.util.errorDisplay(text, detailedText=detail or None)

    # -- jobs ------------------------------------------------------------------------------------------------
    def _ensureDependencies(self) -> bool:
        try:
            self._installLogic.ensureDependencies()
        except Exception as err:  # declined, failed, or restart needed: say so and stop
            self._error(_("Dependencies are not ready: {error}").format(error=err))
            return False
        return True

    def _runJob(self, lane: str, job: Any, onSuccess: Any = None) -> bool:
        """Start ``job`` in ``lane``; ``onSuccess(outcome)`` runs on the GUI thread when it succeeded."""
        if self.jobs.busy(lane):
            self._error(_("{name} is still running; wait for it or cancel it.").format(name=self.jobs.job(lane).name))
            return False
        try:
            self.jobs.start(lane, job, onSuccess)
        except (OSError, RuntimeError) as err:
            self._error(_("Could not start {name}: {error}").format(name=job.name, error=err))
            return False
        self._lastJob = job
        self._jobStage = ""
        self.ui.statusLabel.setText(_("{name}: starting...").format(name=job.name))
        self.ui.progressBar.setRange(0, 0)  # busy until the first progress line
        self._setJobRunning()
        self._jobTimer.start()
        return True

    def _startJob(self, command: str, options: dict[str, Any], onSuccess: Any = None) -> None:
        """Start one CLI call in the background process lane."""
        if self.jobs.busy(PROCESS):
            self._error(_("{name} is still running; wait for it or cancel it.").format(
                name=self.jobs.job(PROCESS).name))
            return
        if not self._ensureDependencies():
            return
        try:
            job = self.logic.cliJob(command, options, logDir=self._workDir() / "logs")
        except (OSError, RuntimeError) as err:  # e.g. PythonSlicer not found beside Slicer
            self._error(_("Could not start {command}: {error}").format(command=command, error=err))
            return
        self.ui.logTextEdit.clear()
        self._appendLog(" ".join(job.args))
        self._runJob(PROCESS, job, onSuccess)

    def _startWork(self, lane: str, name: str, work: Any, onSuccess: Any = None) -> bool:
        """Run ``work(report)`` (files only, never the scene) in a worker thread."""
        return self._runJob(lane, ThreadJob(work, name=name), onSuccess)

    def _pollJobs(self) -> None:
        if self._describeJob is not None and not self._describeJob.poll():
            self._describeFinished(self._describeJob)
            self._describeJob = None
        if not self.jobs.poll() and self._describeJob is None:
            self._jobTimer.stop()

    def _onJobEvent(self, running: RunningJob, event: JobEvent) -> None:
        if event.kind == "progress":
            fraction = event.fraction
            if fraction is None:
                self.ui.progressBar.setRange(0, 0)
            else:
                self.ui.progressBar.setRange(0, 1000)
                self.ui.progressBar.setValue(int(1000 * fraction))
            self.ui.statusLabel.setText(format_status(event))
            if event.stage != self._jobStage:  # one log line per stage, not per step
                self._jobStage = event.stage
                self._appendLog(format_status(event))
        elif event.kind == "error":
            self._appendLog(f"ERROR: {event.message}")
        elif event.kind == "result":
            self._appendLog(f"Result: {dict(event.payload)}")
        elif event.message.strip():
            self._appendLog(event.message)

    def _onJobFinished(self, running: RunningJob, outcome: JobOutcome) -> None:
        job = running.job
        self._setJobRunning()
        self.ui.progressBar.setRange(0, 1000)
        elapsed = format_duration(job.elapsed_s)
        if outcome.status == "cancelled":
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.setText(_("{name}: cancelled after {elapsed}").format(name=job.name, elapsed=elapsed))
            return
        if outcome.status == "failed":
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.setText(_("{name}: failed after {elapsed}").format(name=job.name, elapsed=elapsed))
            where = _("\n\nThe full log is in {log}").format(log=outcome.log_path) if outcome.log_path else ""
            self._error(_("{name} failed: {message}").format(name=job.name, message=outcome.message) + where,
                        "\n".join(list(job.log)[-60:]))
            return
        self.ui.progressBar.setValue(1000)
        self.ui.statusLabel.setText(_("{name}: done in {elapsed}").format(name=job.name, elapsed=elapsed))
        if running.onSuccess is not None:
            onSuccess, running.onSuccess = running.onSuccess, None  # the runner must not call it again
            with slicer.util.tryWithErrorDisplay(_("Showing the result failed."), waitCursor=True):
                onSuccess(outcome)

    def onCancelJob(self) -> None:
        """Stop the latest running job: a CLI process is asked to stop (it saves its last checkpoint) and its
        whole process tree is killed if it still runs after 15 s; a worker thread stops at its next step."""
        job = self.jobs.cancel(grace_s=15.0)
        if job is not None:
            self.ui.statusLabel.setText(_("{name}: cancelling...").format(name=job.name))

    def onOpenLog(self) -> None:
        """Open the last job's log file."""
        log = getattr(self._lastJob, "log_path", None)
        if log is not None and log.exists():
            views.openPath(log)

    # -- Data ------------------------------------------------------------------------------------------------
    def _pathArgument(self, args: tuple[Any, ...], parameter: str) -> Path | None:
        # a path widget's signal carries the new path; it can come before connectGui updated the parameter
        if args and isinstance(args[0], str):
            return Path(args[0])
        return getattr(self._parameterNode, parameter) if self._parameterNode else None

    def onDatasetChanged(self, *args: Any) -> None:
        """Describe the selected dataset (its first case is read for the geometry) in a worker thread."""
        path = self._pathArgument(args, "datasetPath")
        if not isSet(path) or not Path(path).exists():
            self._describedDataset = None
            self.ui.datasetInfoLabel.setText(_("Pick a dataset folder, or add cases from the scene below."))
            return
        if path == self._describedDataset:
            return  # already shown (entering the module again must not re-read a volume)
        self._describedDataset = path
        if self._describeJob is not None:
            self._describeJob.cancel()  # its answer is for another folder: dropped in _describeFinished
        self.ui.datasetInfoLabel.setText(_("Reading {path}...").format(path=path))
        self._describeJob = ThreadJob(lambda report: (path, self.logic.describeDataset(path)), name="describe data")
        self._describeJob.start()
        self._jobTimer.start()

    def _describeFinished(self, job: ThreadJob) -> None:
        outcome = job.outcome()
        if outcome.status == "cancelled":
            return
        if outcome.status == "failed":
            self.ui.datasetInfoLabel.setText(_("Not usable: {error}").format(error=outcome.message))
            return
        path, info = outcome.result["value"]
        if path != self._describedDataset:
            return
        spacing = " x ".join(f"{s:g}" for s in info.get("spacing", []))
        shape = " x ".join(str(s) for s in info.get("shape_zyx", [])[::-1])
        self.ui.datasetInfoLabel.setText(
            _("{cases} cases ({labelled} labelled), {modality}, channels {channels}; first case {shape} voxels "
              "of {spacing} mm. Use 'Check all cases' to verify every case's geometry.").format(
                cases=info.get("cases"), labelled=info.get("labelled", "?"), modality=info.get("modality", "?"),
                channels=", ".join(info.get("channels", [])), shape=shape, spacing=spacing))

    def onCheckDataset(self) -> None:
        """Load every case of the dataset (worker thread, progress, Cancel) and list geometry and label problems."""
        path = self._require(self._parameterNode.datasetPath, _("a dataset folder"))
        if path is None:
            return

        def work(report: Report) -> tuple[int, list[str]]:
            total = len(load_dataset(path))
            problems = self.logic.datasetProblems(
                path, lambda done, count, caseId: report(done, count, _("checking {case}").format(case=caseId)))
            return total, problems

        def done(outcome: JobOutcome) -> None:
            total, problems = outcome.result["value"]
            if problems:
                slicer.util.warningDisplay(_("{n} problem(s) found:").format(n=len(problems)),
                                           detailedText="\n\n".join(problems))
            else:
                slicer.util.infoDisplay(
                    _("All {n} cases load, with channels and labels on one grid.").format(n=total))

        self._startWork(FILES, _("check data"), work, done)

    def _sceneCaseGroups(self) -> list[tuple[list[Any], Any]]:
        p = self._parameterNode
        volumes, groups, start = list(p.sceneCaseVolumes), [], 0
        for count, segmentation in zip(p.sceneCaseChannelCounts, p.sceneCaseSegmentations):
            groups.append((volumes[start:start + count], segmentation))
            start += count
        return groups

    def _updateSceneCaseList(self) -> None:
        self.ui.sceneCasesListWidget.clear()
        for i, (volumes, segmentation) in enumerate(self._sceneCaseGroups()):
            names = ", ".join(v.GetName() if v else "(deleted)" for v in volumes)
            label = segmentation.GetName() if segmentation else "(deleted)"
            self.ui.sceneCasesListWidget.addItem(f"{i + 1}: {names}; label {label}")

    def onAddSceneCase(self) -> None:
        """Add the checked volumes and the segmentation as one case, after checking they share one grid."""
        volumes = list(self.ui.sceneVolumesComboBox.checkedNodes())
        segmentation = self.ui.sceneSegmentationComboBox.currentNode()
        if not volumes or segmentation is None:
            self._error(_("Check the case's channel volumes and pick its segmentation."))
            return
        channels = get_task(self._parameterNode.task).channels
        # channel order: by name when every channel name appears in exactly one node name, else as listed
        byName = [[v for v in volumes if c.lower() in v.GetName().lower()] for c in channels]
        if len(volumes) == len(channels) and all(len(m) == 1 for m in byName):
            volumes = [m[0] for m in byName]
        problems = self.logic.nodesGeometryProblems(volumes, segmentation)
        if problems:
            self._error(_("These nodes do not form one case:"), "\n".join(problems))
            return
        p = self._parameterNode
        p.sceneCaseVolumes = [*p.sceneCaseVolumes, *volumes]
        p.sceneCaseChannelCounts = [*p.sceneCaseChannelCounts, len(volumes)]
        p.sceneCaseSegmentations = [*p.sceneCaseSegmentations, segmentation]
        self._updateSceneCaseList()

    def onClearSceneCases(self) -> None:
        """Empty the list of scene cases."""
        p = self._parameterNode
        p.sceneCaseVolumes, p.sceneCaseChannelCounts, p.sceneCaseSegmentations = [], [], []
        self._updateSceneCaseList()

    def onWriteSceneDataset(self) -> None:
        """Write the scene cases as a dataset folder (worker thread) and use it as the real cases. The arrays are
        copied out of the nodes first, on the GUI thread that owns the scene."""
        groups = self._sceneCaseGroups()
        if not groups:
            self._error(_("Add cases from the scene first."))
            return
        p = self._parameterNode
        try:
            cases = self.logic.casesFromInput(groups, task=p.task)
        except (SyntheticImagingError, ValueError) as err:
            self._error(_("The scene cases cannot be written: {error}").format(error=err))
            return
        out = self._runDir("scene-cases")

        def work(report: Report) -> Path:
            return self.logic.writeDataset(cases, out, task=p.task, progress=caseProgress(report, len(cases)))

        def done(outcome: JobOutcome) -> None:
            p.datasetPath = outcome.result["value"]

        self._startWork(FILES, _("write scene cases"), work, done)

    # -- Generator -------------------------------------------------------------------------------------------
    def onFamilyChanged(self, text: str) -> None:
        """Keep the typed or picked family in the parameter node."""
        if self._parameterNode is not None and text:
            self._parameterNode.generatorFamily = text

    def onCheckpointChanged(self, *args: Any) -> None:
        """Describe the selected checkpoint from its model card."""
        path = self._pathArgument(args, "checkpointPath")
        if not isSet(path):
            self.ui.generatorInfoLabel.setText("")
            return
        card = Path(path) / "model_card.json"
        if not card.exists():
            self.ui.generatorInfoLabel.setText(_("No model_card.json: not a complete generator folder."))
            return
        try:
            info = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            self.ui.generatorInfoLabel.setText(_("Unreadable model card: {error}").format(error=err))
            return
        training = info.get("training", {})
        steps = training.get("steps", training.get("step", "?"))
        self.ui.generatorInfoLabel.setText(_("{family} (version {version}) for {task}, trained {steps} steps, saved "
                                             "{saved}").format(family=info.get("family"),
                                                               version=info.get("family_version"),
                                                               task=info.get("task"), steps=steps,
                                                               saved=info.get("saved", "?")))

    def onTrain(self) -> None:
        """Train the selected family on the real cases, in the background."""
        p = self._parameterNode
        data = self._require(p.datasetPath, _("the real cases (Data)"))
        if data is None:
            return
        out = Path(p.checkpointPath) if p.resume and isSet(p.checkpointPath) else self._runDir(
            f"generator-{p.generatorFamily}")
        options = {"data": data, "task": p.task, "generator": p.generatorFamily, "out": out, "steps": p.trainSteps,
                   "batch_size": p.batchSize, "device": p.device, "resume": p.resume}

        def done(outcome: Any) -> None:
            p.checkpointPath = out
            p.useCheckpoint = True

        self._startJob("train", options, done)

    # -- Synthesize ------------------------------------------------------------------------------------------
    def onSubtypesChanged(self) -> None:
        """Keep the checked hemorrhage subtypes in the parameter node."""
        if self._parameterNode is not None:
            checked = [index.data() for index in self.ui.subtypesComboBox.checkedIndexes()]
            self._parameterNode.subtypes = ",".join(checked)

    def onSynthesize(self) -> None:
        """Synthesize cases in the background; show the first one when done."""
        p = self._parameterNode
        useCheckpoint = p.useCheckpoint and isSet(p.checkpointPath)
        data = Path(p.datasetPath) if isSet(p.datasetPath) else None
        if not useCheckpoint and data is None:
            self._error(_("Pick a trained checkpoint, or real cases for the family to start from."))
            return
        isCT = get_task(p.task).lesion_kind.value == "hemorrhage"
        subtypes = [s for s in p.subtypes.split(",") if s] if isCT else None
        try:
            lesion = self.logic.lesionOptions(lesionVolumeMl=(p.lesionVolumeMl.minimum, p.lesionVolumeMl.maximum),
                                              lesionCount=p.lesionCount, location=p.lesionLocation,
                                              subtypes=subtypes)
        except SyntheticImagingError as err:
            self._error(str(err))
            return
        out = self._runDir("synthetic")
        options = {"generator": Path(p.checkpointPath) if useCheckpoint else p.generatorFamily, "data": data,
                   "task": p.task, "n": p.numberOfCases, "seed": p.seed, "out": out, "label_format": "seg.nrrd",
                   "device": p.device, **lesion}

        def done(outcome: Any) -> None:
            p.syntheticDataset = out
            self.onSyntheticDatasetChanged()
            self.onShowSyntheticCase()

        self._startJob("synthesize", options, done)

    def onSyntheticDatasetChanged(self, *args: Any) -> None:
        """List the synthetic set's cases."""
        combo = self.ui.syntheticCaseComboBox
        combo.clear()
        path = self._pathArgument(args, "syntheticDataset")
        if isSet(path) and Path(path).exists():
            try:
                combo.addItems(load_dataset(path).case_ids)
            except (SyntheticImagingError, OSError, ValueError) as err:
                self._appendLog(f"Synthetic set not readable: {err}")

    def onShowSyntheticCase(self) -> None:
        """Show the selected synthetic case: read in a worker thread, then the slice views with the segmentation
        and the surfaces in 3D."""
        caseId = self.ui.syntheticCaseComboBox.currentText
        path = self._require(self._parameterNode.syntheticDataset, _("a synthetic set"))
        if path is None or not caseId:
            return

        def done(outcome: JobOutcome) -> None:
            self.logic.removeCaseNodes(self._shownCase)
            self._shownCase = None
            self._shownCase = self.logic.caseToNodes(outcome.result["value"])
            views.showCase(self._shownCase)

        self._startWork(VIEW, _("load {case}").format(case=caseId),
                        lambda report: self.logic.readDatasetCase(path, caseId), done)

    # -- Checks ----------------------------------------------------------------------------------------------
    def onEvaluate(self) -> None:
        """Run the selected checks in the background; show the tables and plots when done."""
        p = self._parameterNode
        checks = [name for name, on in (("utility", p.checkUtility), ("adherence", p.checkAdherence),
                                        ("fidelity", p.checkFidelity), ("privacy", p.checkPrivacy)) if on]
        if not checks:
            self._error(_("Select at least one check."))
            return
        train = self._require(p.datasetPath, _("the real training cases (Data)"))
        test = train and self._require(p.realTestPath, _("held-out real cases"))
        synthetic = test and self._require(p.syntheticDataset, _("a synthetic set"))
        if not synthetic:
            return
        out = self._runDir("evaluation")
        options = {"real_train": train, "real_test": test, "synthetic": synthetic, "out": out, "checks": checks,
                   "profile": p.profile, "device": p.device}

        def done(outcome: Any) -> None:
            p.evaluationDirectory = out
            self.onShowResults()

        self._startJob("evaluate", options, done)

    def onShowResults(self) -> None:
        """Metric tables as table nodes (adherence per case among them), Dice per regime and DCR histograms as
        plot charts; for a ranking folder (several synthetic sets), the ranking table first."""
        folder = self._require(self._parameterNode.evaluationDirectory, _("an evaluation folder"))
        if folder is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Reading the evaluation failed."), waitCursor=True):
            self.logic.removeResultNodes()
            ranking = (folder / "ranking.csv").exists()
            tables = self.logic.rankingToTables(folder) if ranking else self.logic.resultsToTables(folder)
            # a ranking's charts: those of its best generator (the first row, its report in a sub-folder)
            reports = [folder / str(r.get("generator")) for r in self.logic.tableRows(tables["ranking"])] \
                if ranking else [folder]
            best = next((r for r in reports if (r / "report.json").exists()), None)
            charts = self.logic.resultsToPlots(best) if best is not None else {}
            summary = tables.get("summary")
            lines = [f"{r['check']}: {r['metric']} = {r['value']}" for r in self.logic.tableRows(summary)] \
                if summary is not None else []
            self.ui.resultsSummaryLabel.setText("\n".join(lines[:12]) or _("{n} tables").format(n=len(tables)))
            views.showResults(summary if summary is not None else next(iter(tables.values()), None),
                              next(iter(charts.values()), None))

    def onOpenReport(self) -> None:
        """Open report.html of the evaluation."""
        folder = self._require(self._parameterNode.evaluationDirectory, _("an evaluation folder"))
        if folder is None:
            return
        report = folder / "report.html"
        if not report.exists():
            self._error(_("{path} does not exist.").format(path=report))
            return
        views.openPath(report)

    def onCompare(self) -> None:
        """The selected synthetic case beside its nearest training case (privacy check), slices linked."""
        p = self._parameterNode
        folder = self._require(p.evaluationDirectory, _("an evaluation with the privacy check"))
        if folder is None:
            return
        try:
            roots = self.logic.datasetRoots(folder)  # the folders that were compared, else the panel's
            selected = self.ui.syntheticCaseComboBox.currentText or None
            pair = self.logic.nearestPair(folder, selected) or self.logic.nearestPair(folder)
        except (OSError, ValueError) as err:
            self._error(_("The evaluation cannot be read: {error}").format(error=err))
            return
        if pair is None:
            self._error(_("The evaluation has no closest-record pairs: run the checks with 'privacy' selected."))
            return
        synthetic = roots.get("synthetic") or self._require(p.syntheticDataset, _("the synthetic set"))
        real = synthetic and (roots.get("real_train") or self._require(p.datasetPath, _("the real training cases")))
        if not synthetic or not real:
            return

        def work(report: Report) -> tuple[Any, Any]:
            return (self.logic.readDatasetCase(synthetic, pair.synthetic_id),
                    self.logic.readDatasetCase(real, pair.real_id))

        def done(outcome: JobOutcome) -> None:
            for nodes in self._compareCases:
                self.logic.removeCaseNodes(nodes)
            self._compareCases = []
            leftCase, rightCase = outcome.result["value"]
            left = self.logic.caseToNodes(leftCase, showSurface=False)
            right = self.logic.caseToNodes(rightCase, showSurface=False)
            self._compareCases = [left, right]
            distance = "" if pair.distance is None else f" (distance {pair.distance:.3g})"
            views.showCompare(left, right, f"synthetic {pair.synthetic_id}",
                              f"nearest training case {pair.real_id}{distance}")

        self._startWork(VIEW, _("load closest pair"), work, done)

    def onShowAdherenceCase(self) -> None:
        """The selected synthetic case with its label (filled) and the reference segmenter's prediction (outlined)
        from the label adherence check."""
        p = self._parameterNode
        folder = self._require(p.evaluationDirectory, _("an evaluation with the label adherence check"))
        if folder is None:
            return
        try:
            dataset = self.logic.datasetRoots(folder).get("synthetic") or (
                p.syntheticDataset if isSet(p.syntheticDataset) else None)
            selected = self.ui.syntheticCaseComboBox.currentText
            if selected not in self.logic.adherenceCaseIds(folder):
                selected = None  # a case of another set: show the evaluation's first case
        except (OSError, ValueError) as err:
            self._error(_("The evaluation cannot be read: {error}").format(error=err))
            return

        def done(outcome: JobOutcome) -> None:
            self.logic.removeCaseNodes(self._adherenceCase)
            self._adherenceCase = None
            self._adherenceCase = self.logic.adherenceCaseToNodes(outcome.result["value"])
            views.showAdherenceCase(self._adherenceCase)
            row = self.logic.adherenceRow(folder, self._adherenceCase.caseId) or {}
            if row:
                self.ui.resultsSummaryLabel.setText(_(
                    "{case}: label adherence Dice {dice:.2f} (label filled, segmenter prediction outlined in cyan)"
                    "{reason}").format(case=self._adherenceCase.caseId, dice=float(row.get("dice") or 0.0),
                                       reason=f"\n{row['reason']}" if row.get("reason") else ""))

        self._startWork(VIEW, _("load adherence case"),
                        lambda report: self.logic.readAdherenceCase(folder, selected, dataset=dataset), done)

    # -- Export ----------------------------------------------------------------------------------------------
    def _exportDir(self, kind: str) -> Path:
        base = Path(self._parameterNode.exportDirectory) if isSet(self._parameterNode.exportDirectory) \
            else self._workDir() / "exports"
        return base / f"{kind}-{stamp()}"

    def onExportDicom(self) -> None:
        """Export the synthetic set as DICOM (background), then into Slicer's DICOM database if asked."""
        p = self._parameterNode
        source = self._require(p.syntheticDataset, _("a synthetic set"))
        if source is None:
            return
        out = self._exportDir("dicom")

        def done(outcome: Any) -> None:
            if p.addToDicomDatabase:
                try:
                    files = self.logic.importIntoDicomDatabase(out)
                except RuntimeError as err:
                    self._error(_("DICOM studies written to {path}, but not added to the DICOM database: {error}")
                                .format(path=out, error=err))
                    return
                slicer.util.infoDisplay(_("DICOM studies written to {path} and added to the DICOM database ({n} "
                                          "files).").format(path=out, n=files))
                return
            slicer.util.infoDisplay(_("DICOM studies written to {path}").format(path=out))

        self._startJob("export-dicom", {"input": source, "out": out, "patient_prefix": p.patientPrefix or None}, done)

    def onExportFiles(self) -> None:
        """Write the synthetic set as NIfTI images with NIfTI or .seg.nrrd labels (worker thread)."""
        p = self._parameterNode
        source = self._require(p.syntheticDataset, _("a synthetic set"))
        if source is None:
            return
        out = self._exportDir(f"files-{p.labelFormat.replace('.', '')}")
        labelFormat = p.labelFormat

        def work(report: Report) -> tuple[int, Path]:
            total = len(load_dataset(source))
            path = self.logic.exportFiles(source, out, labelFormat=labelFormat, progress=caseProgress(report, total))
            return total, path

        def done(outcome: JobOutcome) -> None:
            total, path = outcome.result["value"]
            slicer.util.infoDisplay(_("{n} cases written to {path}").format(n=total, path=path))

        self._startWork(FILES, _("export files"), work, done)

    # -- Reader study ----------------------------------------------------------------------------------------
    def _updateReaderButtons(self) -> None:
        running = self._readerStudy is not None and not self._readerStudy.done and not self.jobs.busy(VIEW)
        for widget in (self.ui.answerRealButton, self.ui.answerSyntheticButton, self.ui.readerConfidenceSlider):
            widget.setEnabled(running)
        self.ui.finishReaderStudyButton.setEnabled(self._readerStudy is not None)
        self.ui.startReaderStudyButton.setEnabled(not running)

    def onStartReaderStudy(self) -> None:
        """Start a blinded, randomised real-vs-synthetic sequence (case lists and the first case are read in a
        worker thread)."""
        p = self._parameterNode
        real = self._require(p.datasetPath, _("the real cases (Data)"))
        synthetic = real and self._require(p.syntheticDataset, _("a synthetic set"))
        if not synthetic:
            return
        perClassWanted, seed, reader = p.readerCasesPerClass, p.readerSeed, p.readerName

        def work(report: Report) -> tuple[ReaderStudy, Any, Any]:
            realIds, syntheticIds = load_dataset(real).case_ids, load_dataset(synthetic).case_ids
            perClass = min(perClassWanted, len(realIds), len(syntheticIds))
            study = ReaderStudy(realIds, syntheticIds, per_class=perClass, seed=seed, reader=reader)
            reference = load_dataset(synthetic)[0]  # real cases are shown on the synthetic grid
            return study, reference, self._readerTrialCase(study, reference, real, synthetic)

        def done(outcome: JobOutcome) -> None:
            study, self._readerReference, case = outcome.result["value"]
            self._readerStudy = study
            self.ui.readerStudyResultLabel.setText("")
            self._showReaderTrial(case)

        self._startWork(VIEW, _("start reader study"), work, done)

    @staticmethod
    def _readerTrialCase(study: ReaderStudy, reference: Any, real: Path, synthetic: Path) -> Any:
        # files only: runs in the worker thread
        trial = study.current
        if trial is None:
            return None
        return readerStudyCase(synthetic if trial.source == SYNTHETIC else real, trial.case_id, like=reference)

    def _showReaderTrial(self, case: Any) -> None:
        study = self._readerStudy
        self.logic.removeCaseNodes(self._readerCase)
        self._readerCase = None
        trial = study.current
        self._updateReaderButtons()
        if trial is None or case is None:
            self.ui.readerStudyStatusLabel.setText(_("All cases answered: press 'Finish and save'."))
            return
        # blind: the node is named by the trial only, with no provenance attribute and no label
        self._readerCase = self.logic.caseToNodes(case, name=trial.blinded_id, withLabel=False, provenance=False,
                                                  showSurface=False)
        views.showCase(self._readerCase, show3D=False)
        self.ui.readerStudyStatusLabel.setText(_("{case}: {i} of {n}. Real or synthetic?").format(
            case=trial.blinded_id, i=trial.index + 1, n=len(study.trials)))
        self._readerTrialStart = time.monotonic()

    def onReaderAnswer(self, answer: str) -> None:
        """Record the answer to the shown case and show the next one (read in a worker thread)."""
        study = self._readerStudy
        if study is None or study.done or self.jobs.busy(VIEW):
            return
        study.record(answer, confidence=int(self.ui.readerConfidenceSlider.value),
                     seconds=time.monotonic() - self._readerTrialStart)
        p = self._parameterNode
        real, synthetic, reference = Path(p.datasetPath), Path(p.syntheticDataset), self._readerReference
        self._updateReaderButtons()
        self._startWork(VIEW, _("next reader-study case"),
                        lambda report: self._readerTrialCase(study, reference, real, synthetic),
                        lambda outcome: self._showReaderTrial(outcome.result["value"]))

    def onFinishReaderStudy(self) -> None:
        """Save the answers (CSV, truth revealed) and show accuracy with its Clopper-Pearson interval."""
        study = self._readerStudy
        if study is None or not study.responses:
            self._error(_("No answer recorded yet."))
            return
        with slicer.util.tryWithErrorDisplay(_("Saving the reader study failed."), waitCursor=True):
            reader = "".join(c for c in (study.reader or "reader") if c.isalnum() or c in "-_") or "reader"
            path = study.write_csv(self._workDir() / f"reader-study-{reader}-{stamp()}.csv")
            score = study.score()
            table = self.logic.tableFromRows(f"SyntheticImaging reader study {reader}", score.rows())
            self.logic.tableFromRows(f"SyntheticImaging reader study {reader} answers", study.rows())
            self.logic.removeCaseNodes(self._readerCase)
            self._readerCase, self._readerStudy = None, None
            self.ui.readerStudyStatusLabel.setText("")
            self.ui.readerStudyResultLabel.setText(f"{score.verdict()}\n{path}")
            views.showResults(table, None)
        self._updateReaderButtons()
