"""The data model: geometry maths, label tables, case validation errors."""

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, merge_label_maps
from SyntheticImagingLib.errors import GeometryError, InputError, LabelError


def test_geometry_index_physical_round_trip():
    d = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # rotated 90 degrees
    g = Geometry((0.5, 0.7, 2.0), (10.0, -5.0, 3.0), tuple(d.ravel()))
    idx = np.array([[3.0, 4.0, 5.0], [0.0, 0.0, 0.0]])
    pts = g.index_to_physical(idx)
    assert np.allclose(pts[1], g.origin)
    # index (z=3, y=4, x=5): x axis -> direction column 0 = (0, 1, 0) * 0.5 * 5
    assert np.allclose(pts[0], np.array(g.origin) + [-0.7 * 4, 0.5 * 5, 2.0 * 3])
    assert np.allclose(g.physical_to_index(pts), idx)


def test_ijk_to_ras_round_trip_and_sign():
    g = Geometry((0.5, 0.7, 2.0), (10.0, -5.0, 3.0))
    m = g.ijk_to_ras()
    assert np.allclose(m[:3, 3], [-10.0, 5.0, 3.0])  # LPS -> RAS flips x and y
    back = Geometry.from_ijk_to_ras(m)
    assert not back.differences(g)


def test_geometry_rejects_bad_spacing():
    with pytest.raises(GeometryError, match="spacing"):
        Geometry((1.0, 0.0, 1.0))


def test_case_rejects_2d_and_4d():
    g = Geometry()
    with pytest.raises(InputError, match="2D"):
        Case(case_id="c", channels={"a": np.zeros((4, 4))}, geometry=g)
    with pytest.raises(InputError, match="4D"):
        Case(case_id="c", channels={"a": np.zeros((2, 4, 4, 4))}, geometry=g)


def test_case_rejects_label_shape_mismatch():
    with pytest.raises(GeometryError, match="label shape"):
        Case(case_id="c", channels={"a": np.zeros((4, 4, 4))}, geometry=Geometry(), label=np.zeros((4, 4, 5)))


def test_validate_nan_empty_unknown_label(small_case):
    bad = small_case.replace(channels={**small_case.channels, "FLAIR": small_case.channels["FLAIR"].copy()})
    bad.channels["FLAIR"][0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN") as err:
        bad.validate()
    assert "Fix:" in str(err.value) and "small" in str(err.value)
    empty = small_case.replace(label=np.zeros_like(small_case.label))
    with pytest.raises(LabelError, match="empty"):
        empty.validate(require_lesion=True)
    unknown = small_case.replace(label=small_case.label * 3)
    with pytest.raises(LabelError, match=r"\[3\]"):
        unknown.validate()
    with pytest.raises(LabelError, match="no label"):
        small_case.replace(label=None).validate(require_label=True)


def test_lesion_volume_ml(small_case):
    n = int(small_case.label.sum())
    assert small_case.lesion_volume_ml() == pytest.approx(n * 1.5**3 / 1000)


def test_merge_label_maps_shares_names():
    a = np.array([[[1, 0, 0, 0]]])
    b = np.array([[[0, 1, 2, 0]]])
    out, table = merge_label_maps(a, LabelTable({1: "tumor"}), b, LabelTable({1: "tumor", 2: "edema"}))
    assert out.tolist() == [[[1, 1, 2, 0]]]
    assert table.names == {1: "tumor", 2: "edema"}


def test_merge_label_maps_keeps_the_users_values():
    """A new label keeps its value where the base leaves it free: BraTS 1, 2, 4 into an unlabelled (or filled)
    background stay 1, 2, 4; a value the base already uses for another name moves to the next free one."""
    new = np.array([[[1, 2, 4, 0]]])
    brats = LabelTable({1: "necrosis", 2: "edema", 4: "enhancing tumor"})
    out, table = merge_label_maps(None, LabelTable(), new, brats)
    assert out.tolist() == [[[1, 2, 4, 0]]] and table == brats
    base = np.array([[[0, 0, 0, 1]]])
    out, table = merge_label_maps(base, LabelTable({1: "tumor"}), new, brats)
    assert table.names == {1: "tumor", 2: "necrosis", 3: "edema", 4: "enhancing tumor"}
    assert out.tolist() == [[[2, 3, 4, 1]]]


def test_seg_nrrd_round_trip_keeps_label_values(tmp_path):
    """A .seg.nrrd the library writes with values {1, 2, 4} reads back as {1, 2, 4} with the same names."""
    import numpy as np

    from SyntheticImagingLib.cases import Geometry, LabelTable
    from SyntheticImagingLib.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd

    label = np.zeros((6, 7, 8), np.int16)
    label[1:3, 1:3, 1:3], label[3:5, 2:4, 2:5], label[1:2, 5:7, 6:8] = 1, 2, 4
    table = LabelTable({1: "necrosis", 2: "edema", 4: "enhancing tumor"})
    geometry = Geometry((1.0, 1.5, 2.0), (3.0, -4.0, 5.0))
    path = write_seg_nrrd(tmp_path / "label.seg.nrrd", label, geometry, table)
    back, back_geometry, back_table = read_seg_nrrd(path)
    np.testing.assert_array_equal(back, label)
    assert back_table.names == table.names
    assert back_geometry.differences(geometry) == []
