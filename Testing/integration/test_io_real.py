"""I/O on the shared BraTS cases: exact round trips, datasets, and clear errors for bad input."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticImagingLib.cases import Geometry, LabelTable
from SyntheticImagingLib.errors import DatasetError, GeometryError, InputError, LabelError, UnreadableFileError
from SyntheticImagingLib.io import (
    load_case,
    load_dataset,
    read_image,
    read_seg_nrrd,
    write_dataset,
    write_image,
    write_seg_nrrd,
)


@pytest.fixture(scope="module")
def brats(shared_data):
    return load_dataset(shared_data / "brats2018", layout="brats")


@pytest.fixture(scope="module")
def case0(brats):
    return brats[0]


@pytest.mark.parametrize("suffix", ["nii.gz", "nii", "nrrd", "mha"])
def test_image_round_trip_exact(tmp_path, case0, suffix):
    flair = case0.channels["FLAIR"]
    path = write_image(tmp_path / f"flair.{suffix}", flair, case0.geometry)
    array, geometry = read_image(path)
    assert np.array_equal(array, flair)
    assert array.dtype == flair.dtype
    assert geometry == case0.geometry
    # SimpleITK reads the same geometry the library wrote
    image = sitk.ReadImage(str(path))
    assert image.GetOrigin() == case0.geometry.origin and image.GetSpacing() == case0.geometry.spacing


def test_seg_nrrd_round_trip(tmp_path, case0):
    label = case0.label.copy()
    label[case0.channels["FLAIR"] > 600] = 2  # a second segment
    table = LabelTable({1: "tumor", 2: "bright"})
    write_seg_nrrd(tmp_path / "x.seg.nrrd", label, case0.geometry, table)
    back, geometry, back_table = read_seg_nrrd(tmp_path / "x.seg.nrrd")
    assert np.array_equal(back, label) and geometry == case0.geometry and back_table.names == table.names


def test_dataset_round_trip_preserves_cases(tmp_path, brats):
    cases = [brats[1], brats[2]]
    out = write_dataset(cases, tmp_path / "ds", label_format="seg.nrrd")
    back = load_dataset(out)
    assert back.case_ids == ["case_1", "case_2"] and back.modality.value == "MR"
    for orig, new in zip(cases, back):
        assert new.channel_names == ["FLAIR", "T1"]
        assert not new.geometry.differences(orig.geometry, tolerance=0)
        for name in orig.channels:
            assert np.array_equal(new.channels[name], orig.channels[name])
        assert np.array_equal(new.label, orig.label) and new.label_table.names == {1: "tumor"}
    data = json.loads((out / "dataset.json").read_text())
    assert data["training"][0]["image"] == ["case_1/FLAIR.nii.gz", "case_1/T1.nii.gz"]


def test_brats_volumes_and_geometry(brats):
    assert len(brats) == 10
    c = brats[3]
    assert c.shape == (155, 240, 240) and c.geometry.spacing == (1.0, 1.0, 1.0)
    assert c.lesion_volume_ml() == pytest.approx(83.418, abs=1e-3)


# --- bad input: each a clear error naming the file/case, the problem and the fix ---------------------------

def _copy_case(shared_data, tmp_path, name="case_0"):
    dst = tmp_path / "ds" / name
    shutil.copytree(shared_data / "brats2018" / name, dst)
    return dst


def test_error_missing_label(tmp_path, shared_data):
    folder = _copy_case(shared_data, tmp_path)
    (folder / "GT_W.nii.gz").unlink()
    ds = load_dataset(tmp_path / "ds", layout="brats")
    with pytest.raises(LabelError) as err:
        load_case(ds.entries[0], require_label=True)
    assert "case_0" in str(err.value) and "no label" in str(err.value) and "Fix:" in str(err.value)


def test_error_label_geometry_mismatch(tmp_path, shared_data):
    folder = _copy_case(shared_data, tmp_path)
    label, g = read_image(folder / "GT_W.nii.gz")
    write_image(folder / "GT_W.nii.gz", label, Geometry(g.spacing, (5.0, -239.0, 0.0), g.direction))
    with pytest.raises(GeometryError) as err:
        load_dataset(tmp_path / "ds", layout="brats")[0]
    message = str(err.value)
    assert "GT_W.nii.gz" in message and "origin" in message and "(5.0" in message and "resample" in message


def test_error_2d_image(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((16, 16), np.float32))
    sitk.WriteImage(image, str(tmp_path / "slice.nii.gz"))
    with pytest.raises(InputError, match="2D|3D volume"):
        read_image(tmp_path / "slice.nii.gz")


def test_error_nan(tmp_path, shared_data):
    folder = _copy_case(shared_data, tmp_path)
    flair, g = read_image(folder / "FLAIR.nii.gz")
    flair[70, 100, 100] = np.nan
    write_image(folder / "FLAIR.nii.gz", flair, g)
    with pytest.raises(InputError, match="1 NaN/Inf voxels"):
        load_dataset(tmp_path / "ds", layout="brats")[0]


def test_error_empty_label(tmp_path, shared_data):
    folder = _copy_case(shared_data, tmp_path)
    label, g = read_image(folder / "GT_W.nii.gz")
    write_image(folder / "GT_W.nii.gz", np.zeros_like(label), g)
    case = load_dataset(tmp_path / "ds", layout="brats")[0]
    with pytest.raises(LabelError, match="empty"):
        case.validate(require_lesion=True)


def test_error_unreadable_file(tmp_path, shared_data):
    folder = _copy_case(shared_data, tmp_path)
    data = gzip.decompress((folder / "FLAIR.nii.gz").read_bytes())
    (folder / "FLAIR.nii.gz").write_bytes(gzip.compress(data[: len(data) // 3]))  # truncated volume
    with pytest.raises(UnreadableFileError) as err:
        load_dataset(tmp_path / "ds", layout="brats")[0]
    assert "FLAIR.nii.gz" in str(err.value) and "truncated" in str(err.value)
    (folder / "T1.nii.gz").write_bytes(b"not an image at all")
    with pytest.raises(UnreadableFileError):
        read_image(folder / "T1.nii.gz")


def test_error_dataset_json_escape_and_missing(tmp_path, shared_data):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"training": [{"image": "../../etc/passwd"}]}))
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        load_dataset(root)
    (root / "dataset.json").write_text(json.dumps({"training": [{"image": "missing.nii.gz"}]}))
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(root)
