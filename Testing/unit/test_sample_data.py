"""The bundled sample data loads as labelled cases (the demo and the core tests depend on it)."""

from __future__ import annotations

from SyntheticImagingLib.anatomy import brain_mask
from SyntheticImagingLib.api import sample_ct_head, sample_dataset


def test_sample_brats_cases_are_labelled_mr_with_tumours_in_the_brain():
    ds = sample_dataset()
    assert len(ds) == 10
    for case in (ds[0], ds[9]):
        assert case.modality.value == "MR" and case.channel_names == ["FLAIR", "T1"]
        assert case.geometry.spacing == (2.0, 2.0, 2.0)
        assert case.label is not None and case.label_table.names == {1: "tumor"}
        assert 2.0 < case.lesion_volume_ml() < 300.0
        assert brain_mask(case)[case.label > 0].mean() > 0.99


def test_sample_ct_head_is_in_hounsfield_units_without_label():
    case = sample_ct_head()
    ct = case.channels["CT"]
    assert case.modality.value == "CT" and case.label is None
    assert ct.min() < -900 and ct.max() > 300  # air and bone present
