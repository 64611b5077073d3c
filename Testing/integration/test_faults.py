"""Faults: a full disk or a read-only output folder gives a clear error and leaves nothing partial behind.

The real-file-system tests mount a tiny tmpfs (root in CI's sandbox can); where mounting is not allowed they
skip, and the injected-error tests below still cover the same code paths.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.errors import ResourceError
from SyntheticImagingLib.io import write_dataset, write_image


def _case(i: int = 0) -> Case:
    rng = np.random.default_rng(i)
    return Case(case_id=f"c{i}", channels={"FLAIR": rng.normal(100, 30, (40, 48, 40)).astype(np.float32)},
                geometry=Geometry((2.0, 2.0, 2.0)), label=(rng.random((40, 48, 40)) > 0.9).astype(np.int16))


@contextlib.contextmanager
def tiny_fs(tmp_path: Path, size: str = "300k", read_only: bool = False):
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root in a sandbox)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_full_disk_dataset_write_is_clear_and_leaves_nothing(tmp_path):
    with tiny_fs(tmp_path) as fs:
        with pytest.raises(ResourceError) as err:
            write_dataset([_case(0), _case(1)], fs / "synthetic")
        assert "disk is full" in str(err.value) and "synthetic" in str(err.value)
        assert _leftovers(fs) == []


def test_read_only_folder_is_clear_and_leaves_nothing(tmp_path):
    with tiny_fs(tmp_path, read_only=True) as fs:
        with pytest.raises(ResourceError, match="cannot be written"):
            write_dataset([_case(0)], fs / "synthetic")
        with pytest.raises(ResourceError, match="cannot be written"):
            write_image(fs / "x.nii.gz", _case(0).channels["FLAIR"], _case(0).geometry)
        assert _leftovers(fs) == []


def test_full_disk_dicom_export_leaves_no_partial_study(tmp_path):
    from SyntheticImagingLib.export import export_dicom_study

    with tiny_fs(tmp_path, size="200k") as fs:
        with pytest.raises(ResourceError, match="disk is full|could not write"):
            export_dicom_study(_case(0), fs / "dicom")
        assert not [p for p in _leftovers(fs) if p.endswith(".dcm")]


def test_injected_enospc_midway_removes_the_partial_folder(tmp_path, monkeypatch):
    import SyntheticImagingLib.io.atomic as atomic

    calls = {"n": 0}
    real_replace = os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:  # the third file of the dataset
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(ResourceError, match="disk is full"):
        write_dataset([_case(0), _case(1)], tmp_path / "out")
    assert _leftovers(tmp_path) == []
