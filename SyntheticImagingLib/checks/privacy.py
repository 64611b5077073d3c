"""The privacy check: does the synthetic set copy its training cases?

It tests the anonymization claims of Shin et al. 2018 and DuMont Schütte et al. 2021 on the user's own data, in
two spaces: the project's self-supervised encoder (:mod:`.encoder`; embeddings on the unit sphere, where its
contrastive loss compares them) and voxel space (each case put in a canonical pose, centre of mass + longest
principal axis, block-averaged to about 8 mm and z-scored per channel: the distance ``sqrt(2 (1 - NCC))`` does
not depend on position or intensity scale).

The real holdout is ``real_test``: real cases the generator was **not** trained on. It gives every number its
baseline:

* **DCR** (distance to closest training record) of each synthetic case, beside the holdout-to-training DCRs.
* **Overfitting ratio**: share of synthetic cases closer to the training set than to an equal-size holdout
  (0.5 when the generator is independent of its training cases, 1 for a copier). The larger set is
  subsampled to the smaller one's size; the ratio is the exact expectation over all subsamples (no Monte Carlo
  noise). Its p-value comes from a permutation test that reshuffles which real cases count as "training",
  which keeps its false-alarm rate at the nominal level even when a few real cases dominate.
* **Memorization**: a synthetic case is a copy when its DCR is at or under a threshold calibrated on lightly
  augmented copies of the training cases (a high percentile of the distance a copy keeps to its source). Its
  rate is compared (Fisher's exact test) with the rate at which distinct real patients fall under the same
  threshold: holdout-to-training and training-to-other-training (leave-one-out) DCRs.
* **Identifiability** (Yoon et al. 2020, unweighted): share of training cases whose nearest synthetic case is
  closer than their nearest other training case; the baseline puts the holdout in the synthetic set's place.
* **1-NN two-sample accuracy** (leave-one-out, balanced) between synthetic and training cases: 0.5 is ideal,
  near 1 = easy to tell apart (poor fidelity), well below 0.5 = synthetic cases sit on training cases.
* **Membership-inference AUC**: the attacker scores each real case by ``-distance`` to the synthetic set;
  AUC of training members vs holdout non-members (0.5 = no leak, 1 = every member exposed).
* **Lesion-mask novelty**: the maximum Dice of each synthetic lesion mask against every training mask, after
  the same canonical alignment (1.0 = a training mask reproduced exactly).

* **Disguised copies** (:mod:`.privacy_aligned`): each synthetic case compared with its nearest training
  candidates after alignment (both left-right orientations, SimpleITK registration, rank / high-pass intensity
  normalisation that bias fields and gamma do not defeat, registered lesion-mask Dice), against a threshold
  calibrated on the disguise family generators put on what they memorize (:mod:`.disguise`: flip, rotation,
  scale, shift, elastic, bias, gamma, noise). Each fast space alone has a blind spot that part of such a
  disguise hits (voxel distances are not flip-invariant, the encoder is not invariant to bias, gamma and noise).
  Every case under the threshold is named with the training patient it copies.

Verdict: ``flagged`` when the memorization rate or the overfitting ratio is significantly above its baseline
in either space (Holm-corrected over the four tests at ``alpha``), or when any synthetic case is a disguised
copy (a per-case decision: one reproduced patient is a breach). With few real cases the permutation test
cannot reach small p-values (its smallest is ``1 / C(n_train + n_holdout, n_train)``) and the memorization test
carries the verdict. The closest pairs are listed and drawn side by side so a user can look at them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from scipy import stats as sps
from scipy.special import gammaln

from ..cases import Case
from ..errors import InputError
from .aligned_match import MATCH, MatchSettings, aligned_view
from .base import Check, CheckContext, CheckResult, register_check
from .disguise import DISGUISE, DisguiseParams
from .encoder import AugmentParams, augment_batch, get_encoder, stack_cases
from .nearest import knn
from .prepare import cases_fingerprint
from .privacy_aligned import AlignedResult, run_aligned

__all__ = ["PrivacyCheck", "SpaceResult", "PrivacyAssessment", "COPY_AUGMENT", "SPACES", "PRIVACY_CACHE_KEY",
           "assess_privacy", "assess_space", "canonical_pose", "align_image", "voxel_features", "case_features",
           "calibration_distances", "overfitting_ratio", "ratio_permutation_test", "membership_auc",
           "max_dice", "aligned_masks", "mask_novelty", "voxel_factor", "holm", "save_aligned_copies", "ALIGNED_FOLDER"]

#: The "light perturbation" a copy of a training case may have: it calibrates the memorization threshold.
COPY_AUGMENT = AugmentParams(flip_lr=0.0, rotate_deg=3.0, scale=(0.97, 1.03), translate=0.05, intensity_scale=0.1,
                             intensity_shift=0.05, noise_std=0.05)

#: The spaces distances are measured in.
SPACES = ("encoder", "voxel")
#: ``context.cache`` key of the real sets' features and calibration distances.
PRIVACY_CACHE_KEY = "privacy_features"

_BATCH = 32


# ----------------------------------------------------------------------------------------------- voxel space
def canonical_pose(image: np.ndarray, spacing_zyx: Sequence[float], *, max_angle_deg: float = 50.0,
                   min_elongation: float = 1.1, background: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """The index-space affine ``input = matrix @ output + offset`` that centres and straightens a head.

    The head is found on the image itself (mean over channels, smoothed, above background), so a case and
    its perturbed copy get the same treatment. The output puts the head's centre of mass at the grid centre and
    its *longest* principal axis along the grid axis nearest to it (the smallest such rotation). The two
    shorter axes of a head are nearly equal (left-right width ~ top-bottom height), so their directions are
    noise: aligning them would turn copies of one case differently. When even the longest axis is not
    distinct (``min_elongation``) or the rotation would exceed ``max_angle_deg``, only the centring is kept.

    Args:
        image: ``[C, z, y, x]`` normalised (background ``-1``).
        spacing_zyx: voxel size in mm, array order.
        max_angle_deg: largest rotation applied.
        min_elongation: smallest ratio of the longest to the middle principal axis length for a rotation.
        background: the background value.
    """
    spacing = np.asarray(spacing_zyx, float)
    shape = np.asarray(image.shape[1:])
    smooth = ndimage.gaussian_filter(image.mean(0).astype(np.float32), 1.0)
    mask = ndimage.binary_fill_holes(smooth > background + 0.1)
    centre = (shape - 1) / 2.0
    if mask.sum() < 10:
        return np.eye(3), np.zeros(3)
    pts = np.argwhere(mask) * spacing
    com = pts.mean(0)
    values, vecs = np.linalg.eigh(np.cov((pts - com).T))
    rot = np.eye(3)
    if math.sqrt(max(values[2], 0.0) / max(values[1], 1e-12)) >= min_elongation:
        axis = vecs[:, 2]
        target = np.zeros(3)
        nearest = int(np.argmax(np.abs(axis)))
        target[nearest] = 1.0
        axis = axis * np.sign(axis[nearest])
        # Rodrigues: the smallest rotation taking the grid axis onto the head's long axis (output -> input)
        cross, cos = np.cross(target, axis), float(np.dot(target, axis))
        k = np.array([[0, -cross[2], cross[1]], [cross[2], 0, -cross[0]], [-cross[1], cross[0], 0]])
        candidate = np.eye(3) + k + k @ k / (1.0 + cos)
        if math.degrees(math.acos(np.clip(cos, -1.0, 1.0))) <= max_angle_deg:
            rot = candidate
    # physical(out) -> physical(in) = com + rot @ (spacing * (i_out - centre)); then back to index units
    matrix = (rot * spacing[None, :]) / spacing[:, None]
    offset = com / spacing - matrix @ centre
    return matrix, offset


def align_image(image: np.ndarray, spacing_zyx: Sequence[float], *, label: np.ndarray | None = None,
                factor: int = 2, max_angle_deg: float = 50.0) -> tuple[np.ndarray, np.ndarray | None]:
    """An image (and label) in canonical pose; the image block-averaged by ``factor``.

    Args:
        image: ``[C, z, y, x]`` normalised.
        spacing_zyx: voxel size in mm.
        label: optional ``[z, y, x]`` label (binarised, kept at full resolution).
        factor: downsampling of the image (noise and sub-voxel misalignment matter less; features shrink).
        max_angle_deg: see :func:`canonical_pose`.

    Returns:
        ``(image [C, z', y', x'] float32, label bool [z, y, x] or None)``.
    """
    matrix, offset = canonical_pose(image, spacing_zyx, max_angle_deg=max_angle_deg)
    shape = image.shape[1:]
    out = np.stack([ndimage.affine_transform(ch, matrix, offset=offset, output_shape=shape, order=1, cval=-1.0)
                    for ch in image.astype(np.float32)])
    if factor > 1:
        pad = [(0, 0)] + [(0, (-s) % factor) for s in shape]
        out = np.pad(out, pad, constant_values=-1.0)
        c, z, y, x = out.shape
        out = out.reshape(c, z // factor, factor, y // factor, factor, x // factor, factor).mean((2, 4, 6))
    lab = None
    if label is not None:
        lab = ndimage.affine_transform((np.asarray(label) > 0).astype(np.uint8), matrix, offset=offset,
                                       output_shape=shape, order=0, cval=0) > 0
    return out.astype(np.float32), lab


def voxel_factor(spacing_zyx: Sequence[float], *, target_mm: float = 8.0) -> int:
    """The voxel-space downsampling that gives about ``target_mm`` voxels (2 on the quick grid, 4 on the full).

    Args:
        spacing_zyx: voxel size in mm.
        target_mm: wanted feature voxel size: coarse enough that noise and sub-voxel shifts matter little and
            1,000 cases' features fit in memory, fine enough to tell patients apart.
    """
    return max(1, int(round(target_mm / min(spacing_zyx))))


def voxel_features(images: np.ndarray, spacing_zyx: Sequence[float], *, factor: int = 2) -> np.ndarray:
    """Aligned, per-channel z-scored voxel vectors ``[n, D]``: their distance is ``sqrt(2 (1 - mean NCC))``.

    Args:
        images: ``[n, C, z, y, x]`` normalised.
        spacing_zyx: voxel size in mm.
        factor: downsampling (see :func:`align_image`).
    """
    rows = []
    for image in images:
        aligned, _ = align_image(image, spacing_zyx, factor=factor)
        flat = aligned.reshape(aligned.shape[0], -1).astype(np.float64)
        flat = (flat - flat.mean(1, keepdims=True)) / (flat.std(1, keepdims=True) + 1e-6)
        rows.append((flat / math.sqrt(flat.size)).ravel().astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def case_features(cases: Sequence[Case], space: str, *, channels: Sequence[str],
                  embed: Callable[[np.ndarray], np.ndarray] | None = None, factor: int = 2) -> np.ndarray:
    """Feature vectors of cases in one space, computed a batch at a time (memory per batch, not per set).

    Args:
        cases: prepared cases on one grid.
        space: ``"encoder"`` or ``"voxel"``.
        channels: channel order.
        embed: the encoder's ``embed_arrays`` (needed for ``"encoder"``).
        factor: voxel-space downsampling.
    """
    parts = []
    for start in range(0, len(cases), _BATCH):
        chunk = cases[start:start + _BATCH]
        images = stack_cases(chunk, channels)
        parts.append(_features(images, space, chunk[0].geometry.spacing_zyx, embed=embed, factor=factor))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _features(images: np.ndarray, space: str, spacing_zyx: Sequence[float], *,
              embed: Callable[[np.ndarray], np.ndarray] | None, factor: int) -> np.ndarray:
    if space == "voxel":
        return voxel_features(images, spacing_zyx, factor=factor)
    if space == "encoder":
        if embed is None:
            raise InputError("encoder-space features need the encoder")
        # on the unit sphere, where the contrastive loss compares embeddings (cosine similarity)
        feats = embed(images).astype(np.float64)
        return (feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
    raise InputError(f"unknown feature space {space!r}", fix=f"use one of {list(SPACES)}")


def calibration_distances(cases: Sequence[Case], space: str, *, channels: Sequence[str], source_features: np.ndarray,
                          copies: int, seed: int, embed: Callable[[np.ndarray], np.ndarray] | None = None,
                          factor: int = 2, augment: AugmentParams = COPY_AUGMENT) -> np.ndarray:
    """Distances between lightly augmented copies of training cases and their sources.

    Args:
        cases: the training cases.
        space: feature space.
        channels: channel order.
        source_features: the training cases' features in this space ``[n, d]``.
        copies: augmented copies per case.
        seed: augmentation seed.
        embed: the encoder (encoder space).
        factor: voxel-space downsampling.
        augment: what a light perturbation is.

    Returns:
        ``[n * copies]`` distances.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    spacing = cases[0].geometry.spacing_zyx
    for start in range(0, len(cases), _BATCH):
        chunk = cases[start:start + _BATCH]
        images = torch.from_numpy(stack_cases(chunk, channels))
        for _ in range(copies):
            aug = augment_batch(images, augment, generator=gen).numpy()
            feats = _features(aug, space, spacing, embed=embed, factor=factor)
            out.append(np.linalg.norm(feats.astype(np.float64) - source_features[start:start + len(chunk)], axis=1))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- statistics
def _avoid_table(n: int, m: int) -> np.ndarray:
    """``P(a random m-subset of n items avoids c given items)`` for ``c = 0..n``."""
    c = np.arange(n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        logp = (_lcomb(n - c, m) - _lcomb(np.full_like(c, n), m))
    return np.where(n - c >= m, np.exp(logp), 0.0)


def _lcomb(n: np.ndarray, k: int) -> np.ndarray:
    n = np.maximum(np.asarray(n, float), k)  # n < k is masked out by the caller
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def overfitting_ratio(neighbour_index: np.ndarray, is_train: np.ndarray) -> np.ndarray:
    """Per synthetic case: probability it is closer to a random training subset than to an equal-size holdout one.

    Both subsets have ``m = min(n_train, n_holdout)`` cases (the larger set is subsampled); the probability is
    exact over all subsamples. Mass beyond the listed neighbours (when fewer than all real cases are given)
    counts as a tie (0.5).

    Args:
        neighbour_index: ``[n_synthetic, K]`` indices into the pooled real cases, nearest first.
        is_train: ``[N]`` boolean over the pooled real cases (False = holdout).

    Returns:
        ``[n_synthetic]`` probabilities; their mean is the overfitting ratio.

    Example:
        >>> overfitting_ratio(np.array([[0, 1], [1, 0]]), np.array([True, False])).tolist()
        [1.0, 0.0]
    """
    is_train = np.asarray(is_train, bool)
    n_t, n_h = int(is_train.sum()), int((~is_train).sum())
    if n_t < 1 or n_h < 1:
        raise InputError("the overfitting ratio needs training and holdout cases")
    m = min(n_t, n_h)
    f_t, f_h = _avoid_table(n_t, m), _avoid_table(n_h, m)
    lab = is_train[neighbour_index]
    c_t = np.cumsum(lab, 1)
    c_h = np.cumsum(~lab, 1)
    t_before, h_before = c_t - lab, c_h - ~lab
    # a holdout case at this position is the holdout subsample's nearest with prob f_h[h_before] - f_h[h_before+1];
    # the training subsample then wins if it holds any of the training cases before it: 1 - f_t[t_before]
    p_h_here = f_h[h_before] - f_h[np.minimum(h_before + 1, n_h)]
    win = np.where(~lab, p_h_here * (1.0 - f_t[t_before]), 0.0).sum(1)
    leftover = f_t[c_t[:, -1]] * f_h[c_h[:, -1]]
    # no holdout subsample case among the listed ones, but a training one: the training side wins
    train_only = (1.0 - f_t[c_t[:, -1]]) * f_h[c_h[:, -1]]
    return win + train_only + 0.5 * leftover


def ratio_permutation_test(neighbour_index: np.ndarray, is_train: np.ndarray, *, max_permutations: int = 1000,
                           seed: int = 0) -> tuple[float, float]:
    """Overfitting ratio and its one-sided p-value under "training membership does not matter".

    The training/holdout labels of the real cases are reshuffled (all assignments when there are at most
    ``max_permutations``, else that many random ones) and the ratio recomputed; the p-value is the share of
    assignments with a ratio at least the observed one.

    Args:
        neighbour_index: see :func:`overfitting_ratio`.
        is_train: see :func:`overfitting_ratio`.
        max_permutations: budget of label assignments.
        seed: for random assignments.
    """
    is_train = np.asarray(is_train, bool)
    observed = float(overfitting_ratio(neighbour_index, is_train).mean())
    n, n_t = is_train.size, int(is_train.sum())
    total = math.comb(n, n_t)
    eps = 1e-9
    if total <= max_permutations:
        hits = 0
        for chosen in itertools.combinations(range(n), n_t):
            lab = np.zeros(n, bool)
            lab[list(chosen)] = True
            hits += float(overfitting_ratio(neighbour_index, lab).mean()) >= observed - eps
        return observed, hits / total
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(max_permutations):
        hits += float(overfitting_ratio(neighbour_index, rng.permutation(is_train)).mean()) >= observed - eps
    return observed, (hits + 1) / (max_permutations + 1)


def membership_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[float, float]:
    """AUC of members vs non-members (higher score = "member") and the one-sided Mann-Whitney p-value.

    Args:
        member_scores: attack scores of training cases.
        nonmember_scores: attack scores of holdout cases.

    Example:
        >>> membership_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))[0]
        1.0
    """
    a, b = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    res = sps.mannwhitneyu(a, b, alternative="greater")
    return float(res.statistic) / (a.size * b.size), float(res.pvalue)


def max_dice(masks: Sequence[np.ndarray | None], references: Sequence[np.ndarray | None], *,
             block_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For each mask: the highest Dice against any reference mask, and which one (in blocks of masks).

    Args:
        masks: boolean arrays (None or empty: no lesion, result NaN / -1).
        references: boolean arrays of the same shape (None or empty ones are skipped).
        block_size: masks per matrix product.

    Returns:
        ``(dice [n], reference index [n])``.
    """
    out_d = np.full(len(masks), np.nan)
    out_i = np.full(len(masks), -1, np.int64)
    present_refs = {i: r for i, r in enumerate(references) if r is not None and r.any()}
    ref_idx = list(present_refs)
    if not ref_idx:
        return out_d, out_i
    present = {i: mk for i, mk in enumerate(masks) if mk is not None and mk.any()}
    q_idx = list(present)
    for qs in range(0, len(q_idx), block_size):
        qi = q_idx[qs:qs + block_size]
        q = torch.from_numpy(np.stack([present[i].ravel() for i in qi]).astype(np.float32))
        best_d = torch.full((len(qi),), -1.0)
        best_i = torch.full((len(qi),), -1, dtype=torch.int64)
        for rs in range(0, len(ref_idx), block_size):
            ri = ref_idx[rs:rs + block_size]
            r = torch.from_numpy(np.stack([present_refs[i].ravel() for i in ri]).astype(np.float32))
            dice = 2 * (q @ r.T) / (q.sum(1, keepdim=True) + r.sum(1)[None, :])
            val, arg = dice.max(1)
            better = val > best_d
            best_d = torch.where(better, val, best_d)
            best_i = torch.where(better, torch.as_tensor(ri)[arg], best_i)
        out_d[qi] = best_d.numpy()
        out_i[qi] = best_i.numpy()
    return out_d, out_i


def aligned_masks(cases: Sequence[Case], *, channels: Sequence[str]) -> list[np.ndarray | None]:
    """Binary lesion masks in each case's canonical pose (None for a case without label).

    Args:
        cases: prepared cases.
        channels: channel order (the pose is found on the images).
    """
    return [None if c.label is None else align_image(stack_cases([c], channels)[0], c.geometry.spacing_zyx,
                                                     label=c.label, factor=1)[1] for c in cases]


def mask_novelty(synthetic: Sequence[Case], real_train: Sequence[Case], *, channels: Sequence[str],
                 block_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Max Dice of each synthetic lesion mask against every training mask, both aligned (see :func:`max_dice`).

    Synthetic masks are aligned a block at a time, so memory grows with the training set only.

    Args:
        synthetic: prepared synthetic cases.
        real_train: prepared training cases.
        channels: channel order.
        block_size: synthetic cases per block.
    """
    train_masks = aligned_masks(real_train, channels=channels)
    dice, nearest = np.full(len(synthetic), np.nan), np.full(len(synthetic), -1, np.int64)
    for s in range(0, len(synthetic), block_size):
        d, i = max_dice(aligned_masks(synthetic[s:s + block_size], channels=channels), train_masks)
        dice[s:s + len(d)], nearest[s:s + len(i)] = d, i
    return dice, nearest


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN).

    Args:
        pvalues: raw p-values.

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, float)
    ok = np.flatnonzero(np.isfinite(p))
    adj = np.full(p.shape, np.nan)
    order = ok[np.argsort(p[ok])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adj[i] = running
    return adj


# ------------------------------------------------------------------------------------------------ one space
@dataclasses.dataclass
class SpaceResult:
    """Privacy numbers in one feature space.

    Args:
        space: ``"encoder"`` or ``"voxel"``.
        dcr: ``[n_synthetic]`` distance of each synthetic case to its closest training case.
        nearest: ``[n_synthetic]`` index of that training case.
        holdout_dcr: ``[n_holdout]`` holdout-to-training DCR (the baseline).
        train_loo_dcr: ``[n_train]`` training-to-other-training DCR.
        calibration: distances of augmented training copies to their sources.
        threshold: memorization threshold (``quantile`` of ``calibration``).
        memorized: ``[n_synthetic]`` DCR under the threshold.
        baseline_memorized: distinct real cases (holdout + leave-one-out training) under the threshold.
        memorization_p: Fisher's exact test, synthetic rate > baseline rate.
        overfitting_per_case: ``[n_synthetic]`` see :func:`overfitting_ratio`.
        overfitting_ratio: their mean.
        overfitting_p: permutation p-value.
        mia_auc: membership-inference AUC (training members vs holdout non-members).
        mia_p: its one-sided Mann-Whitney p-value.
        identifiability: share of training cases nearer to a synthetic case than to another training case.
        identifiability_baseline: the same with the holdout in place of the synthetic set.
        one_nn_accuracy: balanced leave-one-out 1-NN accuracy, synthetic vs training.
    """

    space: str
    dcr: np.ndarray
    nearest: np.ndarray
    holdout_dcr: np.ndarray
    train_loo_dcr: np.ndarray
    calibration: np.ndarray
    threshold: float
    memorized: np.ndarray
    baseline_memorized: np.ndarray
    memorization_p: float
    overfitting_per_case: np.ndarray
    overfitting_ratio: float
    overfitting_p: float
    mia_auc: float
    mia_p: float
    identifiability: float
    identifiability_baseline: float
    one_nn_accuracy: float

    @property
    def memorization_rate(self) -> float:
        """Share of synthetic cases under the threshold."""
        return float(self.memorized.mean()) if self.memorized.size else float("nan")

    @property
    def baseline_memorization_rate(self) -> float:
        """Share of distinct real cases under the threshold (the false-positive rate of the copy detector)."""
        return float(self.baseline_memorized.mean()) if self.baseline_memorized.size else float("nan")

    def summary(self) -> dict[str, float]:
        """Headline numbers, keys prefixed with the space."""
        s = self.space
        return {f"{s}_dcr_median": float(np.median(self.dcr)),
                f"{s}_holdout_dcr_median": float(np.median(self.holdout_dcr)),
                f"{s}_threshold": float(self.threshold),
                f"{s}_memorization_rate": self.memorization_rate,
                f"{s}_baseline_memorization_rate": self.baseline_memorization_rate,
                f"{s}_memorization_p": float(self.memorization_p),
                f"{s}_overfitting_ratio": float(self.overfitting_ratio),
                f"{s}_overfitting_p": float(self.overfitting_p),
                f"{s}_mia_auc": float(self.mia_auc), f"{s}_mia_p": float(self.mia_p),
                f"{s}_identifiability": float(self.identifiability),
                f"{s}_identifiability_baseline": float(self.identifiability_baseline),
                f"{s}_one_nn_accuracy": float(self.one_nn_accuracy)}


def _one_nn_accuracy(synthetic: np.ndarray, train: np.ndarray) -> float:
    pooled = np.concatenate([synthetic, train])
    labels = np.r_[np.ones(len(synthetic), bool), np.zeros(len(train), bool)]
    _, idx = knn(pooled, pooled, k=1, exclude_self=True)
    correct = labels[idx[:, 0]] == labels
    return float(0.5 * (correct[labels].mean() + correct[~labels].mean()))


def assess_space(space: str, *, train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray,
                 calibration: np.ndarray, quantile: float = 95.0, max_permutations: int = 1000,
                 max_neighbours: int = 256, seed: int = 0) -> SpaceResult:
    """All privacy numbers of one feature space.

    Args:
        space: its name.
        train: ``[n_train, d]`` features of the generator's training cases (at least 2).
        holdout: ``[n_holdout, d]`` features of real cases the generator did not see (at least 1).
        synthetic: ``[n_synthetic, d]`` features of the synthetic cases (at least 1).
        calibration: distances of augmented training copies to their sources.
        quantile: percentile of ``calibration`` used as the memorization threshold.
        max_permutations: budget of the overfitting-ratio permutation test.
        max_neighbours: real neighbours listed per synthetic case for the ratio (all of them up to this many).
        seed: permutation seed.
    """
    if len(train) < 2 or len(holdout) < 1 or len(synthetic) < 1:
        raise InputError(f"privacy needs >= 2 training, >= 1 holdout and >= 1 synthetic case, got {len(train)}, "
                         f"{len(holdout)} and {len(synthetic)}",
                         fix="give real test cases (the privacy holdout) and more training cases")
    dcr, nearest = (a[:, 0] for a in knn(synthetic, train, k=1))
    holdout_dcr = knn(holdout, train, k=1)[0][:, 0]
    train_loo = knn(train, train, k=1, exclude_self=True)[0][:, 0]
    threshold = float(np.percentile(calibration, quantile)) if len(calibration) else 0.0
    memorized = dcr <= threshold
    baseline = np.r_[holdout_dcr, train_loo] <= threshold
    table = [[int(memorized.sum()), int((~memorized).sum())], [int(baseline.sum()), int((~baseline).sum())]]
    mem_p = float(sps.fisher_exact(table, alternative="greater").pvalue)
    pooled = np.concatenate([train, holdout])
    is_train = np.r_[np.ones(len(train), bool), np.zeros(len(holdout), bool)]
    _, order = knn(synthetic, pooled, k=min(len(pooled), max_neighbours))
    per_case = overfitting_ratio(order, is_train)
    ratio, ratio_p = ratio_permutation_test(order, is_train, max_permutations=max_permutations, seed=seed)
    member = knn(train, synthetic, k=1)[0][:, 0]
    nonmember = knn(holdout, synthetic, k=1)[0][:, 0]
    auc, auc_p = membership_auc(-member, -nonmember)
    to_holdout = knn(train, holdout, k=1)[0][:, 0]
    return SpaceResult(space=space, dcr=dcr, nearest=nearest, holdout_dcr=holdout_dcr, train_loo_dcr=train_loo,
                       calibration=np.asarray(calibration, float), threshold=threshold, memorized=memorized,
                       baseline_memorized=baseline, memorization_p=mem_p, overfitting_per_case=per_case,
                       overfitting_ratio=ratio, overfitting_p=ratio_p, mia_auc=auc, mia_p=auc_p,
                       identifiability=float((member < train_loo).mean()),
                       identifiability_baseline=float((to_holdout < train_loo).mean()),
                       one_nn_accuracy=_one_nn_accuracy(synthetic, train))


# ------------------------------------------------------------------------------------------------ all spaces
@dataclasses.dataclass
class PrivacyAssessment:
    """What :func:`assess_privacy` found.

    Args:
        spaces: space name -> its numbers.
        mask_dice: ``[n_synthetic]`` max Dice of each synthetic lesion mask vs the training masks (NaN: no mask).
        mask_nearest: ``[n_synthetic]`` index of that training mask (-1: none).
        tests: one row per significance test (space, test, statistic, baseline, p, p_holm, rejected).
        flagged: the verdict.
        alpha: family-wise error level of the verdict.
        train_ids: training case ids.
        holdout_ids: holdout case ids.
        synthetic_ids: synthetic case ids.
        aligned: per-case copy detection after alignment (None: not run).
    """

    spaces: dict[str, SpaceResult]
    mask_dice: np.ndarray
    mask_nearest: np.ndarray
    tests: list[dict[str, Any]]
    flagged: bool
    alpha: float
    train_ids: list[str]
    holdout_ids: list[str]
    synthetic_ids: list[str]
    aligned: AlignedResult | None = None

    @property
    def copies(self) -> list[tuple[str, str]]:
        """``(synthetic id, training id it copies)`` of every case the aligned comparison calls a copy."""
        if self.aligned is None:
            return []
        return [(self.synthetic_ids[i], self.train_ids[int(self.aligned.nearest[i])])
                for i in np.flatnonzero(self.aligned.copy)]

    @property
    def reasons(self) -> list[str]:
        """The rejected tests, in words."""
        out = []
        for t in self.tests:
            if not t["rejected"]:
                continue
            if t["space"] == "aligned":
                assert self.aligned is not None  # an aligned test comes with its aligned result
                named = ", ".join(f"{s} -> {r}" for s, r in self.copies[:5]) + (" ..." if len(self.copies) > 5 else "")
                out.append(f"{t['test']} after alignment ({len(self.copies)} of {len(self.synthetic_ids)} cases at "
                           f"or under the copy threshold {self.aligned.calibration.threshold:.3g}: {named})")
            else:
                out.append(f"{t['test']} in {t['space']} space ({t['statistic']:.3g} vs baseline "
                           f"{t['baseline']:.3g}, Holm p={t['p_holm']:.3g})")
        return out

    def summary(self) -> dict[str, Any]:
        """Headline numbers and the verdict."""
        dice = self.mask_dice[np.isfinite(self.mask_dice)]
        out: dict[str, Any] = {"verdict": "flagged" if self.flagged else "not flagged", "flagged": self.flagged,
                               "flag_reasons": "; ".join(self.reasons) or "none", "alpha": self.alpha,
                               "n_train": len(self.train_ids), "n_holdout": len(self.holdout_ids),
                               "n_synthetic": len(self.synthetic_ids), "holdout": "real_test"}
        for res in self.spaces.values():
            out.update(res.summary())
        out.update({"mask_novelty_max_dice_mean": float(dice.mean()) if dice.size else float("nan"),
                    "mask_novelty_max_dice_max": float(dice.max()) if dice.size else float("nan"),
                    "mask_copied_share": float((dice >= 0.9).mean()) if dice.size else float("nan")})
        if self.aligned is not None:
            out.update(self.aligned.summary())
            out["copied_training_ids"] = sorted({r for _, r in self.copies})
        return out


def assess_privacy(real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case], *,
                   context: CheckContext, spaces: Sequence[str] = SPACES, quantile: float = 95.0,
                   alpha: float = 0.05, copies: int | None = None, factor: int | None = None,
                   max_permutations: int = 1000, aligned: bool = True, match: MatchSettings = MATCH,
                   family: DisguiseParams = DISGUISE) -> PrivacyAssessment:
    """Privacy numbers in each space, mask novelty and the verdict (the computation behind :class:`PrivacyCheck`).

    Args:
        real_train: the generator's training cases (prepared).
        real_test: real cases the generator did not see: the holdout (prepared).
        synthetic: the synthetic cases (prepared).
        context: profile, seed, device, progress and the shared encoder cache.
        spaces: any of ``"encoder"`` and ``"voxel"``.
        quantile: percentile of augmented-copy distances used as the memorization threshold.
        alpha: family-wise error level of the verdict (Holm over memorization and ratio tests of every space).
        copies: augmented copies per training case for the threshold (default: enough for >= 40 distances).
        factor: voxel-space downsampling (default: :func:`voxel_factor` of the grid).
        max_permutations: budget of the overfitting-ratio permutation test.
        aligned: also compare each synthetic case with its nearest training cases after alignment
            (:mod:`.privacy_aligned`); a case under the copy threshold flags the set and names its patient.
        match: settings of the aligned comparison.
        family: the alterations a copy may have (calibrates the aligned copy threshold).
    """
    if not spaces or set(spaces) - set(SPACES):
        raise InputError(f"unknown privacy spaces {list(spaces)}", fix=f"use some of {list(SPACES)}")
    if len(real_train) < 2 or not real_test or not synthetic:
        raise InputError(f"privacy needs >= 2 real training, >= 1 real test (holdout) and >= 1 synthetic case; "
                         f"got {len(real_train)}, {len(real_test)} and {len(synthetic)}",
                         fix="keep some real cases out of generator training and pass them as the test set")
    channels = tuple(real_train[0].channel_names)
    spacing = real_train[0].geometry.spacing_zyx
    factor = factor or voxel_factor(spacing)
    copies = copies or max(2, math.ceil(40 / len(real_train)))
    results: dict[str, SpaceResult] = {}
    # features of the real sets and the calibration depend only on the real data: kept in context.cache so
    # repeated assessments against one training set (validation, several generators) compute them once
    memo: dict[tuple[Any, ...], np.ndarray] = context.cache.setdefault(PRIVACY_CACHE_KEY, {})
    train_fp, test_fp = cases_fingerprint(real_train), cases_fingerprint(real_test)
    for n, space in enumerate(spaces):
        context.progress.report("privacy", n, len(spaces), f"{space} space")
        enc = get_encoder(real_train, context=context) if space == "encoder" else None
        embed = enc.embed_arrays if enc is not None else None
        tag = (space, enc.fingerprint if enc is not None else "", factor)
        for fp, group in ((train_fp, real_train), (test_fp, real_test)):
            if ("features", fp, *tag) not in memo:
                memo[("features", fp, *tag)] = case_features(group, space, channels=channels, embed=embed,
                                                             factor=factor)
        train_f, test_f = memo[("features", train_fp, *tag)], memo[("features", test_fp, *tag)]
        synth_f = case_features(synthetic, space, channels=channels, embed=embed, factor=factor)
        calib_key = ("calibration", train_fp, *tag, copies, context.seed)
        if calib_key not in memo:
            memo[calib_key] = calibration_distances(real_train, space, channels=channels,
                                                    source_features=train_f.astype(float), copies=copies,
                                                    seed=context.seed + 7, embed=embed, factor=factor)
        results[space] = assess_space(space, train=train_f, holdout=test_f, synthetic=synth_f,
                                      calibration=memo[calib_key], quantile=quantile,
                                      max_permutations=max_permutations, seed=context.seed)
    mask_dice, mask_nearest = mask_novelty(synthetic, real_train, channels=channels)
    aligned_res = None
    if aligned:
        context.progress.report("privacy", len(spaces), len(spaces) + 1, "aligned comparison")
        aligned_res = run_aligned(real_train, real_test, synthetic, channels=channels, memo=memo, seed=context.seed,
                                  settings=match, family=family, quantile=quantile)
    tests: list[dict[str, Any]] = []
    for res in results.values():
        tests.append({"space": res.space, "test": "memorization rate", "statistic": res.memorization_rate,
                      "baseline": res.baseline_memorization_rate, "p": res.memorization_p})
        tests.append({"space": res.space, "test": "overfitting ratio", "statistic": res.overfitting_ratio,
                      "baseline": 0.5, "p": res.overfitting_p})
    for t, p_adj in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = float(p_adj)
        t["rejected"] = bool(p_adj < alpha)
    if aligned_res is not None:
        # a per-case decision, not a rate test: one patient reproduced is a breach; its false-alarm side is the
        # threshold's margin below every distinct real pair (measured by bench_privacy_disguise.py)
        tests.append({"space": "aligned", "test": "disguised copies", "statistic": aligned_res.summary()[
            "aligned_copy_rate"], "baseline": float(aligned_res.baseline_copies.mean()), "p": float("nan"),
            "p_holm": float("nan"), "rejected": bool(aligned_res.copy.any())})
    context.progress.report("privacy", len(spaces), len(spaces), "done")
    return PrivacyAssessment(spaces=results, mask_dice=mask_dice, mask_nearest=mask_nearest, tests=tests,
                             flagged=any(t["rejected"] for t in tests), alpha=alpha,
                             train_ids=[c.case_id for c in real_train], holdout_ids=[c.case_id for c in real_test],
                             synthetic_ids=[c.case_id for c in synthetic], aligned=aligned_res)


# ------------------------------------------------------------------------------------------------ the check
def _closest_rows(a: PrivacyAssessment, n: int) -> list[dict[str, Any]]:
    rows = []
    for res in a.spaces.values():
        scale = float(np.median(res.holdout_dcr)) or float("nan")
        for rank, i in enumerate(np.argsort(res.dcr, kind="stable")[:n]):
            rows.append({"space": res.space, "rank": rank + 1, "synthetic_id": a.synthetic_ids[i],
                         "training_id": a.train_ids[int(res.nearest[i])], "distance": float(res.dcr[i]),
                         "distance_over_holdout_median": float(res.dcr[i]) / scale,
                         "threshold": res.threshold, "memorized": bool(res.memorized[i])})
    return rows


def _per_case_rows(a: PrivacyAssessment) -> list[dict[str, Any]]:
    rows = []
    for i, sid in enumerate(a.synthetic_ids):
        row: dict[str, Any] = {"synthetic_id": sid}
        for res in a.spaces.values():
            row[f"{res.space}_dcr"] = float(res.dcr[i])
            row[f"{res.space}_nearest_training_id"] = a.train_ids[int(res.nearest[i])]
            row[f"{res.space}_memorized"] = bool(res.memorized[i])
            row[f"{res.space}_closer_to_train_prob"] = float(res.overfitting_per_case[i])
        row["mask_max_dice"] = float(a.mask_dice[i])
        row["mask_nearest_training_id"] = a.train_ids[int(a.mask_nearest[i])] if a.mask_nearest[i] >= 0 else ""
        if a.aligned is not None:
            al = a.aligned
            row.update({"aligned_copy": bool(al.copy[i]), "aligned_anatomy_match": bool(al.anatomy_match[i]),
                        "aligned_training_id": a.train_ids[int(al.nearest[i])],
                        "aligned_distance": float(al.distance[i]), "aligned_threshold": al.calibration.threshold,
                        "aligned_mask_dice": float(al.dice[i]), "aligned_flipped": bool(al.flipped[i]),
                        "aligned_fast_distance": float(al.fast_distance[i])})
        rows.append(row)
    return rows


def _copy_rows(a: PrivacyAssessment) -> list[dict[str, Any]]:
    """One row per synthetic case the aligned comparison calls a copy: which patient, how close, which pose."""
    al = a.aligned
    if al is None:
        return []
    rows = []
    for i in np.flatnonzero(al.copy):
        pair = al.pairs[i]
        rows.append({"synthetic_id": a.synthetic_ids[i], "copies_training_id": a.train_ids[int(al.nearest[i])],
                     "aligned_distance": float(al.distance[i]), "threshold": al.calibration.threshold,
                     "registered_mask_dice": float(al.dice[i]), "flipped_left_right": bool(al.flipped[i]),
                     "transform": pair.transform if pair else "",
                     "transform_parameters": " ".join(f"{v:.4g}" for v in pair.parameters) if pair else ""})
    return rows


def _dcr_figure(a: PrivacyAssessment, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(a.spaces), figsize=(5.2 * len(a.spaces), 3.8), squeeze=False)
    for ax, res in zip(axes[0], a.spaces.values()):
        values = np.r_[res.dcr, res.holdout_dcr, res.calibration]
        bins = np.linspace(0.0, float(values.max()) * 1.05 + 1e-9, 30)
        ax.hist(res.calibration, bins=bins, alpha=0.5, label="augmented copy -> source", color="tab:gray")
        ax.hist(res.holdout_dcr, bins=bins, alpha=0.6, label="holdout -> train (baseline)", color="tab:blue")
        ax.hist(res.dcr, bins=bins, alpha=0.6, label="synthetic -> train", color="tab:red")
        ax.axvline(res.threshold, color="k", ls="--", lw=1, label="memorization threshold")
        ax.set_title(f"{res.space} space: DCR (ratio {res.overfitting_ratio:.2f})")
        ax.set_xlabel("distance to closest training case")
        ax.set_ylabel("cases")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pairs_figure(a: PrivacyAssessment, synthetic: Sequence[Case], real_train: Sequence[Case], space: str,
                  n: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = a.spaces[space]
    order = np.argsort(res.dcr, kind="stable")[:n]
    fig, axes = plt.subplots(2, len(order), figsize=(2.3 * len(order), 4.9), squeeze=False)
    for col, i in enumerate(order):
        pair = (synthetic[int(i)], real_train[int(res.nearest[i])])
        for row, case in enumerate(pair):
            ax = axes[row, col]
            z = case.shape[0] // 2
            ax.imshow(next(iter(case.channels.values()))[z], cmap="gray", vmin=-1.0, vmax=1.5, origin="lower")
            if case.label is not None and case.label[z].any():
                ax.contour(case.label[z] > 0, levels=[0.5], colors="r", linewidths=0.7)
            flag = " COPY" if row == 0 and res.memorized[i] else ""
            title = f"syn {case.case_id}\nd={res.dcr[i]:.3g}{flag}" if row == 0 else f"train {case.case_id}"
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(f"closest synthetic/training pairs ({space} space), middle axial slice", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _aligned_figure(a: PrivacyAssessment, synthetic: Sequence[Case], real_train: Sequence[Case], n: int,
                    path: Path) -> Path:
    """Each copy (else the closest aligned pairs) moved onto its training patient, beside that patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    al = a.aligned
    assert al is not None
    dist = np.nan_to_num(al.distance, nan=np.inf)
    order = [i for i in np.argsort(dist, kind="stable") if al.pairs[i] is not None]
    order = ([i for i in order if al.copy[i]] or order)[:n]
    channel = real_train[0].channel_names[0]
    fig, axes = plt.subplots(2, max(1, len(order)), figsize=(2.4 * max(1, len(order)), 5.0), squeeze=False)
    for col, i in enumerate(order):
        train = real_train[int(al.nearest[i])]
        moved, lab = aligned_view(synthetic[int(i)], train, al.pairs[i], channel=channel)
        z = int(np.argmax(train.label.reshape(train.shape[0], -1).sum(1))) if train.label is not None and \
            train.label.any() else train.shape[0] // 2
        views = ((moved, lab, f"syn {a.synthetic_ids[i]}{' (mirrored)' if al.flipped[i] else ''}\n"
                  f"d={al.distance[i]:.3g}{' COPY' if al.copy[i] else ''} Dice={al.dice[i]:.2f}"),
                 (np.asarray(train.channels[channel]), train.label, f"train {train.case_id}"))
        for row, (image, label, title) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(image[z], cmap="gray", vmin=-1.0, vmax=1.5, origin="lower")
            if label is not None and label[z].any():
                ax.contour(label[z] > 0, levels=[0.5], colors="r", linewidths=0.7)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    for ax in axes.ravel()[2 * len(order):]:
        ax.axis("off")
    fig.suptitle(f"synthetic case registered onto its nearest training patient (threshold "
                 f"{al.calibration.threshold:.3g}); {channel}, slice of largest training lesion", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: Sub-folder of the check's folder where aligned copies are saved (see :func:`save_aligned_copies`).
ALIGNED_FOLDER = "aligned_copies"


def save_aligned_copies(a: PrivacyAssessment, synthetic: Sequence[Case], real_train: Sequence[Case], folder: Path, *,
                        limit: int = 50) -> dict[str, dict[str, str]]:
    """Write each copy moved onto its training patient (first channel and label, the patient's prepared grid).

    The prepared grid keeps the physical position, so a viewer (the Slicer module) shows the file over or beside
    the training case as loaded from its dataset.

    Args:
        a: the assessment (with its aligned result).
        synthetic: the synthetic cases.
        real_train: the training cases.
        folder: where to write ``<case>.nii.gz`` and ``<case>_label.nii.gz``.
        limit: at most this many copies (the closest first).

    Returns:
        synthetic id -> ``{"image": file name, "label": file name or ""}``.
    """
    from ..io.images import write_image
    from .adherence import prediction_file_name

    al = a.aligned
    if al is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    channel = real_train[0].channel_names[0]
    for i in sorted(np.flatnonzero(al.copy), key=lambda j: al.distance[j])[:limit]:
        train = real_train[int(al.nearest[i])]
        pair = al.pairs[i]
        if pair is None:  # not registered: nothing to show
            continue
        moved, label = aligned_view(synthetic[int(i)], train, pair, channel=channel)
        name = prediction_file_name(a.synthetic_ids[i])
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / name, moved, train.geometry)
        entry = {"image": name, "label": ""}
        if label is not None:
            entry["label"] = name.replace(".nii.gz", "_label.nii.gz")
            write_image(folder / entry["label"], label.astype(np.uint8), train.geometry)
        out[a.synthetic_ids[i]] = entry
    return out


@register_check
class PrivacyCheck(Check):
    """Distance-to-closest-record, overfitting ratio, memorization, identifiability, 1-NN, MIA and mask novelty.

    ``real_test`` is the privacy holdout: it must not have been used to train the generator.

    Args:
        spaces: feature spaces (``"encoder"``, ``"voxel"``).
        quantile: percentile of augmented-copy distances used as the memorization threshold.
        alpha: family-wise error level of the verdict.
        closest: closest pairs listed per space (and drawn).
        figures: draw the figures.
        aligned: also run the aligned per-case copy detection (:mod:`.privacy_aligned`).
        save_aligned: write each copy moved onto its training patient to ``<out_dir>/aligned_copies/`` (for
            viewing beside the patient; the ``copies`` table and ``details["aligned"]["files"]`` name the files).
    """

    name = "privacy"

    def __init__(self, *, spaces: Sequence[str] = SPACES, quantile: float = 95.0, alpha: float = 0.05,
                 closest: int = 8, figures: bool = True, aligned: bool = True, save_aligned: bool = True) -> None:
        self.spaces = tuple(spaces)
        self.quantile = quantile
        self.alpha = alpha
        self.closest = closest
        self.figures = figures
        self.aligned = aligned
        self.save_aligned = save_aligned

    def run(self, *, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
            context: CheckContext) -> CheckResult:
        """Assess the synthetic set against its training cases, with ``real_test`` as the holdout."""
        a = assess_privacy(real_train, real_test, synthetic, context=context, spaces=self.spaces,
                           quantile=self.quantile, alpha=self.alpha, aligned=self.aligned)
        result = CheckResult(name=self.name, summary=a.summary())
        result.tables = {"closest_pairs": _closest_rows(a, self.closest), "per_synthetic_case": _per_case_rows(a),
                         "copies": _copy_rows(a),
                         "tests": [dict(t) for t in a.tests],
                         "holdout_baseline": [{"holdout_id": hid, **{f"{r.space}_dcr": float(r.holdout_dcr[j])
                                                                     for r in a.spaces.values()}}
                                              for j, hid in enumerate(a.holdout_ids)]}
        result.details = {
            "holdout": "real_test is the privacy holdout: real cases the generator was not trained on",
            "thresholds": {s: {"value": r.threshold, "quantile": self.quantile,
                               "calibration_distances": r.calibration.tolist()} for s, r in a.spaces.items()},
            "flag_rule": f"Holm-corrected (alpha={self.alpha}) one-sided tests: memorization rate vs distinct-real "
                         "baseline (Fisher exact) and overfitting ratio vs 0.5 (label permutation), every space"
                         + ("; or any synthetic case at or under the aligned copy threshold" if a.aligned else ""),
        }
        if a.aligned is not None:
            cal = a.aligned.calibration
            result.details["aligned"] = {
                "alteration_family": cal.family, "threshold": cal.threshold, "separated": cal.separated,
                "anatomy_threshold": cal.anatomy_threshold, "lesion_dice_threshold": cal.lesion_threshold,
                "threshold_rule": f"copy threshold half-way between the {self.quantile:g}th percentile of "
                                  "disguised-copy distances (the anatomy threshold) and the smallest distinct-patient "
                                  "distance; lesion threshold half-way between the copies' 5th percentile registered "
                                  "mask Dice and the distinct-patient matches' 95th; no copies when they overlap",
                "copy_rule": "a copy: aligned distance within the anatomy threshold, or within the copy threshold "
                             "with the lesion reproduced (Dice at or above the lesion threshold, or no masks); "
                             "within the copy threshold with a new lesion: an anatomy match (listed, not flagged)",
                "copy_dice": cal.copy_dice.tolist(), "distinct_patient_dice": cal.null_dice.tolist(),
                "copy_distances": cal.copy_distances.tolist(),
                "distinct_patient_distances": cal.null_distances.tolist(),
                "registration_gate_fast_distance": cal.gate}
            if self.save_aligned and a.aligned.copy.any():
                out_dir = Path(context.out_dir)
                saved = save_aligned_copies(a, synthetic, real_train, out_dir / ALIGNED_FOLDER)
                # paths relative to the report folder (evaluate gives each check the folder <report>/<check name>)
                files = {sid: {k: f"{out_dir.name}/{ALIGNED_FOLDER}/{v}" if v else "" for k, v in entry.items()}
                         for sid, entry in saved.items()}
                result.details["aligned"]["files"] = files
                result.details["aligned"]["files_grid"] = "the training patient's prepared grid (physical position " \
                                                          "kept), first channel, normalised units"
                for row in result.tables["copies"]:
                    entry = files.get(row["synthetic_id"], {})
                    row["aligned_image"], row["aligned_label"] = entry.get("image", ""), entry.get("label", "")
        if "encoder" in a.spaces:
            result.details["encoder"] = get_encoder(real_train, context=context).describe()
        if self.figures:
            out = Path(context.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            result.figures["privacy_dcr_histogram"] = _dcr_figure(a, out / "privacy_dcr_histogram.png")
            for space in a.spaces:
                result.figures[f"privacy_closest_pairs_{space}"] = _pairs_figure(
                    a, synthetic, real_train, space, min(self.closest, 6, len(synthetic)),
                    out / f"privacy_closest_pairs_{space}.png")
            if a.aligned is not None and any(p is not None for p in a.aligned.pairs):
                result.figures["privacy_aligned_pairs"] = _aligned_figure(a, synthetic, real_train, 6,
                                                                          out / "privacy_aligned_pairs.png")
        return result
