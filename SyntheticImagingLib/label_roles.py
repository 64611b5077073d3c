"""What each label of a user's label table *means*: its role, matched by name (case- and synonym-tolerant).

A dataset keeps its own values and names (``{1: "NCR", 2: "ED", 4: "ET"}``, ``{1: "EDH", 2: "IPH", ...}``); the
library only needs to know which role each value plays (necrosis, edema, enhancing tumour, epidural hemorrhage,
...) to draw new lesions with that structure and to score the BraTS regions. Roles are found by name through
:data:`SYNONYMS`; what no name gives is set with a label map (``--label-map edema=2,enhancing=4``) or a named
convention (:data:`CONVENTIONS`, e.g. ``brats2013`` for an unnamed 1..4 label file).

Example:
    >>> roles = match_roles(LabelTable({1: "NCR", 2: "peritumoral edema", 4: "ET"}), LesionKind.TUMOR)
    >>> roles.role_of(4), roles.value_of(EDEMA)
    ('enhancing tumor', 2)
    >>> sorted(brats_regions(roles))
    ['enhancing tumor', 'tumor core', 'whole tumor']
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .cases import LabelTable, LesionKind
from .errors import LabelError

__all__ = ["WHOLE_TUMOR", "TUMOR_CORE", "NECROSIS", "NON_ENHANCING", "NECROTIC_CORE", "EDEMA", "ENHANCING",
           "HEMORRHAGE", "PERIHEMATOMAL_EDEMA", "HEMORRHAGE_SUBTYPE_ROLES", "TUMOR_ROLES", "HEMORRHAGE_ROLES",
           "SYNONYMS", "CONVENTIONS", "LabelRoles", "normalize_name", "role_for_name", "match_roles",
           "parse_label_map", "convention_table", "brats_regions", "REGION_NAMES"]

# Tumour roles (BraTS sub-regions and the coarser forms datasets use).
WHOLE_TUMOR = "tumor"
TUMOR_CORE = "tumor core"
NECROSIS = "necrosis"
NON_ENHANCING = "non-enhancing tumor"
NECROTIC_CORE = "necrotic and non-enhancing tumor core"
EDEMA = "edema"
ENHANCING = "enhancing tumor"
TUMOR_ROLES = (WHOLE_TUMOR, TUMOR_CORE, NECROSIS, NON_ENHANCING, NECROTIC_CORE, EDEMA, ENHANCING)

# Hemorrhage roles: the five subtypes, perihematomal edema, and blood of unknown subtype.
HEMORRHAGE_SUBTYPE_ROLES = tuple(f"{s} hemorrhage" for s in
                                 ("intraparenchymal", "intraventricular", "subarachnoid", "subdural", "epidural"))
PERIHEMATOMAL_EDEMA = "perihematomal edema"
HEMORRHAGE = "hemorrhage"
HEMORRHAGE_ROLES = (*HEMORRHAGE_SUBTYPE_ROLES, PERIHEMATOMAL_EDEMA, HEMORRHAGE)

#: Names (after :func:`normalize_name`) that mean each role, per lesion kind. Abbreviations are the ones the
#: BraTS papers and the hemorrhage datasets (RSNA, CQ500, INSTANCE, BHSD) use.
SYNONYMS: dict[LesionKind, dict[str, tuple[str, ...]]] = {
    LesionKind.TUMOR: {
        WHOLE_TUMOR: ("tumor", "whole tumor", "wt", "lesion", "glioma", "tumor mask", "whole", "gt w"),
        TUMOR_CORE: ("tumor core", "tc", "core"),
        NECROSIS: ("necrosis", "necrotic", "ncr", "necrotic tumor", "necrotic tissue", "necrotic core"),
        NON_ENHANCING: ("non enhancing tumor", "non enhancing", "net", "non enhancing tumor core",
                        "non enhancing core", "non enhancing solid tumor"),
        NECROTIC_CORE: ("ncr net", "necrotic and non enhancing tumor core", "necrotic and non enhancing tumor",
                        "necrotic non enhancing tumor core", "necrotic tumor core"),
        EDEMA: ("edema", "ed", "peritumoral edema", "snfh", "surrounding non enhancing flair hyperintensity",
                "flair hyperintensity", "peritumoral edematous invaded tissue", "invaded tissue"),
        ENHANCING: ("enhancing tumor", "et", "enhancing", "enhancing tumor core", "contrast enhancing tumor",
                    "enhancing core", "enhancing rim"),
    },
    LesionKind.HEMORRHAGE: {
        "intraparenchymal hemorrhage": ("intraparenchymal hemorrhage", "intraparenchymal", "iph",
                                        "intracerebral hemorrhage", "intracerebral", "parenchymal hemorrhage",
                                        "intraparenchymal hematoma"),
        "intraventricular hemorrhage": ("intraventricular hemorrhage", "intraventricular", "ivh"),
        "subarachnoid hemorrhage": ("subarachnoid hemorrhage", "subarachnoid", "sah"),
        "subdural hemorrhage": ("subdural hemorrhage", "subdural", "sdh", "subdural hematoma"),
        "epidural hemorrhage": ("epidural hemorrhage", "epidural", "edh", "extradural hemorrhage", "extradural",
                                "epidural hematoma", "extradural hematoma"),
        PERIHEMATOMAL_EDEMA: ("perihematomal edema", "phe", "edema", "perihemorrhagic edema", "perilesional edema"),
        HEMORRHAGE: ("hemorrhage", "ich", "intracranial hemorrhage", "bleed", "blood", "hematoma", "lesion",
                     "hemorrhage mask"),
    },
}

#: Named label conventions for label files without names (``--labels NAME``).
CONVENTIONS: dict[str, LabelTable] = {
    # BRATS 2013-2016: four sub-regions.
    "brats2013": LabelTable({1: NECROSIS, 2: EDEMA, 3: NON_ENHANCING, 4: ENHANCING}),
    # BraTS 2017-2021: necrotic + non-enhancing core merged as 1, enhancing tumour 4.
    "brats2017": LabelTable({1: NECROTIC_CORE, 2: EDEMA, 4: ENHANCING}),
    # BraTS 2023 glioma: 1 NCR, 2 SNFH, 3 ET.
    "brats2023": LabelTable({1: NECROTIC_CORE, 2: EDEMA, 3: ENHANCING}),
    # This library's hemorrhage values (1-5 subtypes, 6 perihematomal edema).
    "hemorrhage-subtypes": LabelTable({**{i + 1: r for i, r in enumerate(HEMORRHAGE_SUBTYPE_ROLES)},
                                       6: PERIHEMATOMAL_EDEMA}),
    # Alphabetical subtype order (EDH 1, IPH 2, IVH 3, SAH 4, SDH 5), as several ICH segmentation sets use it.
    "ich-alphabetical": LabelTable({1: "epidural hemorrhage", 2: "intraparenchymal hemorrhage",
                                    3: "intraventricular hemorrhage", 4: "subarachnoid hemorrhage",
                                    5: "subdural hemorrhage"}),
}

#: Evaluation regions of brain tumours (Menze et al. 2015; Bakas et al. 2018).
REGION_NAMES = ("whole tumor", "tumor core", "enhancing tumor")

_SPELLING = (("tumour", "tumor"), ("oedema", "edema"), ("haemorrhage", "hemorrhage"), ("haematoma", "hematoma"),
             ("haemorrhagic", "hemorrhagic"), ("nonenhancing", "non enhancing"), ("non-enhancing", "non enhancing"))


def normalize_name(name: str) -> str:
    """Lower case, British spellings and punctuation folded: ``"Non-Enhancing Tumour"`` -> ``"non enhancing tumor"``.

    Example:
        >>> normalize_name("NCR/NET")
        'ncr net'
    """
    text = str(name).strip().lower()
    for a, b in _SPELLING:
        text = text.replace(a, b)
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def role_for_name(name: str, kind: LesionKind) -> str | None:
    """The role a label name means for ``kind``, or None when no synonym matches.

    Example:
        >>> role_for_name("Subdural", LesionKind.HEMORRHAGE)
        'subdural hemorrhage'
    """
    key = normalize_name(name)
    for role, names in SYNONYMS[LesionKind(kind)].items():
        if key in names or key == normalize_name(role):
            return role
    return None


def _known_roles(kind: LesionKind) -> list[str]:
    return list(SYNONYMS[LesionKind(kind)])


@dataclasses.dataclass(frozen=True)
class LabelRoles:
    """A label table and the role of each of its values.

    Args:
        table: the user's label table (values and names kept as they are).
        roles: value -> role (one of :data:`TUMOR_ROLES` or :data:`HEMORRHAGE_ROLES`).
        kind: the lesion kind the roles belong to.
    """

    table: LabelTable
    roles: Mapping[int, str]
    kind: LesionKind

    def role_of(self, value: int) -> str:
        """The role of a label value."""
        return self.roles[int(value)]

    def value_of(self, role: str) -> int:
        """The user's value of a role (LabelError when the table has no such label)."""
        for v, r in self.roles.items():
            if r == role:
                return v
        raise LabelError(f"the label table {self.table.names} has no {role!r} label")

    def has(self, role: str) -> bool:
        """Whether a label plays ``role``."""
        return role in self.roles.values()

    def values_of(self, *roles: str) -> list[int]:
        """The values whose role is among ``roles`` (sorted)."""
        return sorted(v for v, r in self.roles.items() if r in roles)

    def to_dict(self) -> dict[str, str]:
        """JSON form: ``{"<value>": "<role>"}``."""
        return {str(v): r for v, r in self.roles.items()}


def parse_label_map(text: str | Mapping[str, int] | None) -> dict[str, int]:
    """``"edema=2,enhancing=4"`` (role or any synonym = value) as a dict; a clear error for a malformed item.

    Example:
        >>> parse_label_map("edema=2, ET=4")
        {'edema': 2, 'ET': 4}
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return {str(k): int(v) for k, v in text.items()}
    out: dict[str, int] = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().lstrip("-").isdigit():
            raise LabelError(f"label map item {item.strip()!r} is not NAME=VALUE",
                             fix="write it as e.g. --label-map necrosis=1,edema=2,enhancing=4")
        out[name.strip()] = int(value)
    return out


def convention_table(name: str) -> LabelTable:
    """A named label convention (:data:`CONVENTIONS`)."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise LabelError(f"unknown label convention {name!r}", fix=f"use one of {sorted(CONVENTIONS)}") from None


def match_roles(table: LabelTable, kind: LesionKind, *, label_map: str | Mapping[str, int] | None = None
                ) -> LabelRoles:
    """The role of every label of ``table``, by name, with ``label_map`` (role=value) taking precedence.

    A table with one label whose name means nothing (``"label 1"``) is the whole lesion of ``kind``.

    Args:
        table: the dataset's label table.
        kind: tumour or hemorrhage (decides what "edema" means).
        label_map: role (or synonym) = value overrides, e.g. ``"edema=2,enhancing=4"``.

    Raises:
        LabelError: names no synonym matches, a label map naming an unknown role or a value not in the table,
            or two labels with one role; the message lists them and how to map them.
    """
    kind = LesionKind(kind)
    roles: dict[int, str] = {}
    for name, value in parse_label_map(label_map).items():
        role = role_for_name(name, kind)
        if role is None:
            raise LabelError(f"label map names {name!r}, which is no {kind.value} label role",
                             fix=f"use one of {_known_roles(kind)} (or an abbreviation such as ET, NCR, SDH)")
        if value not in table.names:
            raise LabelError(f"label map gives {name}={value}, but the label table has values {table.values} "
                             f"({table.names})", fix="use a value of the dataset's label table")
        roles[value] = role
    unmatched = []
    for value, name in table.names.items():
        if value in roles:
            continue
        role = role_for_name(name, kind)
        if role is None and len(table.names) == 1:
            role = WHOLE_TUMOR if kind is LesionKind.TUMOR else HEMORRHAGE
        if role is None:
            unmatched.append(f"{value} {name!r}")
        else:
            roles[value] = role
    if unmatched:
        example = ",".join(f"{_known_roles(kind)[i % len(_known_roles(kind))]}={v.split()[0]}"
                           for i, v in enumerate(unmatched[:2]))
        raise LabelError(
            f"label names not recognised as {kind.value} labels: {', '.join(unmatched)}",
            fix=f"name them in the dataset (dataset.json 'labels', segment names) or map them: --label-map {example} "
            f"(roles: {', '.join(_known_roles(kind))}); for unnamed files use a convention: --labels "
            f"{'|'.join(sorted(CONVENTIONS))}")
    by_role: dict[str, list[int]] = {}
    for value, role in roles.items():
        by_role.setdefault(role, []).append(value)
    twice = {r: vs for r, vs in by_role.items() if len(vs) > 1}
    if twice:
        raise LabelError(f"several labels have one role: {twice}",
                         fix="give each label its own name, or map them with --label-map")
    return LabelRoles(table=table, roles=dict(sorted(roles.items())), kind=kind)


def brats_regions(roles: LabelRoles) -> dict[str, list[int]]:
    """The BraTS evaluation regions a tumour label table can form: region name -> label values it unites.

    Whole tumour = every tumour label; tumour core = all but edema (when the table separates edema from a core
    label); enhancing tumour = the enhancing label. A whole-tumour-only table gives ``{}`` (per-label Dice says it).
    """
    if roles.kind is not LesionKind.TUMOR or len(roles.roles) < 2:
        return {}
    out: dict[str, list[int]] = {"whole tumor": sorted(roles.roles)}
    core = roles.values_of(TUMOR_CORE, NECROSIS, NON_ENHANCING, NECROTIC_CORE, ENHANCING)
    if roles.has(EDEMA) and core:
        out["tumor core"] = core
    if roles.has(ENHANCING):
        out["enhancing tumor"] = roles.values_of(ENHANCING)
    return out
