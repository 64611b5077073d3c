"""Reading an evaluation (``evaluate --out DIR``): its tables, its closest synthetic-real pairs, plot data.

``DIR/report.json`` holds one entry per check under ``"checks"``: ``status``, ``summary``, ``tables`` (name ->
``{"csv", "columns", "rows"}``, or directly a list of row dicts as in
:class:`SyntheticImagingLib.checks.CheckResult`), ``figures``, ``details``; ``DIR/tables/*.csv`` hold the same
tables, and ``"data"`` says which folders were compared. This module turns that into plain rows for table nodes
(every table, generically) and into plot specifications and closest pairs read from the typed report
(:mod:`SyntheticImagingLib.checks.report_model`: the dataclasses the checks write, their tables by name and
column), without Slicer, so it is tested on its own.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from SyntheticImagingLib.checks.report_model import AlignedCopy, EvaluationReport, read_report

__all__ = ["load_report", "check_results", "typed_report", "table_rows", "report_tables", "dataset_roots",
           "adherence_predictions", "aligned_copies", "AlignedCopy", "csv_tables", "numeric_columns",
           "string_columns", "NearestPair", "nearest_pairs", "PlotSeries", "PlotSpec", "plot_specs",
           "histogram_rows"]

Rows = list[dict[str, Any]]


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``report.json`` of an evaluation folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no evaluation report (run the checks first)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the report is not a JSON object")
    return data


def _is_result(value: Any) -> bool:
    return isinstance(value, Mapping) and any(k in value for k in ("summary", "tables", "details"))


def check_results(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Check name -> result entry, whether the report lists them under ``"checks"`` or at its top level (a bare
    ``CheckResult``-shaped dict, as the console may pass)."""
    checks = report.get("checks", report)
    if isinstance(checks, Mapping):
        return {str(name): r for name, r in checks.items() if _is_result(r)}
    return {}


def typed_report(evaluation: str | os.PathLike[str] | Mapping[str, Any] | EvaluationReport) -> EvaluationReport:
    """The typed report (:class:`SyntheticImagingLib.checks.report_model.EvaluationReport`) of an evaluation
    folder, a ``report.json`` dict, or a bare ``{"checks": ...}`` dict."""
    if isinstance(evaluation, EvaluationReport):
        return evaluation
    if isinstance(evaluation, Mapping):
        checks = {k: {"status": "ok", **dict(v)} if "status" not in v else v
                  for k, v in check_results(evaluation).items()}
        failed = {k: v for k, v in (evaluation.get("checks") or {}).items()
                  if isinstance(v, Mapping) and k not in checks}
        return EvaluationReport.from_dict({**evaluation, "checks": {**checks, **failed}})
    return read_report(evaluation)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = ", ".join(str(v) for v in value)
    else:
        out[prefix] = value


def _is_rows(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0
            and all(isinstance(r, Mapping) for r in value))


def table_rows(table: Any) -> Rows | None:
    """The rows of a report table: a list of row dicts, or ``{"rows": [...], ...}`` as ``report.json`` stores it."""
    if isinstance(table, Mapping) and "rows" in table:
        table = table["rows"]
    return [dict(r) for r in table] if _is_rows(table) else None


def report_tables(report: Mapping[str, Any]) -> dict[str, Rows]:
    """Every table of every check (named ``"<check> <table>"``) plus ``"summary"``: one row per headline number
    (check, metric, value), and a ``status`` row for a check that failed or was skipped."""
    tables: dict[str, Rows] = {}
    summary: Rows = []
    checks = report.get("checks")
    if isinstance(checks, Mapping):
        for check, entry in checks.items():
            if isinstance(entry, Mapping) and entry.get("status") not in (None, "ok"):
                summary.append({"check": str(check), "metric": "status",
                                "value": f"{entry['status']}: {entry.get('message', '')}".rstrip(": ")})
    for check, result in check_results(report).items():
        flat: dict[str, Any] = {}
        _flatten("", result.get("summary", {}), flat)
        summary += [{"check": check, "metric": k, "value": v} for k, v in flat.items()]
        for name, table in (result.get("tables") or {}).items():
            rows = table_rows(table)
            if rows:
                tables[f"{check} {name}"] = rows
    if summary:
        tables = {"summary": summary, **tables}
    return tables


def dataset_roots(report: Mapping[str, Any] | EvaluationReport) -> dict[str, str]:
    """The folders an evaluation compared (``real_train``, ``real_test``, ``synthetic``), where the report says."""
    return typed_report(report).dataset_roots()


def adherence_predictions(report: Mapping[str, Any] | EvaluationReport) -> dict[str, str]:
    """Synthetic case id -> the reference segmenter's prediction file of the adherence check, relative to the
    report folder, in the order of the per-case table; empty when the check did not run or saved none."""
    return {r.case_id: r.prediction for r in typed_report(report).adherence_rows() if r.prediction}


def _number(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def csv_tables(folder: str | os.PathLike[str]) -> dict[str, Rows]:
    """The CSV tables of an evaluation folder (``*.csv`` and ``tables/*.csv``, numbers parsed), named by file
    stem."""
    tables: dict[str, Rows] = {}
    for path in sorted([*Path(folder).glob("*.csv"), *Path(folder).glob("tables/*.csv")]):
        with open(path, newline="", encoding="utf-8") as f:
            rows = [{k: _number(v) if isinstance(v, str) else v for k, v in row.items()} for row in csv.DictReader(f)]
        if rows:
            tables[path.stem] = rows
    return tables


def _is_number(v: Any) -> bool:
    return v is None or isinstance(v, (int, float))


def _columns(rows: Rows) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def numeric_columns(rows: Rows) -> list[str]:
    """Columns whose values are all numbers (or missing), in order of appearance."""
    return [c for c in _columns(rows) if all(_is_number(r.get(c)) for r in rows)
            and any(r.get(c) is not None for r in rows)]


def string_columns(rows: Rows) -> list[str]:
    """Columns holding text."""
    numeric = set(numeric_columns(rows))
    return [c for c in _columns(rows) if c not in numeric]


@dataclasses.dataclass(frozen=True)
class NearestPair:
    """A synthetic case and the training case closest to it (the privacy check's closest record)."""

    synthetic_id: str
    real_id: str
    distance: float | None


def aligned_copies(report: Mapping[str, Any] | EvaluationReport) -> dict[str, AlignedCopy]:
    """Synthetic case id -> its aligned copy (files relative to the report folder), from the privacy check's
    ``copies`` table; empty when the check called no copies or saved no files."""
    return typed_report(report).aligned_copies()


def nearest_pairs(report: Mapping[str, Any] | EvaluationReport) -> list[NearestPair]:
    """Closest training case of each synthetic case, closest first: the aligned match where the privacy check
    made one (the pair it decides copies on), else its first feature space."""
    return [NearestPair(p.synthetic_id, p.training_id, None if math.isnan(p.distance) else p.distance)
            for p in typed_report(report).closest_pairs()]


@dataclasses.dataclass(frozen=True)
class PlotSeries:
    """One curve of a chart: ``y`` column against the chart's x (or row labels), drawn as ``kind``."""

    y: str
    kind: str = "bar"  # "bar", "line" or "scatter"
    label: str = ""


@dataclasses.dataclass(frozen=True)
class PlotSpec:
    """A chart: its data rows, x column (a number column, or row labels for bars) and its series."""

    name: str
    title: str
    rows: Rows
    x: str
    series: tuple[PlotSeries, ...]
    x_title: str = ""
    y_title: str = ""
    labels: str | None = None


def _dice_spec(report: EvaluationReport) -> PlotSpec | None:
    regimes = report.regimes()
    if not regimes:
        return None
    data = [{"index": i, "label": r.regime, "dice": r.dice, "dice_lo": r.dice_lo, "dice_hi": r.dice_hi}
            for i, r in enumerate(regimes)]
    # Slicer charts have no error bars: the interval ends are drawn as markers on each bar
    series = (PlotSeries("dice", "bar", "Dice (mean)"), PlotSeries("dice_lo", "scatter", "95% CI low"),
              PlotSeries("dice_hi", "scatter", "95% CI high"))
    return PlotSpec(name="utility regimes Dice", title="Dice per training regime on real held-out cases", rows=data,
                    x="index", series=series, x_title="regime", y_title="Dice", labels="label")


def histogram_rows(columns: Mapping[str, Sequence[float]], bins: int = 20) -> Rows:
    """Histogram of several value lists over common bins: rows of ``bin_low``, ``bin_high``, ``bin_center`` and
    one count column per list."""
    finite = {k: [float(v) for v in vs if v is not None and math.isfinite(float(v))] for k, vs in columns.items()}
    values = [v for vs in finite.values() for v in vs]
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    rows = [{"bin_low": lo + i * width, "bin_high": lo + (i + 1) * width, "bin_center": lo + (i + 0.5) * width,
             **{k: 0 for k in finite}} for i in range(bins)]
    for key, vs in finite.items():
        for v in vs:
            rows[min(int((v - lo) / width), bins - 1)][key] += 1
    return rows


def _distance_specs(report: EvaluationReport, bins: int) -> list[PlotSpec]:
    # one histogram per feature space: synthetic cases beside the real holdout baseline (the comparison is the point)
    holdout = report.holdout_distances()
    specs = []
    for space, synthetic in report.distances().items():
        series = {"synthetic": synthetic, **({"holdout": holdout[space]} if space in holdout else {})}
        data = histogram_rows(series, bins=bins)
        if not data:
            continue
        kind = "bar" if len(series) == 1 else "line"
        specs.append(PlotSpec(name=f"privacy {space} distance histogram",
                              title=f"Distance to the closest training case ({space} space)", rows=data,
                              x="bin_center", series=tuple(PlotSeries(s, kind, s) for s in series),
                              x_title="distance to the closest training case", y_title="cases"))
    return specs


def plot_specs(evaluation: str | os.PathLike[str] | Mapping[str, Any] | EvaluationReport, *,
               bins: int = 20) -> list[PlotSpec]:
    """The charts of an evaluation: Dice per training regime with its confidence interval (utility), and
    histograms of distances to the closest training case beside the holdout baseline (privacy)."""
    report = typed_report(evaluation)
    dice = _dice_spec(report)
    return ([dice] if dice else []) + _distance_specs(report, bins)
