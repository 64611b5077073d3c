"""Exact nearest-neighbour search on feature vectors, in blocks: memory linear in the number of cases.

The distance matrix of ``n`` queries against ``m`` references is never held whole: queries and references are
cut into blocks, :func:`torch.cdist` gives one block of distances at a time, and only a running top-k per query
survives. Peak memory is ``O((n + m) * d + block_size^2)``, so 10,000 x 10,000 cases fit in a few hundred MB.

``cdist`` on large blocks uses the ``|a|^2 + |b|^2 - 2ab`` matrix-product form, which loses precision for
near-identical vectors (a copy's distance of 0 may come out as 1e-4); the chosen neighbours' distances are
therefore recomputed directly, so the distances returned are exact (a near-tie may still be ordered by the
matrix-product value).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

__all__ = ["knn", "within_any_ball", "kth_neighbour_distance"]


def _as_tensor(x: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # numpy views (reversed, sliced) may have negative strides, which torch does not accept
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.ndim != 2:
        raise InputError(f"feature matrix must be 2D [cases, features], got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype)


def _check_pair(q: torch.Tensor, r: torch.Tensor) -> None:
    if q.shape[1] != r.shape[1]:
        raise InputError(f"queries have {q.shape[1]} features, references {r.shape[1]}")
    if not (torch.isfinite(q).all() and torch.isfinite(r).all()):
        raise InputError("feature vectors contain NaN or Inf")


def _exact_distances(q: torch.Tensor, r_all: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Direct ``|q_i - r_idx[i, j]|`` (the matrix-product form of cdist is imprecise near 0), in slices."""
    out = torch.empty(idx.shape, dtype=q.dtype, device=q.device)
    rows = max(1, (1 << 22) // max(1, q.shape[1]))  # about 4M elements per slice, whatever d is
    for j in range(idx.shape[1]):
        for s in range(0, q.shape[0], rows):
            out[s:s + rows, j] = torch.linalg.vector_norm(q[s:s + rows] - r_all[idx[s:s + rows, j]], dim=1)
    return out


def knn(queries: np.ndarray | torch.Tensor, references: np.ndarray | torch.Tensor, *, k: int = 1,
        exclude_self: bool = False, block_size: int = 1024, device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest references (Euclidean) of every query.

    Args:
        queries: ``[n, d]``.
        references: ``[m, d]``.
        k: neighbours per query (at most ``m``, or ``m - 1`` with ``exclude_self``).
        exclude_self: queries *are* the references (same rows, same order): a row never finds itself
            (leave-one-out).
        block_size: rows per block on each side (memory ``block_size^2`` distances).
        device: where to compute.
        dtype: compute precision.

    Returns:
        ``(distances, indices)``, both ``[n, k]``, nearest first (float64 and int64).

    Example:
        >>> d, i = knn(np.array([[0.0], [6.0]]), np.array([[1.0], [4.0], [10.0]]), k=2)
        >>> d.tolist(), i.tolist()
        ([[1.0, 4.0], [2.0, 4.0]], [[0, 1], [1, 2]])
    """
    dev = torch.device(device)
    q_all = _as_tensor(queries, dtype, dev)
    r_all = q_all if references is queries else _as_tensor(references, dtype, dev)  # one copy for leave-one-out
    _check_pair(q_all, r_all)
    n, m = q_all.shape[0], r_all.shape[0]
    if exclude_self and n != m:
        raise InputError("exclude_self needs the queries to be the references (same number of rows)")
    available = m - 1 if exclude_self else m
    if k < 1 or k > available:
        raise InputError(f"k={k} neighbours asked for, only {available} references available")
    if block_size < 1:
        raise InputError("block_size must be positive")
    out_d = np.empty((n, k), np.float64)
    out_i = np.empty((n, k), np.int64)
    for qs in range(0, n, block_size):
        q = q_all[qs:qs + block_size]
        best_d = torch.full((q.shape[0], k), float("inf"), dtype=dtype, device=dev)
        best_i = torch.full((q.shape[0], k), -1, dtype=torch.int64, device=dev)
        for rs in range(0, m, block_size):
            d = torch.cdist(q, r_all[rs:rs + block_size])
            if exclude_self and rs < qs + q.shape[0] and qs < rs + d.shape[1]:
                rows = torch.arange(q.shape[0], device=dev)
                cols = rows + qs - rs
                ok = (cols >= 0) & (cols < d.shape[1])
                d[rows[ok], cols[ok]] = float("inf")
            kk = min(k, d.shape[1])
            vals, idx = torch.topk(d, kk, dim=1, largest=False)
            cand_d = torch.cat([best_d, vals], 1)
            cand_i = torch.cat([best_i, idx + rs], 1)
            best_d, order = torch.topk(cand_d, k, dim=1, largest=False)
            best_i = torch.gather(cand_i, 1, order)
        exact, order = torch.sort(_exact_distances(q, r_all, best_i), dim=1, stable=True)
        out_d[qs:qs + q.shape[0]] = exact.cpu().numpy()
        out_i[qs:qs + q.shape[0]] = torch.gather(best_i, 1, order).cpu().numpy()
    return out_d, out_i


def kth_neighbour_distance(features: np.ndarray | torch.Tensor, *, k: int, block_size: int = 1024,
                           device: str | torch.device = "cpu") -> np.ndarray:
    """Distance of each row to its ``k``-th nearest other row (the k-NN radius of precision/recall).

    Args:
        features: ``[n, d]`` with ``n > k``.
        k: which neighbour (1 = nearest other row).
        block_size: see :func:`knn`.
        device: where to compute.
    """
    d, _ = knn(features, features, k=k, exclude_self=True, block_size=block_size, device=device)
    return d[:, k - 1]


def within_any_ball(queries: np.ndarray | torch.Tensor, centres: np.ndarray | torch.Tensor,
                    radii: np.ndarray | torch.Tensor, *, block_size: int = 1024, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Whether each query lies inside at least one ball ``|q - centre_j| <= radius_j``.

    Args:
        queries: ``[n, d]``.
        centres: ``[m, d]``.
        radii: ``[m]``.
        block_size: rows per block on each side.
        device: where to compute.
        dtype: compute precision.

    Returns:
        boolean ``[n]``.
    """
    dev = torch.device(device)
    q_all = _as_tensor(queries, dtype, dev)
    c_all = _as_tensor(centres, dtype, dev)
    _check_pair(q_all, c_all)
    r_all = torch.as_tensor(radii).to(device=dev, dtype=dtype).ravel()
    if r_all.shape[0] != c_all.shape[0]:
        raise InputError(f"{c_all.shape[0]} centres but {r_all.shape[0]} radii")
    inside = np.zeros(q_all.shape[0], bool)
    for qs in range(0, q_all.shape[0], block_size):
        q = q_all[qs:qs + block_size]
        hit = torch.zeros(q.shape[0], dtype=torch.bool, device=dev)
        for cs in range(0, c_all.shape[0], block_size):
            hit |= (torch.cdist(q, c_all[cs:cs + block_size]) <= r_all[None, cs:cs + block_size]).any(1)
        inside[qs:qs + q.shape[0]] = hit.cpu().numpy()
    return inside
