"""Label adherence: does each synthetic image show the lesion its label says it shows?

A generator can drift so that its labels no longer match its images (a lesion painted beside its label, a label
with no lesion painted at all). Training on such pairs teaches a segmenter the wrong thing, and neither fidelity
nor privacy numbers notice. The check asks the reference segmenter (trained on the REAL training cases only, the
one the utility check uses, shared through ``context.cache``) to segment every synthetic image and compares its
prediction with the synthetic label: Dice, lesion-wise detection and volume error per case.

"How good is good" is calibrated on real data: the same segmenter segments the real held-out cases, and the
threshold is a low percentile of their Dice minus a margin. A synthetic case below it follows its label worse than
almost any real case. The synthetic set follows its labels like real cases unless the share of cases below the
threshold exceeds ``max_share_below`` beyond chance (one-sided binomial test, so one miss in five cases is not a
verdict), and the mean synthetic Dice is within the margin of the real mean.

Intensity adherence per label: the lesion's appearance compared with real lesions (tumour-to-normal-brain FLAIR
ratio for MR; lesion median HU for CT). A case outside the real range, widened by a margin, is flagged.

Multi-label data (tumour sub-regions, hemorrhage subtypes; see ``checks.prepare``): the reference segmenter
predicts every label, and the same Dice is reported per label and, for tumours, per BraTS region (tables
``per_label`` / ``per_region``: synthetic mean beside the real held-out mean; ``per_case_labels``: every case), so a
generator that paints edema well but enhancing tumour badly shows it. The verdict stays on the whole lesion.

The segmenter's prediction of every synthetic case is saved (``<check folder>/predictions/<case_id>.nii.gz``, a
0/1 mask on the prepared check grid with that grid's physical geometry, so it overlays the case as loaded from
its dataset) and listed in the per-case table (``prediction``, relative to the report folder) and in
``details["predictions"]``: the Slicer module shows it over the case beside its label.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from ..cases import Case, Modality
from ..errors import InputError, LabelError
from ..io.images import write_image
from ..preprocessing import IntensityMap
from .base import Check, CheckContext, CheckResult, register_check
from .metrics import LABEL, REGION, dice, evaluation_structures, lesion_detection, structure_metrics
from .segmenter import SegmenterConfig, TrainedSegmenter, segment
from .segmenter_store import reference_segmenter

__all__ = ["AdherenceCheck", "label_adherence", "adherence_threshold", "intensity_feature", "intensity_range",
           "calibrate", "screen", "prediction_file_name", "structure_summary", "ADHERENCE_CACHE_KEY",
           "PREDICTIONS_FOLDER"]

#: ``context.cache`` key of the last adherence calibration (reused by the quality filter).
ADHERENCE_CACHE_KEY = "adherence_calibration"
#: Sub-folder of the check's output folder holding the reference segmenter's prediction of each synthetic case.
PREDICTIONS_FOLDER = "predictions"

_NAN = float("nan")


def prediction_file_name(case_id: str) -> str:
    """File name of a case's saved prediction (the case id made safe as a file name).

    Example:
        >>> prediction_file_name("synthetic 0001/a")
        'synthetic_0001_a.nii.gz'
    """
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._") or "case") + ".nii.gz"


def label_adherence(model: TrainedSegmenter, cases: Sequence[Case], *, min_lesion_voxels: int = 1,
                    predictions_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Per-case agreement of the segmenter's prediction with each case's own label.

    Args:
        model: the reference segmenter (trained on real cases).
        cases: prepared, labelled cases.
        min_lesion_voxels: smaller connected components are ignored by the lesion-wise detection.
        predictions_dir: also write each prediction there (:func:`prediction_file_name`, a uint8 label map on
            the case's grid with its geometry: 0/1, or the label values of a multi-label segmenter), atomically.

    Returns:
        Rows with ``case_id``, ``dice``, ``detection`` (share of labelled lesions found), ``lesions``,
        ``false_positive_lesions``, ``label_ml``, ``predicted_ml``, ``volume_error_ml`` (predicted - label) and
        ``volume_error_rel`` (relative to the label, NaN for an empty label); ``structures``: per-label and
        per-region Dice rows of a multi-label table (:func:`~.metrics.structure_metrics`, empty otherwise); with
        ``predictions_dir`` also ``prediction_file`` (the written file).
    """
    unlabelled = [c.case_id for c in cases if c.label is None]
    if unlabelled:
        raise LabelError(f"cases without a label map: {unlabelled[:5]}",
                         fix="label adherence compares each image with its own label: every case needs one")
    rows = []
    folder = Path(predictions_dir) if predictions_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for case, pred in zip(cases, segment(model, cases)):
        assert case.label is not None  # checked above
        structures = evaluation_structures(model.labels, case.lesion_kind)
        ref = case.label > 0
        det = lesion_detection(pred, ref, min_size_voxels=min_lesion_voxels)
        ml = case.geometry.voxel_volume_ml
        label_ml, pred_ml = float(ref.sum()) * ml, float(pred.sum()) * ml
        rows.append({"case_id": case.case_id, "dice": dice(pred, ref), "detection": det["sensitivity"],
                     "lesions": int(det["lesions"]), "false_positive_lesions": int(det["false_positives"]),
                     "label_ml": label_ml, "predicted_ml": pred_ml, "volume_error_ml": pred_ml - label_ml,
                     "volume_error_rel": (pred_ml - label_ml) / label_ml if label_ml > 0 else _NAN,
                     "structures": structure_metrics(pred, case.label, structures,
                                                     spacing_zyx=case.geometry.spacing_zyx, with_hd95=False)})
        if folder is not None:
            saved = pred if structures else (pred > 0)
            path = write_image(folder / prediction_file_name(case.case_id), saved.astype(np.uint8), case.geometry)
            rows[-1]["prediction_file"] = str(path)
    return rows


def adherence_threshold(real_dice: Sequence[float], *, percentile: float = 5.0, margin: float = 0.1) -> float:
    """The Dice under which a case follows its label worse than (almost) any real case.

    Args:
        real_dice: the reference segmenter's Dice on real held-out cases.
        percentile: low percentile of the real Dice.
        margin: subtracted from that percentile (few real cases give a noisy percentile).

    Example:
        >>> round(adherence_threshold([0.8, 0.9, 0.7], percentile=0.0, margin=0.1), 3)
        0.6
    """
    a = np.asarray(real_dice, float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise InputError("no finite real Dice to calibrate the adherence threshold",
                         fix="give labelled real held-out cases")
    return float(max(0.0, np.percentile(a, percentile) - margin))


def intensity_feature(case: Case) -> dict[str, Any]:
    """The lesion's intensity signature of a prepared case.

    MR: median of the FLAIR channel (else the first channel) inside the lesion over its median in normal brain,
    in units proportional to the scanner's (the per-case scale cancels in the ratio). CT: median HU in the
    lesion (prepared CT intensities map back to HU exactly).

    Args:
        case: a prepared case (``checks.prepare``).

    Returns:
        ``feature`` (its name), ``channel`` and ``value`` (NaN when the label or the brain is empty).
    """
    lesion = case.label > 0 if case.label is not None else np.zeros(case.shape, bool)
    if case.modality == Modality.CT:
        channel = case.channel_names[0]
        hu = IntensityMap(Modality.CT).inverse_array(case.channels[channel], channel)
        value = float(np.median(hu[lesion])) if lesion.any() else _NAN
        return {"feature": "lesion_median_hu", "channel": channel, "value": value}
    channel = "FLAIR" if "FLAIR" in case.channels else case.channel_names[0]
    a = (np.asarray(case.channels[channel], np.float64) + 1.0) / 2.0  # prepared [-1, ..] -> [0, ..]
    brain = case.brain_mask if case.brain_mask is not None else a > 0.005
    normal = brain & ~lesion
    if not lesion.any() or not normal.any():
        return {"feature": "lesion_to_brain_ratio", "channel": channel, "value": _NAN}
    ref = float(np.median(a[normal]))
    value = float(np.median(a[lesion])) / ref if ref > 0 else _NAN
    return {"feature": "lesion_to_brain_ratio", "channel": channel, "value": value}


def intensity_range(values: Sequence[float], *, margin: float = 0.5) -> tuple[float, float]:
    """The real range of an intensity feature widened by ``margin`` times its spread on each side.

    The spread is at least 10 % of the median magnitude, so a few near-identical real cases do not give a range
    too narrow to pass any other case.

    Args:
        values: the feature on real cases.
        margin: widening, in units of the spread.
    """
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return _NAN, _NAN
    spread = max(float(a.max() - a.min()), 0.1 * abs(float(np.median(a))), 1e-6)
    return float(a.min() - margin * spread), float(a.max() + margin * spread)


def _min_voxels(case: Case, min_lesion_ml: float) -> int:
    return max(1, math.ceil(min_lesion_ml / case.geometry.voxel_volume_ml))


def calibrate(real_train: Sequence[Case], real_test: Sequence[Case], *, context: CheckContext,
              config: SegmenterConfig | None = None, percentile: float = 5.0, margin: float = 0.1,
              intensity_margin: float = 0.5, min_lesion_ml: float = 0.05) -> dict[str, Any]:
    """Reference segmenter, its results on the real held-out cases, the Dice threshold and the intensity range.

    Cached in ``context.cache[ADHERENCE_CACHE_KEY]`` (keyed by the settings) so the check and the quality filter
    of one evaluation calibrate once.

    Args:
        real_train: prepared real training cases (the segmenter's only training data).
        real_test: prepared real held-out cases (the calibration).
        context: profile, device, seed and the shared cache.
        config: segmenter settings (default: sized by the profile, as the utility check's reference).
        percentile: low percentile of the real Dice for the threshold.
        margin: subtracted from that percentile.
        intensity_margin: widening of the real intensity range, in units of its spread.
        min_lesion_ml: connected components smaller than this are ignored by the detection.
    """
    if not real_train or not real_test:
        raise InputError("adherence needs real training and real held-out cases",
                         fix="give labelled cases in both real sets")
    key = (tuple(c.case_id for c in real_train), tuple(c.case_id for c in real_test), context.seed,
           repr(config), percentile, margin, intensity_margin, min_lesion_ml)
    cached = context.cache.get(ADHERENCE_CACHE_KEY)
    if cached is not None and cached["key"] == key:
        return cached
    model = reference_segmenter(real_train, context, config=config)
    min_voxels = _min_voxels(real_test[0], min_lesion_ml)
    real_rows = label_adherence(model, real_test, min_lesion_voxels=min_voxels)
    real_dice = [r["dice"] for r in real_rows]
    feats = [intensity_feature(c) for c in (*real_train, *real_test)]
    values = [f["value"] for f in feats]
    calib = {"key": key, "model": model, "real_rows": real_rows,
             "threshold": adherence_threshold(real_dice, percentile=percentile, margin=margin),
             "percentile": percentile, "margin": margin, "min_lesion_voxels": min_voxels,
             "intensity_feature": feats[0]["feature"], "intensity_channel": feats[0]["channel"],
             "intensity_real": values, "intensity_range": intensity_range(values, margin=intensity_margin),
             "intensity_margin": intensity_margin}
    context.cache[ADHERENCE_CACHE_KEY] = calib
    return calib


def screen(cases: Sequence[Case], calibration: dict[str, Any], *, check_intensity: bool = True,
           predictions_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Per-case adherence rows with ``below_threshold``, ``intensity_out_of_range`` and the ``reason`` in words.

    Args:
        cases: prepared labelled cases (synthetic, or real for the baseline).
        calibration: from :func:`calibrate`.
        check_intensity: also flag lesion intensities outside the real range.
        predictions_dir: also save the segmenter's predictions there (see :func:`label_adherence`).
    """
    rows = label_adherence(calibration["model"], cases, min_lesion_voxels=calibration["min_lesion_voxels"],
                           predictions_dir=predictions_dir)
    lo, hi = calibration["intensity_range"]
    for case, row in zip(cases, rows):
        value = intensity_feature(case)["value"]
        below = bool(row["dice"] < calibration["threshold"])
        # NaN (no lesion voxel or no brain) cannot be judged and is not flagged by intensity alone
        out = bool(check_intensity and math.isfinite(value) and math.isfinite(lo) and not lo <= value <= hi)
        reasons = []
        if below:
            reasons.append(f"label adherence Dice {row['dice']:.2f} below the real-calibrated threshold "
                           f"{calibration['threshold']:.2f}")
        if out:
            reasons.append(f"lesion {calibration['intensity_feature']} {value:.3g} outside the real range "
                           f"[{lo:.3g}, {hi:.3g}]")
        row.update(below_threshold=below, intensity=value, intensity_out_of_range=out, reason="; ".join(reasons))
    return rows


def structure_summary(syn_rows: Sequence[dict[str, Any]], real_rows: Sequence[dict[str, Any]]
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-label and per-region adherence: mean Dice of the synthetic cases beside the real held-out cases.

    Args:
        syn_rows: :func:`label_adherence` rows of the synthetic cases.
        real_rows: the same of the real held-out cases.

    Returns:
        ``per_label`` rows (column ``label``), ``per_region`` rows (column ``region``) and ``per_case_labels``
        (one row per case and structure, ``set`` synthetic or real).
    """
    per_case: list[dict[str, Any]] = []
    for set_name, rows in (("synthetic", syn_rows), ("real", real_rows)):
        for r in rows:
            per_case += [{"set": set_name, "case_id": r["case_id"], **s} for s in r.get("structures", [])]
    out: dict[str, list[dict[str, Any]]] = {LABEL: [], REGION: []}
    seen: list[tuple[str, str, str]] = []
    for r in per_case:
        key = (r["structure_kind"], r["structure"], r["values"])
        if key in seen:
            continue
        seen.append(key)
        cells = {n: [c["dice"] for c in per_case if (c["structure_kind"], c["structure"], c["values"]) == key
                     and c["set"] == n] for n in ("synthetic", "real")}
        out[key[0]].append({key[0]: key[1], "values": key[2], "dice_synthetic_mean": _mean(cells["synthetic"]),
                            "dice_real_mean": _mean(cells["real"]),
                            "dice_synthetic_min": float(np.min(cells["synthetic"])) if cells["synthetic"] else _NAN,
                            "n_synthetic": len(cells["synthetic"]), "n_real": len(cells["real"])})
    return out[LABEL], out[REGION], per_case


def _mean(values: Sequence[float]) -> float:
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else _NAN


def _median(values: Sequence[float]) -> float:
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else _NAN


@register_check
class AdherenceCheck(Check):
    """Do synthetic images follow their labels as well as real images do (by the real-data segmenter)?

    Args:
        config: reference segmenter settings (default: sized by the profile, shared with the utility check).
        percentile: low percentile of the real held-out Dice for the threshold.
        margin: subtracted from that percentile; also the tolerance of the mean comparison.
        max_share_below: largest share of synthetic cases below the threshold for a "follows labels" verdict.
        intensity_margin: widening of the real intensity range, in units of its spread.
        min_lesion_ml: connected components smaller than this are ignored by the detection.
        save_predictions: write the segmenter's prediction of each synthetic case to
            ``<out_dir>/predictions/<case_id>.nii.gz`` (on the prepared check grid, with its geometry).
        figures: draw the figure.
    """

    name = "adherence"

    def __init__(self, *, config: SegmenterConfig | None = None, percentile: float = 5.0, margin: float = 0.1,
                 max_share_below: float = 0.1, intensity_margin: float = 0.5, min_lesion_ml: float = 0.05,
                 save_predictions: bool = True, figures: bool = True) -> None:
        self.config = config
        self.percentile = percentile
        self.margin = margin
        self.max_share_below = max_share_below
        self.intensity_margin = intensity_margin
        self.min_lesion_ml = min_lesion_ml
        self.save_predictions = save_predictions
        self.figures = figures

    def run(self, *, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
            context: CheckContext) -> CheckResult:
        """Segment every synthetic image with the real-data segmenter and compare with its label."""
        if not synthetic:
            raise InputError("the adherence check needs synthetic cases", fix="give at least one synthetic case")
        context.progress.report("adherence", 0, 2, "reference segmenter")
        calib = calibrate(real_train, real_test, context=context, config=self.config, percentile=self.percentile,
                          margin=self.margin, intensity_margin=self.intensity_margin,
                          min_lesion_ml=self.min_lesion_ml)
        context.progress.report("adherence", 1, 2, "segmenting synthetic cases")
        out_dir = Path(context.out_dir)
        predictions = out_dir / PREDICTIONS_FOLDER if self.save_predictions else None
        syn_rows = screen(synthetic, calib, predictions_dir=predictions)
        # paths relative to the report folder (evaluate gives each check the folder <report>/<check name>)
        files = {r["case_id"]: f"{out_dir.name}/{PREDICTIONS_FOLDER}/{Path(r['prediction_file']).name}"
                 for r in syn_rows if "prediction_file" in r}
        for r in syn_rows:
            r["prediction"] = files.get(r["case_id"], "")
        real_rows = screen(real_test, calib)
        syn_dice = [r["dice"] for r in syn_rows]
        real_dice = [r["dice"] for r in real_rows]
        share_below = float(np.mean([r["below_threshold"] for r in syn_rows]))
        share_out = float(np.mean([r["intensity_out_of_range"] for r in syn_rows]))
        mean_syn, mean_real = _mean(syn_dice), _mean(real_dice)
        p_value = _NAN
        if len(syn_dice) >= 2 and len(real_dice) >= 2:
            # one-sided: do synthetic cases follow their labels worse than real ones?
            p_value = float(sps.mannwhitneyu(syn_dice, real_dice, alternative="less").pvalue)
        # Few cases: one miss in five is 20 %. The share counts against the set only when it exceeds
        # max_share_below beyond chance (one-sided binomial test at 5 %), so small sets are not condemned by one case.
        n_below = int(sum(r["below_threshold"] for r in syn_rows))
        p_share = float(sps.binomtest(n_below, len(syn_rows), self.max_share_below, alternative="greater").pvalue) \
            if n_below else 1.0
        too_many_below = share_below > self.max_share_below and p_share < 0.05
        follows = bool(not too_many_below and mean_syn >= mean_real - self.margin)
        lo, hi = calib["intensity_range"]
        summary: dict[str, Any] = {
            "verdict": "follows labels like real cases" if follows else "labels drift from images",
            "follows_labels": follows,
            "dice_synthetic_mean": mean_syn, "dice_real_mean": mean_real,
            "dice_real_min": float(np.min(real_dice)), "dice_real_max": float(np.max(real_dice)),
            "detection_synthetic_mean": _mean([r["detection"] for r in syn_rows]),
            "detection_real_mean": _mean([r["detection"] for r in real_rows]),
            "volume_error_rel_synthetic_median": _median([r["volume_error_rel"] for r in syn_rows]),
            "threshold": calib["threshold"], "threshold_rule": f"{self.percentile:g}th percentile of real held-out "
                                                              f"Dice minus {self.margin:g}",
            "share_below_threshold": share_below, "n_below_threshold": n_below,
            "p_share_below_exceeds": p_share,
            "p_synthetic_worse": p_value,
            "intensity_feature": calib["intensity_feature"], "intensity_channel": calib["intensity_channel"],
            "intensity_real_range": [lo, hi], "intensity_synthetic_median": _median([r["intensity"] for r in syn_rows]),
            "share_intensity_out_of_range": share_out,
            "n_synthetic": len(synthetic), "n_real_test": len(real_test), "n_real_train": len(real_train),
        }
        label_rows, region_rows, label_cases = structure_summary(syn_rows, real_rows)
        for rows, col in ((label_rows, "label"), (region_rows, "region")):
            if rows:
                summary[f"{col}_dice_synthetic"] = {r[col]: r["dice_synthetic_mean"] for r in rows}
                summary[f"{col}_dice_real"] = {r[col]: r["dice_real_mean"] for r in rows}
        columns = ("case_id", "dice", "detection", "volume_error_ml", "volume_error_rel", "below_threshold",
                   "intensity", "intensity_out_of_range", "lesions", "false_positive_lesions", "label_ml",
                   "predicted_ml", "reason")
        details: dict[str, Any] = {}
        if files:
            details["predictions"] = {
                "folder": f"{out_dir.name}/{PREDICTIONS_FOLDER}", "relative_to": "the report folder",
                "grid": f"prepared check grid ({context.profile.name}: spacing {list(context.profile.spacing)} mm, "
                        f"shape {list(context.profile.shape)}), physical geometry kept",
                "values": "the label values predicted by the reference segmenter (" +
                          ", ".join(f"{v} = {n}" for v, n in calib["model"].labels.names.items()) + "), 0 = none"
                          if len(calib["model"].labels.values) > 1 else
                          "1 = lesion predicted by the reference segmenter, 0 = not", "files": files}
        structure_tables: dict[str, list[dict[str, Any]]] = {}
        if label_rows:
            structure_tables["per_label"] = label_rows
        if region_rows:
            structure_tables["per_region"] = region_rows
        if label_cases:
            structure_tables["per_case_labels"] = label_cases
        result = CheckResult(
            name=self.name, summary=summary,
            tables={"per_case": [{**{k: r[k] for k in columns}, **({"prediction": r["prediction"]} if files else {})}
                                 for r in syn_rows],
                    "real_calibration": [{k: r[k] for k in columns} for r in real_rows],
                    "intensity_real": [{"value": v} for v in calib["intensity_real"]], **structure_tables},
            details={"segmenter": calib["model"].describe(), "calibration": "reference segmenter (real training "
                     "cases only) on the real held-out cases", "min_lesion_voxels": calib["min_lesion_voxels"],
                     "intensity_margin": self.intensity_margin, "max_share_below": self.max_share_below,
                     **details})
        if self.figures:
            result.figures["adherence"] = _figure(Path(context.out_dir) / "adherence.png", real_dice, syn_dice,
                                                  calib["threshold"])
        context.cache["adherence"] = result
        context.progress.report("adherence", 2, 2, "done")
        return result


def _figure(path: Path, real: Sequence[float], synthetic: Sequence[float], threshold: float) -> Path:
    from .report import _figure as new_figure
    from .report import _save

    fig = new_figure(6.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)
    for y, (name, values) in enumerate((("real held-out", real), ("synthetic", synthetic))):
        ax.scatter(values, y + rng.uniform(-0.15, 0.15, len(values)), s=16, alpha=0.7, label=name)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_yticks([0, 1], ["real held-out", "synthetic"])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("Dice of the real-data segmenter vs the case's own label")
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)
