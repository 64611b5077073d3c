"""A user's own label convention end to end, with the commands a user types and no user code (issue 16).

A head-CT dataset whose ``dataset.json`` names its labels EDH 1, IPH 2, IVH 3, SAH 4, SDH 5 (the alphabetical
convention of several ICH segmentation sets, not the library's own values): ``train`` (GAN, no ``--task``),
``synthesize`` from the trained folder, then ``evaluate``; every output keeps those values and names. The CT
cases are the bundled head CT at 6 mm with real-anatomy lesions drawn in that convention (no real labelled
hemorrhage CT is available offline: see the shared data README). The GAN and checks are tiny: this tests the
plumbing, not quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from SyntheticImagingLib import api
from SyntheticImagingLib.anatomy import head_masks
from SyntheticImagingLib.cases import LabelTable, LesionKind
from SyntheticImagingLib.checks.base import Profile
from SyntheticImagingLib.checks.evaluate import evaluate
from SyntheticImagingLib.cli import main
from SyntheticImagingLib.io.datasets import load_dataset, write_dataset
from SyntheticImagingLib.label_roles import match_roles
from SyntheticImagingLib.lesions import LesionControls, make_lesion_label
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

TABLE = LabelTable({1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"})
SUBTYPES = [("epidural", "intraparenchymal"), ("subdural", "intraventricular"), ("subarachnoid", "intraparenchymal"),
            ("subdural", "epidural"), ("intraparenchymal", "subarachnoid"), ("intraventricular", "subdural")]
PROFILE = Profile(name="tiny-ct", spacing=(6.0, 6.0, 6.0), shape=(32, 40, 32), seeds=1, segmenter_steps=10,
                  encoder_steps=5, real_sizes=(2,), synthetic_ratios=(1.0,), repeats=1)


@pytest.fixture(scope="module")
def ich_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ich")
    ct = resample_case(api.sample_ct_head(), (6.0, 6.0, 6.0))
    masks = head_masks(ct.channels["CT"], ct.geometry)
    roles = match_roles(TABLE, LesionKind.HEMORRHAGE)
    cases = []
    for i, subtypes in enumerate(SUBTYPES):
        label, table, _ = make_lesion_label(masks, ct.geometry, LesionControls(
            kind="hemorrhage", count=2, volume_ml=(6.0, 10.0), subtypes=subtypes), rng=np.random.default_rng(i),
            roles=roles)
        assert table == TABLE
        cases.append(ct.replace(case_id=f"ich_{i:03d}", label=label, label_table=table, metadata={}))
    write_dataset(cases[:4], root / "train")
    write_dataset(cases[4:], root / "test")
    for part in ("train", "test"):  # the user's dataset.json: their names, nothing of this library's
        path = root / part / "dataset.json"
        data = json.loads(path.read_text())
        data.pop("synthetic_imaging")
        data["labels"] = {"0": "background", **TABLE.to_dict()}
        data["modality"] = {"0": "CT"}
        path.write_text(json.dumps(data))
    return root


def test_head_ct_in_its_own_convention_trains_synthesizes_and_evaluates(ich_dataset, tmp_path, capsys):
    assert load_dataset(ich_dataset / "train")[0].label_table == TABLE
    gan = tmp_path / "gan"
    code = main(["--progress", "none", "train", "--data", str(ich_dataset / "train"), "--generator", "gan3d",
                 "--out", str(gan), "--steps", "2", "--device", "cpu", "--cache-dir", "",
                 "--config", "spacing=[6,6,6]", "--config", "shape=[32,40,32]", "--config", "channels=[8,16]",
                 "--config", "disc_channels=8", "--config", "disc_layers=2"])
    assert code == 0, capsys.readouterr().err
    card = json.loads((gan / "model_card.json").read_text())
    assert card["task_spec"]["lesion_kind"] == "hemorrhage" and card["task_spec"]["labels"] == TABLE.to_dict()

    synth = tmp_path / "synth"
    code = main(["--progress", "none", "synthesize", "--generator", str(gan), "--n", "3", "--seed", "1",
                 "--subtypes", "subdural,intraparenchymal", "--lesion-volume", "15:30", "--out", str(synth)])
    assert code == 0, capsys.readouterr().err
    synthetic = load_dataset(synth)
    data = json.loads((synth / "dataset.json").read_text())
    assert data["labels"] == {"0": "background", **TABLE.to_dict()}
    for case in synthetic:
        assert case.channel_names == ["CT"] and case.label_table == TABLE
        for info in case.metadata["lesions"]:
            assert info["label_value"] == {"subdural": 5, "intraparenchymal": 2}[info["subtype"]]
            assert (case.label == info["label_value"]).any()

    report = evaluate(load_dataset(ich_dataset / "train"), load_dataset(ich_dataset / "test"), synthetic,
                      out_dir=tmp_path / "report", checks="utility", profile=PROFILE, device="cpu")
    assert report["status"] == "complete", report["checks"]
    rows = report["checks"]["utility"]["tables"]["per_label"]["rows"]
    assert {r["label"] for r in rows} == set(TABLE.names.values())
    assert {r["regime"] for r in rows} >= {"TRTR", "TSTR", "R+S x1"}
    assert report["data"]["synthetic"]["labels"] == TABLE.to_dict()
