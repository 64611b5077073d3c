"""Fidelity numbers that say how sure they are: KID and Fréchet distance with bootstrap CIs, precision/recall
with Wilson CIs.

With tens of cases (the usual medical set) the Fréchet distance is biased upward and noisy, so a ranking of
generators by its point value can be noise. The kernel inception distance (KID, Bińkowski et al. 2018: the
unbiased squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``) is unbiased at any n. Both
get percentile-bootstrap 95 % CIs (real and synthetic embeddings resampled independently); a ``warning`` says
when an interval is wider than the value itself, i.e. the data cannot separate two generators by this number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from ..errors import InputError
from .fidelity import frechet_distance
from .nearest import kth_neighbour_distance, within_any_ball

__all__ = ["polynomial_kernel", "kid", "bootstrap_ci", "wilson_ci", "fidelity_with_cis"]

_NAN = float("nan")


def polynomial_kernel(a: np.ndarray, b: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """``(gamma a.b + coef0)^degree`` for every pair of rows.

    Args:
        a: ``[n, d]``.
        b: ``[m, d]``.
        degree: polynomial degree.
        gamma: scale of the dot product (None: ``1 / d``).
        coef0: constant term.
    """
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    return (gamma * (a @ b.T) + coef0) ** degree


def kid(real: np.ndarray, synthetic: np.ndarray, *, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0) -> float:
    """Unbiased squared MMD with a polynomial kernel (KID); about 0 for one distribution, may be slightly < 0.

    Args:
        real: ``[n, d]`` real features (n >= 2).
        synthetic: ``[m, d]`` synthetic features (m >= 2).
        degree: kernel degree.
        gamma: kernel scale (None: ``1 / d``).
        coef0: kernel constant.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> kid(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 3.0) > 1.0
        True
    """
    x, y = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return _NAN
    kxx = polynomial_kernel(x, x, degree=degree, gamma=gamma, coef0=coef0)
    kyy = polynomial_kernel(y, y, degree=degree, gamma=gamma, coef0=coef0)
    kxy = polynomial_kernel(x, y, degree=degree, gamma=gamma, coef0=coef0)
    # unbiased: leave out k(x_i, x_i) terms
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def bootstrap_ci(stat: Callable[[np.ndarray, np.ndarray], float], real: np.ndarray, synthetic: np.ndarray, *,
                 n_boot: int = 500, seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Point value and percentile-bootstrap CI of a two-sample statistic (both samples resampled independently).

    Resamples repeat cases, which slightly inflates distances between sets; the interval is read as the
    statistic's sampling spread, not as an exact coverage guarantee at n ~ 5.

    Args:
        stat: ``stat(real, synthetic) -> float``.
        real: ``[n, d]``.
        synthetic: ``[m, d]``.
        n_boot: resamples.
        seed: resampling seed.
        confidence: interval coverage.

    Returns:
        ``value``, ``lo``, ``hi`` and ``n_boot`` (resamples with a finite value).
    """
    x, y = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    value = float(stat(x, y))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        b = float(stat(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]))
        if np.isfinite(b):
            boots.append(b)
    if not boots:
        return {"value": value, "lo": _NAN, "hi": _NAN, "n_boot": 0}
    lo, hi = np.quantile(boots, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return {"value": value, "lo": float(lo), "hi": float(hi), "n_boot": len(boots)}


def wilson_ci(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sensible at small n and at 0 or 1).

    Args:
        successes: count.
        n: trials.
        confidence: coverage.

    Example:
        >>> tuple(round(v, 3) for v in wilson_ci(5, 5))
        (0.566, 1.0)
    """
    if n <= 0:
        return _NAN, _NAN
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _too_wide(ci: dict[str, float]) -> bool:
    width = ci["hi"] - ci["lo"]
    return not np.isfinite(width) or width > max(abs(ci["value"]), 1e-12)


def fidelity_with_cis(real_emb: np.ndarray, synth_emb: np.ndarray, *, n_boot: int = 500, seed: int = 0, k: int = 3,
                      confidence: float = 0.95) -> dict[str, Any]:
    """KID and Fréchet distance with bootstrap CIs, precision/recall with Wilson CIs, and a small-sample warning.

    Args:
        real_emb: ``[n, d]`` embeddings of the real (training) cases.
        synth_emb: ``[m, d]`` embeddings of the synthetic cases.
        n_boot: bootstrap resamples.
        seed: resampling seed.
        k: neighbour of the precision/recall balls (capped at ``n - 1``).
        confidence: interval coverage.

    Returns:
        ``n_real``, ``n_synthetic``, ``kid`` / ``kid_lo`` / ``kid_hi``, ``fd`` / ``fd_lo`` / ``fd_hi``,
        ``precision`` / ``precision_lo`` / ``precision_hi``, ``recall`` / ..., ``n_boot`` and ``warning`` (empty when
        the intervals are narrow enough to separate generators).
    """
    x, y = np.asarray(real_emb, np.float64), np.asarray(synth_emb, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InputError(f"embeddings must be [n, d] with one d, got {x.shape} and {y.shape}")
    kid_ci = bootstrap_ci(kid, x, y, n_boot=n_boot, seed=seed, confidence=confidence)
    fd_ci = bootstrap_ci(lambda a, b: frechet_distance(b, a)["value"], x, y, n_boot=n_boot, seed=seed + 1,
                         confidence=confidence)
    out: dict[str, Any] = {"n_real": len(x), "n_synthetic": len(y), "n_boot": int(n_boot), "confidence": confidence}
    for name, ci in (("kid", kid_ci), ("fd", fd_ci)):
        out.update({name: ci["value"], f"{name}_lo": ci["lo"], f"{name}_hi": ci["hi"]})
    # precision/recall are shares of cases inside the other set's k-NN manifold: Wilson CIs given the manifolds
    for name, a, b in (("precision", y, x), ("recall", x, y)):
        if len(b) >= 2 and len(a) >= 1:
            inside = within_any_ball(a, b, kth_neighbour_distance(b, k=min(k, len(b) - 1)))
            hits = int(np.sum(inside))
            lo, hi = wilson_ci(hits, len(a), confidence=confidence)
            out.update({name: hits / len(a), f"{name}_lo": lo, f"{name}_hi": hi})
        else:
            out.update({name: _NAN, f"{name}_lo": _NAN, f"{name}_hi": _NAN})
    wide = [name.upper() for name, ci in (("kid", kid_ci), ("fd", fd_ci)) if _too_wide(ci)]
    out["warning"] = (f"{' and '.join(wide)} {confidence:.0%} CIs are wider than the values themselves with "
                      f"{len(x)} real / {len(y)} synthetic cases: too few cases to separate generators by them"
                      if wide else "")
    return out
