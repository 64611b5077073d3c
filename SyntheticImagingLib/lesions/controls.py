"""What a user asks of the synthesized lesions: kind, count, size, place and shape variety."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..cases import LesionKind
from ..errors import InputError

__all__ = ["LesionControls", "HEMORRHAGE_SUBTYPES", "HEMORRHAGE_SUBTYPE_VALUES", "EDEMA_NAME"]

#: Hemorrhage subtypes the mask synthesis knows.
HEMORRHAGE_SUBTYPES = ("intraparenchymal", "intraventricular", "subarachnoid", "subdural", "epidural")
#: Name of the perihematomal edema label (hemorrhage with ``subregions``).
EDEMA_NAME = "perihematomal edema"
#: Fixed label values of hemorrhage label maps: one per subtype (1-5 in :data:`HEMORRHAGE_SUBTYPES` order) and 6 for
#: perihematomal edema, so that a value means the same subtype in every case, dataset and trained model.
HEMORRHAGE_SUBTYPE_VALUES = {**{f"{s} hemorrhage": i + 1 for i, s in enumerate(HEMORRHAGE_SUBTYPES)}, EDEMA_NAME: 6}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LesionControls:
    """Controls for new lesion masks (the "label edits" of Shin et al. 2018).

    Args:
        kind: tumour or hemorrhage.
        count: number of separate lesions per case.
        volume_ml: total volume of each lesion in ml, or a ``(low, high)`` range drawn uniformly per lesion.
        location: ``"random"`` (anywhere in the brain), or a physical point ``(x, y, z)`` in mm (LPS) the lesion
            is centred near.
        location_jitter_mm: how far (mm) the centre may move from ``location`` when it is a point.
        side: ``"left"``, ``"right"`` or ``"any"`` hemisphere (patient left = +x in LPS).
        subregions: tumour only, without a target label table: label core (1) and edema (2) separately instead of
            one whole-tumour label. With a target table (a task's roles) the table decides the sub-regions.
        subtypes: hemorrhage only: subtypes drawn from (see :data:`HEMORRHAGE_SUBTYPES`). With a target table
            they are restricted to the table's subtypes; left at the default, the table's subtypes are drawn.
        shape_variety: 0 = smooth ellipsoids, 1 = very irregular, lobulated shapes.
        use_templates: reuse real lesion masks (moved, rotated, deformed, rescaled) as shapes when available.
        subregion_fractions: tumour sub-regions with a target table: role -> ``(low, high)`` share of the whole
            tumour, drawn per tumour and normalised over the table's roles (e.g. ``{"necrosis": (0.1, 0.3)}``);
            None or roles left out: the generator's shares measured on its training cases, else the BRATS 2013
            defaults (:data:`~.tumor_subregions.DEFAULT_SUBREGION_FRACTIONS`).

    Example:
        >>> LesionControls(kind="tumor", volume_ml=(10, 40)).volume_range
        (10.0, 40.0)
    """

    kind: LesionKind = LesionKind.TUMOR
    count: int = 1
    volume_ml: float | tuple[float, float] = (10.0, 60.0)
    location: str | tuple[float, float, float] = "random"
    location_jitter_mm: float = 5.0
    side: str = "any"
    subregions: bool = False
    subtypes: tuple[str, ...] = ("intraparenchymal",)
    shape_variety: float = 0.5
    use_templates: bool = True
    subregion_fractions: Mapping[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LesionKind(self.kind))
        if self.count < 0:
            raise InputError(f"lesion count must be >= 0, got {self.count}")
        low, high = self.volume_range
        if not 0 < low <= high:
            raise InputError(f"lesion volume must be a positive ml value or a (low, high) range, got {self.volume_ml}",
                             fix="e.g. --lesion-volume 20 or --lesion-volume 10:40")
        if self.side not in ("left", "right", "any"):
            raise InputError(f"side must be left, right or any, got {self.side!r}")
        if not 0.0 <= self.shape_variety <= 1.0:
            raise InputError(f"shape_variety must lie in [0, 1], got {self.shape_variety}")
        if isinstance(self.location, str):
            if self.location != "random":
                raise InputError(f"location must be 'random' or a point (x, y, z) in mm, got {self.location!r}")
        else:
            object.__setattr__(self, "location", tuple(float(v) for v in self.location))
            if len(self.location) != 3:
                raise InputError(f"a location point needs 3 coordinates (x, y, z) in mm, got {self.location}")
        subtypes = tuple(self.subtypes)
        unknown = set(subtypes) - set(HEMORRHAGE_SUBTYPES)
        if unknown:
            raise InputError(f"unknown hemorrhage subtypes {sorted(unknown)}", fix=f"use {HEMORRHAGE_SUBTYPES}")
        object.__setattr__(self, "subtypes", subtypes)
        from .tumor_subregions import check_fractions

        object.__setattr__(self, "subregion_fractions", check_fractions(self.subregion_fractions))

    @property
    def default_subtypes(self) -> bool:
        """Whether ``subtypes`` is left at its default (a target table then gives the subtypes)."""
        return self.subtypes == _DEFAULT_SUBTYPES

    @property
    def volume_range(self) -> tuple[float, float]:
        """``(low, high)`` lesion volume in ml."""
        v = self.volume_ml
        if isinstance(v, (int, float)):
            return float(v), float(v)
        if isinstance(v, Sequence) and len(v) == 2:
            return float(v[0]), float(v[1])
        raise InputError(f"lesion volume must be a number or a (low, high) pair, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded with every synthetic case)."""
        d = dataclasses.asdict(self)
        d["kind"] = self.kind.value
        if self.subregion_fractions is not None:
            d["subregion_fractions"] = {k: list(v) for k, v in self.subregion_fractions.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LesionControls:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for key in ("volume_ml", "location", "subtypes"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        if isinstance(d.get("subregion_fractions"), Mapping):
            d["subregion_fractions"] = {k: tuple(v) for k, v in d["subregion_fractions"].items()}
        return cls(**d)


_DEFAULT_SUBTYPES = LesionControls.subtypes
