"""Tumour sub-regions with BraTS structure, written with a user's own label values.

A whole-tumour mask is split into whatever tumour roles a label table has (see
:mod:`SyntheticImagingLib.label_roles`), nested as in gliomas (Menze et al. 2015, IEEE TMI 34(10), Fig. 1):

* the **core** (every role but edema) is the deepest part of the whole tumour, inside an **edema** shell of at
  least one voxel (up to 3 mm where the tumour is thick enough), so the core never touches normal brain;
* inside the core, **necrosis** (BRATS 2013 label 1; or the BraTS 2017+ merged NCR/NET label) is the deepest,
  connected part, kept off the core's border where it fits;
* **non-enhancing** core tissue forms smooth random patches in the rest of the core;
* **enhancing** tumour is the rest of the core: a rim around the necrosis, under the edema.

Tables with fewer roles get the same structure with what they have (``{tumor core, edema}``: core inside edema;
``{tumor}``: the whole tumour). Each role's share of the whole tumour is drawn from its own range
(:data:`DEFAULT_SUBREGION_FRACTIONS`, or ranges measured on a user's cases with :func:`measure_subregion_fractions`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage

from ..anatomy import distance_mm
from ..cases import Geometry, LesionKind
from ..errors import InputError, LabelError
from ..label_roles import (
    EDEMA,
    ENHANCING,
    NECROSIS,
    NECROTIC_CORE,
    NON_ENHANCING,
    TUMOR_CORE,
    TUMOR_ROLES,
    WHOLE_TUMOR,
    LabelRoles,
    convention_table,
    match_roles,
)
from ..triples import int3
from .shapes import fit_to_count, smooth_noise

__all__ = ["DEFAULT_SUBREGION_FRACTIONS", "CORE_ROLES", "structure_roles", "draw_subregion_shares",
           "split_tumor_subregions", "measure_subregion_fractions", "check_fractions", "hidden_subregions",
           "HIDDEN_ROLES"]

#: Share of the whole tumour per sub-region role, ``(low, high)``, drawn uniformly per tumour and then normalised
#: over the roles a table has. Measured on the 6 real BRATS 2013 cases in ``shared/data/brats2013_multiclass``
#: (``OTMultiClass``, 1 mm; per-case shares pat0001..0006):
#: necrosis 0.236 0.003 0.007 0.107 0.285 0.192; edema 0.475 0.852 0.852 0.375 0.439 0.506;
#: non-enhancing 0.007 0.015 0.018 0.370 0.048 0.102; enhancing 0.282 0.130 0.122 0.148 0.227 0.200;
#: so NCR/NET (necrosis + non-enhancing) 0.243 0.018 0.025 0.477 0.333 0.294 and core (all but edema) 0.525 0.148
#: 0.148 0.625 0.561 0.494. The ranges are the min..max over the cases, with lower ends raised to 0.03 so that every
#: sub-region of a table shows on a 2-4 mm model grid.
DEFAULT_SUBREGION_FRACTIONS: dict[str, tuple[float, float]] = {
    NECROSIS: (0.03, 0.29),
    EDEMA: (0.37, 0.85),
    NON_ENHANCING: (0.03, 0.37),
    ENHANCING: (0.12, 0.28),
    NECROTIC_CORE: (0.03, 0.48),
    TUMOR_CORE: (0.15, 0.63),
    WHOLE_TUMOR: (1.0, 1.0),
}

#: Roles that make up the tumour core (everything but edema).
CORE_ROLES = (NECROSIS, NECROTIC_CORE, NON_ENHANCING, ENHANCING, TUMOR_CORE, WHOLE_TUMOR)


def check_fractions(fractions: Mapping[str, Iterable[float]] | None) -> dict[str, tuple[float, float]] | None:
    """``fractions`` as ``{role: (low, high)}`` with roles and ranges checked (None stays None).

    Raises:
        InputError: an unknown role, or a range outside ``0 <= low <= high <= 1``.
    """
    if fractions is None:
        return None
    if not isinstance(fractions, Mapping):
        raise InputError(f"sub-region fractions must map a tumour role to a (low, high) share, got {fractions!r}",
                         fix='e.g. {"necrosis": (0.1, 0.3), "edema": (0.4, 0.8)}')
    out: dict[str, tuple[float, float]] = {}
    for role, pair in fractions.items():
        if role not in TUMOR_ROLES:
            raise InputError(f"sub-region fractions name {role!r}, which is no tumour role",
                             fix=f"use roles among {list(TUMOR_ROLES)}")
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise InputError(f"the fraction of {role!r} must be a (low, high) pair, got {pair!r}",
                             fix="e.g. (0.1, 0.3)") from None
        if not 0.0 <= low <= high <= 1.0:
            raise InputError(f"the fraction of {role!r} must satisfy 0 <= low <= high <= 1, got {(low, high)}",
                             fix="give shares of the whole tumour between 0 and 1")
        out[str(role)] = (low, high)
    return out


def structure_roles(roles: LabelRoles) -> dict[str, str | None]:
    """Which of a table's roles plays which part of the structure.

    Returns:
        ``{"centre": necrosis | NCR/NET | None, "rim": enhancing | None, "filler": non-enhancing | tumour core |
        whole tumour | None, "outer": edema | None}``.

    Raises:
        LabelError: the table has no tumour role at all.
    """
    present = set(roles.roles.values())
    if not present & set(TUMOR_ROLES):
        raise LabelError(f"the label table {roles.table.names} has no tumour label",
                         fix="name the labels (necrosis, edema, enhancing tumor, ...) or map them with --label-map")
    centre = NECROSIS if NECROSIS in present else (NECROTIC_CORE if NECROTIC_CORE in present else None)
    filler = next((r for r in (NON_ENHANCING, TUMOR_CORE, WHOLE_TUMOR) if r in present), None)
    if centre == NECROSIS and filler is None and NECROTIC_CORE in present:
        filler = NECROTIC_CORE
    return {"centre": centre, "rim": ENHANCING if ENHANCING in present else None, "filler": filler,
            "outer": EDEMA if EDEMA in present else None}


def draw_subregion_shares(roles: LabelRoles, fractions: Mapping[str, tuple[float, float]] | None,
                          rng: np.random.Generator) -> dict[str, float]:
    """One tumour's share of each structural role (summing to 1).

    Args:
        roles: the target label roles.
        fractions: ``{role: (low, high)}`` ranges; roles missing here use :data:`DEFAULT_SUBREGION_FRACTIONS`.
        rng: random generator.
    """
    parts = [r for r in structure_roles(roles).values() if r is not None]
    ranges = {**DEFAULT_SUBREGION_FRACTIONS, **(fractions or {})}
    raw = {}
    for r in parts:
        low, high = ranges.get(r, (0.1, 0.5))
        raw[r] = float(rng.uniform(low, high)) if high > low else float(low)
    raw = {r: max(v, 1e-3) for r, v in raw.items()}
    total = sum(raw.values())
    return {r: v / total for r, v in raw.items()}


def _deepest(region: np.ndarray, n: int, geometry: Geometry, *, shape_variety: float, rng: np.random.Generator,
             rim_voxels: bool, where: str) -> np.ndarray:
    """The ``n`` deepest voxels of ``region`` (one connected piece around its deepest voxel, noisy outline), kept
    off the region's border (a rim of up to 3 mm, at least one voxel) where they fit (``split_core_edema``'s
    distance-field approach)."""
    out = np.zeros(region.shape, bool)
    n = min(int(n), int(region.sum()))
    if n <= 0:
        return out
    nz = np.argwhere(region)
    box = tuple(slice(max(0, int(a) - 1), int(b) + 2) for a, b in zip(nz.min(axis=0), nz.max(axis=0)))
    sub = region[box]
    depth = distance_mm(np.pad(sub, 1), geometry)[1:-1, 1:-1, 1:-1]
    r_eq = (3.0 * int(sub.sum()) * geometry.voxel_volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    field = depth / max(float(depth.max()), 1e-6)
    if shape_variety > 0:
        field = field + 0.3 * float(shape_variety) * smooth_noise(sub.shape, geometry, max(0.3 * r_eq, 1e-3), rng)
    seed = int3(np.unravel_index(int(np.argmax(np.where(sub, depth, -1.0))), sub.shape))
    room = sub
    if rim_voxels:
        # a voxel on the border is one spacing deep: a rim needs depth above that (3 mm on fine grids)
        rims = (max(3.0, 1.01 * max(geometry.spacing)), 2.0 * max(geometry.spacing), 1.01 * max(geometry.spacing),
                1.01 * min(geometry.spacing))
        widest: np.ndarray | None = None  # the piece inside the thinnest rim that still holds the seed
        for rim_mm in rims:
            inner = sub & (depth > rim_mm)
            if not inner[seed]:
                continue
            labels, _ = ndimage.label(inner, structure=np.ones((3, 3, 3), bool))
            widest = labels == labels[seed]
            if widest.sum() >= n:
                room = inner
                break
        else:
            if widest is not None:
                # no rim leaves room for all n: the structure wins, the part shrinks to what fits inside a rim
                room, n = widest, int(widest.sum())
    out[box] = fit_to_count(field, room, n, seed=seed, voxel_ml=geometry.voxel_volume_ml, where=where)
    return out


def split_tumor_subregions(whole: np.ndarray, geometry: Geometry, roles: LabelRoles, *,
                           shares: Mapping[str, float], shape_variety: float, rng: np.random.Generator) -> np.ndarray:
    """Label a whole-tumour mask with the table's tumour sub-regions (see the module docstring for the nesting).

    Args:
        whole: boolean whole-tumour mask.
        geometry: grid geometry.
        roles: the target label roles (their values are written).
        shares: share of the whole tumour per structural role (:func:`draw_subregion_shares`).
        shape_variety: 0..1, irregularity of the inner outlines.
        rng: random generator.

    Returns:
        int16 label array with the user's values (0 outside ``whole``).
    """
    whole = np.asarray(whole, dtype=bool)
    parts = structure_roles(roles)
    label = np.zeros(whole.shape, np.int16)
    n_whole = int(whole.sum())
    if n_whole == 0:
        return label
    core_parts = [r for r in (parts["centre"], parts["rim"], parts["filler"]) if r is not None]
    if not core_parts:  # edema alone
        label[whole] = roles.value_of(EDEMA)
        return label
    counts = {r: max(1, int(round(float(shares.get(r, 0.0)) * n_whole))) for r in core_parts}
    if parts["outer"] is not None:
        n_core = min(sum(counts.values()), max(1, n_whole - 1))
        core = _deepest(whole, n_core, geometry, shape_variety=shape_variety, rng=rng, rim_voxels=True,
                        where="tumour core")
        label[whole] = roles.value_of(EDEMA)
        n_core = int(core.sum())
    else:
        core = whole.copy()
        n_core = n_whole
    # Fit the inner counts to the core actually made (they were rounded one by one).
    scale = n_core / max(sum(counts.values()), 1)
    counts = {r: max(1, int(round(c * scale))) for r, c in counts.items()}
    rest = core.copy()
    if parts["centre"] is not None:
        others = sum(c for r, c in counts.items() if r != parts["centre"])
        n_centre = n_core if len(core_parts) == 1 else max(1, min(counts[parts["centre"]], n_core - others))
        centre = _deepest(core, n_centre, geometry, shape_variety=shape_variety, rng=rng,
                          rim_voxels=len(core_parts) > 1, where="tumour centre (necrosis)")
        label[centre] = roles.value_of(parts["centre"])
        rest &= ~centre
    rim, filler = parts["rim"], parts["filler"]
    if filler is not None and rim is not None and rest.any():
        n_filler = min(counts[filler], max(0, int(rest.sum()) - 1))
        if n_filler > 0:
            r_eq = (3.0 * n_core * geometry.voxel_volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
            noise = smooth_noise(core.shape, geometry, max(0.25 * r_eq, 1e-3), rng)
            patches = fit_to_count(noise, rest, n_filler, connected=False, where="non-enhancing tumour")
            label[patches] = roles.value_of(filler)
            rest &= ~patches
        label[rest] = roles.value_of(rim)
    elif rim is not None or filler is not None:
        label[rest] = roles.value_of(rim if rim is not None else filler)  # type: ignore[arg-type]
    return label


def measure_subregion_fractions(labels: Iterable[np.ndarray], roles: LabelRoles,
                                *, min_cases: int = 2) -> dict[str, tuple[float, float]]:
    """Per-role share ranges of the whole tumour measured on real label maps (min..max over the cases that have
    a tumour; lower ends raised to 0.03 like the defaults). Empty when fewer than ``min_cases`` have one.

    Args:
        labels: real label maps written with ``roles``' values.
        roles: their label roles.
        min_cases: fewest tumour cases to measure on.
    """
    parts = [r for r in structure_roles(roles).values() if r is not None]
    if len(parts) < 2:
        return {}
    values = {r: roles.value_of(r) for r in parts}
    per_role: dict[str, list[float]] = {r: [] for r in parts}
    for label in labels:
        if label is None:
            continue
        label = np.asarray(label)
        n = int(np.isin(label, list(values.values())).sum())
        if n == 0:
            continue
        for r, v in values.items():
            per_role[r].append(float((label == v).sum()) / n)
    if min(len(v) for v in per_role.values()) < min_cases:
        return {}
    return {r: (round(max(0.03, min(v)), 3), round(max(0.03, max(v)), 3)) for r, v in per_role.items()}


#: The roles of a hidden structure: the BRATS 2013 convention (1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing).
HIDDEN_ROLES = match_roles(convention_table("brats2013"), LesionKind.TUMOR)


def hidden_subregions(whole: np.ndarray, geometry: Geometry, rng: np.random.Generator, *,
                      shape_variety: float = 0.5, min_voxels: int = 8) -> np.ndarray:
    """BraTS sub-regions inside each tumour of a whole-tumour mask, for painting only (never written as label).

    Every connected tumour is split like :func:`split_tumor_subregions` with :data:`HIDDEN_ROLES` and shares drawn
    by :func:`draw_subregion_shares` (the BRATS 2013 defaults).

    Args:
        whole: boolean mask of the new whole tumour(s).
        geometry: grid geometry.
        rng: random generator.
        shape_variety: 0..1, irregularity of the inner outlines.
        min_voxels: tumours smaller than this stay without structure (value 0).

    Returns:
        int16 map with the BRATS 2013 values of :data:`HIDDEN_ROLES` (0 outside and in tiny tumours).
    """
    whole = np.asarray(whole, dtype=bool)
    out = np.zeros(whole.shape, np.int16)
    pieces, n = ndimage.label(whole, structure=np.ones((3, 3, 3), bool))
    for k in range(1, n + 1):
        piece = pieces == k
        if int(piece.sum()) < min_voxels:
            continue
        shares = draw_subregion_shares(HIDDEN_ROLES, None, rng)
        part = split_tumor_subregions(piece, geometry, HIDDEN_ROLES, shares=shares, shape_variety=shape_variety,
                                      rng=rng)
        out[piece] = part[piece]
    return out
