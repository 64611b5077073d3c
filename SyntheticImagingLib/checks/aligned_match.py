"""Aligned comparison of a synthetic case with its nearest training cases: distances a disguise does not change.

A memorized patient may come back flipped, rotated, scaled, shifted, elastically deformed, under another bias
field, gamma and noise (:mod:`.disguise`). Each of the privacy check's fast spaces is blind to one part of that
(voxel distances are not flip-invariant, the encoder is not invariant to bias, gamma and noise), so here:

1. **Intensity normalisation** (:func:`normalise_for_matching`): each channel is replaced by its rank inside the
   head (any monotone change, such as gamma or a global scale, leaves ranks alone), then the local mean of the
   ranks (Gaussian, ``highpass_mm``) is subtracted (a smooth bias field moves ranks smoothly) and the result is
   z-scored in the head.
2. **Candidates** (:func:`fast_features`, :func:`candidate_pairs`): the normalised images in canonical pose
   (:func:`~.privacy.canonical_pose` of the head mask) on the ``grid_mm`` grid, in both left-right
   orientations; the ``candidates`` nearest training cases of each synthetic case (by its better orientation)
   go on to registration.
3. **Registration** (:func:`compare_pair`): SimpleITK similarity (rigid + isotropic scale; ``affine`` or
   ``rigid`` on request) on the channel-mean normalised images (``grid_mm``), initialised at the head
   centres of mass, correlation metric, then the normalised images and the lesion masks are resampled onto the
   training case's grid.
4. **Aligned distance** ``sqrt(2 (1 - NCC))`` of the normalised images inside both heads (mean over channels;
   0 = the same patient and pose, about 1.4 = unrelated) and the **Dice of the registered lesion masks**.

On the shared BraTS cases (4 mm grid) disguised copies kept aligned distances of 0.50-0.65 to their sources and
distinct patients 1.08 or more (Dice of the registered masks: copies 0.88 or more, distinct patients at most
0.77). Registration runs only for the few nearest candidates, so the cost grows as ``n_synthetic x candidates``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..cases import Case
from ..errors import InputError
from ..triples import float3
from .nearest import knn

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["MatchSettings", "MATCH", "MatchImage", "PairMatch", "normalise_for_matching", "match_factor",
           "match_images", "fast_features", "candidate_pairs", "compare_pair", "aligned_nearest", "NearestAligned",
           "aligned_view"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatchSettings:
    """How the aligned comparison works.

    Args:
        candidates: training cases registered per synthetic case (the nearest in the fast space).
        highpass_mm: scale of the local rank mean removed (longer than anatomy, shorter than a bias field).
        grid_mm: voxel size everything runs at (images block-averaged, masks by majority): coarse enough that
            noise and sub-voxel misalignment matter little and 1,000 cases are compared in a minute, fine
            enough to tell patients apart.
        iterations: optimiser iterations of the registration.
        sampling: share of voxels the registration metric samples (fixed seed: deterministic).
        transform: ``"rigid"``, ``"similarity"`` or ``"affine"``.
    """

    candidates: int = 2
    highpass_mm: float = 16.0
    grid_mm: float = 8.0
    iterations: int = 40
    sampling: float = 0.5
    transform: str = "similarity"

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.iterations < 1:
            raise InputError("aligned matching needs at least one candidate and one iteration")
        if self.transform not in ("rigid", "similarity", "affine"):
            raise InputError(f"unknown registration transform {self.transform!r}",
                             fix="use 'rigid', 'similarity' or 'affine'")


#: The default settings.
MATCH = MatchSettings()


@dataclasses.dataclass
class MatchImage:
    """A case ready for aligned comparison.

    Args:
        image: ``[C, z, y, x]`` normalised (0 outside the head).
        head: head mask.
        label: lesion mask (None: no label).
        spacing_zyx: voxel size in mm.
        origin_zyx: position of voxel 0 in mm, in a frame where voxel 0 of the case's own grid is at 0 (a
            block-averaged voxel sits at the centre of its block, so a transform found here applies to the
            case's own grid as well).
    """

    image: np.ndarray
    head: np.ndarray
    label: np.ndarray | None
    spacing_zyx: tuple[float, float, float]
    origin_zyx: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def flipped(self) -> MatchImage:
        """The left-right (array x axis: the patient's on canonical LPS cases) mirror image."""
        lab = None if self.label is None else np.ascontiguousarray(self.label[..., ::-1])
        return MatchImage(np.ascontiguousarray(self.image[..., ::-1]), np.ascontiguousarray(self.head[..., ::-1]),
                          lab, self.spacing_zyx, self.origin_zyx)


@dataclasses.dataclass(frozen=True)
class PairMatch:
    """One registered synthetic/training pair.

    Args:
        distance: aligned distance ``sqrt(2 (1 - NCC))``.
        dice: Dice of the registered lesion masks (NaN when either has none).
        flipped: the synthetic case was mirrored left-right to match.
        parameters: the registration transform's parameters (SimpleITK order; training -> synthetic points).
        fixed_parameters: its fixed parameters (the centre).
        transform: ``"rigid"``, ``"similarity"`` or ``"affine"``.
    """

    distance: float
    dice: float
    flipped: bool
    parameters: tuple[float, ...]
    fixed_parameters: tuple[float, ...]
    transform: str


def _head(case: Case, image: np.ndarray) -> np.ndarray:
    if case.brain_mask is not None and case.brain_mask.any():
        return np.asarray(case.brain_mask, bool)
    mean = image.mean(0)
    return ndimage.binary_fill_holes(ndimage.gaussian_filter(mean, 1.0) > float(mean.min()) + 0.05)


def normalise_for_matching(image: np.ndarray, head: np.ndarray, spacing_zyx: Sequence[float], *,
                           highpass_mm: float = 16.0) -> np.ndarray:
    """Ranks in the head minus their local mean, z-scored in the head (0 outside): blind to gamma and bias.

    Args:
        image: ``[C, z, y, x]``.
        head: head mask.
        spacing_zyx: voxel size in mm.
        highpass_mm: Gaussian sigma of the local mean (0: ranks only).
    """
    head = np.asarray(head, bool)
    out = np.zeros(image.shape, np.float32)
    n = int(head.sum())
    if n < 2:
        return out
    weight = head.astype(np.float32)
    sigma = highpass_mm / np.asarray(spacing_zyx, float)
    norm = ndimage.gaussian_filter(weight, sigma) + 1e-6 if highpass_mm > 0 else None
    for c, channel in enumerate(image):
        ranks = np.zeros(head.shape, np.float32)
        ranks[head] = (np.argsort(np.argsort(channel[head], kind="stable"), kind="stable") + 0.5) / n
        if norm is not None:
            ranks = np.where(head, ranks - ndimage.gaussian_filter(ranks, sigma) / norm, 0.0)
        inside = ranks[head]
        out[c][head] = (inside - inside.mean()) / (inside.std() + 1e-6)
    return out


def match_factor(shape: Sequence[int], spacing_zyx: Sequence[float], settings: MatchSettings = MATCH) -> int:
    """Block size giving about ``grid_mm`` voxels, kept small enough that every axis keeps >= 16 voxels.

    Args:
        shape: the cases' grid shape.
        spacing_zyx: voxel size in mm.
        settings: ``grid_mm``.
    """
    factor = max(1, int(round(settings.grid_mm / min(spacing_zyx))))
    while factor > 1 and min(shape) / factor < 16:  # registration needs some voxels across the head
        factor -= 1
    return factor


def match_images(cases: Sequence[Case], *, channels: Sequence[str], settings: MatchSettings = MATCH
                 ) -> list[MatchImage]:
    """Normalised images, head masks and lesion masks of cases (see :func:`normalise_for_matching`).

    Args:
        cases: cases on one grid.
        channels: channel order.
        settings: the matching settings.
    """
    out = []
    for case in cases:
        image = np.stack([np.asarray(case.channels[c], np.float32) for c in channels])
        factor = match_factor(case.shape, case.geometry.spacing_zyx, settings)
        head = _block_mean(_head(case, image)[None].astype(np.float32), factor)[0] >= 0.5
        image = _block_mean(image, factor)
        spacing = tuple(float(s) * factor for s in case.geometry.spacing_zyx)
        origin = tuple((factor - 1) / 2.0 * float(s) for s in case.geometry.spacing_zyx)
        norm = normalise_for_matching(image, head, spacing, highpass_mm=settings.highpass_mm)
        label = None
        if case.label is not None:
            label = _block_mean((np.asarray(case.label) > 0)[None].astype(np.float32), factor)[0] >= 0.5
        out.append(MatchImage(norm, head, label, float3(spacing), float3(origin)))
    return out


def _block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Block average of ``[C, z, y, x]`` by ``factor`` (padded with zeros)."""
    if factor <= 1:
        return a
    pad = [(0, 0)] + [(0, (-s) % factor) for s in a.shape[1:]]
    a = np.pad(a, pad)
    c, z, y, x = a.shape
    return a.reshape(c, z // factor, factor, y // factor, factor, x // factor, factor).mean((2, 4, 6))


def _pose_features(m: MatchImage) -> np.ndarray:
    from .privacy import canonical_pose  # privacy imports this module

    # the pose of the head mask (as an image with background -1): the same for a case and its disguised copy
    matrix, offset = canonical_pose(m.head[None].astype(np.float32) * 2.0 - 1.0, m.spacing_zyx)
    shape = m.head.shape
    posed = np.stack([ndimage.affine_transform(ch, matrix, offset=offset, output_shape=shape, order=1, cval=0.0)
                      for ch in m.image])
    flat = posed.reshape(len(m.image), -1).astype(np.float64)
    flat = (flat - flat.mean(1, keepdims=True)) / (flat.std(1, keepdims=True) + 1e-6)
    return (flat / math.sqrt(flat.size)).ravel().astype(np.float32)


def fast_features(images: Sequence[MatchImage], *, settings: MatchSettings = MATCH,
                  both_orientations: bool = True) -> np.ndarray:
    """Candidate features ``[n, orientations, D]`` (orientation 1: mirrored left-right).

    Args:
        images: see :func:`match_images`.
        settings: the matching settings.
        both_orientations: also the mirrored image (for synthetic cases; training cases need one).
    """
    if not images:
        return np.zeros((0, 2 if both_orientations else 1, 0), np.float32)
    rows = []
    for m in images:
        views = (m, m.flipped()) if both_orientations else (m,)
        rows.append(np.stack([_pose_features(v) for v in views]))
    return np.stack(rows)


def candidate_pairs(synthetic: np.ndarray, train: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """The ``k`` nearest training cases of each synthetic case over both of its orientations.

    Args:
        synthetic: ``[n, 2, D]`` (see :func:`fast_features`).
        train: ``[m, 1, D]`` or ``[m, D]``.
        k: candidates per synthetic case (at most ``m``).

    Returns:
        ``(distance [n, k], training index [n, k], flipped [n, k])``, nearest first.
    """
    n, views, dim = synthetic.shape
    ref = train.reshape(len(train), -1)
    k = min(k, len(ref))
    d, i = knn(synthetic.reshape(n * views, dim), ref, k=k)
    d, i = d.reshape(n, views * k), i.reshape(n, views * k)
    flip = np.broadcast_to(np.repeat(np.arange(views), k)[None, :], d.shape)
    out_d, out_i, out_f = (np.zeros((n, k)) for _ in range(3))
    for row in range(n):
        seen: set[int] = set()
        col = 0
        for j in np.argsort(d[row], kind="stable"):  # each training case once, in its better orientation
            if int(i[row, j]) in seen:
                continue
            seen.add(int(i[row, j]))
            out_d[row, col], out_i[row, col], out_f[row, col] = d[row, j], i[row, j], flip[row, j]
            col += 1
            if col == k:
                break
    return out_d, out_i.astype(np.int64), out_f.astype(bool)


def _sitk_image(a: np.ndarray, spacing_zyx: Sequence[float],  # noqa: ANN202 - SimpleITK is imported lazily
                origin_zyx: Sequence[float] = (0.0, 0.0, 0.0)):
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(np.ascontiguousarray(a, np.float32))
    im.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    im.SetOrigin(tuple(float(s) for s in origin_zyx[::-1]))
    return im


def _centre_mm(m: MatchImage) -> np.ndarray:
    """Centre of mass of the head in SimpleITK's physical (x, y, z) order."""
    com = np.asarray(ndimage.center_of_mass(m.head), float) if m.head.any() else (np.asarray(m.head.shape) - 1) / 2
    return (com * np.asarray(m.spacing_zyx, float) + np.asarray(m.origin_zyx, float))[::-1]


def _new_transform(kind: str) -> sitk.Euler3DTransform | sitk.Similarity3DTransform | sitk.AffineTransform:
    """An identity SimpleITK transform of ``kind`` (``rigid``, ``similarity`` or ``affine``), in 3D."""
    import SimpleITK as sitk

    if kind == "affine":
        return sitk.AffineTransform(3)
    return sitk.Similarity3DTransform() if kind == "similarity" else sitk.Euler3DTransform()


def _register(fixed: MatchImage, moving: MatchImage, settings: MatchSettings):  # noqa: ANN202
    import SimpleITK as sitk

    f_img = _sitk_image(fixed.image.mean(0), fixed.spacing_zyx, fixed.origin_zyx)
    m_img = _sitk_image(moving.image.mean(0), moving.spacing_zyx, moving.origin_zyx)
    init = _new_transform(settings.transform)
    centre = _centre_mm(fixed)
    init.SetCenter(tuple(float(v) for v in centre))
    init.SetTranslation(tuple(float(v) for v in _centre_mm(moving) - centre))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    if settings.sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(settings.sampling, 12345)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3,
                                                 numberOfIterations=settings.iterations, relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(f_img, m_img)
    return init


def compare_pair(synthetic: MatchImage, train: MatchImage, *, flipped: bool,
                 settings: MatchSettings = MATCH) -> PairMatch:
    """Register a synthetic case onto a training case and measure how alike they are.

    Args:
        synthetic: the synthetic case (see :func:`match_images`).
        train: the training case.
        flipped: mirror the synthetic case left-right first.
        settings: registration settings.
    """
    import SimpleITK as sitk

    moving = synthetic.flipped() if flipped else synthetic
    transform = _register(train, moving, settings)
    ref = _sitk_image(train.head.astype(np.float32), train.spacing_zyx, train.origin_zyx)

    def warp(a: np.ndarray) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.Resample(_sitk_image(a, moving.spacing_zyx, moving.origin_zyx), ref,
                                                    transform, sitk.sitkLinear, 0.0))

    both = (warp(moving.head.astype(np.float32)) > 0.5) & train.head
    nccs = []
    for channel, target in zip(moving.image, train.image):
        x, y = warp(channel)[both].astype(np.float64), target[both].astype(np.float64)
        x, y = x - x.mean(), y - y.mean()
        nccs.append(float((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum() + 1e-12)) if x.size > 1 else 0.0)
    distance = math.sqrt(max(0.0, 2.0 * (1.0 - float(np.mean(nccs)))))
    dice = float("nan")
    if moving.label is not None and train.label is not None and (moving.label.any() or train.label.any()):
        lab = warp(moving.label.astype(np.float32)) > 0.5
        dice = float(2.0 * (lab & train.label).sum() / (lab.sum() + train.label.sum()))
    return PairMatch(distance, dice, flipped, tuple(float(v) for v in transform.GetParameters()),
                     tuple(float(v) for v in transform.GetFixedParameters()), settings.transform)


def aligned_view(synthetic: Case, train: Case, pair: PairMatch, *, channel: str) -> tuple[np.ndarray,
                                                                                           np.ndarray | None]:
    """The synthetic case moved onto the training case's grid with a pair's flip and registration.

    This is what the check compared, at the cases' own resolution: show it beside the training case.

    Args:
        synthetic: the synthetic case.
        train: the training case it was matched with (same grid as the synthetic one).
        pair: the match (see :func:`compare_pair`).
        channel: the channel to move.

    Returns:
        ``(image [z, y, x] on the training grid, label bool [z, y, x] or None)``.
    """
    import SimpleITK as sitk

    transform = _new_transform(pair.transform)
    transform.SetFixedParameters(pair.fixed_parameters)
    transform.SetParameters(pair.parameters)
    image = np.asarray(synthetic.channels[channel], np.float32)
    label = None if synthetic.label is None else (np.asarray(synthetic.label) > 0).astype(np.float32)
    if pair.flipped:
        image = image[..., ::-1]
        label = None if label is None else label[..., ::-1]
    spacing = train.geometry.spacing_zyx
    ref = _sitk_image(np.zeros(train.shape, np.float32), spacing)
    background = float(image.min())
    moved = sitk.GetArrayFromImage(sitk.Resample(_sitk_image(image, spacing), ref, transform, sitk.sitkLinear,
                                                 background))
    lab = None
    if label is not None:
        lab = sitk.GetArrayFromImage(sitk.Resample(_sitk_image(label, spacing), ref, transform, sitk.sitkLinear,
                                                   0.0)) > 0.5
    return moved, lab


@dataclasses.dataclass
class NearestAligned:
    """The aligned nearest training case of each query (see :func:`aligned_nearest`).

    Args:
        distance: ``[n]`` aligned distance to it (NaN: not registered, the fast distance was above the gate).
        nearest: ``[n]`` its training index (the fast-space nearest when not registered).
        fast_distance: ``[n]`` fast-space distance to the nearest candidate (better orientation).
        pairs: per query, the best registered pair (None: not registered).
    """

    distance: np.ndarray
    nearest: np.ndarray
    fast_distance: np.ndarray
    pairs: list[PairMatch | None]

    @property
    def registered(self) -> np.ndarray:
        """Which queries were registered."""
        return np.array([p is not None for p in self.pairs], bool)


def aligned_nearest(synthetic: Sequence[MatchImage], train: Sequence[MatchImage], *,
                    settings: MatchSettings = MATCH, train_features: np.ndarray | None = None,
                    synthetic_features: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                    gate: float | None = None) -> NearestAligned:
    """The aligned nearest training case of every synthetic case (registering its fast-space candidates).

    Args:
        synthetic: the queries (see :func:`match_images`).
        train: the training cases.
        settings: candidates and registration settings.
        train_features: :func:`fast_features` of ``train`` with one orientation (computed when None).
        synthetic_features: :func:`fast_features` of ``synthetic`` with both orientations (computed when None).
        exclude: per query, a training index it must not be matched with (leave-one-out: the query itself;
            -1 for none).
        gate: register only queries whose fast-space nearest distance is at most this (None: all); the cost
            then grows with the number of near matches, not with the set.
    """
    if not train:
        raise InputError("aligned matching needs training cases")
    if train_features is None:
        train_features = fast_features(train, settings=settings, both_orientations=False)
    if synthetic_features is None:
        synthetic_features = fast_features(synthetic, settings=settings)
    extra = 0 if exclude is None else 1
    k = min(settings.candidates + extra, len(train))
    fast_d, idx, flip = candidate_pairs(synthetic_features, train_features, k=k)
    n = len(synthetic)
    out = NearestAligned(np.full(n, np.nan), np.full(n, -1, np.int64), np.full(n, np.nan), [None] * n)
    for q, query in enumerate(synthetic):
        keep = [c for c in range(k) if exclude is None or int(idx[q, c]) != int(exclude[q])][:settings.candidates]
        if not keep:
            raise InputError("no training candidate left to compare with")
        out.fast_distance[q], out.nearest[q] = fast_d[q, keep[0]], idx[q, keep[0]]
        if gate is not None and fast_d[q, keep[0]] > gate:
            continue
        for c in keep:
            pair = compare_pair(query, train[int(idx[q, c])], flipped=bool(flip[q, c]), settings=settings)
            best = out.pairs[q]
            if best is None or pair.distance < best.distance:
                out.pairs[q], out.distance[q], out.nearest[q] = pair, pair.distance, idx[q, c]
    return out
