"""The fidelity check: how close is the synthetic set to real data, without any downloaded weights?

Reported beside utility so that the "beauty or the beast" question is answered on the user's own data: a
generator can be pretty (high fidelity) and useless, or the reverse. Every number has a real-vs-real baseline
computed the same way with the real holdout (``real_test``) in the synthetic set's place, so "how far is far" is
read off the user's data:

* **Fréchet distance** between Gaussian fits of encoder features (the project's self-supervised encoder,
  :mod:`.encoder`, trained on the real training set only). With few cases (``n <= d``) the sample covariance is
  singular, so both covariances are Ledoit-Wolf shrunk toward a scaled identity; the dimensions used and the
  shrinkage are reported. Optionally features are first projected on the training set's principal axes.
* **Precision / recall** (Kynkäänniemi et al. 2019): share of synthetic cases inside the k-NN manifold of the
  real training cases, and of real cases inside the synthetic manifold.
* **MS-SSIM diversity**: mean MS-SSIM (:class:`monai.metrics.MultiScaleSSIMMetric`, as many scales as the grid
  allows; plain SSIM below two) over random pairs within the synthetic set, beside pairs of real cases; a
  synthetic set much more self-similar than real data has collapsed modes.
* **KID** (kernel inception distance, unbiased at any n) with percentile-bootstrap 95 % CIs
  (:mod:`.small_sample`), beside the holdout's; ``small_sample_warning`` says when the CIs are too wide to read.
* **Per-label intensity distances**: Wasserstein-1 per channel between real and synthetic voxel intensities
  inside each lesion label and in normal brain (the head/brain mask minus lesions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats as sps

from ..cases import Case
from ..errors import InputError
from .base import Check, CheckContext, CheckResult, register_check
from .encoder import get_encoder, stack_cases
from .nearest import kth_neighbour_distance, within_any_ball

__all__ = ["FidelityCheck", "ledoit_wolf", "frechet_distance", "principal_axes", "precision_recall", "ms_ssim_pairs",
           "intensity_distances", "regions"]

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_NAN = float("nan")


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance ``(1 - s) S + s mu I`` and its shrinkage ``s`` (Ledoit & Wolf 2004).

    Args:
        x: ``[n, d]`` samples (``n >= 1``).

    Example:
        >>> cov, s = ledoit_wolf(np.random.default_rng(0).normal(size=(5, 20)))
        >>> cov.shape, 0.0 <= s <= 1.0
        ((20, 20), True)
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    mu = float(np.trace(s)) / d
    delta = float(((s - mu * np.eye(d)) ** 2).sum())
    if n < 2 or delta <= 0:
        return mu * np.eye(d), 1.0
    # sum_k |x_k x_k^T - S|_F^2 = sum_k |x_k|^4 - n |S|_F^2
    beta = (float((np.einsum("ij,ij->i", xc, xc) ** 2).sum()) - n * float((s**2).sum())) / n**2
    shrink = float(np.clip(beta / delta, 0.0, 1.0))
    return (1 - shrink) * s + shrink * mu * np.eye(d), shrink


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray, *, basis: np.ndarray | None = None) -> dict[str, float]:
    """Fréchet distance between Gaussian fits of two feature sets, with shrunk covariances.

    Args:
        a: ``[n_a, d]`` features.
        b: ``[n_b, d]`` features.
        basis: optional ``[q, d]`` orthonormal rows to project on first (e.g. principal axes of the reference).

    Returns:
        ``value``, ``dims`` (dimensions used), ``shrinkage_a`` and ``shrinkage_b``; NaN value if a set is empty.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 3))
        >>> round(frechet_distance(x, x + [2.0, 0.0, 0.0])["value"], 3)
        4.0
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if basis is not None:
        a, b = a @ basis.T, b @ basis.T
    if len(a) == 0 or len(b) == 0:
        return {"value": _NAN, "dims": int(a.shape[1]), "shrinkage_a": _NAN, "shrinkage_b": _NAN}
    ca, sa = ledoit_wolf(a)
    cb, sb = ledoit_wolf(b)
    ra = _sqrtm_psd(ca)
    cross = float(np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum())
    value = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)
    return {"value": max(value, 0.0), "dims": int(a.shape[1]), "shrinkage_a": sa, "shrinkage_b": sb}


def principal_axes(x: np.ndarray, *, dims: int) -> np.ndarray:
    """The ``dims`` leading principal axes ``[q, d]`` of ``x`` (``q <= min(dims, n - 1, d)``).

    Args:
        x: ``[n, d]``.
        dims: how many axes at most.
    """
    xc = np.asarray(x, np.float64) - np.mean(x, 0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return vt[: max(1, min(dims, len(x) - 1, x.shape[1]))]


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls.

    Args:
        real: ``[n_r, d]`` real features.
        fake: ``[n_f, d]`` synthetic features.
        k: neighbour defining each ball's radius (capped at ``n - 1`` of each set).

    Returns:
        ``precision`` (fake inside the real manifold), ``recall`` (real inside the fake manifold), and the
        ``k`` used for each (NaN when a set has fewer than 2 cases).
    """
    out = {"precision": _NAN, "recall": _NAN, "k_real": _NAN, "k_fake": _NAN}
    if len(real) >= 2 and len(fake) >= 1:
        kr = min(k, len(real) - 1)
        out["precision"] = float(within_any_ball(fake, real, kth_neighbour_distance(real, k=kr)).mean())
        out["k_real"] = kr
    if len(fake) >= 2 and len(real) >= 1:
        kf = min(k, len(fake) - 1)
        out["recall"] = float(within_any_ball(real, fake, kth_neighbour_distance(fake, k=kf)).mean())
        out["k_fake"] = kf
    return out


def _ms_ssim_metric(shape: Sequence[int], kernel_size: int = 7) -> tuple[Any, str]:
    from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

    smallest = min(shape)
    scales = 1
    while scales < len(_MS_SSIM_WEIGHTS) and smallest > (kernel_size - 1) * 2 ** scales:
        scales += 1  # MONAI needs every side > (kernel - 1) * 2^(scales - 1)
    if scales < 2:
        size = max(3, min(kernel_size, smallest - (1 - smallest % 2)))
        return SSIMMetric(spatial_dims=3, data_range=3.0, win_size=size, kernel_sigma=1.5), "SSIM (1 scale)"
    w = _MS_SSIM_WEIGHTS[:scales]
    weights = tuple(v / sum(w) for v in w)
    return (MultiScaleSSIMMetric(spatial_dims=3, data_range=3.0, kernel_size=kernel_size, kernel_sigma=1.5,
                                 weights=weights), f"MS-SSIM ({scales} scales)")


def ms_ssim_pairs(cases: Sequence[Case], *, max_pairs: int, seed: int = 0, batch: int = 8) -> tuple[np.ndarray, str]:
    """MS-SSIM of random distinct pairs within a set (higher = more alike = less diverse).

    Images are shifted by +1 so the background is 0, and compared with ``data_range`` 3 (normalised units).

    Args:
        cases: prepared cases on one grid.
        max_pairs: pairs drawn at most (all pairs when there are fewer).
        seed: pair sampling seed.
        batch: pairs per metric call.

    Returns:
        ``(values [pairs], metric name)``.
    """
    n = len(cases)
    if n < 2:
        return np.zeros(0), "none (fewer than 2 cases)"
    metric, name = _ms_ssim_metric(cases[0].shape)
    total = n * (n - 1) // 2
    rng = np.random.default_rng(seed)
    if total <= max_pairs:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < max_pairs:
            i, j = sorted(rng.choice(n, 2, replace=False).tolist())
            chosen.add((i, j))
        pairs = sorted(chosen)
    channels = cases[0].channel_names
    values = []
    with torch.no_grad():
        for s in range(0, len(pairs), batch):
            chunk = pairs[s:s + batch]
            x = torch.from_numpy(stack_cases([cases[i] for i, _ in chunk], channels)) + 1.0
            y = torch.from_numpy(stack_cases([cases[j] for _, j in chunk], channels)) + 1.0
            values.append(metric(x, y).reshape(-1).numpy())
    return np.concatenate(values).astype(float), name


def regions(case: Case) -> dict[str, np.ndarray]:
    """Named boolean regions of a case: each lesion label, and ``normal brain`` (mask minus lesions).

    The mask is the case's ``brain_mask`` (prepared cases carry their head/brain mask), else voxels above the
    background in any channel.

    Args:
        case: a prepared case.
    """
    if case.brain_mask is not None:
        mask = case.brain_mask
    else:
        mask = np.any(np.stack([a > -0.99 for a in case.channels.values()]), axis=0)
    label = case.label if case.label is not None else np.zeros(case.shape, np.int16)
    out = {"normal brain": mask & (label == 0)}
    for value, name in case.label_table.names.items():
        out[f"lesion: {name}"] = label == value
    return out


def _pooled(cases: Sequence[Case], *, per_case: int, seed: int) -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    parts: dict[tuple[str, str], list[np.ndarray]] = {}
    for case in cases:
        for region, mask in regions(case).items():
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                continue
            if idx.size > per_case:
                idx = rng.choice(idx, per_case, replace=False)
            for name, a in case.channels.items():
                parts.setdefault((region, name), []).append(a.ravel()[idx])
    return {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}


def intensity_distances(real_train: Sequence[Case], synthetic: Sequence[Case], real_test: Sequence[Case] = (), *,
                        per_case: int = 20000, seed: int = 0) -> list[dict[str, Any]]:
    """Wasserstein-1 distances per region and channel, synthetic vs real training (and holdout vs training).

    Args:
        real_train: prepared real training cases (the reference).
        synthetic: prepared synthetic cases.
        real_test: prepared real holdout cases (the real-vs-real baseline; may be empty).
        per_case: voxels sampled per case and region at most.
        seed: sampling seed.

    Returns:
        one row per (region, channel): ``w1_synthetic``, ``w1_holdout`` (baseline), means and voxel counts.
    """
    ref = _pooled(real_train, per_case=per_case, seed=seed)
    syn = _pooled(synthetic, per_case=per_case, seed=seed + 1)
    hold = _pooled(real_test, per_case=per_case, seed=seed + 2) if real_test else {}
    rows = []
    for key in sorted(set(ref) | set(syn)):
        r, s, h = ref.get(key), syn.get(key), hold.get(key)

        def w1(x: np.ndarray | None, r: np.ndarray | None = r) -> float:
            return float(sps.wasserstein_distance(x, r)) if x is not None and r is not None else _NAN

        def mean(x: np.ndarray | None) -> float:
            return float(x.mean()) if x is not None else _NAN

        rows.append({"region": key[0], "channel": key[1], "w1_synthetic": w1(s), "w1_holdout": w1(h),
                     "mean_train": mean(r), "mean_synthetic": mean(s), "mean_holdout": mean(h),
                     "voxels_train": 0 if r is None else int(r.size),
                     "voxels_synthetic": 0 if s is None else int(s.size)})
    return rows


def _mean_w1(rows: list[dict[str, Any]], key: str, lesion: bool) -> float:
    vals = [r[key] for r in rows if r["region"].startswith("lesion") == lesion and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else _NAN


def _figure(path: Path, emb: dict[str, np.ndarray], hist: dict[str, dict[tuple[str, str], np.ndarray]],
            ssim: dict[str, np.ndarray], channel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ref = emb["real train"]
    if len(ref) >= 2:
        axes_pca = principal_axes(ref, dims=2)
        centre = ref.mean(0)
        for (name, e), colour in zip(emb.items(), ("tab:blue", "tab:green", "tab:red")):
            if len(e):
                p = (e - centre) @ axes_pca.T
                axes[0].scatter(p[:, 0], p[:, 1] if p.shape[1] > 1 else np.zeros(len(p)), s=14, label=name,
                                color=colour, alpha=0.7)
        axes[0].legend(fontsize=8)
    axes[0].set_title("encoder features (principal axes of real train)")
    regions_seen = sorted({k[0] for d in hist.values() for k in d if k[1] == channel})
    for region, ls in zip(regions_seen, ("-", "--", ":", "-.")):
        for (name, data), colour in zip(hist.items(), ("tab:blue", "tab:red")):
            values = data.get((region, channel))
            if values is not None and values.size:
                axes[1].hist(values, bins=60, density=True, histtype="step", ls=ls, color=colour,
                             label=f"{name}: {region}")
    axes[1].set_title(f"{channel} intensities by region")
    axes[1].set_xlabel("normalised intensity")
    axes[1].legend(fontsize=7)
    boxes = [v for v in ssim.values() if v.size]
    if boxes:
        axes[2].boxplot(boxes, tick_labels=[k for k, v in ssim.items() if v.size])
    axes[2].set_title("pairwise MS-SSIM within each set (higher = less diverse)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register_check
class FidelityCheck(Check):
    """Fréchet distance, precision/recall, MS-SSIM diversity and per-label intensity distances.

    ``real_test`` (when given) is used only as the real-vs-real baseline of each number.

    Args:
        k: neighbour of the precision/recall balls.
        max_pairs: MS-SSIM pairs per set (default: 20 on the quick profile, 100 otherwise).
        fd_dims: project features on this many principal axes of the real training set before the Fréchet
            distance (None: all encoder dimensions, with shrinkage).
        figures: draw the figure.
    """

    name = "fidelity"

    def __init__(self, *, k: int = 3, max_pairs: int | None = None, fd_dims: int | None = None,
                 figures: bool = True) -> None:
        self.k = k
        self.max_pairs = max_pairs
        self.fd_dims = fd_dims
        self.figures = figures

    def run(self, *, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
            context: CheckContext) -> CheckResult:
        """Compare the synthetic set with the real training set (the holdout gives the baselines)."""
        if len(real_train) < 2 or not synthetic:
            raise InputError(f"fidelity needs >= 2 real training cases and >= 1 synthetic case, got "
                             f"{len(real_train)} and {len(synthetic)}", fix="give more cases")
        progress = context.progress
        progress.report("fidelity", 0, 4, "encoder")
        enc = get_encoder(real_train, context=context)
        emb = {"real train": enc.embed(real_train), "real holdout": enc.embed(real_test),
               "synthetic": enc.embed(synthetic)}
        basis = principal_axes(emb["real train"], dims=self.fd_dims) if self.fd_dims else None
        fd_syn = frechet_distance(emb["synthetic"], emb["real train"], basis=basis)
        fd_hold = frechet_distance(emb["real holdout"], emb["real train"], basis=basis)
        pr_syn = precision_recall(emb["real train"], emb["synthetic"], k=self.k)
        pr_hold = precision_recall(emb["real train"], emb["real holdout"], k=self.k)
        progress.report("fidelity", 1, 4, "MS-SSIM")
        max_pairs = self.max_pairs or (20 if context.profile.name == "quick" else 100)
        ssim_syn, metric = ms_ssim_pairs(synthetic, max_pairs=max_pairs, seed=context.seed)
        ssim_real, _ = ms_ssim_pairs(list(real_train) + list(real_test), max_pairs=max_pairs, seed=context.seed)
        progress.report("fidelity", 2, 4, "intensities")
        w1_rows = intensity_distances(real_train, synthetic, real_test, seed=context.seed)

        # KID is unbiased at any n (FD is not): with bootstrap CIs for the set and the real-vs-real baseline
        from .small_sample import fidelity_with_cis  # imports this module: import here, not at the top

        n_boot = 200 if context.profile.name == "quick" else 500
        kid_syn = fidelity_with_cis(emb["real train"], emb["synthetic"], n_boot=n_boot, seed=context.seed)
        kid_hold = fidelity_with_cis(emb["real train"], emb["real holdout"], n_boot=n_boot, seed=context.seed) \
            if len(real_test) else {}

        def stat(v: np.ndarray, f: Any) -> float:
            return float(f(v)) if v.size else _NAN

        # lesion texture: SD, 5-95 % spread and contrast inside synthetic lesions against the real cases' range
        from .lesion_texture import texture_comparison

        texture_rows = texture_comparison([*real_train, *real_test], synthetic)
        first = [r for r in texture_rows if r["channel"] == real_train[0].channel_names[0]]
        sd_rows = [r for r in first if r["metric"] == "sd"]

        summary = {
            "fd_synthetic_vs_train": fd_syn["value"], "fd_holdout_vs_train": fd_hold["value"],
            "fd_dims": fd_syn["dims"], "fd_shrinkage_synthetic": fd_syn["shrinkage_a"],
            "fd_shrinkage_train": fd_syn["shrinkage_b"],
            "precision": pr_syn["precision"], "recall": pr_syn["recall"],
            "precision_holdout": pr_hold["precision"], "recall_holdout": pr_hold["recall"], "pr_k": self.k,
            "ms_ssim_synthetic": stat(ssim_syn, np.mean), "ms_ssim_real": stat(ssim_real, np.mean),
            "ms_ssim_metric": metric,
            "w1_lesion_synthetic": _mean_w1(w1_rows, "w1_synthetic", True),
            "w1_lesion_holdout": _mean_w1(w1_rows, "w1_holdout", True),
            "w1_normal_synthetic": _mean_w1(w1_rows, "w1_synthetic", False),
            "w1_normal_holdout": _mean_w1(w1_rows, "w1_holdout", False),
            "kid": kid_syn["kid"], "kid_lo": kid_syn["kid_lo"], "kid_hi": kid_syn["kid_hi"],
            "kid_holdout": kid_hold.get("kid", _NAN), "kid_holdout_lo": kid_hold.get("kid_lo", _NAN),
            "kid_holdout_hi": kid_hold.get("kid_hi", _NAN), "small_sample_warning": kid_syn["warning"],
            "n_train": len(real_train), "n_holdout": len(real_test), "n_synthetic": len(synthetic),
            "lesion_texture_within_real_range": (sum(r["within_real_range"] for r in texture_rows) / len(texture_rows)
                                                 if texture_rows else _NAN),
            "lesion_sd_synthetic": float(np.mean([r["synthetic_mean"] for r in sd_rows])) if sd_rows else _NAN,
            "lesion_sd_real": float(np.mean([r["real_mean"] for r in sd_rows])) if sd_rows else _NAN,
        }
        result = CheckResult(name=self.name, summary=summary)
        result.tables = {
            "intensity_distances": w1_rows,
            "embedding_distances": [{"comparison": "synthetic vs train", **fd_syn, **pr_syn},
                                    {"comparison": "holdout vs train (baseline)", **fd_hold, **pr_hold}],
            "ms_ssim": [{"set": "synthetic", "pairs": int(ssim_syn.size), "mean": stat(ssim_syn, np.mean),
                         "sd": stat(ssim_syn, np.std), "metric": metric},
                        {"set": "real", "pairs": int(ssim_real.size), "mean": stat(ssim_real, np.mean),
                         "sd": stat(ssim_real, np.std), "metric": metric}],
            "lesion_texture": texture_rows,
        }
        result.details = {"encoder": enc.describe(),
                          "baseline": "real_test in the synthetic set's place (real-vs-real)",
                          "fd": "Ledoit-Wolf shrunk covariances" + (f", {self.fd_dims} principal axes of real "
                                                                    "train" if self.fd_dims else "")}
        if self.figures:
            out = Path(context.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            channel = real_train[0].channel_names[0]
            hist = {"real train": _pooled(real_train, per_case=5000, seed=context.seed),
                    "synthetic": _pooled(synthetic, per_case=5000, seed=context.seed)}
            result.figures["fidelity"] = _figure(out / "fidelity.png", emb, hist,
                                                 {"real": ssim_real, "synthetic": ssim_syn}, channel)
        progress.report("fidelity", 4, 4, "done")
        return result
