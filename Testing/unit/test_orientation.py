"""One canonical orientation inside the library (LPS): reorienting agrees with ITK's DICOMOrient, is exact both
ways, makes a volume stored in any voxel order load as the same case, and makes the left-right flips of training
and of the utility segmenter mirror the patient."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.spatial.transform import Rotation

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks.segmenter import _flip_left_right, _left_right_dims
from SyntheticImagingLib.errors import GeometryError
from SyntheticImagingLib.io import load_dataset, read_image, write_dataset
from SyntheticImagingLib.io.datasets import DatasetLayout
from SyntheticImagingLib.io.images import from_sitk, to_sitk
from SyntheticImagingLib.io.orientation import (
    CANONICAL_ORIENTATION,
    SOURCE_ORIENTATION_KEY,
    from_canonical,
    left_right_axis,
    orientation_code,
    to_canonical,
    to_source_orientation,
)
from SyntheticImagingLib.training.data import GridSettings, TrainingData, prepare_case

LAYOUT = DatasetLayout(channels={"FLAIR": "FLAIR.*", "T1": "T1.*"}, label="label.*", modality="MR")
BRATS_LAYOUT = DatasetLayout(channels={"FLAIR": "FLAIR.*", "T1": "T1.*"}, label="GT_W.*", modality="MR")

#: All 48 axis-aligned directions: (physical axis of each index axis, its sign).
ALL_AXES = list(itertools.product(itertools.permutations(range(3)), itertools.product((1.0, -1.0), repeat=3)))


def _direction(axes, signs) -> np.ndarray:
    d = np.zeros((3, 3))
    for k, (a, s) in enumerate(zip(axes, signs)):
        d[a, k] = s
    return d


def _case(geometry: Geometry, shape=(3, 4, 5), seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    image = rng.random(shape).astype(np.float32)
    return Case("c", {"A": image, "B": image * 2}, geometry, label=(image > 0.6).astype(np.int16),
                brain_mask=image > 0.2, metadata={"keep": 1})


def _dicom_orient(array: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry]:
    return from_sitk(sitk.DICOMOrient(to_sitk(array, geometry), CANONICAL_ORIENTATION))


def _assert_same_case(a: Case, b: Case, tolerance: float = 1e-9) -> None:
    assert a.shape == b.shape
    assert a.geometry.differences(b.geometry, tolerance=tolerance) == []
    for name in a.channels:
        np.testing.assert_array_equal(a.channels[name], b.channels[name])
    for x, y in ((a.label, b.label), (a.brain_mask, b.brain_mask)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_all_48_orientations_match_dicom_orient_and_round_trip_exactly():
    for axes, signs in ALL_AXES:
        d = _direction(axes, signs)
        case = _case(Geometry((0.5, 1.0, 2.0), (3.0, -4.0, 5.0), tuple(d.ravel())))
        code = orientation_code(d)
        assert code == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(d.ravel()))
        canonical = to_canonical(case)
        array, geometry = _dicom_orient(case.channels["A"], case.geometry)
        np.testing.assert_array_equal(canonical.channels["A"], array)
        np.testing.assert_array_equal(canonical.label, _dicom_orient(case.label, case.geometry)[0])
        assert canonical.geometry.differences(geometry, tolerance=1e-9) == [], code
        np.testing.assert_array_equal(canonical.geometry.direction_matrix, np.eye(3))
        assert canonical.metadata[SOURCE_ORIENTATION_KEY] == {"code": code, "direction": list(case.geometry.direction)}
        assert canonical.metadata["keep"] == 1 and SOURCE_ORIENTATION_KEY not in case.metadata
        for array in [*canonical.channels.values(), canonical.label, canonical.brain_mask]:
            assert array.flags.c_contiguous  # torch.from_numpy needs no negative strides
        # every voxel keeps its physical position
        idx = np.array([[0, 0, 0], [2, 3, 4], [1, 2, 3]])
        for i in idx:
            p = case.geometry.index_to_physical(i)
            j = np.rint(canonical.geometry.physical_to_index(p)).astype(int)
            assert canonical.channels["A"][tuple(j)] == case.channels["A"][tuple(i)]
        # back in the source's own orientation: exactly the case as given
        back = to_source_orientation(canonical)
        _assert_same_case(back, case, tolerance=1e-12)
        _assert_same_case(from_canonical(canonical, code), case, tolerance=1e-12)


def test_oblique_directions_go_to_the_nearest_axes_like_dicom_orient_and_keep_the_rotation():
    rng = np.random.default_rng(1)
    for _ in range(60):
        axes, signs = ALL_AXES[int(rng.integers(len(ALL_AXES)))]
        rotation = Rotation.from_euler("xyz", rng.uniform(-40, 40, 3), degrees=True).as_matrix()
        d = rotation @ _direction(axes, signs)
        case = _case(Geometry((0.5, 1.0, 2.0), (3.0, -4.0, 5.0), tuple(d.ravel())))
        assert orientation_code(d) == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(d.ravel()))
        canonical = to_canonical(case)
        array, geometry = _dicom_orient(case.channels["A"], case.geometry)
        np.testing.assert_array_equal(canonical.channels["A"], array)
        assert canonical.geometry.differences(geometry, tolerance=1e-9) == []
        assert orientation_code(canonical.geometry.direction) == "LPS"
        # only a permutation and sign flips of the columns: the residual rotation is still there
        m = np.linalg.inv(d) @ canonical.geometry.direction_matrix
        np.testing.assert_allclose(np.abs(m).sum(axis=0), 1.0, atol=1e-9)
        _assert_same_case(to_source_orientation(canonical), case, tolerance=1e-12)


def test_canonical_is_a_no_op_and_idempotent_and_codes_are_checked():
    case = _case(Geometry())
    canonical = to_canonical(case)
    assert canonical.channels["A"] is case.channels["A"]  # nothing copied when already canonical
    assert canonical.metadata[SOURCE_ORIENTATION_KEY]["code"] == "LPS"
    ras = to_canonical(_case(Geometry(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))))
    assert to_canonical(ras) is ras and ras.metadata[SOURCE_ORIENTATION_KEY]["code"] == "RAS"
    assert to_source_orientation(_case(Geometry())).metadata == {"keep": 1}  # no record: unchanged
    assert orientation_code(from_canonical(case, "PIR").geometry.direction) == "PIR"
    with pytest.raises(GeometryError):
        from_canonical(case, "LLS")
    with pytest.raises(GeometryError):
        orientation_code((1, 0, 0, 1, 0, 0, 0, 0, 1))
    assert left_right_axis(Geometry()) == 2
    assert left_right_axis(Geometry(direction=tuple(_direction((1, 2, 0), (1, -1, 1)).ravel()))) == 0


def _write_case(folder: Path, images: dict[str, sitk.Image]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))


def _restore(image: sitk.Image, permutation, flips) -> sitk.Image:
    # PermuteAxes and Flip keep every voxel's physical position: only the storage order changes
    return sitk.Flip(sitk.PermuteAxes(image, permutation), flips)


def test_dataset_stored_in_any_order_loads_as_one_case_and_is_written_back_as_stored(tmp_path):
    rng = np.random.default_rng(2)
    shape = (6, 7, 8)
    flair = rng.random(shape).astype(np.float32)
    label = (flair > 0.7).astype(np.uint8)
    reference = {"FLAIR": flair, "T1": flair * 3, "label": label}
    geometry = Geometry((1.0, 1.5, 2.0), (10.0, -20.0, 30.0))
    for index, (permutation, flips) in enumerate([((0, 1, 2), (False,) * 3), ((2, 0, 1), (True, False, True)),
                                                  ((1, 2, 0), (False, True, False)), ((0, 1, 2), (True, True, False))]):
        _write_case(tmp_path / "set" / f"case_{index}",
                    {k: _restore(to_sitk(v, geometry), permutation, flips) for k, v in reference.items()})
    dataset = load_dataset(tmp_path / "set", layout=LAYOUT)
    cases = list(dataset)
    assert [c.metadata[SOURCE_ORIENTATION_KEY]["code"] for c in cases] == ["LPS", "ILA", "PIL", "RAS"]
    for case in cases:
        assert case.geometry.differences(geometry, tolerance=1e-6) == []
        np.testing.assert_array_equal(case.channels["FLAIR"], flair)
        np.testing.assert_array_equal(case.label, label)
    out = write_dataset(cases, tmp_path / "out")
    for case_id in dataset.case_ids:  # written back in the stored voxel order, on the stored grid
        for name, written in (("FLAIR", "FLAIR.nii.gz"), ("label", "label.nii.gz")):
            array, written_geometry = read_image(out / case_id / written)
            source, source_geometry = read_image(tmp_path / "set" / case_id / f"{name}.nii.gz")
            np.testing.assert_array_equal(array, source)
            assert written_geometry.differences(source_geometry, tolerance=1e-6) == []
    again = load_dataset(out)  # and the written set loads to the same canonical cases
    for a, b in zip(again, cases):
        _assert_same_case(a, b.replace(brain_mask=None), tolerance=1e-5)
        assert a.metadata[SOURCE_ORIENTATION_KEY]["code"] == b.metadata[SOURCE_ORIENTATION_KEY]["code"]


@pytest.fixture(scope="module")
def brats_storages(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """One real BraTS 2018 case (FLAIR, T1, GT_W) at 3 mm, stored as is (LPS) and sagittally with flips."""
    root = tmp_path_factory.mktemp("brats_orientation")
    images = {name: sitk.Shrink(sitk.ReadImage(str(shared_data / "brats2018" / "case_1" / f"{name}.nii.gz")),
                                [3, 3, 3]) for name in ("FLAIR", "T1", "GT_W")}
    _write_case(root / "original" / "case_1", images)
    _write_case(root / "permuted" / "case_1", {k: _restore(v, (1, 2, 0), (True, False, True))
                                               for k, v in images.items()})
    return root / "original", root / "permuted"


def test_real_brats_case_stored_sagittally_and_flipped_loads_to_the_same_case(brats_storages):
    original, permuted = (load_dataset(p, layout=BRATS_LAYOUT)[0] for p in brats_storages)
    assert original.metadata[SOURCE_ORIENTATION_KEY]["code"] == "LPS"
    assert permuted.metadata[SOURCE_ORIENTATION_KEY]["code"] == "ASR"  # sagittal slices, stored flipped
    raw, _ = read_image(brats_storages[1] / "case_1" / "FLAIR.nii.gz")
    assert raw.shape != original.shape  # the files really differ in voxel order
    _assert_same_case(permuted, original, tolerance=1e-4)
    assert original.label.sum() > 100
    # Checks see only prepared cases: equal prepared cases give equal check numbers, whatever the storage.
    from SyntheticImagingLib.checks.base import PROFILES
    from SyntheticImagingLib.checks.prepare import prepare_case

    a, b = (prepare_case(c, PROFILES["quick"]) for c in (original, permuted))
    for name in a.channels:
        np.testing.assert_allclose(a.channels[name], b.channels[name], atol=1e-5)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.geometry.differences(b.geometry) == []


def test_lesion_insertion_places_the_lesion_at_the_same_physical_place_for_both_storages(brats_storages):
    from SyntheticImagingLib.generators import create_generator

    centroids = []
    for path in brats_storages:
        generator = create_generator("lesion-insertion", task="brain-tumor-mri").fit(list(load_dataset(
            path, layout=BRATS_LAYOUT)))
        cases = list(generator.synthesize(2, seed=0))
        centroids.append([c.geometry.index_to_physical(np.argwhere(c.label > 0).mean(axis=0)) for c in cases])
        for case in cases:  # synthetic cases on the background's grid are canonical
            assert orientation_code(case.geometry.direction) == "LPS"
    np.testing.assert_allclose(centroids[0], centroids[1], atol=1e-6)


def _sagittal_stored_case_with_left_lesion(tmp_path: Path) -> tuple[Case, Case]:
    """A small head with a lesion on the patient's left (+x in LPS), stored as sagittal slices, loaded back;
    also the same volume as a case kept in its sagittal voxel order (never canonical)."""
    shape = (16, 20, 18)
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]]
    head = ((z - 7.5) / 7) ** 2 + ((y - 9.5) / 9) ** 2 + ((x - 8.5) / 8) ** 2 < 1
    lesion = ((z - 8) ** 2 + (y - 9) ** 2 + (x - 13) ** 2) < 5  # x index 13 of 18: left of the middle
    flair = np.where(head, 300.0, 0.0) + lesion * 300.0
    geometry = Geometry((2.0, 2.0, 2.0), (-17.0, -19.0, -15.0))  # LPS; the grid centre is at x = 0
    images = {"FLAIR": flair, "T1": np.where(head, 400.0, 0.0), "label": lesion.astype(np.uint8)}
    sagittal = {k: _restore(to_sitk(v.astype(np.float32), geometry), (1, 2, 0), (False, True, False))
                for k, v in images.items()}
    _write_case(tmp_path / "sagittal" / "case", sagittal)
    loaded = load_dataset(tmp_path / "sagittal", layout=LAYOUT)[0]
    assert loaded.metadata[SOURCE_ORIENTATION_KEY]["code"] == "PIL"  # sagittal slices along left-right
    arrays = {k: from_sitk(v) for k, v in sagittal.items()}
    stored = Case("stored", {k: arrays[k][0] for k in ("FLAIR", "T1")}, arrays["FLAIR"][1],
                  label=arrays["label"][0])
    return loaded, stored


def _label_centroid(label: np.ndarray, geometry: Geometry) -> np.ndarray:
    return geometry.index_to_physical(np.argwhere(label > 0).mean(axis=0))


def test_training_flip_mirrors_the_patient_left_right(tmp_path):
    loaded, stored = _sagittal_stored_case_with_left_lesion(tmp_path)
    assert left_right_axis(loaded.geometry) == 2 and left_right_axis(stored.geometry) == 0
    for case in (loaded, stored):  # canonical, and (computed from the geometry) even a non-canonical grid
        grid = GridSettings(spacing=(2, 2, 2), shape=case.shape, channels=("FLAIR", "T1"), modality="MR",
                            label_values=(1,))
        prepared = prepare_case(case, grid)
        before = _label_centroid(prepared.label, prepared.geometry)
        centre = prepared.geometry.index_to_physical((np.asarray(prepared.label.shape) - 1) / 2.0)
        assert before[0] > centre[0] + 5.0  # patient left (+x in LPS)
        mirrored = np.array([2 * centre[0] - before[0], before[1], before[2]])
        data = TrainingData([prepared], seed=0, augment=True)
        flipped = unflipped = 0
        for position in range(12):
            label = data.sample(position)[1][0]
            after = _label_centroid(label, prepared.geometry)
            if np.array_equal(label, prepared.label):
                unflipped += 1
                continue
            flipped += 1  # mirrored across the grid's mid-sagittal plane: now on the patient's right
            np.testing.assert_allclose(after, mirrored, atol=1e-6)
        assert flipped and unflipped


def test_segmenter_flip_mirrors_the_patient_left_right(tmp_path):
    loaded, stored = _sagittal_stored_case_with_left_lesion(tmp_path)
    dims = _left_right_dims([loaded, stored])
    assert dims == [-1, -3]
    for case, dim in zip((loaded, stored), dims):
        before = _label_centroid(case.label, case.geometry)
        assert before[0] > 5.0  # patient left; the grid's mid-sagittal plane is x = 0
        batch = torch.from_numpy(np.stack([case.label[None], case.label[None]]).astype(np.float32))
        out = _flip_left_right(batch, torch.tensor([True, False]), [dim, dim])
        np.testing.assert_array_equal(out[1].numpy(), batch[1].numpy())  # not drawn: untouched
        after = _label_centroid(out[0, 0].numpy(), case.geometry)
        np.testing.assert_allclose(after, before * np.array([-1.0, 1.0, 1.0]), atol=1e-6)
    # a batch of cases in different voxel orders: each sample along its own left-right dim
    batch = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4, 4)
    out = _flip_left_right(batch, torch.tensor([True, True]), [-1, -3])
    assert torch.equal(out[0], batch[0].flip(-1)) and torch.equal(out[1], batch[1].flip(-3))
