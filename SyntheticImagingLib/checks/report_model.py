"""``report.json`` read back into the dataclasses the checks wrote, for the programs that show a report (the
Slicer module's tables, charts and views; scripts).

:func:`~SyntheticImagingLib.checks.report.write_report` stores one entry per check: its status and, when it ran,
its :class:`~SyntheticImagingLib.checks.base.CheckResult` (summary, tables as ``{"csv", "columns", "rows"}``,
figures, details). :class:`EvaluationReport` turns that back into ``CheckResult`` objects and reads the few
tables a viewer needs by the names and columns their checks write (utility ``regimes``, ``per_label`` and
``per_region``, privacy ``per_synthetic_case``, adherence ``per_case``), so a renamed column fails loudly here
instead of silently matching another one. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import CheckResult

__all__ = ["EvaluationReport", "CheckEntry", "RegimeDice", "StructureDice", "ClosestPair", "AlignedCopy",
           "AdherenceRow", "read_report"]

Rows = list[dict[str, Any]]


def _rows(table: Any) -> Rows:
    if isinstance(table, Mapping) and "rows" in table:
        table = table["rows"]
    return [dict(r) for r in table] if isinstance(table, list) else []


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclasses.dataclass(frozen=True)
class CheckEntry:
    """One check of an evaluation: ``status`` is ``ok``, ``failed`` or ``skipped``; ``result`` is what it found
    (None unless it ran)."""

    name: str
    status: str
    message: str = ""
    seconds: float | None = None
    result: CheckResult | None = None


@dataclasses.dataclass(frozen=True)
class RegimeDice:
    """Dice of one training regime of the utility check (TRTR, TSTR, real + synthetic...) with its 95 % CI."""

    regime: str
    kind: str
    n_real: int
    n_synthetic: int
    seeds: int
    dice: float
    dice_lo: float
    dice_hi: float


@dataclasses.dataclass(frozen=True)
class StructureDice:
    """Dice (95 % CI over seeds) and HD95 of one label or BraTS region under one training regime of the utility
    check (multi-label data), and its paired difference with TRTR (NaN for TRTR itself).

    ``name`` is the user's label name (kind ``label``) or the region (``whole tumor``, ``tumor core``,
    ``enhancing tumor``; kind ``region``); ``values`` the label values it unites."""

    regime: str
    kind: str
    name: str
    values: tuple[int, ...]
    seeds: int
    dice: float
    dice_lo: float
    dice_hi: float
    hd95_mm: float
    dice_vs_trtr: float
    dice_vs_trtr_lo: float
    dice_vs_trtr_hi: float


@dataclasses.dataclass(frozen=True)
class ClosestPair:
    """A synthetic case and the training case closest to it in one feature space of the privacy check."""

    synthetic_id: str
    training_id: str
    space: str
    distance: float
    memorized: bool


@dataclasses.dataclass(frozen=True)
class AlignedCopy:
    """A synthetic case the privacy check calls a copy, moved onto the training patient it copies: the files
    (relative to the report folder) hold it mirrored if it matched that way and registered onto the patient's
    grid."""

    synthetic_id: str
    training_id: str
    distance: float
    image: str
    label: str


@dataclasses.dataclass(frozen=True)
class AdherenceRow:
    """The adherence check's answer for one synthetic case: Dice of the reference segmenter's prediction against
    the case's label, why it failed (empty when it did not), and the prediction file (relative to the report)."""

    case_id: str
    dice: float
    reason: str
    prediction: str


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """An evaluation folder's ``report.json``, typed."""

    folder: Path
    status: str
    checks: dict[str, CheckEntry]
    data: dict[str, Any]
    settings: dict[str, Any]

    @classmethod
    def from_dict(cls, report: Mapping[str, Any], folder: str | os.PathLike[str] = ".") -> EvaluationReport:
        """From the parsed JSON."""
        checks: dict[str, CheckEntry] = {}
        for name, entry in (report.get("checks") or {}).items():
            if not isinstance(entry, Mapping):
                continue
            result = None
            if entry.get("status") == "ok":
                result = CheckResult(name=str(name), summary=dict(entry.get("summary") or {}),
                                     tables={t: _rows(v) for t, v in (entry.get("tables") or {}).items()},
                                     figures={f: Path(v) for f, v in (entry.get("figures") or {}).items()},
                                     details=dict(entry.get("details") or {}))
            checks[str(name)] = CheckEntry(str(name), str(entry.get("status", "")), str(entry.get("message", "")),
                                           entry.get("seconds"), result)
        return cls(Path(folder), str(report.get("status", "")), checks, dict(report.get("data") or {}),
                   dict(report.get("settings") or {}))

    def result(self, check: str) -> CheckResult | None:
        """The result of ``check`` (None unless it ran)."""
        entry = self.checks.get(check)
        return entry.result if entry else None

    def dataset_roots(self) -> dict[str, str]:
        """The folders the evaluation compared (``real_train``, ``real_test``, ``synthetic``)."""
        return {k: str(v["root"]) for k, v in self.data.items() if isinstance(v, Mapping) and v.get("root")}

    def regimes(self) -> list[RegimeDice]:
        """Dice per training regime (utility check ``regimes`` table), in the check's order."""
        result = self.result("utility")
        return [RegimeDice(str(r["regime"]), str(r["kind"]), int(r["n_real"]), int(r["n_synthetic"]),
                           int(r["seeds"]), _float(r["dice"]), _float(r["dice_lo"]), _float(r["dice_hi"]))
                for r in (result.tables.get("regimes", []) if result else [])]

    def _structure_rows(self, table: str, column: str) -> list[StructureDice]:
        result = self.result("utility")
        return [StructureDice(str(r["regime"]), column, str(r[column]),
                              tuple(int(v) for v in str(r["values"]).split(",") if v.strip()), int(r["seeds"]),
                              _float(r["dice"]), _float(r["dice_lo"]), _float(r["dice_hi"]), _float(r.get("hd95_mm")),
                              _float(r.get("dice_vs_trtr")), _float(r.get("dice_vs_trtr_lo")),
                              _float(r.get("dice_vs_trtr_hi")))
                for r in (result.tables.get(table, []) if result else [])]

    def label_rows(self) -> list[StructureDice]:
        """Dice per label and training regime (utility ``per_label`` table; empty for single-label data)."""
        return self._structure_rows("per_label", "label")

    def region_rows(self) -> list[StructureDice]:
        """Dice per BraTS region (whole tumour, tumour core, enhancing tumour) and training regime (utility
        ``per_region`` table; empty unless the tumour labels form regions)."""
        return self._structure_rows("per_region", "region")

    def privacy_spaces(self) -> list[str]:
        """The feature spaces the privacy check compared in (``encoder``, ``voxel``...), in its order."""
        result = self.result("privacy")
        rows = result.tables.get("per_synthetic_case", []) if result else []
        return [c[: -len("_nearest_training_id")] for c in (rows[0] if rows else {})
                if c.endswith("_nearest_training_id") and c != "mask_nearest_training_id"]

    def closest_pairs(self, space: str | None = None) -> list[ClosestPair]:
        """Each synthetic case with its closest training case in ``space``, closest first (the most at risk of
        being a copy). By default the aligned match (flipped, registered, intensity-normalised: the pair the
        check decides copies on) where the check made one, else the check's first feature space."""
        result = self.result("privacy")
        rows = result.tables.get("per_synthetic_case", []) if result else []
        if space in (None, "aligned") and rows and "aligned_training_id" in rows[0]:
            aligned = [ClosestPair(str(r["synthetic_id"]), str(r["aligned_training_id"]), "aligned",
                                   _float(r["aligned_distance"]), bool(r.get("aligned_copy", False))) for r in rows]
            return sorted(aligned, key=lambda p: math.inf if math.isnan(p.distance) else p.distance)
        spaces = self.privacy_spaces()
        if result is None or not spaces:
            return []
        space = space or spaces[0]
        if space not in spaces:
            raise InputError(f"the privacy check has no space {space!r}", fix=f"use one of {spaces}")
        pairs = [ClosestPair(str(r["synthetic_id"]), str(r[f"{space}_nearest_training_id"]), space,
                             _float(r[f"{space}_dcr"]), bool(r.get(f"{space}_memorized", False)))
                 for r in result.tables["per_synthetic_case"]]
        return sorted(pairs, key=lambda p: math.inf if math.isnan(p.distance) else p.distance)

    def distances(self) -> dict[str, list[float]]:
        """Distance of every synthetic case to its closest training case, per space (for histograms)."""
        result = self.result("privacy")
        rows = result.tables.get("per_synthetic_case", []) if result else []
        return {space: [_float(r[f"{space}_dcr"]) for r in rows] for space in self.privacy_spaces()}

    def aligned_copies(self) -> dict[str, AlignedCopy]:
        """Synthetic case id -> its aligned copy, for the cases the privacy check calls copies and saved."""
        result = self.result("privacy")
        rows = result.tables.get("copies", []) if result else []
        return {str(r["synthetic_id"]): AlignedCopy(str(r["synthetic_id"]), str(r.get("copies_training_id", "")),
                                                    _float(r.get("aligned_distance")), str(r["aligned_image"]),
                                                    str(r.get("aligned_label") or ""))
                for r in rows if r.get("synthetic_id") and r.get("aligned_image")}

    def holdout_distances(self) -> dict[str, list[float]]:
        """Distance of every real holdout case to its closest training case, per space: the baseline a synthetic
        case's distance is read against."""
        result = self.result("privacy")
        rows = result.tables.get("holdout_baseline", []) if result else []
        return {space: [_float(r[f"{space}_dcr"]) for r in rows] for space in self.privacy_spaces()
                if rows and f"{space}_dcr" in rows[0]}

    def adherence_rows(self) -> list[AdherenceRow]:
        """The adherence check's per-case rows, in its order."""
        result = self.result("adherence")
        files = ((result.details.get("predictions") or {}).get("files") or {}) if result else {}
        return [AdherenceRow(str(r["case_id"]), _float(r["dice"]), str(r.get("reason") or ""),
                             str(r.get("prediction") or files.get(str(r["case_id"])) or ""))
                for r in (result.tables.get("per_case", []) if result else [])]


def read_report(path: str | os.PathLike[str]) -> EvaluationReport:
    """Read an evaluation folder's ``report.json`` (or the file itself).

    Raises:
        InputError: no report, or not a report.
    """
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.exists():
        raise InputError(f"{file}: no evaluation report", where=str(path), fix="run the checks first (evaluate)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{file}: the report cannot be read ({err})", where=str(file)) from None
    if not isinstance(data, dict) or "checks" not in data:
        raise InputError(f"{file}: not an evaluation report (no 'checks')", where=str(file))
    return EvaluationReport.from_dict(data, file.parent)
