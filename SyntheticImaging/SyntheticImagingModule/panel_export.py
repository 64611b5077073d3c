"""The panel's Export section: DICOM studies (a CLI process, then Slicer's DICOM database) and files (a worker
thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import slicer
from slicer.i18n import tr as _

from SyntheticImagingLib.io import load_dataset

from .jobs import JobOutcome
from .nodes import stamp
from .parameters import isSet
from .runner import FILES
from .thread_jobs import Report, caseProgress

__all__ = ["ExportPanel"]


class ExportPanel:
    """Handlers of this section; mixed into :class:`.widget.SyntheticImagingWidget` (they use its ``ui``,
    ``logic``, parameter node and job helpers)."""

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
