"""Statistics of repeated runs: means with 95 % CIs, paired comparisons, and the real-equivalent figure.

Results are plain dicts of floats (NaN where undefined), ready for ``report.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from ..errors import InputError

__all__ = ["mean_ci", "case_seed_ci", "paired_bootstrap", "wilcoxon_signed_rank", "compare_paired",
           "isotonic_increasing", "real_equivalent", "BELOW_SMALLEST", "WITHIN", "ABOVE_LARGEST"]

#: Outcomes of :func:`real_equivalent`.
BELOW_SMALLEST = "below_smallest_size_tested"
WITHIN = "within_sizes_tested"
ABOVE_LARGEST = "more_than_largest_size_tested"


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


def mean_ci(values: Sequence[float], *, confidence: float = 0.95, method: str = "t", n_boot: int = 2000,
            seed: int = 0, bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """Mean and confidence interval of independent repeats (NaN values are left out).

    Args:
        values: one number per repeat (e.g. per seed).
        confidence: interval coverage.
        method: ``"t"`` (Student t, fine for few roughly normal repeats) or ``"bootstrap"`` (percentile).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        bounds: the metric's possible range (e.g. ``(0, 1)`` for Dice): a t interval is clipped to it.

    Returns:
        ``mean``, ``lo``, ``hi``, ``sd`` and ``n``; with one value the interval is NaN (no spread to measure).

    Example:
        >>> r = mean_ci([0.6, 0.7, 0.8])
        >>> round(r["mean"], 3), round(r["lo"], 3), round(r["hi"], 3)
        (0.7, 0.452, 0.948)
    """
    if method not in ("t", "bootstrap"):
        raise InputError(f"unknown CI method {method!r}", fix="use 't' or 'bootstrap'")
    a = _finite(values)
    n = int(a.size)
    nan = float("nan")
    if n == 0:
        return {"mean": nan, "lo": nan, "hi": nan, "sd": nan, "n": 0}
    mean = float(a.mean())
    if n == 1:
        return {"mean": mean, "lo": nan, "hi": nan, "sd": nan, "n": 1}
    sd = float(a.std(ddof=1))
    if method == "t":
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = a[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        lo, hi = (float(v) for v in np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2]))
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "sd": sd, "n": n}


def case_seed_ci(values: np.ndarray, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
                 bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """Mean and CI of a ``[seed, test case]`` table, resampling test cases AND seeds (two-level bootstrap).

    A CI over seeds alone treats the test set as fixed, so 2 test cases look as certain as 200; resampling the
    cases too makes the interval carry the test-set size. NaN entries are left out of each mean.

    Args:
        values: ``[n_seeds, n_cases]`` metric values (the same test cases for every seed).
        confidence: interval coverage.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        bounds: the metric's possible range.

    Returns:
        ``mean``, ``lo``, ``hi``, ``sd`` (over seeds of the per-seed mean), ``n_seeds``, ``n_cases``.

    Example:
        >>> few = case_seed_ci(np.array([[0.6, 0.9], [0.62, 0.88]]))
        >>> many = case_seed_ci(np.tile([0.6, 0.9], (2, 50)))
        >>> (few["hi"] - few["lo"]) > (many["hi"] - many["lo"])
        True
    """
    a = np.asarray(values, dtype=float)
    if a.ndim != 2:
        raise InputError(f"expected a [seed, case] table, got shape {a.shape}")
    nan = float("nan")
    n_seeds, n_cases = a.shape
    if a.size == 0 or not np.isfinite(a).any():
        return {"mean": nan, "lo": nan, "hi": nan, "sd": nan, "n_seeds": n_seeds, "n_cases": n_cases}
    per_seed = np.nanmean(a, axis=1)
    mean = float(np.nanmean(per_seed))
    sd = float(np.nanstd(per_seed, ddof=1)) if n_seeds > 1 else nan
    if n_seeds * n_cases < 2 or n_cases < 2:
        return {"mean": mean, "lo": nan, "hi": nan, "sd": sd, "n_seeds": n_seeds, "n_cases": n_cases}
    rng = np.random.default_rng(seed)
    cases = rng.integers(0, n_cases, size=(n_boot, n_cases))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    picked = a[seeds[:, :, None], cases[:, None, :]]  # [boot, seed, case]
    with np.errstate(all="ignore"):
        means = np.nanmean(picked.reshape(n_boot, -1), axis=1)
    means = means[np.isfinite(means)]
    lo, hi = (float(v) for v in np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2]))
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "lo": lo, "hi": hi, "sd": sd, "n_seeds": n_seeds, "n_cases": n_cases}


def _pairs(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise InputError(f"paired comparison needs equally many values, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep] - y[keep]


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, n_boot: int = 5000,
                     seed: int = 0) -> dict[str, float]:
    """Bootstrap of the mean paired difference ``a - b`` (pairs with a NaN are dropped).

    Args:
        a: values of the first regime, one per pair (same seed and test case as ``b``).
        b: values of the second regime.
        confidence: interval coverage.
        n_boot: resamples.
        seed: resampling seed.

    Returns:
        ``mean_diff``, ``lo``, ``hi``, ``p_value`` (two-sided: twice the smaller share of resampled means on
        either side of 0) and ``n`` pairs.
    """
    d = _pairs(a, b)
    nan = float("nan")
    if d.size == 0:
        return {"mean_diff": nan, "lo": nan, "hi": nan, "p_value": nan, "n": 0}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return {"mean_diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "p_value": p, "n": int(d.size)}


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of paired values (scipy; exact for small samples without ties).

    Args:
        a: values of the first regime, one per pair.
        b: values of the second regime.

    Returns:
        ``statistic``, ``p_value`` (1.0 when every difference is 0, NaN without pairs) and ``n`` pairs.
    """
    d = _pairs(a, b)
    if d.size == 0:
        return {"statistic": float("nan"), "p_value": float("nan"), "n": 0}
    if not np.any(d != 0):
        return {"statistic": 0.0, "p_value": 1.0, "n": int(d.size)}
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue), "n": int(d.size)}


def compare_paired(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, seed: int = 0
                   ) -> dict[str, float]:
    """Paired bootstrap and Wilcoxon signed-rank of ``a - b`` in one dict.

    Args:
        a: first regime, one value per pair.
        b: second regime.
        confidence: bootstrap interval coverage.
        seed: bootstrap seed.
    """
    boot = paired_bootstrap(a, b, confidence=confidence, seed=seed)
    wil = wilcoxon_signed_rank(a, b)
    return {"mean_diff": boot["mean_diff"], "lo": boot["lo"], "hi": boot["hi"], "bootstrap_p": boot["p_value"],
            "wilcoxon_statistic": wil["statistic"], "wilcoxon_p": wil["p_value"], "n_pairs": boot["n"]}


def isotonic_increasing(values: Sequence[float] | np.ndarray,
                        weights: Sequence[float] | None = None) -> np.ndarray:
    """Least-squares non-decreasing fit (pool-adjacent-violators).

    Args:
        values: the sequence to fit, in order of increasing x.
        weights: optional positive weights.

    Example:
        >>> isotonic_increasing([0.2, 0.5, 0.4, 0.7]).tolist()
        [0.2, 0.45, 0.45, 0.7]
    """
    y = np.asarray(values, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, wt in zip(y, w):
        blocks.append([v, wt, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks]) if blocks else y


def real_equivalent(sizes: Sequence[float], scores: Sequence[float], target: float) -> dict[str, Any]:
    """How many real cases give the score ``target``, on a real-only size sweep.

    The sweep is made monotone (:func:`isotonic_increasing`; more real data is assumed not to hurt, so a dip is
    noise) and linearly interpolated; the smallest size reaching ``target`` is returned.

    Args:
        sizes: real-training-set sizes tested.
        scores: mean score (e.g. Dice) at each size.
        target: the score to place on the curve (e.g. the synthetic-only Dice).

    Returns:
        ``value`` (cases; None outside the tested range), ``outcome`` (:data:`WITHIN`, :data:`BELOW_SMALLEST` or
        :data:`ABOVE_LARGEST`, the "more than the largest size tested" result), ``bound`` (the smallest or
        largest size when outside), and the monotone ``curve`` used.

    Example:
        >>> round(real_equivalent([2, 4, 8], [0.4, 0.6, 0.7], 0.65)["value"], 6)
        6.0
        >>> real_equivalent([2, 4, 8], [0.4, 0.6, 0.7], 0.9)["outcome"]
        'more_than_largest_size_tested'
    """
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(scores, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0 or not math.isfinite(float(target)):
        return {"value": None, "outcome": None, "bound": None, "curve": []}
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    # equal sizes (repeats) are averaged before the monotone fit
    ux = np.unique(x)
    uy = np.array([y[x == v].mean() for v in ux])
    fit = isotonic_increasing(uy, weights=[np.sum(x == v) for v in ux])
    curve = [{"size": float(a), "score": float(b)} for a, b in zip(ux, fit)]
    t = float(target)
    tol = 1e-9  # averaging in the monotone fit must not turn an exact hit into a miss
    if t > fit[-1] + tol:
        return {"value": None, "outcome": ABOVE_LARGEST, "bound": float(ux[-1]), "curve": curve}
    if t < fit[0] - tol:
        return {"value": None, "outcome": BELOW_SMALLEST, "bound": float(ux[0]), "curve": curve}
    i = int(np.argmax(fit >= t - tol))  # first point reaching the target
    if i == 0 or fit[i] <= t + tol:
        value = float(ux[i])
    else:
        x0, x1, y0, y1 = ux[i - 1], ux[i], fit[i - 1], fit[i]
        value = float(x0 + (t - y0) * (x1 - x0) / (y1 - y0))
    return {"value": value, "outcome": WITHIN, "bound": None, "curve": curve}
