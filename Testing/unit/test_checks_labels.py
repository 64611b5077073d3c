"""Checks per label and per BraTS region on tiny multi-label blob cases: the shared label table of ``prepare``,
the K + 1 class segmenter, per-label / per-region metrics, the utility and adherence tables and their typed
reading; single-label data keeps its binary path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, LesionKind
from SyntheticImagingLib.checks.adherence import AdherenceCheck
from SyntheticImagingLib.checks.base import CheckContext, Profile
from SyntheticImagingLib.checks.metrics import (
    LABEL,
    REGION,
    Structure,
    evaluation_structures,
    structure_metrics,
)
from SyntheticImagingLib.checks.prepare import LESION_LABELS, label_mapping, prepare_cases, shared_label_table
from SyntheticImagingLib.checks.report import write_report
from SyntheticImagingLib.checks.report_model import read_report
from SyntheticImagingLib.checks.segmenter import SegmenterConfig, segment, train_segmenter
from SyntheticImagingLib.checks.utility import UtilityCheck
from SyntheticImagingLib.errors import LabelError

TINY = Profile(name="tiny", spacing=(1.0, 1.0, 1.0), shape=(16, 16, 16), seeds=2, segmenter_steps=8,
               encoder_steps=2, real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)
CONFIG = SegmenterConfig(features=(4, 8), steps=8, batch_size=2)
REAL_TABLE = LabelTable({1: "NCR", 2: "ED", 4: "ET"})
#: Same labels under other values and names (necrosis 1, enhancing 2, edema 3).
OTHER_TABLE = LabelTable({1: "necrotic core", 2: "enhancing tumour", 3: "peritumoral oedema"})


def onion_case(case_id: str, seed: int, table: LabelTable = REAL_TABLE) -> Case:
    """A head sphere with a nested tumour: necrotic centre, enhancing shell, edema around (values of ``table``)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:16, :16, :16]
    head = ((z - 7.5) ** 2 + (y - 7.5) ** 2 + (x - 7.5) ** 2) < 49
    c = 7.5 + rng.uniform(-1.5, 1.5, 3)
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    roles = {"necrosis": r < 1.6, "enhancing": (r >= 1.6) & (r < 2.8), "edema": (r >= 2.8) & (r < 4.2)}
    value = {"necrosis": next(v for v, n in table.names.items() if "nec" in n.lower() or n == "NCR"),
             "enhancing": next(v for v, n in table.names.items() if "enh" in n.lower() or n == "ET"),
             "edema": next(v for v, n in table.names.items() if "ed" in n.lower() and "nec" not in n.lower()
                           and "enh" not in n.lower() or n == "ED")}
    label = np.zeros(head.shape, np.int16)
    flair = np.where(head, 100 + rng.normal(0, 4, head.shape), 0)
    for role, bright in (("edema", 80), ("enhancing", 160), ("necrosis", 20)):
        label[roles[role]] = value[role]
        flair = np.where(roles[role], 100 + bright + rng.normal(0, 4, head.shape), flair)
    return Case(case_id=case_id, channels={"FLAIR": flair.astype(np.float32)}, geometry=Geometry((1.0, 1.0, 1.0)),
                label=label, label_table=table)


@pytest.fixture(scope="module")
def sets():
    real = [onion_case(f"r{i}", i) for i in range(3)]
    labels = shared_label_table(real)
    real_train = prepare_cases(real, TINY, labels=labels)
    real_test = prepare_cases([onion_case(f"t{i}", 100 + i) for i in range(2)], TINY, labels=labels)
    synthetic = prepare_cases([onion_case(f"s{i}", 50 + i, OTHER_TABLE) for i in range(3)], TINY, labels=labels)
    return real_train, real_test, synthetic


def test_label_mapping_by_name_and_role():
    assert label_mapping(OTHER_TABLE, REAL_TABLE) == {1: 1, 2: 4, 3: 2}
    assert label_mapping(REAL_TABLE, REAL_TABLE) == {1: 1, 2: 2, 4: 4}
    # unrecognised names still match when they are the same names
    assert label_mapping(LabelTable({3: "A", 5: "B"}), LabelTable({1: "a", 2: "b"})) == {3: 1, 5: 2}


def test_prepare_maps_other_values_onto_the_real_table(sets):
    real_train, _, synthetic = sets
    raw = onion_case("s0", 50, OTHER_TABLE)
    for case in (*real_train, *synthetic):
        assert case.label_table == REAL_TABLE
        assert set(np.unique(case.label)) <= {0, 1, 2, 4}
    # synthetic enhancing tumour (2) became the real enhancing value (4), edema (3) became 2
    np.testing.assert_array_equal(synthetic[0].label == 4, raw.label == 2)
    np.testing.assert_array_equal(synthetic[0].label == 2, raw.label == 3)
    assert synthetic[0].metadata["prepared"]["label_mapping"] == {"1": 1, "2": 4, "3": 2}


def test_mismatched_tables_raise_naming_both(tmp_path):
    from SyntheticImagingLib.checks.evaluate import evaluate

    real = [onion_case(f"r{i}", i) for i in range(2)]
    whole = onion_case("w0", 7)
    whole = whole.replace(label=(whole.label > 0).astype(np.int16), label_table=LabelTable({1: "tumor"}))
    with pytest.raises(LabelError) as err:
        prepare_cases([whole], TINY, labels=REAL_TABLE, stage="prepare:synthetic")
    text = str(err.value)
    assert "'tumor'" in text and "'NCR'" in text and "'ET'" in text and "synthetic case w0" in text
    extra = LabelTable({**REAL_TABLE.names, 5: "tumor"})
    with pytest.raises(LabelError, match="no real label for 5 'tumor'"):
        label_mapping(extra, REAL_TABLE, LesionKind.TUMOR)
    with pytest.raises(LabelError, match="do not match the real training labels"):
        evaluate(real[:1], real[1:], [whole], out_dir=tmp_path / "r", checks="utility", profile=TINY, device="cpu")
    assert not (tmp_path / "r").exists()


def test_single_label_is_binarised_as_before():
    case = onion_case("a", 0)
    one = case.replace(label=(case.label > 0).astype(np.int16) * 3, label_table=LabelTable({3: "lesion"}))
    (plain,) = prepare_cases([one], TINY)
    (shared,) = prepare_cases([one], TINY, labels=shared_label_table([one]))
    (multi_as_binary,) = prepare_cases([case], TINY, labels=LabelTable({1: "tumor"}))
    for p in (plain, shared, multi_as_binary):
        assert p.label_table == LESION_LABELS and set(np.unique(p.label)) == {0, 1}
        assert "label_mapping" not in p.metadata["prepared"]
        np.testing.assert_array_equal(p.label, plain.label)
        np.testing.assert_array_equal(p.channels["FLAIR"], plain.channels["FLAIR"])


def test_multiclass_segmenter_outputs_k_plus_one_classes(sets):
    real_train, real_test, _ = sets
    model = train_segmenter(real_train, config=SegmenterConfig(features=(4, 8), steps=3), seed=0, device="cpu")
    assert model.labels == REAL_TABLE and model.label_values == (1, 2, 4)
    with np.errstate(all="ignore"):
        import torch

        out = model.model(torch.zeros((1, 1, 16, 16, 16)))
    assert out.shape[1] == 4
    pred = segment(model, real_test)[0]
    assert pred.shape == (16, 16, 16) and set(np.unique(pred)) <= {0, 1, 2, 4}
    assert model.describe()["classes"] == {"0": "background", "1": "NCR", "2": "ED", "4": "ET"}
    binary = train_segmenter(prepare_cases([onion_case("b", 1)], TINY), config=SegmenterConfig(features=(4, 8),
                             steps=2), seed=0, device="cpu")
    assert binary.labels == LESION_LABELS and binary.model(torch.zeros((1, 1, 16, 16, 16))).shape[1] == 2


def test_structure_metrics_on_hand_made_arrays():
    structures = evaluation_structures(LabelTable({1: "necrosis", 2: "edema", 3: "non-enhancing tumor",
                                                   4: "enhancing tumor"}))
    assert [(s.name, s.kind, s.values) for s in structures] == [
        ("necrosis", LABEL, (1,)), ("edema", LABEL, (2,)), ("non-enhancing tumor", LABEL, (3,)),
        ("enhancing tumor", LABEL, (4,)), ("whole tumor", REGION, (1, 2, 3, 4)), ("tumor core", REGION, (1, 3, 4)),
        ("enhancing tumor", REGION, (4,))]
    assert evaluation_structures(LabelTable({1: "tumor"})) == []
    assert [s.kind for s in evaluation_structures(LabelTable({1: "A", 2: "B"}))] == [LABEL, LABEL]  # no roles
    ref = np.zeros((1, 1, 10), np.int16)
    ref[0, 0, 0:2], ref[0, 0, 2:6], ref[0, 0, 6:8] = 1, 2, 4
    pred = np.zeros_like(ref)
    pred[0, 0, 0:2], pred[0, 0, 2:4], pred[0, 0, 4:8] = 4, 2, 1  # necrosis and enhancing swapped, edema half
    rows = {(r["structure_kind"], r["structure"]): r for r in
            structure_metrics(pred, ref, structures, spacing_zyx=(1.0, 1.0, 2.0))}
    assert rows[(LABEL, "necrosis")]["dice"] == 0.0
    assert rows[(LABEL, "edema")]["dice"] == pytest.approx(2 * 2 / (2 + 4))
    assert rows[(LABEL, "non-enhancing tumor")]["dice"] == 1.0  # absent in both: BraTS convention
    assert rows[(LABEL, "non-enhancing tumor")]["hd95_mm"] == 0.0
    assert rows[(REGION, "whole tumor")]["dice"] == 1.0
    assert rows[(REGION, "tumor core")]["dice"] == pytest.approx(2 * 4 / (6 + 4))  # pred 0-1,4-7; ref 0-1,6-7
    assert rows[(REGION, "enhancing tumor")]["dice"] == 0.0 and rows[(REGION, "enhancing tumor")]["values"] == "4"
    # pred voxels 0, 1 are 6 and 5 voxels (2 mm each) from the reference: 95th percentile of (12, 10) mm
    assert rows[(REGION, "enhancing tumor")]["hd95_mm"] == pytest.approx(11.9)
    assert math.isfinite(rows[(LABEL, "edema")]["hd95_mm"])
    only = structure_metrics(pred, ref, [Structure("e", LABEL, (2,))], spacing_zyx=(1, 1, 1), with_hd95=False)
    assert "hd95_mm" not in only[0]


def test_utility_and_adherence_report_per_label_and_region(sets, tmp_path):
    real_train, real_test, synthetic = sets
    ctx = CheckContext(profile=TINY, out_dir=tmp_path / "utility", device="cpu", seed=0)
    result = UtilityCheck(config=CONFIG).run(real_train=real_train, real_test=real_test, synthetic=synthetic,
                                             context=ctx)
    regimes = [r["regime"] for r in result.tables["regimes"]]
    labels, regions = result.tables["per_label"], result.tables["per_region"]
    assert len(labels) == 3 * len(regimes) and len(regions) == 3 * len(regimes)
    assert {r["label"] for r in labels} == {"NCR", "ED", "ET"}
    assert {r["region"] for r in regions} == {"whole tumor", "tumor core", "enhancing tumor"}
    tstr = next(r for r in labels if r["regime"] == "TSTR" and r["label"] == "ET")
    assert tstr["seeds"] == TINY.seeds and tstr["values"] == "4" and 0.0 <= tstr["dice"] <= 1.0
    assert {"dice_lo", "dice_hi", "hd95_mm", "dice_vs_trtr", "dice_vs_trtr_lo"} <= set(tstr)
    assert "dice_vs_trtr" not in next(r for r in labels if r["regime"] == "TRTR")
    assert set(result.summary["label_dice"]) == {"TRTR", "TSTR", "R+S x1"}
    assert set(result.summary["region_dice"]["TSTR"]) == {"whole tumor", "tumor core", "enhancing tumor"}
    assert "dice" in result.summary["regimes"]["TRTR"]  # the headline stays the whole lesion

    adh_ctx = CheckContext(profile=TINY, out_dir=tmp_path / "adherence", device="cpu", seed=0, cache=ctx.cache)
    adh = AdherenceCheck(config=CONFIG, figures=False).run(real_train=real_train, real_test=real_test,
                                                           synthetic=synthetic, context=adh_ctx)
    assert {r["label"] for r in adh.tables["per_label"]} == {"NCR", "ED", "ET"}
    assert {r["region"] for r in adh.tables["per_region"]} == {"whole tumor", "tumor core", "enhancing tumor"}
    assert len(adh.tables["per_case_labels"]) == 6 * (len(synthetic) + len(real_test))
    assert set(adh.summary["label_dice_synthetic"]) == {"NCR", "ED", "ET"}
    assert "values" in adh.details["predictions"]

    write_report(tmp_path, results=[result, adh], settings={}, data={}, requested=["utility", "adherence"],
                 skipped={}, failed={}, seconds={})
    report = read_report(tmp_path)
    rows = report.label_rows()
    assert len(rows) == len(labels) and rows[0].kind == "label" and rows[0].values == (1,)
    et = next(r for r in report.region_rows() if r.regime == "TSTR" and r.name == "enhancing tumor")
    assert et.values == (4,) and et.dice == pytest.approx(next(
        r["dice"] for r in regions if r["regime"] == "TSTR" and r["region"] == "enhancing tumor"))
    assert math.isnan(next(r for r in rows if r.regime == "TRTR").dice_vs_trtr)
    page = (tmp_path / "report.html").read_text()
    assert "Table: per label" in page and "Table: per region" in page
