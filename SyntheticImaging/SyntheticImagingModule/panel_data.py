"""The panel's Data section: the real cases as a dataset folder (described and checked in worker threads) or as
cases picked from the scene (channel volumes + segmentation, checked to share one grid, written as a dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import slicer
from slicer.i18n import tr as _

from SyntheticImagingLib.errors import SyntheticImagingError
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.tasks import get_task

from .jobs import JobOutcome
from .parameters import isSet
from .runner import FILES
from .thread_jobs import Report, ThreadJob, caseProgress

__all__ = ["DataPanel"]


class DataPanel:
    """Handlers of this section; mixed into :class:`.widget.SyntheticImagingWidget` (they use its ``ui``,
    ``logic``, parameter node and job helpers)."""

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
