"""Privacy filter: drop (or regenerate) synthetic cases that sit too close to a training case.

A synthetic case is dropped when its distance to the closest training record (DCR) is at or under the
memorization threshold, the same one the privacy check uses: a high percentile of the distance that lightly augmented
copies of the training cases keep to their sources (:func:`~.privacy.calibration_distances`). Optionally a
synthetic lesion mask that reproduces a training mask (max Dice at or above ``max_mask_dice``) is dropped too.
With ``aligned`` (the default) a case the aligned comparison calls a copy of a training patient (flipped,
registered, intensity-normalised; :mod:`.privacy_aligned`, calibrated on the training cases alone) is dropped as
well, its patient named.
With a ``regenerate`` callback, dropped cases are replaced by new ones, which are screened in turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..cases import Case
from ..errors import InputError
from .base import CheckContext
from .encoder import get_encoder
from .nearest import knn
from .privacy import (
    COPY_AUGMENT,
    PRIVACY_CACHE_KEY,
    SPACES,
    calibration_distances,
    case_features,
    mask_novelty,
    voxel_factor,
)
from .privacy_aligned import run_aligned

__all__ = ["privacy_filter", "calibrated_threshold", "Regenerate"]

#: ``regenerate(n, round) -> cases``: n replacement cases for a screening round (1, 2, ...).
Regenerate = Callable[[int, int], Sequence[Case]]


def _embedder(real_train: Sequence[Case], space: str, context: CheckContext) -> Any:
    return get_encoder(real_train, context=context).embed_arrays if space == "encoder" else None


def calibrated_threshold(real_train: Sequence[Case], *, context: CheckContext, space: str = "voxel",
                         quantile: float = 95.0, copies: int | None = None, factor: int | None = None) -> float:
    """The memorization threshold of a training set in one space (what the privacy check reports).

    Args:
        real_train: prepared training cases (at least 2).
        context: seed, device and the encoder cache.
        space: ``"voxel"`` or ``"encoder"``.
        quantile: percentile of augmented-copy distances.
        copies: augmented copies per case (default: enough for >= 40 distances).
        factor: voxel-space downsampling (default: the privacy check's, see :func:`~.privacy.voxel_factor`).
    """
    if space not in SPACES:
        raise InputError(f"unknown space {space!r}", fix=f"use one of {list(SPACES)}")
    if len(real_train) < 2:
        raise InputError("calibrating a threshold needs at least 2 training cases")
    channels = tuple(real_train[0].channel_names)
    factor = factor or voxel_factor(real_train[0].geometry.spacing_zyx)
    embed = _embedder(real_train, space, context)
    feats = case_features(real_train, space, channels=channels, embed=embed, factor=factor)
    dist = calibration_distances(real_train, space, channels=channels, source_features=feats.astype(float),
                                 copies=copies or max(2, math.ceil(40 / len(real_train))), seed=context.seed + 7,
                                 embed=embed, factor=factor, augment=COPY_AUGMENT)
    return float(np.percentile(dist, quantile))


def privacy_filter(synthetic: Sequence[Case], real_train: Sequence[Case], *, threshold: float | None,
                   context: CheckContext, space: str = "voxel", max_mask_dice: float | None = None,
                   regenerate: Regenerate | None = None, max_rounds: int = 3, quantile: float = 95.0,
                   aligned: bool = True) -> tuple[list[Case], list[dict[str, Any]]]:
    """Keep the synthetic cases whose DCR is above the threshold; list the others.

    Args:
        synthetic: prepared synthetic cases.
        real_train: the generator's prepared training cases.
        threshold: DCR at or under which a case is dropped (None: calibrate it, see :func:`calibrated_threshold`;
            the privacy check reports it as ``<space>_threshold``).
        context: seed, device and the encoder cache.
        space: ``"voxel"`` or ``"encoder"``.
        max_mask_dice: also drop a case whose lesion mask has at least this Dice with a training mask.
        regenerate: called with ``(n_dropped, round)`` to replace dropped cases; replacements are screened too.
        max_rounds: regeneration rounds at most.
        quantile: percentile for a calibrated threshold.
        aligned: also drop cases the aligned comparison calls copies (distinct patients for its threshold:
            training cases against each other).

    Returns:
        ``(kept cases, dropped rows)``; each row gives ``synthetic_id``, ``nearest_training_id``, ``dcr``,
        ``threshold``, ``mask_max_dice``, ``reason``, ``space``, ``round`` (0 = the original set) and
        ``copies_training_id`` (the patient an aligned copy reproduces, else empty).
    """
    if space not in SPACES:
        raise InputError(f"unknown space {space!r}", fix=f"use one of {list(SPACES)}")
    if not real_train:
        raise InputError("the privacy filter needs the training cases")
    if threshold is None:
        threshold = calibrated_threshold(real_train, context=context, space=space, quantile=quantile)
    channels = tuple(real_train[0].channel_names)
    factor = voxel_factor(real_train[0].geometry.spacing_zyx)
    embed = _embedder(real_train, space, context)
    train_f = case_features(real_train, space, channels=channels, embed=embed, factor=factor)
    kept: list[Case] = []
    dropped: list[dict[str, Any]] = []
    batch = list(synthetic)
    for rnd in range(max_rounds + 1):
        if not batch:
            break
        feats = case_features(batch, space, channels=channels, embed=embed, factor=factor)
        dcr, nearest = (a[:, 0] for a in knn(feats, train_f, k=1))
        dice = np.full(len(batch), np.nan)
        if max_mask_dice is not None:
            dice, _ = mask_novelty(batch, real_train, channels=channels)
        copies: dict[int, tuple[str, str]] = {}
        if aligned and len(real_train) >= 2:
            al = run_aligned(real_train, [], batch, channels=channels, seed=context.seed,
                             memo=context.cache.setdefault(PRIVACY_CACHE_KEY, {}), quantile=quantile)
            for i in np.flatnonzero(al.copy):
                patient = real_train[int(al.nearest[i])].case_id
                copies[int(i)] = (patient, f"copies training patient {patient} after alignment (distance "
                                           f"{al.distance[i]:.3g} <= {al.calibration.threshold:.3g})")
        n_dropped = 0
        for k, (case, d, j, md) in enumerate(zip(batch, dcr, nearest, dice)):
            reasons = [copies[k][1]] if k in copies else []
            if d <= threshold:  # the privacy check's "memorized"
                reasons.append("DCR at or under the memorization threshold")
            if max_mask_dice is not None and np.isfinite(md) and md >= max_mask_dice:
                reasons.append("lesion mask reproduces a training mask")
            if reasons:
                n_dropped += 1
                dropped.append({"synthetic_id": case.case_id, "nearest_training_id": real_train[int(j)].case_id,
                                "dcr": float(d), "threshold": float(threshold), "mask_max_dice": float(md),
                                "reason": "; ".join(reasons), "space": space, "round": rnd,
                                "copies_training_id": copies[k][0] if k in copies else ""})
            else:
                kept.append(case)
        context.progress.report("privacy_filter", rnd + 1, max_rounds + 1, f"{n_dropped} dropped")
        if regenerate is None or n_dropped == 0 or rnd == max_rounds:
            break
        batch = list(regenerate(n_dropped, rnd + 1))
    return kept, dropped
