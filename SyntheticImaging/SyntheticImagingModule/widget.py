"""The module panel: built from ``Resources/UI/SyntheticImaging.ui``, bound to the parameter node with
``connectGui``, running long jobs through the library's CLI in a background process (see :mod:`.jobs`).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
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
from SyntheticImagingLib.tasks import get_task

from . import views
from .install import InstallLogic
from .jobs import BackgroundJob, JobEvent, format_duration, format_status
from .logic import CaseNodes, SyntheticImagingLogic
from .parameters import SyntheticImagingParameterNode, isSet
from .reader_study import REAL, SYNTHETIC, ReaderStudy

__all__ = ["SyntheticImagingWidget"]

#: Families listed before the library can be asked (it imports torch to list them).
_KNOWN_FAMILIES = ("label-to-image", "lesion-insertion", "gan3d", "diffusion")
#: Sub-modules reloaded by the developer "Reload" button, dependencies first.
_SUBMODULES = ("jobs", "results", "reader_study", "install", "parameters", "logic", "views", "widget")


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


class SyntheticImagingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panel of the SyntheticImaging module: Data, Generator, Synthesize, Checks, Export, Reader study."""

    def __init__(self, parent: Any = None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: SyntheticImagingLogic | None = None
        self._parameterNode: SyntheticImagingParameterNode | None = None
        self._parameterNodeGuiTag = None
        self._installLogic: InstallLogic | None = None
        self._job: BackgroundJob | None = None
        self._jobOnSuccess: Any = None
        self._jobTimer: qt.QTimer | None = None
        self._jobStage = ""
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

        self.logic = SyntheticImagingLogic()
        self._installLogic = InstallLogic(log=self._appendLog)
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(100)
        self._jobTimer.connect("timeout()", self._pollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.generatorFamilyComboBox.setEditable(True)
        self.ui.generatorFamilyComboBox.addItems(self._families())
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
        self._setJobRunning(False)

    @staticmethod
    def _families() -> list[str]:
        # The registry imports torch: ask it only once the dependencies are there.
        if importlib.util.find_spec("torch") is not None:
            try:
                from SyntheticImagingLib.generators import available_generators

                return available_generators() or list(_KNOWN_FAMILIES)
            except Exception:  # a broken optional install must not break the panel
                pass
        return list(_KNOWN_FAMILIES)

    def cleanup(self) -> None:
        """Called when the application closes: stop a running job (and its children) and drop observers."""
        if self._job is not None and self._job.running:
            self._job.cancel(grace_s=0)
            self._job.poll()
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
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
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
        self._setJobRunning(self._job is not None and self._job.running)

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
        return self._workDir() / f"{kind}-{_stamp()}"

    def _require(self, path: Path, what: str) -> Path | None:
        if not isSet(path) or not Path(path).exists():
            slicer.util.errorDisplay(_("Select {what} first.").format(what=what))
            return None
        return Path(path)

    def _appendLog(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def _setJobRunning(self, running: bool) -> None:
        for button in (self.ui.trainButton, self.ui.synthesizeButton, self.ui.evaluateButton,
                       self.ui.exportDicomButton):
            button.setEnabled(not running)
        self.ui.cancelButton.setEnabled(running)
        self.ui.openLogButton.setEnabled(self._job is not None and self._job.log_path is not None)

    # -- background jobs -------------------------------------------------------------------------------------
    def _ensureDependencies(self) -> bool:
        try:
            self._installLogic.ensureDependencies()
        except Exception as err:  # declined, failed, or restart needed: say so and stop
            slicer.util.errorDisplay(_("Dependencies are not ready: {error}").format(error=err))
            return False
        return True

    def _startJob(self, command: str, options: dict[str, Any], onSuccess: Any = None) -> None:
        """Start one CLI call in the background; ``onSuccess(outcome)`` runs when it succeeded."""
        if self._job is not None and self._job.running:
            slicer.util.errorDisplay(_("A job is already running; wait for it or cancel it."))
            return
        if not self._ensureDependencies():
            return
        self._job = self.logic.cliJob(command, options, logDir=self._workDir() / "logs", onEvent=self._onJobEvent)
        self._jobOnSuccess = onSuccess
        self._jobStage = ""
        self.ui.logTextEdit.clear()
        self._appendLog(" ".join(self._job.args))
        try:
            self._job.start()
        except OSError as err:
            slicer.util.errorDisplay(_("Could not start {command}: {error}").format(command=command, error=err))
            self._job = None
            return
        self.ui.statusLabel.setText(_("{command}: starting...").format(command=command))
        self.ui.progressBar.setRange(0, 0)  # busy until the first progress line
        self._setJobRunning(True)
        self._jobTimer.start()

    def _pollJob(self) -> None:
        if self._job is not None and not self._job.poll():
            self._jobTimer.stop()
            self._onJobFinished()

    def _onJobEvent(self, event: JobEvent) -> None:
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

    def _onJobFinished(self) -> None:
        job = self._job
        outcome = job.outcome()
        self._setJobRunning(False)
        self.ui.progressBar.setRange(0, 1000)
        elapsed = format_duration(job.elapsed_s)
        if outcome.status == "cancelled":
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.setText(_("{name}: cancelled after {elapsed}").format(name=job.name, elapsed=elapsed))
            return
        if outcome.status == "failed":
            self.ui.statusLabel.setText(_("{name}: failed after {elapsed}").format(name=job.name, elapsed=elapsed))
            detail = "\n".join(list(job.log)[-60:])
            slicer.util.errorDisplay(
                _("{name} failed: {message}\n\nThe full log is in {log}").format(
                    name=job.name, message=outcome.message, log=outcome.log_path), detailedText=detail)
            return
        self.ui.progressBar.setValue(1000)
        self.ui.statusLabel.setText(_("{name}: done in {elapsed}").format(name=job.name, elapsed=elapsed))
        if self._jobOnSuccess is not None:
            with slicer.util.tryWithErrorDisplay(_("Loading the results failed."), waitCursor=True):
                self._jobOnSuccess(outcome)

    def onCancelJob(self) -> None:
        """Stop the running job: asked to stop (it saves its last checkpoint), then its whole process tree is
        killed if it still runs after 15 s."""
        if self._job is not None and self._job.running:
            self._job.cancel(grace_s=15.0)
            self.ui.statusLabel.setText(_("{name}: cancelling...").format(name=self._job.name))
            self.ui.cancelButton.setEnabled(False)

    def onOpenLog(self) -> None:
        """Open the last job's log file."""
        if self._job is not None and self._job.log_path is not None and self._job.log_path.exists():
            views.openPath(self._job.log_path)

    # -- Data ------------------------------------------------------------------------------------------------
    def _pathArgument(self, args: tuple[Any, ...], parameter: str) -> Path | None:
        # a path widget's signal carries the new path; it can come before connectGui updated the parameter
        if args and isinstance(args[0], str):
            return Path(args[0])
        return getattr(self._parameterNode, parameter) if self._parameterNode else None

    def onDatasetChanged(self, *args: Any) -> None:
        """Show what the selected dataset holds (its first case is read for the geometry)."""
        path = self._pathArgument(args, "datasetPath")
        if not isSet(path) or not Path(path).exists():
            self._describedDataset = None
            self.ui.datasetInfoLabel.setText(_("Pick a dataset folder, or add cases from the scene below."))
            return
        if path == self._describedDataset:
            return  # already shown (entering the module again must not re-read a volume)
        self._describedDataset = path
        try:
            with slicer.util.WaitCursor():
                info = self.logic.describeDataset(path)
        except (SyntheticImagingError, OSError, ValueError) as err:
            self.ui.datasetInfoLabel.setText(_("Not usable: {error}").format(error=err))
            return
        spacing = " x ".join(f"{s:g}" for s in info.get("spacing", []))
        shape = " x ".join(str(s) for s in info.get("shape_zyx", [])[::-1])
        self.ui.datasetInfoLabel.setText(
            _("{cases} cases ({labelled} labelled), {modality}, channels {channels}; first case {shape} voxels "
              "of {spacing} mm. Use 'Check all cases' to verify every case's geometry.").format(
                cases=info.get("cases"), labelled=info.get("labelled", "?"), modality=info.get("modality", "?"),
                channels=", ".join(info.get("channels", [])), shape=shape, spacing=spacing))

    def onCheckDataset(self) -> None:
        """Load every case of the dataset and list geometry and label problems."""
        path = self._require(self._parameterNode.datasetPath, _("a dataset folder"))
        if path is None:
            return
        total = len(load_dataset(path))
        dialog = slicer.util.createProgressDialog(parent=slicer.util.mainWindow(), value=0, maximum=total,
                                                  labelText=_("Checking cases..."), windowTitle=_("Check data"))

        def progress(done: int, count: int, caseId: str) -> bool:
            dialog.setValue(done)
            dialog.setLabelText(_("Checking {case} ({done}/{count})").format(case=caseId, done=done + 1, count=count))
            slicer.app.processEvents()
            return not dialog.wasCanceled

        try:
            problems = self.logic.datasetProblems(path, progress)
        finally:
            dialog.close()
        if problems:
            slicer.util.warningDisplay(_("{n} problem(s) found:").format(n=len(problems)),
                                       detailedText="\n\n".join(problems))
        else:
            slicer.util.infoDisplay(_("All {n} cases load, with channels and labels on one grid.").format(n=total))

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
            slicer.util.errorDisplay(_("Check the case's channel volumes and pick its segmentation."))
            return
        channels = get_task(self._parameterNode.task).channels
        # channel order: by name when every channel name appears in exactly one node name, else as listed
        byName = [[v for v in volumes if c.lower() in v.GetName().lower()] for c in channels]
        if len(volumes) == len(channels) and all(len(m) == 1 for m in byName):
            volumes = [m[0] for m in byName]
        problems = self.logic.nodesGeometryProblems(volumes, segmentation)
        if problems:
            slicer.util.errorDisplay(_("These nodes do not form one case:"), detailedText="\n".join(problems))
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
        """Write the scene cases as a dataset folder and use it as the real cases."""
        groups = self._sceneCaseGroups()
        if not groups:
            slicer.util.errorDisplay(_("Add cases from the scene first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Writing the scene cases failed."), waitCursor=True):
            out = self.logic.writeDataset(groups, self._runDir("scene-cases"), task=self._parameterNode.task)
            self._parameterNode.datasetPath = out

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
            slicer.util.errorDisplay(_("Pick a trained checkpoint, or real cases for the family to start from."))
            return
        isCT = get_task(p.task).lesion_kind.value == "hemorrhage"
        subtypes = [s for s in p.subtypes.split(",") if s] if isCT else None
        try:
            lesion = self.logic.lesionOptions(lesionVolumeMl=(p.lesionVolumeMl.minimum, p.lesionVolumeMl.maximum),
                                              lesionCount=p.lesionCount, location=p.lesionLocation,
                                              subtypes=subtypes)
        except SyntheticImagingError as err:
            slicer.util.errorDisplay(str(err))
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
        """Load the selected synthetic case: slice views with the segmentation, surfaces in 3D."""
        caseId = self.ui.syntheticCaseComboBox.currentText
        path = self._require(self._parameterNode.syntheticDataset, _("a synthetic set"))
        if path is None or not caseId:
            return
        with slicer.util.tryWithErrorDisplay(_("Loading the case failed."), waitCursor=True):
            self.logic.removeCaseNodes(self._shownCase)
            self._shownCase = self.logic.loadDatasetCase(path, caseId)
            views.showCase(self._shownCase)

    # -- Checks ----------------------------------------------------------------------------------------------
    def onEvaluate(self) -> None:
        """Run the selected checks in the background; show the tables and plots when done."""
        p = self._parameterNode
        checks = [name for name, on in (("utility", p.checkUtility), ("adherence", p.checkAdherence),
                                        ("fidelity", p.checkFidelity), ("privacy", p.checkPrivacy)) if on]
        if not checks:
            slicer.util.errorDisplay(_("Select at least one check."))
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
            tables = self.logic.rankingToTables(folder) if (folder / "ranking.csv").exists() \
                else self.logic.resultsToTables(folder)
            charts = self.logic.resultsToPlots(tables)
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
            slicer.util.errorDisplay(_("{path} does not exist.").format(path=report))
            return
        views.openPath(report)

    def onCompare(self) -> None:
        """The selected synthetic case beside its nearest training case (privacy check), slices linked."""
        p = self._parameterNode
        folder = self._require(p.evaluationDirectory, _("an evaluation with the privacy check"))
        if folder is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Showing the comparison failed."), waitCursor=True):
            roots = self.logic.datasetRoots(folder)  # the folders that were compared, else the panel's
            synthetic = roots.get("synthetic") or self._require(p.syntheticDataset, _("the synthetic set"))
            real = roots.get("real_train") or self._require(p.datasetPath, _("the real training cases"))
            if not synthetic or not real:
                return
            selected = self.ui.syntheticCaseComboBox.currentText or None
            pair = self.logic.nearestPair(folder, selected) or self.logic.nearestPair(folder)
            if pair is None:
                raise RuntimeError("the evaluation has no closest-record pairs: run it with the privacy check")
            for nodes in self._compareCases:
                self.logic.removeCaseNodes(nodes)
            # a case the check calls a copy is shown as it was compared: mirrored and registered onto its patient
            aligned = self.logic.loadAlignedCopy(folder, pair.synthetic_id)
            left = aligned[0] if aligned else self.logic.loadDatasetCase(synthetic, pair.synthetic_id,
                                                                         showSurface=False)
            right = self.logic.loadDatasetCase(real, pair.real_id, showSurface=False)
            self._compareCases = [left, right]
            distance = "" if pair.distance is None else f" (distance {pair.distance:.3g})"
            leftTitle = f"synthetic {pair.synthetic_id}" + (" COPY, registered onto the patient" if aligned else "")
            views.showCompare(left, right, leftTitle, f"nearest training case {pair.real_id}{distance}")

    def onShowAdherenceCase(self) -> None:
        """The selected synthetic case with its label (filled) and the reference segmenter's prediction (outlined)
        from the label adherence check."""
        p = self._parameterNode
        folder = self._require(p.evaluationDirectory, _("an evaluation with the label adherence check"))
        if folder is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Showing the prediction failed."), waitCursor=True):
            dataset = self.logic.datasetRoots(folder).get("synthetic") or (
                p.syntheticDataset if isSet(p.syntheticDataset) else None)
            selected = self.ui.syntheticCaseComboBox.currentText
            if selected not in self.logic.adherenceCaseIds(folder):
                selected = None  # a case of another set: show the evaluation's first case
            self.logic.removeCaseNodes(self._adherenceCase)
            self._adherenceCase = None
            self._adherenceCase = self.logic.loadAdherenceCase(folder, selected, dataset=dataset)
            views.showAdherenceCase(self._adherenceCase)
            row = self.logic.adherenceRow(folder, self._adherenceCase.caseId) or {}
            if row:
                self.ui.resultsSummaryLabel.setText(_(
                    "{case}: label adherence Dice {dice:.2f} (label filled, segmenter prediction outlined in cyan)"
                    "{reason}").format(case=self._adherenceCase.caseId, dice=float(row.get("dice") or 0.0),
                                       reason=f"\n{row['reason']}" if row.get("reason") else ""))

    # -- Export ----------------------------------------------------------------------------------------------
    def _exportDir(self, kind: str) -> Path:
        base = Path(self._parameterNode.exportDirectory) if isSet(self._parameterNode.exportDirectory) \
            else self._workDir() / "exports"
        return base / f"{kind}-{_stamp()}"

    def onExportDicom(self) -> None:
        """Export the synthetic set as DICOM (background), then into Slicer's DICOM database if asked."""
        p = self._parameterNode
        source = self._require(p.syntheticDataset, _("a synthetic set"))
        if source is None:
            return
        out = self._exportDir("dicom")

        def done(outcome: Any) -> None:
            if p.addToDicomDatabase:
                self.logic.importIntoDicomDatabase(out)
            slicer.util.infoDisplay(_("DICOM studies written to {path}").format(path=out))

        self._startJob("export-dicom", {"input": source, "out": out, "patient_prefix": p.patientPrefix or None}, done)

    def onExportFiles(self) -> None:
        """Write the synthetic set as NIfTI images with NIfTI or .seg.nrrd labels."""
        p = self._parameterNode
        source = self._require(p.syntheticDataset, _("a synthetic set"))
        if source is None:
            return
        total = len(load_dataset(source))
        dialog = slicer.util.createProgressDialog(parent=slicer.util.mainWindow(), value=0, maximum=total,
                                                  labelText=_("Writing cases..."), windowTitle=_("Export"))

        def progress(done: int, caseId: str) -> None:
            dialog.setValue(done)
            slicer.app.processEvents()

        try:
            with slicer.util.tryWithErrorDisplay(_("The export failed."), waitCursor=True):
                out = self.logic.exportFiles(source, self._exportDir(f"files-{p.labelFormat.replace('.', '')}"),
                                             labelFormat=p.labelFormat, progress=progress)
                slicer.util.infoDisplay(_("{n} cases written to {path}").format(n=total, path=out))
        finally:
            dialog.close()

    # -- Reader study ----------------------------------------------------------------------------------------
    def _updateReaderButtons(self) -> None:
        running = self._readerStudy is not None and not self._readerStudy.done
        for widget in (self.ui.answerRealButton, self.ui.answerSyntheticButton, self.ui.readerConfidenceSlider):
            widget.setEnabled(running)
        self.ui.finishReaderStudyButton.setEnabled(self._readerStudy is not None)
        self.ui.startReaderStudyButton.setEnabled(not running)

    def onStartReaderStudy(self) -> None:
        """Start a blinded, randomised real-vs-synthetic sequence."""
        p = self._parameterNode
        real = self._require(p.datasetPath, _("the real cases (Data)"))
        synthetic = real and self._require(p.syntheticDataset, _("a synthetic set"))
        if not synthetic:
            return
        with slicer.util.tryWithErrorDisplay(_("The reader study could not start."), waitCursor=True):
            realIds, syntheticIds = load_dataset(real).case_ids, load_dataset(synthetic).case_ids
            perClass = min(p.readerCasesPerClass, len(realIds), len(syntheticIds))
            self._readerStudy = ReaderStudy(realIds, syntheticIds, per_class=perClass, seed=p.readerSeed,
                                            reader=p.readerName)
            self._readerReference = load_dataset(synthetic)[0]  # real cases are shown on the synthetic grid
            self.ui.readerStudyResultLabel.setText("")
            self._showReaderTrial()
        self._updateReaderButtons()

    def _showReaderTrial(self) -> None:
        study = self._readerStudy
        self.logic.removeCaseNodes(self._readerCase)
        self._readerCase = None
        trial = study.current
        if trial is None:
            self.ui.readerStudyStatusLabel.setText(_("All cases answered: press 'Finish and save'."))
            return
        p = self._parameterNode
        dataset = p.syntheticDataset if trial.source == SYNTHETIC else p.datasetPath
        case = self.logic.readerStudyCase(dataset, trial.case_id, like=self._readerReference)
        # blind: the node is named by the trial only, with no provenance attribute and no label
        self._readerCase = self.logic.caseToNodes(case, name=trial.blinded_id, withLabel=False, provenance=False,
                                                  showSurface=False)
        views.showCase(self._readerCase, show3D=False)
        self.ui.readerStudyStatusLabel.setText(_("{case}: {i} of {n}. Real or synthetic?").format(
            case=trial.blinded_id, i=trial.index + 1, n=len(study.trials)))
        self._readerTrialStart = time.monotonic()

    def onReaderAnswer(self, answer: str) -> None:
        """Record the answer to the shown case and show the next one."""
        if self._readerStudy is None or self._readerStudy.done:
            return
        self._readerStudy.record(answer, confidence=int(self.ui.readerConfidenceSlider.value),
                                 seconds=time.monotonic() - self._readerTrialStart)
        with slicer.util.tryWithErrorDisplay(_("Loading the next case failed."), waitCursor=True):
            self._showReaderTrial()
        self._updateReaderButtons()

    def onFinishReaderStudy(self) -> None:
        """Save the answers (CSV, truth revealed) and show accuracy with its Clopper-Pearson interval."""
        study = self._readerStudy
        if study is None or not study.responses:
            slicer.util.errorDisplay(_("No answer recorded yet."))
            return
        with slicer.util.tryWithErrorDisplay(_("Saving the reader study failed."), waitCursor=True):
            reader = "".join(c for c in (study.reader or "reader") if c.isalnum() or c in "-_") or "reader"
            path = study.write_csv(self._workDir() / f"reader-study-{reader}-{_stamp()}.csv")
            score = study.score()
            table = self.logic.tableFromRows(f"SyntheticImaging reader study {reader}", score.rows())
            self.logic.tableFromRows(f"SyntheticImaging reader study {reader} answers", study.rows())
            self.logic.removeCaseNodes(self._readerCase)
            self._readerCase, self._readerStudy = None, None
            self.ui.readerStudyStatusLabel.setText("")
            self.ui.readerStudyResultLabel.setText(f"{score.verdict()}\n{path}")
            views.showResults(table, None)
        self._updateReaderButtons()
