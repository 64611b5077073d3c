"""The main job on the bundled sample data: ``synthetic-imaging demo --out DIR``.

Loads the sample cases, synthesizes labelled tumour MRI (two training-free families) and hemorrhage CT
(several subtypes on a real head-CT anatomy), writes each set as a dataset folder with ``dataset.json``, exports
them as DICOM studies (image series + SEG, marked synthetic) and returns where everything is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .api import sample_ct_head, sample_dataset, synthesize
from .cases import Case, LesionKind
from .export import export_dicom_dataset
from .io.atomic import write_json
from .io.datasets import load_dataset, write_dataset
from .lesions.controls import HEMORRHAGE_SUBTYPES, LesionControls
from .progress import ProgressCallback, Reporter, as_reporter

__all__ = ["run_demo", "DEMO_TRAIN_IDS", "DEMO_TEST_IDS", "CT_REFERENCE_CASES"]

#: Split of the bundled BraTS sample by case: generators learn from these ...
DEMO_TRAIN_IDS = [f"case_{i}" for i in range(8)]
#: ... and the checks test on these, never seen by a generator.
DEMO_TEST_IDS = ["case_8", "case_9"]
#: Knowledge-based CT reference cases for the CT checks (the last two are their held-out test cases).
CT_REFERENCE_CASES = 10


def run_demo(out_dir: str | os.PathLike[str], *, n: int = 4, seed: int = 0, overwrite: bool = False,
             checks: bool = True, progress: Reporter | ProgressCallback | None = None) -> dict[str, Any]:
    """Run the demo; returns a summary with the output paths.

    Args:
        out_dir: where to write (one dataset folder per synthetic set, plus ``demo_summary.json``).
        n: cases per synthetic set.
        seed: random seed.
        checks: run the quick utility/adherence/fidelity/privacy checks of the label-to-image MRI set against the real
            cases (trained on ``DEMO_TRAIN_IDS``, tested on ``DEMO_TEST_IDS``; ``evaluation/report.html``), and the
            utility/adherence/privacy checks of the hemorrhage CT set against knowledge-based reference CTs
            (``evaluation_ct/report.html``).
        overwrite: replace existing output folders.
        progress: progress callback or reporter.
    """
    reporter = as_reporter(progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    real = sample_dataset()
    train = real.subset(DEMO_TRAIN_IDS)
    train_cases = list(train)
    tumour = LesionControls(kind=LesionKind.TUMOR, volume_ml=(15.0, 60.0), count=1)
    outputs: dict[str, str] = {}
    for family in ("lesion-insertion", "label-to-image"):
        path = synthesize(family, n, seed=seed, controls=tumour, task="brain-tumor-mri", data=train_cases,
                          out=out / f"mri_tumor_{family.replace('-', '_')}", overwrite=overwrite,
                          progress=reporter.child(f"mri:{family}"))
        outputs[f"mri_tumor_{family}"] = str(path)
    ct = [sample_ct_head()]
    hemorrhage = LesionControls(kind=LesionKind.HEMORRHAGE, volume_ml=(8.0, 40.0), count=1,
                                subtypes=HEMORRHAGE_SUBTYPES, use_templates=False)
    if checks:
        # No real labelled hemorrhage CT can be bundled: knowledge-based cases on the real CT anatomy stand in
        # for the user's own labelled CTs as the reference the CT checks compare against (split by case).
        drawn = synthesize("lesion-insertion", CT_REFERENCE_CASES, seed=seed + 1000, controls=hemorrhage,
                           task="head-hemorrhage-ct", data=ct, progress=reporter.child("ct:reference"))
        assert isinstance(drawn, list)  # no out folder: the cases themselves
        reference: list[Case] = [c.replace(case_id=f"ct_reference_{i:02d}") for i, c in enumerate(drawn)]
        path = write_dataset(reference, out / "ct_reference_knowledge_based", overwrite=overwrite,
                             info={"note": "stand-in for real labelled hemorrhage CT: knowledge-based lesions on "
                                           "the real head-CT template"})
        outputs["ct_reference"] = str(path)
    path = synthesize("lesion-insertion", max(n, len(HEMORRHAGE_SUBTYPES)), seed=seed, controls=hemorrhage,
                      task="head-hemorrhage-ct", data=ct, out=out / "ct_hemorrhage_lesion_insertion",
                      overwrite=overwrite, progress=reporter.child("ct:lesion-insertion"))
    outputs["ct_hemorrhage_lesion-insertion"] = str(path)

    dicom = reporter.child("dicom")
    studies = export_dicom_dataset(
        [*load_dataset(outputs["mri_tumor_lesion-insertion"]),
         *load_dataset(outputs["ct_hemorrhage_lesion-insertion"])], out / "dicom",
        patient_prefix="SYNTHDEMO", progress=lambda done, total, msg: dicom.report("export", done, total, msg))
    outputs["dicom"] = str(out / "dicom")
    if checks:
        from .checks.evaluate import evaluate

        evaluate(train, real.subset(DEMO_TEST_IDS), load_dataset(outputs["mri_tumor_label-to-image"]),
                 out_dir=out / "evaluation", checks=("utility", "adherence", "fidelity", "privacy"),
                 profile="quick", seed=seed, overwrite=overwrite,
                 progress=reporter.child("evaluate"))
        outputs["evaluation"] = str(out / "evaluation" / "report.html")
        ct_ref = load_dataset(outputs["ct_reference"])
        ids = ct_ref.case_ids
        ct_synthetic = load_dataset(outputs["ct_hemorrhage_lesion-insertion"])
        evaluate(ct_ref.subset(ids[:-2]), ct_ref.subset(ids[-2:]), ct_synthetic,
                 out_dir=out / "evaluation_ct", checks=("utility", "adherence", "privacy"), profile="quick",
                 seed=seed, overwrite=overwrite, progress=reporter.child("evaluate:ct"))
        outputs["evaluation_ct"] = str(out / "evaluation_ct" / "report.html")
    summary = {"out": str(out), "outputs": outputs, "dicom_studies": len(studies), "real_train": DEMO_TRAIN_IDS,
               "real_test": DEMO_TEST_IDS,
               "seconds": round(time.monotonic() - started, 1)}
    write_json(out / "demo_summary.json", summary)
    return summary
