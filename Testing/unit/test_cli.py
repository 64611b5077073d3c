"""The CLI: argument errors, JSON progress protocol, exit codes."""

from __future__ import annotations

import json

import pytest

from SyntheticImagingLib.cli import build_parser, main


def test_parser_knows_all_commands():
    parser = build_parser()
    for cmd in ("demo", "synthesize", "info", "train", "evaluate", "export-dicom"):
        assert parser.parse_args(_minimal(cmd)).command == cmd


def _minimal(cmd):
    return {
        "demo": ["demo", "--out", "x"],
        "synthesize": ["synthesize", "--generator", "lesion-insertion", "--out", "x"],
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

    out = tmp_path / "filled"
    code = main(["synthesize", "--generator", "lesion-insertion", "--data", str(sample_data / "brats2018_2mm"),
                 "--n", "1", "--out", str(out), "--config", "background_lesions=fill", "--config", "mass_effect=0"])
    assert code == 0
    (case,) = load_dataset(out)
    assert case.metadata["background_lesions"] == "fill"
    assert main(["synthesize", "--generator", "lesion-insertion", "--data", str(sample_data / "brats2018_2mm"),
                 "--n", "1", "--out", str(tmp_path / "bad"), "--config", "background_lesions=erase"]) == 2
