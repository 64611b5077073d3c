"""The project's own error types.

Every error a user can cause (bad file, wrong geometry, empty label, ...) is raised as a subclass of
:class:`SyntheticImagingError` whose message names *what* is wrong, *where* (the file or case), and *what to
do*. Callers (the CLI, the Slicer module) catch this one base class and show the message as it is.
"""

from __future__ import annotations

__all__ = [
    "SyntheticImagingError",
    "InputError",
    "GeometryError",
    "LabelError",
    "UnreadableFileError",
    "DatasetError",
    "CheckpointError",
    "ResourceError",
    "CancelledError",
]


class SyntheticImagingError(Exception):
    """Base class of every error the project raises on purpose.

    Args:
        problem: what is wrong, in one sentence.
        where: the file, folder or case the problem was found in (optional).
        fix: what the user can do about it (optional).
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        parts = [f"{where}: {problem}" if where else problem]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class InputError(SyntheticImagingError, ValueError):
    """An input array or option is not usable (NaN, wrong dimension, wrong modality, ...)."""


class GeometryError(InputError):
    """Image channels and label (or two cases) do not share one physical grid."""


class LabelError(InputError):
    """A label map is missing, empty, or holds values outside its label table."""


class UnreadableFileError(SyntheticImagingError, OSError):
    """A file is missing, truncated, corrupt or in a format that cannot be read."""


class DatasetError(SyntheticImagingError, ValueError):
    """A dataset folder or ``dataset.json`` is inconsistent (missing files, bad entries, escaping paths)."""


class CheckpointError(SyntheticImagingError, ValueError):
    """A checkpoint is unsafe (pickled code), incomplete, or from another family or version."""


class ResourceError(SyntheticImagingError, RuntimeError):
    """Not enough memory or disk, or an output folder that cannot be written."""


class CancelledError(SyntheticImagingError):
    """The user cancelled a running job."""

    def __init__(self, problem: str = "cancelled by the user", **kwargs: str | None) -> None:
        super().__init__(problem, **kwargs)
