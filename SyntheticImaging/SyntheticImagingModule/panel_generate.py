"""The panel's Generator and Synthesize sections: train a family or pick a checkpoint, synthesize cases (CLI
processes), list and show the synthetic cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slicer.i18n import tr as _

from SyntheticImagingLib.errors import SyntheticImagingError
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.tasks import get_task

from . import views
from .jobs import JobOutcome
from .parameters import isSet
from .runner import VIEW

__all__ = ["GeneratePanel"]


class GeneratePanel:
    """Handlers of this section; mixed into :class:`.widget.SyntheticImagingWidget` (they use its ``ui``,
    ``logic``, parameter node and job helpers)."""

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
