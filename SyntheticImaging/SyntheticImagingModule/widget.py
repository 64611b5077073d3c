"""The module panel: built from ``Resources/UI/SyntheticImaging.ui``, bound to the parameter node with
``connectGui``. Nothing slow runs on the GUI thread: training, synthesis, checks and DICOM export run the
library's CLI in a background process (:mod:`.jobs`); reading, checking, resampling and writing files run in a
worker thread (:mod:`.thread_jobs`); both report progress to the panel's progress bar and stop on Cancel. Only
creating scene nodes from what a job read happens on the GUI thread, when the job is done.

The logic is passed in (as SlicerNNUnet does), so tests give the panel a logic of their own.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES
from SyntheticImagingLib.registry import GENERATORS
from SyntheticImagingLib.tasks import get_task

from . import views
from .install import InstallLogic
from .jobs import JobEvent, JobOutcome, format_duration, format_status
from .logic import CaseNodes, SyntheticImagingLogic
from .nodes import stamp
from .panel_checks import ChecksPanel
from .panel_data import DataPanel
from .panel_export import ExportPanel
from .panel_generate import GeneratePanel
from .panel_reader_study import ReaderStudyPanel
from .parameters import SyntheticImagingParameterNode, isSet
from .reader_study import REAL, SYNTHETIC, ReaderStudy
from .runner import PROCESS, JobRunner, RunningJob
from .thread_jobs import ThreadJob

__all__ = ["SyntheticImagingWidget"]

#: Sub-modules reloaded by the developer "Reload" button, dependencies first.
_SUBMODULES = ("jobs", "thread_jobs", "runner", "results", "reader_study", "install", "parameters", "nodes",
               "result_nodes", "jobs_logic", "logic", "views", "panel_data", "panel_generate", "panel_checks",
               "panel_export", "panel_reader_study", "widget")


class SyntheticImagingWidget(DataPanel, GeneratePanel, ChecksPanel, ExportPanel, ReaderStudyPanel,
                             ScriptedLoadableModuleWidget, VTKObservationMixin):
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
            with slicer.util.tryWithErrorDisplay(_("Showing the result failed."), waitCursor=True):
                running.onSuccess(outcome)

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
