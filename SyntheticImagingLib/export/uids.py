"""DICOM UIDs for exported synthetic objects.

The project has no registered organisation root, so every UID lives under the UUID-derived arc ``2.25``
(ISO/IEC 9834-8, DICOM PS3.5 B.2): ``2.25.<decimal of a random 128-bit UUID>``. It needs no registration, is
globally unique, and carries nothing of any source file, so no study, series, instance or frame-of-reference
UID of a training series can reappear in an export.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["UID_ROOT", "IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "new_uid", "is_project_uid"]

#: Prefix of every UID the exporter creates.
UID_ROOT = "2.25."

#: Fixed UID naming this software as the writer of the files (File Meta Information, PS3.10 7.1); derived from a
#: name-based UUID so it is the same in every release and never collides with a random instance UID.
IMPLEMENTATION_CLASS_UID = UID_ROOT + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:synthetic-imaging:dicom-export").int)

#: Implementation Version Name (SH, at most 16 characters).
IMPLEMENTATION_VERSION_NAME = "SYNTHIMG_1"

_UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]{0,38})$")


def new_uid() -> str:
    """A fresh UID ``2.25.<uuid4 as decimal>`` (at most 44 characters, within the 64 allowed).

    Example:
        >>> u = new_uid()
        >>> u.startswith("2.25.") and len(u) <= 64
        True
    """
    return UID_ROOT + str(uuid.uuid4().int)


def is_project_uid(uid: str) -> bool:
    """True when ``uid`` is a well-formed UID under :data:`UID_ROOT` (as :func:`new_uid` makes them).

    Args:
        uid: the UID string to check.
    """
    return bool(_UID_RE.match(str(uid)))
