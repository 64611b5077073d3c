"""Reading an evaluation (``evaluate --out DIR``): its tables, its closest synthetic-real pairs, plot data.

``DIR/report.json`` holds one entry per check under ``"checks"``: ``status``, ``summary``, ``tables`` (name ->
``{"csv", "columns", "rows"}``, or directly a list of row dicts as in
:class:`SyntheticImagingLib.checks.CheckResult`), ``figures``, ``details``; ``DIR/tables/*.csv`` hold the same
tables, and ``"data"`` says which folders were compared. This module turns that into plain rows for table nodes
and into plot specifications (Dice per training regime with its confidence interval, histograms of distances to
the closest training record), without Slicer, so it is tested on its own. Column names are matched loosely
(``dice_mean``/``mean_dice``/``dice``, ``ci_low``/``dice_lo``/``lower``...), so a check may name its columns
naturally.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_report", "check_results", "table_rows", "report_tables", "dataset_roots", "adherence_predictions",
           "csv_tables", "AlignedCopy", "aligned_copies",
           "numeric_columns", "string_columns", "NearestPair", "nearest_pairs", "PlotSeries", "PlotSpec", "plot_specs",
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
    """Check name -> result, whether the report lists them under ``"checks"`` (as a dict or a list of results
    with a ``"name"``) or at its top level."""
    checks = report.get("checks", report)
    if isinstance(checks, Sequence) and not isinstance(checks, (str, bytes)):
        return {str(r.get("name", f"check{i + 1}")): r for i, r in enumerate(checks) if _is_result(r)}
    if isinstance(checks, Mapping):
        return {str(name): r for name, r in checks.items() if _is_result(r)}
    return {}


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


def dataset_roots(report: Mapping[str, Any]) -> dict[str, str]:
    """The folders an evaluation compared (``real_train``, ``real_test``, ``synthetic``), where the report says."""
    data = report.get("data") if isinstance(report.get("data"), Mapping) else {}
    return {k: str(v["root"]) for k, v in data.items() if isinstance(v, Mapping) and v.get("root")}


def adherence_predictions(report: Mapping[str, Any]) -> dict[str, str]:
    """Synthetic case id -> the reference segmenter's prediction file of the adherence check, relative to the
    report folder (``details["predictions"]["files"]``, else the per-case table's ``prediction`` column), in the
    order of the per-case table; empty when the check did not run or saved none."""
    result = check_results(report).get("adherence", {})
    details = result.get("details") if isinstance(result.get("details"), Mapping) else {}
    files = details.get("predictions", {}).get("files") if isinstance(details.get("predictions"), Mapping) else None
    out = {str(k): str(v) for k, v in files.items() if v} if isinstance(files, Mapping) else {}
    rows = table_rows((result.get("tables") or {}).get("per_case")) or []
    ordered = {str(r["case_id"]): str(r.get("prediction") or out.get(str(r["case_id"]), "")) for r in rows
               if r.get("case_id") is not None}
    return {k: v for k, v in {**ordered, **{k: v for k, v in out.items() if k not in ordered}}.items() if v}


@dataclasses.dataclass(frozen=True)
class AlignedCopy:
    """A synthetic case the privacy check calls a copy, moved onto the training patient it copies."""

    synthetic_id: str
    training_id: str
    distance: float | None
    image: str
    label: str


def aligned_copies(report: Mapping[str, Any]) -> dict[str, AlignedCopy]:
    """Synthetic case id -> its aligned copy (files relative to the report folder), from the privacy check's
    ``copies`` table; empty when the check called no copies or saved no files."""
    rows = table_rows((check_results(report).get("privacy", {}).get("tables") or {}).get("copies")) or []
    out = {}
    for r in rows:
        if r.get("synthetic_id") and r.get("aligned_image"):
            distance = r.get("aligned_distance")
            out[str(r["synthetic_id"])] = AlignedCopy(str(r["synthetic_id"]), str(r.get("copies_training_id", "")),
                                                      None if distance in (None, "") else float(distance),
                                                      str(r["aligned_image"]), str(r.get("aligned_label") or ""))
    return out


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


def _pair_rows(result: Mapping[str, Any]) -> Iterable[Rows]:
    for table in [*(result.get("tables") or {}).values(), *(result.get("details") or {}).values()]:
        rows = table_rows(table)
        if rows:
            yield rows


def _shared_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _pairs_of(rows: Rows) -> list[NearestPair]:
    text = string_columns(rows)
    # the aligned match first (flipped, registered, intensity-normalised: the pair most likely a copy), then
    # any nearest / closest column
    nearest = next((c for c in text if c.lower().startswith("aligned") and "training" in c.lower()), None) or next(
        (c for c in text if any(t in c.lower() for t in ("nearest", "closest"))), None) or next(
        (c for c in text if c.lower() in ("training_id", "train_id", "real_id")), None)
    synthetic = next((c for c in text if c != nearest and "synth" in c.lower()), None)
    if nearest is None or synthetic is None:
        return []
    if "space" in text:  # one feature space per table: distances of different spaces do not compare
        first = rows[0].get("space")
        rows = [r for r in rows if r.get("space") == first]
    distances = [c for c in numeric_columns(rows) if any(t in c.lower() for t in ("dcr", "dist"))]
    distance = max(distances, key=lambda c: (_shared_prefix(c, nearest), -distances.index(c)), default=None)
    return [NearestPair(str(r[synthetic]), str(r[nearest]),
                        None if distance is None or r.get(distance) is None else float(r[distance]))
            for r in rows if r.get(synthetic) not in (None, "") and r.get(nearest) not in (None, "")]


def nearest_pairs(report: Mapping[str, Any]) -> list[NearestPair]:
    """Closest training case of each synthetic case, most similar first, from the privacy check's tables or
    details (a text column naming the closest training case, e.g. ``encoder_nearest_training_id``). The table
    covering the most synthetic cases wins (a per-case table rather than a top-k list)."""
    results = check_results(report)
    names = sorted(results, key=lambda k: "privacy" not in k.lower())
    best: list[NearestPair] = []
    for name in names:
        for rows in _pair_rows(results[name]):
            pairs = _pairs_of(rows)
            if len({p.synthetic_id for p in pairs}) > len({p.synthetic_id for p in best}):
                best = pairs
        if best:
            break
    return sorted(best, key=lambda p: math.inf if p.distance is None else p.distance)


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


_LOW = ("ci_low", "ci_lo", "lower", "_low", "_lo", "low")
_HIGH = ("ci_high", "ci_hi", "upper", "_high", "_hi", "high")


def _dice_spec(name: str, rows: Rows) -> PlotSpec | None:
    numeric = numeric_columns(rows)
    dice = [c for c in numeric if "dice" in c.lower()]
    bounds = [c for c in dice if any(t in c.lower() for t in _LOW + _HIGH + ("std", "sd", "sem"))]
    mean = next((c for c in dice if c not in bounds), None)
    if mean is None:
        return None
    ci = [c for c in numeric if c not in (mean,) and ("dice" in c.lower() or "ci" in c.lower())]
    low = next((c for c in ci if any(t in c.lower() for t in _LOW)), None)
    high = next((c for c in ci if any(t in c.lower() for t in _HIGH)), None)
    if low is None or high is None:
        return None  # per-run rows, not a per-regime summary with its interval
    text = string_columns(rows)
    label = next((c for c in text if "regime" in c.lower()), text[0] if text else None)
    data = [{"index": i, "label": str(r.get(label, i)) if label else str(i), **{c: r.get(c) for c in (mean, low, high)}}
            for i, r in enumerate(rows)]
    series = [PlotSeries(mean, "bar", "Dice (mean)")]
    # Slicer charts have no error bars: the interval ends are drawn as markers on each bar
    series += [PlotSeries(low, "scatter", "95% CI low"), PlotSeries(high, "scatter", "95% CI high")]
    return PlotSpec(name=f"{name} Dice", title=f"Dice per training regime ({name})", rows=data, x="index",
                    series=tuple(series), x_title=label or "row", y_title="Dice", labels="label")


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


def _dcr_specs(tables: Mapping[str, Rows], bins: int) -> list[PlotSpec]:
    # one histogram per check and distance column, all tables of the check as series (synthetic cases beside the
    # holdout baseline: the comparison is the point)
    groups: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for name, rows in tables.items():
        check, _, table = name.partition(" ")
        for column in numeric_columns(rows):
            if "dcr" in column.lower():
                groups.setdefault((check, column), {})[table or check] = [r.get(column) for r in rows]
    specs = []
    for (check, column), series in groups.items():
        data = histogram_rows(series, bins=bins)
        if not data:
            continue
        kind = "bar" if len(series) == 1 else "line"
        specs.append(PlotSpec(name=f"{check} {column} histogram", title=f"{column}: distance to the closest "
                              f"training case ({check})", rows=data, x="bin_center",
                              series=tuple(PlotSeries(s, kind, s) for s in series),
                              x_title="distance to the closest training case", y_title="cases"))
    return specs


def plot_specs(tables: Mapping[str, Rows], *, bins: int = 20) -> list[PlotSpec]:
    """The charts worth drawing from an evaluation's tables (named ``"<check> <table>"``): Dice per regime with its
    confidence interval, and histograms of distances to the closest training record."""
    specs = [spec for name, rows in tables.items() if name != "summary"
             for spec in [_dice_spec(name, rows)] if spec is not None]
    return specs + _dcr_specs({k: v for k, v in tables.items() if k != "summary"}, bins)
