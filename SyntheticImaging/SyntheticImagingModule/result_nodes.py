"""Evaluation results in the scene: table nodes, plot charts, the closest synthetic/training pair and the adherence
check's overlay (a synthetic case with its label filled and the reference segmenter's prediction outlined).

Reads the report through :mod:`.results`; needs no Slicer application except for :meth:`ResultsLogic.showCase`
and :meth:`ResultsLogic.showAdherenceCase`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from SyntheticImagingLib.errors import InputError

from . import results as resultsLib
from .nodes import ATTRIBUTE_CASE_ID, CaseNodes, CaseNodesLogic, segmentationDisplay

__all__ = ["ResultsLogic", "AdherenceCase", "ATTRIBUTE_RESULT", "PREDICTION_SEGMENT_NAME", "PREDICTION_COLOR"]

#: Marks the table and plot nodes made from an evaluation (replaced when results are shown again).
ATTRIBUTE_RESULT = "SyntheticImaging.Result"
#: Name and colour (RGB 0..1) of the adherence check's prediction overlay: cyan, apart from every label colour.
PREDICTION_SEGMENT_NAME = "reference segmenter prediction"
PREDICTION_COLOR = (0.1, 0.9, 1.0)


@dataclasses.dataclass
class AdherenceCase:
    """A synthetic case with the reference segmenter's prediction (a 0/1 mask on the check grid ``geometry``)."""

    case: Any
    prediction: np.ndarray
    geometry: Any


class ResultsLogic(CaseNodesLogic):
    """Evaluation folders -> table, plot and segmentation nodes."""

    # -- adherence: a synthetic case with its label and the reference segmenter's prediction -------------------
    def predictionToSegmentation(self, mask: np.ndarray, geometry: Any, name: str, *,
                                 color: Sequence[float] = PREDICTION_COLOR, showSurface: bool = False) -> Any:
        """A segmentation node with one segment (:data:`PREDICTION_SEGMENT_NAME`) from a 0/1 mask on its own grid
        (``geometry``): the adherence check saves predictions on its check grid, which keeps the physical
        position, so the mask overlays the case as loaded from its dataset."""
        grid = slicer.util.addVolumeFromArray((mask > 0).astype(np.uint8), ijkToRAS=geometry.ijk_to_ras(),
                                              name=f"{name} grid", nodeClassName="vtkMRMLLabelMapVolumeNode")
        try:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            node.CreateDefaultDisplayNodes()
            node.SetReferenceImageGeometryParameterFromVolumeNode(grid)
            segmentId = node.GetSegmentation().AddEmptySegment("prediction", PREDICTION_SEGMENT_NAME,
                                                               [float(c) for c in color])
            slicer.util.updateSegmentBinaryLabelmapFromArray((mask > 0).astype(np.uint8), node, segmentId, grid)
        finally:
            slicer.mrmlScene.RemoveNode(grid)
        if showSurface:
            node.CreateClosedSurfaceRepresentation()
        return node

    @staticmethod
    def styleAdherenceOverlay(caseNodes: CaseNodes, *, outlineThickness: int = 3) -> None:
        """Label filled (and outlined) in its colours, the prediction as a thick outline only, both in the slice
        views: where they disagree, the label's fill shows outside the prediction's outline or the outline
        encloses unfilled tissue."""
        for node, fill in ((caseNodes.segmentation, True), (caseNodes.prediction, False)):
            if node is None:
                continue
            display = segmentationDisplay(node)
            display.SetVisibility(True)
            display.SetVisibility2DFill(fill)
            display.SetVisibility2DOutline(True)
            display.SetOpacity2DOutline(1.0)
            if fill:
                display.SetOpacity2DFill(0.5)
            else:
                display.SetSliceIntersectionThickness(outlineThickness)

    @staticmethod
    def readAlignedCopy(evaluation: str | Path, syntheticCaseId: str) -> tuple[Any, resultsLib.AlignedCopy] | None:
        """Read (files only: the panel runs it in a worker thread) a synthetic case the privacy check calls a copy,
        as the check compared it: mirrored if it matched that way and registered onto the training patient it
        copies (saved on that patient's grid, so it lies over the patient as loaded from the training set). None
        when the evaluation saved no aligned copy of this case."""
        from SyntheticImagingLib.cases import Case
        from SyntheticImagingLib.io import read_image

        folder = Path(evaluation)
        copy = resultsLib.aligned_copies(resultsLib.load_report(folder)).get(syntheticCaseId)
        if copy is None:
            return None
        image, geometry = read_image(folder / copy.image)
        label = (read_image(folder / copy.label)[0] > 0).astype(np.int16) if copy.label else None
        case = Case(case_id=f"{syntheticCaseId} on {copy.training_id}", channels={"aligned": image.astype(np.float32)},
                    geometry=geometry, label=label)
        return case, copy

    def loadAlignedCopy(self, evaluation: str | Path, syntheticCaseId: str) -> tuple[CaseNodes, Any] | None:
        """:meth:`readAlignedCopy` as nodes (no surface); None without an aligned copy."""
        read = self.readAlignedCopy(evaluation, syntheticCaseId)
        if read is None:
            return None
        case, copy = read
        return self.caseToNodes(case, showSurface=False), copy

    @staticmethod
    def verdict(evaluation: str | Path) -> Any:
        """The evaluation's verdict block (:class:`SyntheticImagingLib.checks.summary.ReportSummary`): the one the
        report stores, else made from the report (older reports); the HTML report and the CLI show the same."""
        from SyntheticImagingLib.checks.report_model import read_report
        from SyntheticImagingLib.checks.summary import ReportSummary, summarize

        stored = resultsLib.load_report(evaluation).get("summary")
        if isinstance(stored, Mapping) and stored.get("verdicts"):
            return ReportSummary.from_dict(stored)
        return summarize(read_report(evaluation))

    @staticmethod
    def rankingText(ranking: str | Path) -> str:
        """The ranking's summary lines (a row per generator, the recommended one marked and why)."""
        from SyntheticImagingLib.checks.ranking_page import ranking_text

        return ranking_text(ranking)

    @staticmethod
    def readAdherenceCase(evaluation: str | Path, caseId: str | None = None, *,
                          dataset: str | Path | None = None) -> AdherenceCase:
        """Read (files only, no scene: the panel runs it in a worker thread) a synthetic case of an evaluation and
        the reference segmenter's prediction that the adherence check saved for it.

        Args:
            evaluation: the evaluation folder (``report.json`` with the adherence check).
            caseId: the synthetic case (default: the first of the adherence per-case table).
            dataset: the synthetic dataset folder (default: the one the report names).

        Raises:
            InputError: the evaluation has no adherence predictions, or none for ``caseId``, or no dataset.
        """
        from SyntheticImagingLib.io import load_dataset, read_image

        folder = Path(evaluation)
        report = resultsLib.load_report(folder)
        predictions = resultsLib.adherence_predictions(report)
        if not predictions:
            raise InputError(f"{folder} holds no prediction of the adherence check", where=str(folder),
                             fix="run the checks with 'adherence' selected")
        caseId = caseId or next(iter(predictions))
        if caseId not in predictions:
            raise InputError(f"no adherence prediction for case {caseId!r}", where=str(folder),
                             fix=f"pick one of {list(predictions)[:10]}")
        dataset = dataset or resultsLib.dataset_roots(report).get("synthetic")
        if not dataset:
            raise InputError("the report does not say where the synthetic set is", where=str(folder),
                             fix="give the synthetic dataset folder")
        case = load_dataset(dataset).subset([caseId])[0]
        case.metadata.setdefault("dataset", str(dataset))
        mask, geometry = read_image(folder / predictions[caseId])
        return AdherenceCase(case, mask, geometry)

    def adherenceCaseToNodes(self, adherence: AdherenceCase, *, showSurface: bool = False) -> CaseNodes:
        """Nodes of a case read by :meth:`readAdherenceCase`: its channels, its label and the prediction as a
        second segmentation, styled by :meth:`styleAdherenceOverlay`."""
        nodes = self.caseToNodes(adherence.case, showSurface=showSurface)
        caseId = adherence.case.case_id
        try:
            nodes.prediction = self.predictionToSegmentation(adherence.prediction, adherence.geometry,
                                                             f"{caseId} {PREDICTION_SEGMENT_NAME}",
                                                             showSurface=showSurface)
        except Exception:
            self.removeCaseNodes(nodes)
            raise
        nodes.prediction.SetAttribute(ATTRIBUTE_CASE_ID, caseId)
        self.styleAdherenceOverlay(nodes)
        return nodes

    def loadAdherenceCase(self, evaluation: str | Path, caseId: str | None = None, *,
                          dataset: str | Path | None = None, showSurface: bool = False) -> CaseNodes:
        """:meth:`readAdherenceCase` then :meth:`adherenceCaseToNodes` (the console's one-step form)."""
        return self.adherenceCaseToNodes(self.readAdherenceCase(evaluation, caseId, dataset=dataset),
                                         showSurface=showSurface)

    @staticmethod
    def adherenceCaseIds(evaluation: str | Path | Mapping[str, Any]) -> list[str]:
        """The synthetic cases of an evaluation whose adherence prediction was saved, in the per-case table's order."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        return list(resultsLib.adherence_predictions(report))

    @staticmethod
    def adherenceRow(evaluation: str | Path | Mapping[str, Any], caseId: str) -> dict[str, Any] | None:
        """The adherence check's per-case row of a synthetic case (Dice, detection, volume error...)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        result = resultsLib.check_results(report).get("adherence", {})
        rows = resultsLib.table_rows((result.get("tables") or {}).get("per_case")) or []
        return next((r for r in rows if str(r.get("case_id")) == caseId), None)


    def rankingToTables(self, ranking: str | Path) -> dict[str, Any]:
        """Table nodes of a ranking folder: ``"ranking"`` first, then each generator's report tables named
        ``"<generator> <table>"``."""
        folder = Path(ranking)
        rows = resultsLib.csv_tables(folder).get("ranking")
        if not rows:
            raise InputError(f"{folder} holds no ranking.csv", where=str(folder),
                             fix="rank two or more synthetic sets first (rankGenerators)")
        nodes = {"ranking": self.tableFromRows("SyntheticImaging ranking", rows)}
        for row in rows:
            name = str(row.get("generator", ""))
            if name and (folder / name / "report.json").exists():
                tables = resultsLib.report_tables(resultsLib.load_report(folder / name))
                nodes.update({f"{name} {table}": self.tableFromRows(f"SyntheticImaging {name} {table}", tableRows)
                              for table, tableRows in tables.items()})
        for node in nodes.values():
            node.SetAttribute(ATTRIBUTE_RESULT, "table")
        return nodes


    # -- results -> tables and plots ---------------------------------------------------------------------------
    def tableFromRows(self, name: str, rows: Sequence[Mapping[str, Any]], tableNode: Any | None = None) -> Any:
        """A table node holding ``rows`` (number columns as doubles, others as text)."""
        rows = [dict(r) for r in rows]
        node = tableNode or slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
        node.SetUseColumnNameAsColumnHeader(True)
        table = node.GetTable()
        while table.GetNumberOfColumns():
            table.RemoveColumn(0)
        numeric = set(resultsLib.numeric_columns(rows))
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        for column in columns:
            array = vtk.vtkDoubleArray() if column in numeric else vtk.vtkStringArray()
            array.SetName(str(column))
            for row in rows:
                value = row.get(column)
                if column in numeric:
                    array.InsertNextValue(math.nan if value is None else float(value))
                else:
                    array.InsertNextValue("" if value is None else
                                          f"{value:.4g}" if isinstance(value, float) else str(value))
            table.AddColumn(array)
        node.Modified()
        return node

    def resultsToTables(self, evaluation: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Table nodes of an evaluation (its folder or its report dict): ``"summary"`` (one row per headline
        number) and one per check table. Falls back to the folder's CSV files when the report has no tables."""
        if isinstance(evaluation, Mapping):
            tables = resultsLib.report_tables(evaluation)
        else:
            folder = Path(evaluation)
            tables = resultsLib.report_tables(resultsLib.load_report(folder)) if (folder / "report.json").exists() \
                else {}
            if len(tables) <= 1:
                tables.update({k: v for k, v in resultsLib.csv_tables(folder).items() if k not in tables})
        nodes = {name: self.tableFromRows(f"SyntheticImaging {name}", rows) for name, rows in tables.items()}
        for node in nodes.values():
            node.SetAttribute(ATTRIBUTE_RESULT, "table")
        return nodes

    @staticmethod
    def removeResultNodes() -> None:
        """Remove the table and plot nodes made from earlier evaluations."""
        for className in ("vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode", "vtkMRMLTableNode"):
            for node in list(slicer.util.getNodesByClass(className)):
                if node.GetAttribute(ATTRIBUTE_RESULT):
                    slicer.mrmlScene.RemoveNode(node)

    def tableRows(self, tableNode: Any) -> list[dict[str, Any]]:
        """Rows of a table node (numbers as floats)."""
        table = tableNode.GetTable()
        out = []
        for r in range(table.GetNumberOfRows()):
            row = {}
            for c in range(table.GetNumberOfColumns()):
                column = table.GetColumn(c)
                row[column.GetName()] = (column.GetValue(r) if column.IsA("vtkDataArray") else
                                         str(column.GetValue(r)))
            out.append(row)
        return out

    def resultsToPlots(self, evaluation: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Plot chart nodes of an evaluation (its folder or report dict), read from the typed report: Dice per
        training regime with its confidence interval, and histograms of the distances to the closest training
        case beside the holdout baseline."""
        return {spec.name: self.chartFromSpec(spec) for spec in resultsLib.plot_specs(evaluation)}

    def chartFromSpec(self, spec: resultsLib.PlotSpec) -> Any:
        """A plot chart node (with its series and data table) for a plot specification."""
        scene = slicer.mrmlScene
        data = self.tableFromRows(f"SyntheticImaging {spec.name} data", spec.rows)
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"SyntheticImaging {spec.name}")
        data.SetAttribute(ATTRIBUTE_RESULT, "plot data")
        chart.SetAttribute(ATTRIBUTE_RESULT, "chart")
        chart.SetTitle(spec.title)
        chart.SetXAxisTitle(spec.x_title)
        chart.SetYAxisTitle(spec.y_title)
        kinds = {"bar": slicer.vtkMRMLPlotSeriesNode.PlotTypeBar, "line": slicer.vtkMRMLPlotSeriesNode.PlotTypeLine,
                 "scatter": slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter}
        for series in spec.series:
            node = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", series.label or series.y)
            node.SetAttribute(ATTRIBUTE_RESULT, "series")
            node.SetAndObserveTableNodeID(data.GetID())
            node.SetXColumnName(spec.x)
            node.SetYColumnName(series.y)
            if spec.labels:
                node.SetLabelColumnName(spec.labels)
            node.SetPlotType(kinds[series.kind])
            if series.kind == "scatter":
                node.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
                node.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleSquare)
            chart.AddAndObservePlotSeriesNodeID(node.GetID())
        return chart

    @staticmethod
    def nearestPair(evaluation: str | Path | Mapping[str, Any], syntheticCaseId: str | None = None
                    ) -> resultsLib.NearestPair | None:
        """The training case closest to a synthetic case, from the privacy check (default: the closest pair of
        all, the one most at risk of being a copy)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        pairs = resultsLib.nearest_pairs(report)
        if syntheticCaseId is not None:
            pairs = [p for p in pairs if p.synthetic_id == syntheticCaseId]
        return pairs[0] if pairs else None

    @staticmethod
    def datasetRoots(evaluation: str | Path | Mapping[str, Any]) -> dict[str, str]:
        """The dataset folders an evaluation compared (``real_train``, ``real_test``, ``synthetic``)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        return resultsLib.dataset_roots(report)


    # -- views (need the Slicer application) ---------------------------------------------------------------------
    @staticmethod
    def showCase(caseNodes: CaseNodes) -> None:
        """Show a case in the slice views (segmentation overlaid) and its segments in 3D."""
        from . import views

        views.showCase(caseNodes)

    @staticmethod
    def showAdherenceCase(caseNodes: CaseNodes) -> None:
        """Show a case from :meth:`loadAdherenceCase`: label filled, the segmenter's prediction outlined, the
        slices at the lesion."""
        from . import views

        views.showAdherenceCase(caseNodes)

