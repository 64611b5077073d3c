"""Per-case copy detection after alignment: which synthetic case is which training patient in disguise.

The privacy check's fast spaces each have a blind spot (voxel distances are not flip-invariant; the encoder is
not invariant to bias, gamma and noise), so a memorized patient altered several ways at once passes both. Here
each synthetic case is compared with its nearest training candidates after alignment (:mod:`.aligned_match`:
both orientations, SimpleITK registration, rank / high-pass intensity normalisation), and:

* **Copy distances** (the calibration): disguised copies of training cases (:mod:`.disguise`, the family
  :data:`~.disguise.DISGUISE`) registered onto their own sources.
* **Distinct-patient distances** (the baseline): the aligned distance of each holdout case to its nearest
  training case and of each training case to its nearest *other* training case.
* **Thresholds**: the *anatomy threshold* is the ``quantile`` of the copy distances; the *copy threshold* lies
  half-way between it and the smallest distinct-patient distance; the *lesion threshold* half-way between the
  5th percentile of the copies' registered lesion-mask Dice and the 95th percentile of the distinct-patient
  matches' (two large tumours of different patients can overlap well after registration).
  When copy and distinct-patient distances overlap, the family cannot be told from different patients on this
  data (tiny or very noisy volumes): ``separated`` is False and no copies are called (real patients would be
  called copies of each other); the report says so.
* A synthetic case **copies** the training patient it was matched with when its aligned distance is within the
  anatomy threshold (as close as a disguised copy: whatever its lesion), or within the copy threshold with its
  lesion reproduced too (registered mask Dice at or above the lesion threshold, or no lesion masks to compare).
  A case within the copy threshold whose lesion is new is listed as an *anatomy match* (its patient named) but
  does not flag the set: this is what a generator drawing new images and new lesions on deformed training
  anatomy layouts (``label-to-image``) makes. The set is flagged when any case is a copy.

Registration runs only for synthetic cases whose fast-space distance is within ``gate_factor`` times the
largest fast-space distance of the calibration copies, so 1,000 honest cases cost features, not registrations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..cases import Case
from ..errors import InputError
from .aligned_match import (
    MATCH,
    MatchImage,
    MatchSettings,
    PairMatch,
    aligned_nearest,
    candidate_pairs,
    compare_pair,
    fast_features,
    match_images,
)
from .disguise import DISGUISE, DisguiseParams, disguise_case, draw_disguise
from .prepare import cases_fingerprint

__all__ = ["AlignedResult", "AlignedCalibration", "calibrate_aligned", "assess_aligned", "run_aligned"]


@dataclasses.dataclass
class AlignedCalibration:
    """What the threshold of one training set rests on.

    Args:
        copy_distances: aligned distances of disguised training copies to their sources.
        copy_fast_distances: their fast-space distances (they set the registration gate).
        null_distances: aligned nearest-training distances of distinct real patients (holdout, leave-one-out).
        copy_dice: registered lesion-mask Dice of the copies with their sources (NaN: no masks).
        null_dice: the same for the distinct-patient matches.
        threshold: copy threshold.
        anatomy_threshold: the copies' distance quantile (a case this close is a copy whatever its lesion).
        lesion_threshold: registered mask Dice from which a lesion counts as reproduced (NaN: no masks).
        separated: the copy quantile lies below the smallest distinct-patient distance (else no copies are called).
        gate: fast-space distance above which a case is not registered.
        family: the alteration family in words.
    """

    copy_distances: np.ndarray
    copy_fast_distances: np.ndarray
    null_distances: np.ndarray
    copy_dice: np.ndarray
    null_dice: np.ndarray
    threshold: float
    anatomy_threshold: float
    lesion_threshold: float
    separated: bool
    gate: float
    family: str


@dataclasses.dataclass
class AlignedResult:
    """Per synthetic case: its aligned nearest training patient and whether it copies it.

    Args:
        distance: ``[n]`` aligned distance (NaN: not registered, fast distance above the gate).
        fast_distance: ``[n]`` fast-space distance to the nearest candidate.
        nearest: ``[n]`` training index matched.
        dice: ``[n]`` Dice of the registered lesion masks (NaN: not registered or no masks).
        flipped: ``[n]`` matched in the mirrored orientation.
        pairs: the registered pairs (None: not registered).
        copy: ``[n]`` copies of the matched patient (none when the calibration is not separated).
        anatomy_match: ``[n]`` within the copy threshold but with a new lesion (listed, not flagged).
        calibration: the threshold and what it rests on.
    """

    distance: np.ndarray
    fast_distance: np.ndarray
    nearest: np.ndarray
    dice: np.ndarray
    flipped: np.ndarray
    pairs: list[PairMatch | None]
    copy: np.ndarray
    anatomy_match: np.ndarray
    calibration: AlignedCalibration

    @property
    def baseline_copies(self) -> np.ndarray:
        """Distinct real patients at or under the threshold (the detector's false-positive side)."""
        return self.calibration.null_distances <= self.calibration.threshold

    def summary(self) -> dict[str, Any]:
        """Headline numbers, keys prefixed ``aligned_``."""
        cal, reg = self.calibration, np.isfinite(self.distance)
        dice = self.dice[np.isfinite(self.dice)]
        return {"aligned_copies": int(self.copy.sum()), "aligned_copy_rate": float(self.copy.mean()),
                "aligned_anatomy_matches": int(self.anatomy_match.sum()),
                "aligned_threshold": cal.threshold, "aligned_anatomy_threshold": cal.anatomy_threshold,
                "aligned_lesion_dice_threshold": cal.lesion_threshold, "aligned_separated": cal.separated,
                "aligned_copy_distance_max": float(cal.copy_distances.max()),
                "aligned_distinct_distance_min": float(cal.null_distances.min()),
                "aligned_baseline_copy_rate": float(self.baseline_copies.mean()),
                "aligned_dcr_median": float(np.median(self.distance[reg])) if reg.any() else float("nan"),
                "aligned_distinct_dcr_median": float(np.median(cal.null_distances)),
                "aligned_registered": int(reg.sum()),
                "aligned_mask_dice_max": float(dice.max()) if dice.size else float("nan")}


def _sources(n_train: int, copies_total: int, rng: np.random.Generator) -> np.ndarray:
    """``copies_total`` training indices to copy, every case once before any is repeated."""
    reps = max(1, math.ceil(copies_total / n_train))
    return np.concatenate([rng.permutation(n_train) for _ in range(reps)])[:copies_total]


def calibrate_aligned(real_train: Sequence[Case], real_test: Sequence[Case], *, channels: Sequence[str],
                      train_images: Sequence[MatchImage], train_features: np.ndarray,
                      settings: MatchSettings = MATCH, family: DisguiseParams = DISGUISE,
                      quantile: float = 95.0, copies_total: int = 30, max_null: int = 20,
                      gate_factor: float = 1.1, seed: int = 0) -> AlignedCalibration:
    """Copy and distinct-patient distances of a training set and the threshold between them.

    Args:
        real_train: the training cases (at least 2).
        real_test: the holdout (may be empty: the distinct patients are then training pairs only).
        channels: channel order.
        train_images: :func:`~.aligned_match.match_images` of ``real_train``.
        train_features: their fast features (one orientation).
        settings: matching settings.
        family: the alterations a copy may have.
        quantile: percentile of the copy distances the threshold sits above.
        copies_total: disguised copies drawn (sources cycle over the training set).
        max_null: distinct-patient queries at most per side (holdout, leave-one-out), randomly chosen.
        gate_factor: registration gate as a multiple of the largest copy fast distance.
        seed: random seed.
    """
    if len(real_train) < 2:
        raise InputError("calibrating the aligned copy threshold needs at least 2 training cases")
    rng = np.random.default_rng(seed)
    src = _sources(len(real_train), copies_total, rng)
    copies = [disguise_case(real_train[int(j)], draw_disguise(rng, family), params=family) for j in src]
    copy_images = match_images(copies, channels=channels, settings=settings)
    copy_feats = fast_features(copy_images, settings=settings)
    copy_pairs, copy_fast = [], []
    for image, feats, j in zip(copy_images, copy_feats, src):
        # the orientation is chosen as the check chooses it: the better one in the fast space
        d, _, flip = candidate_pairs(feats[None], train_features[int(j)][None], k=1)
        copy_fast.append(float(d[0, 0]))
        copy_pairs.append(compare_pair(image, train_images[int(j)], flipped=bool(flip[0, 0]), settings=settings))
    null: list[PairMatch | None] = []  # None: a pair that was not registered
    if real_test:
        pick = rng.permutation(len(real_test))[:max_null]
        test_images = match_images([real_test[int(i)] for i in pick], channels=channels, settings=settings)
        null += aligned_nearest(test_images, train_images, settings=settings, train_features=train_features).pairs
    pick = rng.permutation(len(real_train))[:max_null]
    null += aligned_nearest([train_images[int(i)] for i in pick], train_images, settings=settings,
                            train_features=train_features, exclude=[int(i) for i in pick]).pairs
    null_d = np.array([p.distance for p in null if p is not None])
    null_dice = np.array([p.dice for p in null if p is not None])
    copy_arr, copy_dice = np.array([p.distance for p in copy_pairs]), np.array([p.dice for p in copy_pairs])
    hi = float(np.percentile(copy_arr, quantile))
    lo = float(null_d.min())
    separated = hi < lo
    threshold = 0.5 * (hi + lo) if separated else lo
    lesion = float("nan")
    if np.isfinite(copy_dice).any() and np.isfinite(null_dice).any():
        lesion = 0.5 * (float(np.nanpercentile(copy_dice, 5)) + float(np.nanpercentile(null_dice, 95)))
    return AlignedCalibration(copy_distances=copy_arr, copy_fast_distances=np.asarray(copy_fast), null_distances=null_d,
                              copy_dice=copy_dice, null_dice=null_dice, threshold=threshold,
                              anatomy_threshold=min(hi, threshold), lesion_threshold=lesion, separated=separated,
                              gate=gate_factor * float(np.max(copy_fast)), family=family.describe())


def assess_aligned(synthetic: Sequence[Case], train_images: Sequence[MatchImage], train_features: np.ndarray,
                   calibration: AlignedCalibration, *, channels: Sequence[str],
                   settings: MatchSettings = MATCH, block_size: int = 64) -> AlignedResult:
    """Match every synthetic case with its aligned nearest training patient and call the copies.

    Args:
        synthetic: synthetic cases (prepared, same grid as the training cases).
        train_images: :func:`~.aligned_match.match_images` of the training cases.
        train_features: their fast features (one orientation).
        calibration: see :func:`calibrate_aligned`.
        channels: channel order.
        settings: matching settings.
        block_size: synthetic cases normalised at a time (memory grows with the block, not the set).
    """
    parts = []
    for start in range(0, len(synthetic), block_size):
        images = match_images(synthetic[start:start + block_size], channels=channels, settings=settings)
        parts.append(aligned_nearest(images, train_images, settings=settings, train_features=train_features,
                                     gate=calibration.gate))
    distance = np.nan_to_num(np.concatenate([p.distance for p in parts]), nan=np.inf)
    pairs = [pair for p in parts for pair in p.pairs]
    dice = np.array([p.dice if p is not None else np.nan for p in pairs], float)
    close = (distance <= calibration.threshold) & calibration.separated
    lesion_kept = ~np.isfinite(dice) | (dice >= calibration.lesion_threshold) \
        if np.isfinite(calibration.lesion_threshold) else np.ones(len(dice), bool)
    copy = close & ((distance <= calibration.anatomy_threshold) | lesion_kept)
    return AlignedResult(distance=np.where(np.isfinite(distance), distance, np.nan),
                         fast_distance=np.concatenate([p.fast_distance for p in parts]),
                         nearest=np.concatenate([p.nearest for p in parts]), dice=dice,
                         flipped=np.array([p is not None and p.flipped for p in pairs], bool), pairs=pairs,
                         copy=copy, anatomy_match=close & ~copy, calibration=calibration)


def run_aligned(real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case], *,
                channels: Sequence[str], memo: dict[tuple[Any, ...], Any] | None = None, seed: int = 0,
                settings: MatchSettings = MATCH, family: DisguiseParams = DISGUISE,
                quantile: float = 95.0) -> AlignedResult:
    """Calibrate on the real sets and assess the synthetic set; the real-side work is kept in ``memo``.

    Args:
        real_train: the generator's training cases (prepared, at least 2).
        real_test: the holdout (may be empty).
        synthetic: the synthetic cases.
        channels: channel order.
        memo: a dict kept between calls (e.g. ``context.cache``'s privacy entry) so that repeated assessments
            against one training set normalise, featurize and calibrate it once.
        seed: calibration seed.
        settings: matching settings.
        family: the alterations a copy may have.
        quantile: percentile of the copy distances the threshold sits above.
    """
    memo = {} if memo is None else memo
    train_fp, test_fp = cases_fingerprint(real_train), cases_fingerprint(real_test)
    key = ("aligned", train_fp, settings)
    if key not in memo:
        images = match_images(real_train, channels=channels, settings=settings)
        memo[key] = (images, fast_features(images, settings=settings, both_orientations=False))
    images, feats = memo[key]
    calib_key = ("aligned calibration", train_fp, test_fp, settings, family, quantile, seed)
    if calib_key not in memo:
        memo[calib_key] = calibrate_aligned(real_train, real_test, channels=channels, train_images=images,
                                            train_features=feats, settings=settings, family=family,
                                            quantile=quantile, seed=seed + 11)
    return assess_aligned(synthetic, images, feats, memo[calib_key], channels=channels, settings=settings)
