"""Structure checks of multi-class tumour label maps: are the sub-regions nested as in real gliomas?

Used by the tests of every generator family and available to adherence checks and reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..label_roles import EDEMA, ENHANCING, NECROSIS, NECROTIC_CORE, LabelRoles
from .tumor_subregions import CORE_ROLES

__all__ = ["check_tumor_nesting", "INNER_ROLES"]

#: Roles that must lie inside the tumour (every 6-neighbour is tumour): necrosis (or NCR/NET) and enhancing tumour.
INNER_ROLES = (NECROSIS, NECROTIC_CORE, ENHANCING)

_CROSS = ndimage.generate_binary_structure(3, 1)


def _touching(region: np.ndarray, other: np.ndarray, *, edge: bool = True) -> np.ndarray:
    """Voxels of ``region`` with a 6-neighbour in ``other`` (outside the array counts as ``other`` when ``edge``)."""
    grown = ndimage.binary_dilation(np.pad(other, 1, constant_values=edge), structure=_CROSS)[1:-1, 1:-1, 1:-1]
    return region & grown


def check_tumor_nesting(label: np.ndarray, roles: LabelRoles, *, brain: np.ndarray | None = None) -> dict[str, Any]:
    """Whether a tumour label map has the BraTS nesting, with voxel counts of what breaks it.

    Rules (6-neighbourhood; a voxel outside the array counts as background):

    * ``inner_inside_tumor``: every necrosis / NCR-NET / enhancing voxel has only tumour voxels (any tumour label)
      as 6-neighbours, i.e. these sub-regions never touch background directly;
    * ``core_inside_edema`` (tables with edema and a core label): no core voxel (any label but edema) has a
      background 6-neighbour, except background outside ``brain`` (a tumour may reach the brain's border).

    A rule whose labels the table (or the map) does not have passes.

    Args:
        label: integer label map ``[z, y, x]`` written with ``roles``' values.
        roles: the label roles of the map.
        brain: optional brain mask; background outside it does not count against ``core_inside_edema``.

    Returns:
        ``{"ok", "inner_inside_tumor", "core_inside_edema", "inner_voxels", "inner_touching_background",
        "core_voxels", "core_touching_background", "rules"}``.
    """
    label = np.asarray(label)
    tumour_values = list(roles.roles)
    background = ~np.isin(label, tumour_values)
    inner = np.isin(label, roles.values_of(*INNER_ROLES))
    core = np.isin(label, roles.values_of(*CORE_ROLES))
    inner_bad = int(_touching(inner, background).sum()) if inner.any() else 0
    result: dict[str, Any] = {"inner_voxels": int(inner.sum()), "inner_touching_background": inner_bad,
                              "inner_inside_tumor": inner_bad == 0, "core_voxels": int(core.sum()),
                              "core_touching_background": 0, "core_inside_edema": True,
                              "rules": ["inner_inside_tumor"]}
    if roles.has(EDEMA) and core.any():
        if brain is None:
            core_bad = int(_touching(core, background).sum())
        else:  # background outside the brain (and beyond the array) is the brain's border, not missing edema
            core_bad = int(_touching(core, background & np.asarray(brain, dtype=bool), edge=False).sum())
        result.update(core_touching_background=core_bad, core_inside_edema=core_bad == 0)
        result["rules"].append("core_inside_edema")
    result["ok"] = bool(result["inner_inside_tumor"] and result["core_inside_edema"])
    return result
