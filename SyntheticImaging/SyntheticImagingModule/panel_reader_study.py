"""The panel's Reader study section: a blinded, randomised real-vs-synthetic sequence; cases are read and
resampled in a worker thread, shown without label or provenance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import slicer
from slicer.i18n import tr as _

from SyntheticImagingLib.io import load_dataset

from . import views
from .jobs import JobOutcome
from .nodes import stamp
from .reader_study import SYNTHETIC, ReaderStudy, readerStudyCase
from .runner import VIEW
from .thread_jobs import Report

__all__ = ["ReaderStudyPanel"]


class ReaderStudyPanel:
    """Handlers of this section; mixed into :class:`.widget.SyntheticImagingWidget` (they use its ``ui``,
    ``logic``, parameter node and job helpers)."""

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
