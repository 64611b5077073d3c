"""The panel's Checks section: run the checks (a CLI process), show the results as table and plot nodes, the
closest synthetic/training pair side by side and a case with the reference segmenter's prediction."""

from __future__ import annotations

from typing import Any

import slicer
from slicer.i18n import tr as _

from . import views
from .jobs import JobOutcome
from .parameters import isSet
from .runner import VIEW
from .thread_jobs import Report

__all__ = ["ChecksPanel"]


class ChecksPanel:
    """Handlers of this section; mixed into :class:`.widget.SyntheticImagingWidget` (they use its ``ui``,
    ``logic``, parameter node and job helpers)."""

    def onEvaluate(self) -> None:
        """Run the selected checks in the background; show the tables and plots when done."""
        p = self._parameterNode
        checks = [name for name, on in (("utility", p.checkUtility), ("adherence", p.checkAdherence),
                                        ("fidelity", p.checkFidelity), ("privacy", p.checkPrivacy)) if on]
        if not checks:
            self._error(_("Select at least one check."))
            return
        train = self._require(p.datasetPath, _("the real training cases (Data)"))
        # no held-out set: k-fold by case over the real cases (every real case tested once)
        test = p.realTestPath if p.realTestPath and str(p.realTestPath) not in ("", ".") else None
        synthetic = train and self._require(p.syntheticDataset, _("a synthetic set"))
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
        """The verdict block (useful? follows its labels? private? faithful?) in the panel, metric tables as table
        nodes (adherence per case among them), Dice per regime and distance histograms as plot charts; for a
        ranking folder (several synthetic sets), the ranking summary and table first."""
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
            # the verdict block first: the same typed summary as the HTML report and the CLI print
            self.ui.resultsSummaryLabel.setText(self.logic.rankingText(folder) if ranking
                                                else self.logic.verdict(folder).to_text())
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

        def work(report: Report) -> tuple[Any, Any, bool]:
            # a case the check calls a copy is shown as it was compared: mirrored and registered onto its patient
            aligned = self.logic.readAlignedCopy(folder, pair.synthetic_id)
            left = aligned[0] if aligned else self.logic.readDatasetCase(synthetic, pair.synthetic_id)
            return left, self.logic.readDatasetCase(real, pair.real_id), aligned is not None

        def done(outcome: JobOutcome) -> None:
            for nodes in self._compareCases:
                self.logic.removeCaseNodes(nodes)
            self._compareCases = []
            leftCase, rightCase, isCopy = outcome.result["value"]
            left = self.logic.caseToNodes(leftCase, showSurface=False)
            right = self.logic.caseToNodes(rightCase, showSurface=False)
            self._compareCases = [left, right]
            distance = "" if pair.distance is None else f" (distance {pair.distance:.3g})"
            leftTitle = f"synthetic {pair.synthetic_id}" + (" COPY, registered onto the patient" if isCopy else "")
            views.showCompare(left, right, leftTitle, f"nearest training case {pair.real_id}{distance}")

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
