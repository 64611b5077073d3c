"""Rows of the README's bad-input table not covered elsewhere: each a clear error of the project's own type."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.errors import CheckpointError, InputError, ResourceError, UnreadableFileError
from SyntheticImagingLib.generators import create_generator, load_generator
from SyntheticImagingLib.io import read_image, write_image


def test_4d_file_is_refused(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((2, 4, 5, 6), np.float32))  # 4D: [t, z, y, x]
    sitk.WriteImage(image, str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputError, match="4D") as err:
        read_image(tmp_path / "four.nii.gz")
    assert "one 3D file per channel" in str(err.value)


def test_too_large_volume_names_size_and_limit(tmp_path):
    write_image(tmp_path / "big.nrrd", np.zeros((20, 30, 40), np.float32), Geometry())
    with pytest.raises(ResourceError) as err:
        read_image(tmp_path / "big.nrrd", max_voxels=10_000)
    assert "24,000 voxels" in str(err.value) and "10,000" in str(err.value)


def test_truncated_nrrd_and_mha(tmp_path):
    for suffix in ("nrrd", "mha"):
        path = write_image(tmp_path / f"t.{suffix}", np.ones((20, 30, 40), np.float32), Geometry(), compress=False)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(UnreadableFileError, match="truncated|corrupt"):
            read_image(path)


def test_mr_into_ct_task_is_refused(small_case):
    # modality inferred from intensities (MR: no air at -1000 HU) must match the task
    gen = create_generator("lesion-insertion", task="head-hemorrhage-ct")
    with pytest.raises(InputError) as err:
        gen.fit([small_case])
    assert "head-hemorrhage-ct" in str(err.value) and "--task" in str(err.value)


def test_checkpoint_of_another_family_or_version(tmp_path, small_case):
    gen = create_generator("label-to-image", task="brain-tumor-mri", tissue_classes=2)
    ct_like = small_case  # fitting needs a brain: the small phantom has one
    gen.fit([ct_like]).save(tmp_path / "g")
    card_path = tmp_path / "g" / "model_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "family_version": "99"}))
    with pytest.raises(CheckpointError, match="version 99"):
        load_generator(tmp_path / "g")
    card_path.write_text(json.dumps({**card, "family": "stylegan9"}))
    with pytest.raises(CheckpointError, match="not known"):
        load_generator(tmp_path / "g")
    card_path.write_text(json.dumps({**card, "files": {}}))
    with pytest.raises(CheckpointError, match="incomplete or inconsistent"):
        load_generator(tmp_path / "g")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model card"):
        load_generator(tmp_path / "empty")


def test_case_with_inf_is_refused():
    a = np.ones((4, 5, 6), np.float32)
    a[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        Case(case_id="x", channels={"CT": a}, geometry=Geometry(), modality="CT").validate()


@pytest.mark.parametrize("suffix,field", [("mha", b"NDims = 3"), ("nrrd", b"dimension: 3")])
def test_absurd_text_header_dimensions_refused_before_itk(tmp_path, suffix, field):
    # found by fuzzing: ITK's MetaIO reader segfaults on NDims = 999999999
    path = write_image(tmp_path / f"x.{suffix}", np.ones((6, 7, 8), np.float32), Geometry(), compress=False)
    path.write_bytes(path.read_bytes().replace(field, field[:-1] + b"999999999", 1))
    with pytest.raises(UnreadableFileError, match="header is corrupt"):
        read_image(path)


@pytest.mark.parametrize("suffix,old,new,message", [
    ("mha", b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0 0 0 1 0 1e308 0 1", "absurd value"),
    ("mha", b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0 0 1 0 0 0 0 1", "degenerate"),
    ("mha", b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 nan 1", "finite"),
    ("nrrd", b"space origin: (0,0,0)", b"space origin: (0,inf,0)", "finite"),
])
def test_damaged_text_header_geometry_refused_before_itk(tmp_path, suffix, old, new, message):
    # found by fuzzing: a 1e308 in a MetaImage TransformMatrix sends ITK's SVD into an endless loop
    path = write_image(tmp_path / f"x.{suffix}", np.ones((6, 7, 8), np.float32), Geometry(), compress=False)
    data = path.read_bytes()
    assert old in data, data[:400]
    path.write_bytes(data.replace(old, new, 1))
    with pytest.raises(UnreadableFileError, match=message):
        read_image(path)
