"""Lesion texture fidelity: intensity spread inside lesion labels and in normal brain, real or synthetic.

A synthetic lesion painted at one intensity on a noise-free background (the head-CT template is an average of
many heads) is far smoother than a real one. :func:`texture_stats` measures, per lesion label and in normal
brain: the intensity SD, the 5th-95th percentile spread and the lesion-to-brain contrast (difference of
medians), the same way for real and synthetic cases, so the two can be compared. On head CT the target for an
acute bleed is a 5-95 % spread above about 10 HU (scanner noise alone at 5 mm slices; see
:mod:`SyntheticImagingLib.generators.ct_appearance` for the numbers and sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import Case
from ..errors import InputError

__all__ = ["region_stats", "texture_stats", "mean_lesion_spread", "texture_comparison", "TEXTURE_METRICS"]


def region_stats(values: np.ndarray) -> dict[str, float]:
    """Voxels, median, SD, 5th and 95th percentile and their spread of ``values``.

    Args:
        values: the intensities of one region (1D).
    """
    if values.size == 0:
        return {"voxels": 0, "median": float("nan"), "sd": float("nan"), "p5": float("nan"),
                "p95": float("nan"), "spread_5_95": float("nan")}
    p5, med, p95 = (float(v) for v in np.percentile(values, [5, 50, 95]))
    return {"voxels": int(values.size), "median": med, "sd": float(values.std()), "p5": p5, "p95": p95,
            "spread_5_95": p95 - p5}


def texture_stats(case: Case, *, channel: str | None = None, brain: np.ndarray | None = None,
                  margin_voxels: int = 2) -> dict[str, Any]:
    """Texture numbers of one case: per lesion label and for the normal brain, plus lesion-to-brain contrast.

    Args:
        case: a labelled case (real or synthetic).
        channel: the channel to measure (None: the first).
        brain: brain mask (None: the case's; without one, every non-lesion voxel above the 5th percentile).
        margin_voxels: lesion dilation kept out of the normal brain (edema, partial volume).

    Returns:
        ``{"channel", "brain": stats, "lesions": {name: stats + "contrast"}}``; stats as :func:`region_stats`.
    """
    if case.label is None or not (case.label > 0).any():
        raise InputError(f"case {case.case_id!r} has no lesion label to measure texture in",
                         fix="give labelled cases (a lesion label map with values > 0)")
    name = channel or case.channel_names[0]
    if name not in case.channels:
        raise InputError(f"case {case.case_id!r} has no channel {name!r}", fix=f"use one of {case.channel_names}")
    image = case.channels[name]
    lesion = case.label > 0
    if brain is None:
        brain = case.brain_mask
    if brain is None:
        brain = image > np.percentile(image, 5)
    normal = brain & ~(ndimage.binary_dilation(lesion, iterations=margin_voxels) if margin_voxels else lesion)
    brain_stats = region_stats(image[normal])
    lesions = {}
    for value in (int(v) for v in np.unique(case.label) if v > 0):
        stats: dict[str, Any] = region_stats(image[case.label == value])
        stats["contrast"] = stats["median"] - brain_stats["median"]
        lesions[case.label_table.names.get(value, f"label {value}")] = stats
    return {"channel": name, "brain": brain_stats, "lesions": lesions}


def mean_lesion_spread(cases: Sequence[Case], *, channel: str | None = None) -> dict[str, float]:
    """Mean over ``cases`` and their lesion labels of the 5-95 % spread and SD, and the brain's, and the contrast.

    Args:
        cases: labelled cases.
        channel: the channel (None: each case's first).
    """
    rows = [texture_stats(c, channel=channel) for c in cases]
    lesion = [s for r in rows for s in r["lesions"].values()]
    return {"lesion_spread_5_95": float(np.mean([s["spread_5_95"] for s in lesion])),
            "lesion_sd": float(np.mean([s["sd"] for s in lesion])),
            "brain_spread_5_95": float(np.mean([r["brain"]["spread_5_95"] for r in rows])),
            "brain_sd": float(np.mean([r["brain"]["sd"] for r in rows])),
            "contrast": float(np.mean([s["contrast"] for s in lesion])), "lesions": float(len(lesion))}


#: Texture numbers compared between synthetic and real lesions (per channel and label).
TEXTURE_METRICS = ("sd", "spread_5_95", "contrast")


def texture_comparison(real: Sequence[Case], synthetic: Sequence[Case]) -> list[dict[str, Any]]:
    """Synthetic lesion texture against the real cases' range, per channel, lesion label and metric.

    Cases are compared in the same units (prepared cases: each normalised on its own brain), so SD, 5-95 %
    spread and lesion-to-brain contrast are comparable across sets. A row is ``within_real_range`` when the
    synthetic mean lies between the smallest and the largest real case.

    Args:
        real: real labelled cases (training and holdout).
        synthetic: synthetic labelled cases.

    Returns:
        rows ``{"channel", "label", "metric", "real_min", "real_max", "real_mean", "synthetic_mean",
        "synthetic_min", "synthetic_max", "n_real", "n_synthetic", "within_real_range"}``.
    """
    def per_case(cases: Sequence[Case], channel: str) -> dict[tuple[str, str], list[float]]:
        out: dict[tuple[str, str], list[float]] = {}
        for case in cases:
            if case.label is None or not (case.label > 0).any() or channel not in case.channels:
                continue
            stats = texture_stats(case, channel=channel)
            for label, s in stats["lesions"].items():
                if s["voxels"] >= 5:
                    for metric in TEXTURE_METRICS:
                        out.setdefault((label, metric), []).append(float(s[metric]))
        return out

    rows: list[dict[str, Any]] = []
    if not real or not synthetic:
        return rows
    for channel in real[0].channel_names:
        r, s = per_case(real, channel), per_case(synthetic, channel)
        for (label, metric), values in sorted(r.items()):
            syn = s.get((label, metric), [])
            if not syn:
                continue
            lo, hi, mean = float(np.min(values)), float(np.max(values)), float(np.mean(syn))
            rows.append({"channel": channel, "label": label, "metric": metric, "real_min": lo, "real_max": hi,
                         "real_mean": float(np.mean(values)), "synthetic_mean": mean,
                         "synthetic_min": float(np.min(syn)), "synthetic_max": float(np.max(syn)),
                         "n_real": len(values), "n_synthetic": len(syn), "within_real_range": lo <= mean <= hi})
    return rows
