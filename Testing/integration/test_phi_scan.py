"""Privacy of what is written: a whole run on real DICOM input (generator folder, synthetic dataset, DICOM
export, CLI JSON log) contains no identifying value of the source series (names, ids, dates, UIDs, institution).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from SyntheticImagingLib.api import get_generator
from SyntheticImagingLib.cli import main
from SyntheticImagingLib.export.phi import collect_identifying_values, scan_for_values
from SyntheticImagingLib.io import load_dataset


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    series = shared_data / "mr_dicom_series"
    root = tmp_path_factory.mktemp("phi")
    ds = root / "input"
    (ds / "series").mkdir(parents=True)
    for f in sorted(series.glob("*.dcm"))[40:80]:  # 40 contiguous real slices keep the test fast
        shutil.copy(f, ds / "series" / f.name)
    (ds / "dataset.json").write_text(json.dumps({"training": [{"id": "mrcase", "image": "series"}]}))
    out = root / "out"
    gen = get_generator("lesion-insertion", task="brain-tumor-mri", data=load_dataset(ds))
    gen.save(out / "generator")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        assert main(["--progress", "json", "synthesize", "--generator", str(out / "generator"), "--n", "1",
                     "--lesion-volume", "15", "--out", str(out / "synthetic")]) == 0
        assert main(["--progress", "json", "export-dicom", "--input", str(out / "synthetic"), "--out",
                     str(out / "dicom"), "--patient-prefix", "ANON"]) == 0
    (out / "cli_log.jsonl").write_text(log.getvalue())
    return series, out


def test_run_wrote_everything(run):
    _, out = run
    assert (out / "generator" / "model_card.json").exists()
    assert (out / "synthetic" / "dataset.json").exists()
    assert list((out / "dicom").rglob("*.dcm"))


def test_no_source_identifier_in_any_written_file(run):
    series, out = run
    values = collect_identifying_values(series)
    assert len(values) > 10  # names, ids, dates and UIDs of the source were found to look for
    hits = scan_for_values(out, values)
    assert hits == [], "\n".join(f"{h.file}: {h.where}={h.value!r} contains {h.source_attribute}" for h in hits[:20])
