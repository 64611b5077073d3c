"""The main job: `synthetic-imaging demo` writes labelled MRI and CT cases that SimpleITK reads back."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from SyntheticImagingLib.anatomy import head_masks
from SyntheticImagingLib.cli import main


def test_demo_writes_labelled_cases(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--progress", "none", "--json", "demo", "--out", str(out), "--n", "2", "--skip-checks"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(out)
    kinds = set()
    dicom = out / "dicom"
    assert summary["dicom_studies"] == len(list(dicom.glob("*/study-*"))) > 0
    for name, path in summary["outputs"].items():
        if name == "dicom":
            continue
        data = json.loads((out / path.split("/")[-1] / "dataset.json").read_text())
        modality = data["synthetic_imaging"]["modality"]
        kinds.add(modality)
        for entry in data["training"]:
            images = [sitk.ReadImage(str(out / path.split("/")[-1] / p)) for p in entry["image"]]
            label = sitk.ReadImage(str(out / path.split("/")[-1] / entry["label"]))
            for image in images:
                assert image.GetSize() == label.GetSize()
                assert np.allclose(image.GetOrigin(), label.GetOrigin())
                assert np.allclose(image.GetSpacing(), label.GetSpacing())
                assert np.allclose(image.GetDirection(), label.GetDirection())
            lesion = sitk.GetArrayFromImage(label) > 0
            assert lesion.any(), f"{name}: no lesion voxel"
            first = sitk.GetArrayFromImage(images[0])
            if modality == "MR":
                assert (first[lesion] > 0).all(), f"{name}: lesion outside the brain"
            else:
                spacing = images[0].GetSpacing()
                from SyntheticImagingLib.cases import Geometry

                masks = head_masks(first, Geometry(spacing, images[0].GetOrigin(), images[0].GetDirection()))
                assert not (lesion & (masks.skull | masks.air)).any(), f"{name}: lesion in bone or air"
    assert kinds == {"MR", "CT"}
