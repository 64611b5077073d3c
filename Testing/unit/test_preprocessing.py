"""Resampling, cropping and intensity maps keep physical positions and invert exactly where they should."""

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry, Modality
from SyntheticImagingLib.preprocessing import IntensityMap, crop_or_pad, resample_case, resample_to_reference


def test_resample_keeps_centre_and_lesion_volume(small_case):
    out = resample_case(small_case, (3.0, 3.0, 3.0))
    assert out.geometry.spacing == (3.0, 3.0, 3.0)
    centre_in = small_case.geometry.index_to_physical((np.asarray(small_case.shape) - 1) / 2)
    centre_out = out.geometry.index_to_physical((np.asarray(out.shape) - 1) / 2)
    assert np.allclose(centre_in, centre_out)
    assert out.lesion_volume_ml() == pytest.approx(small_case.lesion_volume_ml(), rel=0.35)
    assert out.label.dtype == np.int16 and set(np.unique(out.label)) <= {0, 1}


def test_crop_pad_then_back_is_exact(small_case):
    cropped = crop_or_pad(small_case, (16, 40, 12))
    # every voxel keeps its physical position: resampling back restores the part that was kept
    back = resample_to_reference(cropped, small_case.geometry, small_case.shape)
    kept = np.zeros(small_case.shape, bool)
    idx = np.round(small_case.geometry.physical_to_index(cropped.geometry.origin)).astype(int)
    kept[idx[0]:idx[0] + 16, max(idx[1], 0):idx[1] + 40, idx[2]:idx[2] + 12] = True
    assert np.array_equal(back.channels["FLAIR"][kept], small_case.channels["FLAIR"][kept])
    assert np.array_equal(back.label[kept], small_case.label[kept])


def test_intensity_map_inverse():
    ct = Case(case_id="ct", channels={"CT": np.linspace(-1024, 3000, 64).reshape(4, 4, 4)}, geometry=Geometry(),
              modality=Modality.CT)
    m = IntensityMap.fit(ct)
    f = m.forward(ct)
    assert f.channels["CT"].min() >= -1 and f.channels["CT"].max() <= 1
    assert np.allclose(m.inverse(f).channels["CT"], ct.channels["CT"], atol=1e-2)
    assert IntensityMap.from_dict(m.to_dict()) == m


def test_intensity_map_mr(small_case):
    m = IntensityMap.fit(small_case)
    f = m.forward(small_case)
    assert f.channels["FLAIR"].min() == pytest.approx(-1.0)
    back = m.inverse(f).channels["T1"]
    t1 = small_case.channels["T1"]
    assert np.allclose(back, np.clip(t1, 0, 1.5 * m.scales["T1"]), rtol=1e-5, atol=1e-3)
