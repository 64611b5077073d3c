"""What each image channel of a user's dataset is (FLAIR, T1, T1c, T2, CT), recognised from its name.

Channel names stay the user's everywhere (a synthetic case has the same channel names as its source); the
canonical kind only picks intensity priors and tells which channel two datasets share.

Example:
    >>> channel_kind("Flair_subtrMeanDivStd"), channel_kind("T1ce"), channel_kind("T1")
    ('FLAIR', 'T1c', 'T1')
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InputError

__all__ = ["CHANNEL_SYNONYMS", "channel_kind", "find_channel"]

#: Canonical channel kinds and the name tokens that mean them (after lower-casing and splitting at non-letters).
CHANNEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "FLAIR": ("flair", "t2flair", "t2 flair", "fla"),
    "T1c": ("t1c", "t1ce", "t1gd", "t1 gd", "t1 ce", "t1 c", "t1post", "t1 post", "t1 contrast", "t1wce", "t1 ce gd",
            "t1cegd", "t1 gado"),
    "T1": ("t1", "t1w", "t1 pre", "t1pre", "t1 native", "mprage"),
    "T2": ("t2", "t2w"),
    "CT": ("ct", "hu", "nonconstrast ct", "ncct", "noncontrast ct"),
}


def channel_kind(name: str) -> str | None:
    """The canonical kind of a channel name (or None): the longest synonym found as whole tokens wins."""
    text = " " + re.sub(r"[^a-z0-9]+", " ", str(name).lower()).strip() + " "
    best: tuple[int, str] | None = None
    for kind, names in CHANNEL_SYNONYMS.items():
        for n in names:
            if f" {n} " in text and (best is None or len(n) > best[0]):
                best = (len(n), kind)
    return best[1] if best else None


def find_channel(names: Sequence[str], wanted: str) -> str:
    """The channel of ``names`` that is ``wanted`` (a name or a canonical kind), or a clear error.

    Example:
        >>> find_channel(["Flair_subtrMeanDivStd", "T1c_subtrMeanDivStd"], "FLAIR")
        'Flair_subtrMeanDivStd'
    """
    if wanted in names:
        return wanted
    kind = channel_kind(wanted) or wanted
    hits = [n for n in names if channel_kind(n) == kind]
    if len(hits) == 1:
        return hits[0]
    several = f" (several match: {hits})" if hits else ""
    raise InputError(f"no single channel {wanted!r} among {list(names)}{several}",
                     fix="name the channel files so one of them says which sequence it is (e.g. FLAIR, T1c)")
