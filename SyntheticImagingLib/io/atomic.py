"""Atomic writes: a file or folder is complete under its final name, or absent.

Outputs are written under a temporary name in the same folder (same file system) and renamed with
:func:`os.replace`, which is atomic on POSIX and Windows. An error (full disk, read-only folder, cancel) removes
the temporary and re-raises as :class:`~SyntheticImagingLib.errors.ResourceError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ResourceError

__all__ = ["atomic_file", "atomic_dir", "write_json", "os_error_to_resource_error", "write_failure"]


def write_failure(path: Path, detail: str) -> ResourceError:
    """A clear error for a writer that failed without an OS error number (ITK raises RuntimeError)."""
    try:
        st = os.statvfs(path.parent)
        if st.f_flag & os.ST_RDONLY:
            return os_error_to_resource_error(OSError(errno.EROFS, "read-only file system"), path)
        if st.f_bavail * st.f_frsize < 16 * 1024 * 1024:
            return os_error_to_resource_error(OSError(errno.ENOSPC, "no space left"), path)
    except OSError:
        pass
    return ResourceError(f"could not write ({detail[:200]}); nothing was written", where=str(path),
                         fix="check free disk space and write permission of the output folder")


def os_error_to_resource_error(err: OSError, path: Path) -> ResourceError:
    """Translate an OS error while writing ``path`` into a clear :class:`ResourceError`."""
    if err.errno == errno.ENOSPC:
        return ResourceError("the disk is full; nothing was written", where=str(path),
                             fix="free disk space or choose another output folder")
    if err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return ResourceError("the output folder cannot be written (read-only or no permission); nothing was "
                             "written", where=str(path), fix="choose a writable output folder")
    return ResourceError(f"could not write ({err.strerror or err}); nothing was written", where=str(path))


def _suffixes(path: Path) -> str:
    # keep the full extension (".nii.gz", ".seg.nrrd") so writers that pick a format by name still work
    name = path.name
    i = name.find(".")
    return name[i:] if i > 0 else ""


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_file(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "a.txt").read_text()
        'hello'
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=".tmp" + _suffixes(path),
                                        dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise os_error_to_resource_error(err, path) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise os_error_to_resource_error(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path`` as a whole.

    Args:
        path: the final folder.
        overwrite: replace an existing folder (otherwise an existing non-empty folder is an error).
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise ResourceError("the output folder exists and is not empty", where=str(path),
                            fix="choose a new folder or pass overwrite=True (--overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as err:
        raise os_error_to_resource_error(err, path) from err
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error_to_resource_error(err, path) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
