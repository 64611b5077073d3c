"""The CLI: argument errors, JSON progress protocol, exit codes."""

from __future__ import annotations

import json

import pytest

from SyntheticImagingLib.cli import build_parser, main


def test_parser_knows_all_commands():
    parser = build_parser()
    for cmd in ("demo", "synthesize", "pool", "info", "train", "evaluate", "export-dicom"):
        assert parser.parse_args(_minimal(cmd)).command == cmd


def _minimal(cmd):
    return {
        "demo": ["demo", "--out", "x"],
        "synthesize": ["synthesize", "--generator", "lesion-insertion", "--out", "x"],
        "pool": ["pool", "--synthetic", "a", "b", "--out", "x"],
        "info": ["info", "x"],
        "train": ["train", "--data", "d", "--task", "brain-tumor-mri", "--generator", "gan3d", "--out", "x"],
        "evaluate": ["evaluate", "--real-train", "a", "--real-test", "b", "--synthetic", "c", "--out", "x"],
        "export-dicom": ["export-dicom", "--input", "a", "--out", "x"],
    }[cmd]


def test_bad_volume_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["synthesize", "--generator", "lesion-insertion", "--out", "x", "--lesion-volume", "big"])
    assert err.value.code == 2
    assert "LOW:HIGH" in capsys.readouterr().err


def test_user_error_exit_code_and_json_error_line(tmp_path, capsys):
    code = main(["--progress", "json", "info", str(tmp_path / "nope")])
    assert code == 2
    out = capsys.readouterr()
    line = json.loads(out.out.strip().splitlines()[-1])
    assert line["type"] == "error" and "dataset not found" in line["message"]
    assert "nope" in out.err


def test_info_on_sample_dataset_json(sample_data, capsys):
    code = main(["--progress", "json", "info", str(sample_data / "brats2018_2mm")])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["type"] == "result" and result["cases"] == 10 and result["channels"] == ["FLAIR", "T1"]


def test_synthesize_takes_family_settings(tmp_path, sample_data):
    from SyntheticImagingLib.io import load_dataset

    out = tmp_path / "kept"
    code = main(["synthesize", "--generator", "lesion-insertion", "--data", str(sample_data / "brats2018_2mm"),
                 "--n", "1", "--out", str(out), "--config", "background_lesions=keep", "--config", "mass_effect=0"])
    assert code == 0
    (case,) = load_dataset(out)
    assert case.metadata["background_lesions"] == "keep"  # not the default (fill)
    assert main(["synthesize", "--generator", "lesion-insertion", "--data", str(sample_data / "brats2018_2mm"),
                 "--n", "1", "--out", str(tmp_path / "bad"), "--config", "background_lesions=erase"]) == 2


def test_pool_writes_one_set_from_several(tmp_path, sample_data, capsys):
    from SyntheticImagingLib.io import load_dataset

    data = str(sample_data / "brats2018_2mm")
    for family, n in (("lesion-insertion", 3), ("label-to-image", 2)):
        assert main(["--progress", "none", "synthesize", "--generator", family, "--data", data, "--n", str(n),
                     "--out", str(tmp_path / family)]) == 0
    out = tmp_path / "pooled"
    code = main(["--progress", "none", "pool", "--synthetic", str(tmp_path / "lesion-insertion"),
                 str(tmp_path / "label-to-image"), "--out", str(out)])
    assert code == 0
    assert "Wrote 2 synthetic cases with pooled (1 lesion-insertion, 1 label-to-image)" in capsys.readouterr().out
    pooled = load_dataset(out)
    assert [c.case_id for c in pooled] == ["lesion-insertion_synth_0_0000", "label-to-image_synth_0_0000"]
    assert pooled[0].metadata["background"]  # the background patient stays known to the k-fold protocol
    assert pooled.info["synthetic"] is True
    assert pooled.info["generator"]["parts"]["lesion-insertion"]["generator"]["family"] == "lesion-insertion"
    # asking for more than a set holds is a clear error, and nothing is written
    bad = tmp_path / "too_many"
    assert main(["--progress", "none", "pool", "--synthetic", str(tmp_path / "lesion-insertion"),
                 str(tmp_path / "label-to-image"), "--n", "6", "--out", str(bad)]) == 2
    assert "'label-to-image' has 2 cases; the pool takes 3" in capsys.readouterr().err
    assert not bad.exists()
