"""Validation of the privacy check: a planted copier must be flagged, an honest generator must not be.

Each repeat splits the real cases into a generator *training* set, a privacy *holdout* (passed as
``real_test``) and a *pool* of further real cases that neither of them contains. The planted copier returns
lightly perturbed training cases (:func:`copying_generator`); the honest generator makes new cases from the
pool only (by default :func:`fresh_lesion_generator`: a pool background with a newly drawn lesion), so it is
independent of both the training set and the holdout, which is what "not copying" means. Power is the share
of repeats in which the copier is flagged, the false-alarm rate the share in which the honest generator is.

Repeats cycle over ``n_splits`` splits so that the encoder (trained on each split's training set) is trained
``n_splits`` times, not ``repeats`` times; the generators' randomness differs in every repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from scipy import stats as sps

from ..cases import Case, Modality
from ..errors import InputError
from .base import CheckContext
from .privacy import SPACES, assess_privacy

__all__ = ["copying_generator", "fresh_lesion_generator", "validate_privacy_check", "GeneratorFactory",
           "clopper_pearson"]

#: ``factory(train, pool, n, seed) -> cases``: a generator run inside one validation repeat.
GeneratorFactory = Callable[[Sequence[Case], Sequence[Case], int, int], Sequence[Case]]


def copying_generator(train: Sequence[Case], n: int, *, seed: int = 0, noise_std: float = 0.03,
                      max_shift_mm: float = 4.0, intensity_jitter: float = 0.05) -> list[Case]:
    """The planted copier: ``n`` lightly perturbed training cases (noise, small shift, intensity jitter).

    Sources are taken in a shuffled order, every training case before any repeats.

    Args:
        train: prepared training cases (normalised units, background ``-1``).
        n: how many copies.
        seed: random seed.
        noise_std: standard deviation of added Gaussian noise.
        max_shift_mm: largest translation along each axis (sub-voxel, linear interpolation).
        intensity_jitter: per-channel scale ``1 +- j`` and shift ``+- j``.
    """
    if not train:
        raise InputError("the copier needs training cases to copy")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(train)) for _ in range(n // len(train) + 1)])[:n]
    out = []
    for i, src_index in enumerate(order):
        src = train[int(src_index)]
        shift = rng.uniform(-max_shift_mm, max_shift_mm, 3) / np.asarray(src.geometry.spacing_zyx)
        channels = {}
        for name, a in src.channels.items():
            moved = ndimage.shift(a, shift, order=1, cval=-1.0)
            scale, offset = 1 + rng.uniform(-intensity_jitter, intensity_jitter), rng.uniform(-1, 1) * intensity_jitter
            channels[name] = (moved * scale + offset + rng.normal(0, noise_std, a.shape)).astype(np.float32)
        label = None if src.label is None else ndimage.shift(src.label, shift, order=0, cval=0).astype(np.int16)
        brain = None if src.brain_mask is None else ndimage.shift(src.brain_mask.astype(np.uint8), shift, order=0,
                                                                  cval=0).astype(bool)
        out.append(src.replace(case_id=f"copy_{seed}_{i:04d}", channels=channels, label=label, brain_mask=brain,
                               metadata={"synthetic": True, "generator": "planted-copier", "source": src.case_id}))
    return out


def _blob(shape: tuple[int, ...], centre: np.ndarray, radius_vox: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular lesion: a sphere whose surface is bent by smooth noise."""
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    r = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    bumps = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 2.0)
    bumps /= bumps.std() + 1e-6
    return r < radius_vox * (1 + 0.25 * bumps)


def fresh_lesion_generator(sources: Sequence[Case], n: int, *, seed: int = 0, radius_mm: tuple[float, float] = (8, 16),
                           flair_gain: float = 0.8, t1_gain: float = -0.4) -> list[Case]:
    """An honest generator that needs no training: a source background with a newly drawn lesion.

    The lesion is an irregular blob at a random brain position away from the source's own lesion, painted
    with a smooth edge (FLAIR and CT brighter, other MR channels darker); the label is the new blob merged with
    the source's lesion. Use pool cases (neither training nor holdout) as sources.

    Args:
        sources: prepared real cases (normalised units).
        n: how many cases.
        seed: random seed.
        radius_mm: range of lesion radii.
        flair_gain: intensity added to FLAIR (and CT) at the lesion centre (normalised units).
        t1_gain: intensity added to every other MR channel.
    """
    if not sources:
        raise InputError("the honest generator needs source (background) cases")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = sources[int(rng.integers(len(sources)))]
        brain = src.brain_mask if src.brain_mask is not None else next(iter(src.channels.values())) > -0.95
        lesion = src.label > 0 if src.label is not None else np.zeros(src.shape, bool)
        inner = ndimage.binary_erosion(brain, iterations=3) & ~ndimage.binary_dilation(lesion, iterations=2)
        candidates = np.argwhere(inner if inner.any() else brain)
        centre = candidates[int(rng.integers(len(candidates)))].astype(float)
        radius = rng.uniform(*radius_mm) / float(np.mean(src.geometry.spacing_zyx))
        blob = _blob(src.shape, centre, radius, rng) & brain
        weight = ndimage.gaussian_filter(blob.astype(np.float32), 1.0)
        bright = {n for n in src.channels if n.upper() == "FLAIR" or src.modality == Modality.CT}  # CT: hyperdense
        channels = {name: (a + weight * (flair_gain if name in bright else t1_gain)
                           * rng.uniform(0.8, 1.2)).astype(np.float32) for name, a in src.channels.items()}
        label = (lesion | blob).astype(np.int16)
        out.append(src.replace(case_id=f"fresh_{seed}_{i:04d}", channels=channels, label=label,
                               metadata={"synthetic": True, "generator": "fresh-lesion", "background": src.case_id}))
    return out


def clopper_pearson(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of a rate ``k / n``.

    Args:
        k: successes.
        n: trials.
        confidence: coverage.

    Example:
        >>> [round(v, 3) for v in clopper_pearson(20, 20)]
        [0.832, 1.0]
    """
    if n == 0:
        return float("nan"), float("nan")
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(sps.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _default_copier(train: Sequence[Case], pool: Sequence[Case], n: int, seed: int) -> list[Case]:
    return copying_generator(train, n, seed=seed)


def _default_honest(train: Sequence[Case], pool: Sequence[Case], n: int, seed: int) -> list[Case]:
    return fresh_lesion_generator(pool, n, seed=seed)


def validate_privacy_check(real_cases: Sequence[Case], *, repeats: int, context: CheckContext,
                           honest_factory: GeneratorFactory | None = None,
                           copier_factory: GeneratorFactory | None = None, n_train: int | None = None,
                           n_holdout: int | None = None, n_synthetic: int | None = None, n_splits: int = 2,
                           spaces: Sequence[str] = SPACES, alpha: float = 0.05,
                           quantile: float = 95.0, aligned: bool = True) -> dict[str, Any]:
    """Power (copier flagged) and false-alarm rate (honest generator flagged) of the privacy verdict.

    Args:
        real_cases: prepared real cases (at least 4).
        repeats: repeats per generator.
        context: profile, seed, device, progress and the encoder cache.
        honest_factory: ``(train, pool, n, seed) -> cases`` that must not copy (default: a pool background with
            a new lesion, :func:`fresh_lesion_generator`).
        copier_factory: the planted copier (default: :func:`copying_generator` on ``train``).
        n_train: training cases per split (default 40 % of the cases, at least 2).
        n_holdout: holdout cases per split (default 30 %, at least 1); the rest is the honest generator's pool.
        n_synthetic: synthetic cases per run (default twice ``n_train``).
        n_splits: distinct splits the repeats cycle over (each trains one encoder).
        spaces: privacy spaces.
        alpha: family-wise level of the verdict.
        quantile: memorization-threshold percentile.
        aligned: run the aligned per-case copy detection too (:mod:`.privacy_aligned`).

    Returns:
        ``power``, ``false_alarm_rate`` (with 95 % Clopper-Pearson intervals), counts, sizes, timings, the case
        ids of each split (``splits``) and one row per run (``rows``).
    """
    n = len(real_cases)
    n_train = n_train or max(2, round(0.4 * n))
    n_holdout = n_holdout or max(1, round(0.3 * n))
    if n_train < 2 or n_holdout < 1 or n - n_train - n_holdout < 1:
        raise InputError(f"{n} real cases cannot be split into {n_train} training, {n_holdout} holdout and >= 1 pool "
                         "cases", fix="give more real cases or smaller n_train / n_holdout")
    if repeats < 1:
        raise InputError("validation needs at least one repeat")
    n_synthetic = n_synthetic or 2 * n_train
    honest_factory = honest_factory or _default_honest
    copier_factory = copier_factory or _default_copier
    splits = []
    for s in range(max(1, n_splits)):
        order = np.random.default_rng(context.seed + 1000 + s).permutation(n)
        splits.append((order[:n_train], order[n_train:n_train + n_holdout], order[n_train + n_holdout:]))
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for r in range(repeats):
        tr_i, ho_i, po_i = splits[r % len(splits)]
        train = [real_cases[int(i)] for i in tr_i]
        holdout = [real_cases[int(i)] for i in ho_i]
        pool = [real_cases[int(i)] for i in po_i]
        seed = context.seed + r
        for kind, factory in (("copier", copier_factory), ("honest", honest_factory)):
            synthetic = list(factory(train, pool, n_synthetic, seed))
            a = assess_privacy(train, holdout, synthetic, context=context, spaces=spaces, alpha=alpha,
                               quantile=quantile, aligned=aligned)
            row: dict[str, Any] = {"repeat": r, "split": r % len(splits), "generator": kind, "flagged": a.flagged,
                                   "reasons": "; ".join(a.reasons)}
            for space, res in a.spaces.items():
                row.update({f"{space}_memorization_rate": res.memorization_rate,
                            f"{space}_baseline_memorization_rate": res.baseline_memorization_rate,
                            f"{space}_overfitting_ratio": res.overfitting_ratio, f"{space}_mia_auc": res.mia_auc})
            dice = a.mask_dice[np.isfinite(a.mask_dice)]
            row["mask_max_dice_mean"] = float(dice.mean()) if dice.size else float("nan")
            if a.aligned is not None:
                row["aligned_copies"] = int(a.aligned.copy.sum())
                # a named patient is right when it is the source the generator copied
                sources = {c.case_id: c.metadata.get("source") for c in synthetic}
                row["aligned_named_right"] = all(sources.get(s) == t for s, t in a.copies)
            rows.append(row)
        context.progress.report("validate_privacy", r + 1, repeats)
    copier_hits = sum(row["flagged"] for row in rows if row["generator"] == "copier")
    honest_hits = sum(row["flagged"] for row in rows if row["generator"] == "honest")
    return {"power": copier_hits / repeats, "power_ci95": clopper_pearson(copier_hits, repeats),
            "false_alarm_rate": honest_hits / repeats, "false_alarm_ci95": clopper_pearson(honest_hits, repeats),
            "copier_flagged": copier_hits, "honest_flagged": honest_hits, "repeats": repeats,
            "n_train": n_train, "n_holdout": n_holdout, "n_pool": n - n_train - n_holdout,
            "n_synthetic": n_synthetic, "n_splits": len(splits), "spaces": list(spaces), "alpha": alpha,
            "seconds": time.monotonic() - t0,
            "splits": [{part: [real_cases[int(i)].case_id for i in idx]
                        for part, idx in zip(("train", "holdout", "pool"), split)} for split in splits],
            "rows": rows}
