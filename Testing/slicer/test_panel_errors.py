"""User-fixable errors on the panel's paths end in a message box with the library's message (Slicer-runtime
harness, ``runtime/``), and the install logic asks once and never pip-installs before PyTorch is settled.

Install tests spy on Slicer 5.12's real ``slicer.packaging.pip_ensure`` (vendored) so nothing is installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from panel_scenario import SAMPLE, PanelScenario  # noqa: E402
from runtime import slicer_runtime  # noqa: E402


@pytest.fixture(autouse=True)
def _no_pending_restart(monkeypatch):
    """The install logic remembers a pending restart at module level (it must survive a panel reload)."""
    from SyntheticImagingModule import install

    monkeypatch.setattr(install, "_restartPending", False)


class PipSpy:
    """Stands in for ``slicer.packaging.pip_ensure``: records each call and the constraints it was given."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, requirements, constraints=None, **kwargs):
        text = Path(constraints).read_text() if constraints else None
        self.calls.append({"requirements": [str(r) for r in requirements], "constraints": text, **kwargs})


def _errorTexts(rt) -> list[str]:
    return [m.text for m in rt.messages("error")]


# -- install logic ------------------------------------------------------------------------------------------------


def test_without_pytorch_utils_nothing_is_pip_installed_and_a_restart_is_asked_for(monkeypatch):
    with slicer_runtime(pytorch_utils=False) as rt:
        from SyntheticImagingModule.install import InstallLogic

        spy = PipSpy()
        monkeypatch.setattr(slicer.packaging, "pip_ensure", spy)
        monkeypatch.setattr(InstallLogic, "torchInstalled", staticmethod(lambda: False))
        logic = InstallLogic()
        with pytest.raises(RuntimeError, match="PyTorch extension was installed: restart Slicer"):
            logic.ensureDependencies()
        assert spy.calls == []  # MONAI now would pull a PyPI torch into Slicer
        assert slicer.app.extensionsManagerModel().requests == ["PyTorch"]
        assert len(rt.messages("question")) == 1  # one prompt
        with pytest.raises(RuntimeError, match="Slicer must restart"):  # the restart is still pending
            logic.ensureDependencies()
        assert spy.calls == [] and len(rt.messages("question")) == 1


def test_pending_restart_stops_before_pip(monkeypatch):
    with slicer_runtime() as rt:
        from SyntheticImagingModule import install

        spy = PipSpy()
        monkeypatch.setattr(slicer.packaging, "pip_ensure", spy)
        monkeypatch.setattr(install, "_restartPending", True)
        monkeypatch.setattr(install.InstallLogic, "missing", lambda self: ["monai>=99"])
        with pytest.raises(RuntimeError, match="restart Slicer, then run again"):
            install.InstallLogic().ensureDependencies()
        assert spy.calls == [] and rt.messages() == []


def test_one_prompt_then_packages_pinned_to_the_installed_torch(monkeypatch):
    import importlib.metadata

    with slicer_runtime() as rt:
        from SyntheticImagingModule import install

        spy = PipSpy()
        monkeypatch.setattr(slicer.packaging, "pip_ensure", spy)
        monkeypatch.setattr(install.InstallLogic, "missing", lambda self: ["monai>=99"])
        install.InstallLogic().ensureDependencies()
        assert len(rt.messages("question")) == 1 and "monai>=99" in rt.messages("question")[0].text
        (call,) = spy.calls
        assert call["prompt_install"] is False  # the user was asked once, above
        assert call["constraints"] == f"torch=={importlib.metadata.version('torch')}\n"
        assert "monai>=1.4" in call["requirements"]

        rt.clear_messages()
        rt.set_confirm_answer(False)
        with pytest.raises(RuntimeError, match="declined"):
            install.InstallLogic().ensureDependencies()
        assert len(spy.calls) == 1


def test_panel_job_with_a_pending_restart_shows_why_and_starts_nothing(tmp_path, monkeypatch):
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        install = sys.modules["SyntheticImagingModule.install"]  # the module the panel imported
        monkeypatch.setattr(install, "_restartPending", True)
        monkeypatch.setattr(install.InstallLogic, "missing", lambda self: ["monai>=99"])
        sc.p.datasetPath = SAMPLE
        sc.wait()
        sc.train("gan3d", steps=1)
        assert _errorTexts(rt) == ["Dependencies are not ready: Slicer must restart to finish installing "
                                   "SyntheticImaging's dependencies: restart Slicer, then run again."]
        assert not sc.widget.jobs.anyRunning and sc.widget._lastJob is None


# -- the panel's error paths ----------------------------------------------------------------------------------------


def test_missing_selections_are_named(tmp_path):
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        sc.click("onTrain", sc.button("trainButton"))
        sc.click("onShowSyntheticCase", sc.button("showSyntheticCaseButton"))
        sc.click("onAddSceneCase", sc.button("addSceneCaseButton"))
        sc.click("onWriteSceneDataset", sc.button("writeSceneDatasetButton"))
        assert not sc.ui.finishReaderStudyButton.enabled  # nothing to finish: the button is off
        for name in ("utility", "adherence", "fidelity", "privacy"):
            getattr(sc.ui, f"check{name.capitalize()}CheckBox").checked = False
        sc.click("onEvaluate", sc.button("evaluateButton"))
        assert _errorTexts(rt) == ["Select the real cases (Data) first.", "Select a synthetic set first.",
                                   "Check the case's channel volumes and pick its segmentation.",
                                   "Add cases from the scene first.", "Select at least one check."]
        assert not rt.callback_errors


def test_bad_dataset_is_described_and_checked_with_the_library_message(tmp_path):
    bad = tmp_path / "bad"
    for case in ("case_0", "case_1"):
        shutil.copytree(SAMPLE / case, bad / case)
    (bad / "case_1" / "T1.nii.gz").write_bytes(b"not an image")  # a corrupt file in the second case
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        sc.setPath("onDatasetChanged", "datasetPathLineEdit", bad)
        assert sc.ui.datasetInfoLabel.text.startswith("2 cases")  # the first case reads
        sc.click("onCheckDataset", sc.button("checkDatasetButton"))
        (warning,) = rt.messages("warning")
        assert warning.text == "1 problem(s) found:"
        assert "T1.nii.gz" in warning.detailedText and "case_1" in warning.detailedText
        (tmp_path / "empty").mkdir()
        sc.setPath("onDatasetChanged", "datasetPathLineEdit", tmp_path / "empty")
        assert sc.ui.datasetInfoLabel.text.startswith("Not usable: ")


def test_failing_job_shows_the_library_message_and_the_log(tmp_path):
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        sc.p.datasetPath = SAMPLE
        sc.wait()
        sc.train("label-to-image", steps=1)  # a training-free family: the CLI refuses, with a fix
        (error,) = _errorTexts(rt)
        assert error.startswith("train failed: generator family 'label-to-image' is not trainable")
        assert "The full log is in" in error and sc.ui.statusLabel.text.startswith("train: failed after")
        assert sc.ui.trainButton.enabled and not sc.ui.cancelButton.enabled


def test_pythonslicer_missing_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    from SyntheticImagingModule import jobs

    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        sc.p.datasetPath = SAMPLE
        sc.wait()
        monkeypatch.setattr(jobs.shutil, "which", lambda name: None)
        monkeypatch.setattr(jobs.sys, "executable", "/opt/Slicer-5.12/bin/SlicerApp-real")
        sc.train("gan3d", steps=1)
        assert _errorTexts(rt) == ["Could not start train: PythonSlicer was not found next to Slicer; the "
                                   "background jobs need it"]
        assert not sc.widget.jobs.anyRunning


def _syntheticSet(folder: Path) -> Path:
    import SyntheticImagingLib as si

    return si.synthesize("lesion-insertion", 1, seed=0, data=list(si.sample_dataset())[:2], out=folder,
                         controls=si.LesionControls(kind="tumor", volume_ml=(5, 10)))


def test_dicom_import_failure_and_closed_database_are_reported(tmp_path, monkeypatch):
    synthetic = _syntheticSet(tmp_path / "synthetic")
    with slicer_runtime() as rt:
        import ctk

        sc = PanelScenario(rt, tmp_path)
        sc.p.syntheticDataset = synthetic
        sc.wait()
        sc.click("onExportDicom", sc.button("exportDicomButton"))  # no DICOM database yet
        (error,) = _errorTexts(rt)
        assert error.startswith("DICOM studies written to ") and "Slicer's DICOM database is not open" in error

        rt.clear_messages()
        rt.open_dicom_database()

        def broken(self, database, directory, copyFiles=False):
            raise OSError("database is locked")

        monkeypatch.setattr(ctk.ctkDICOMIndexer, "addDirectory", broken)  # importDicom returns False
        sc.click("onExportDicom", sc.button("exportDicomButton"))
        (error,) = _errorTexts(rt)
        assert "but not added to the DICOM database: Slicer could not import the DICOM files" in error
        out = Path(error.split("DICOM studies written to ")[1].split(", but")[0])
        assert list(out.rglob("*.dcm"))  # the export itself is complete on disk


# -- Sample Data ------------------------------------------------------------------------------------------------


class SampleDataModule:
    """Records what is registered with Slicer's Sample Data module (``SampleData.SampleDataLogic``): that module is
    Slicer's own Python, not among the sources vendored here, so the test takes the registered entries and loads
    them the way it does (download each URI to its file name, load it as its file type)."""

    def __init__(self) -> None:
        self.sources: list[dict] = []
        registered = self.sources

        class SampleDataLogic:
            @staticmethod
            def registerCustomSampleDataSource(**kwargs):
                registered.append(kwargs)

        self.SampleDataLogic = SampleDataLogic


def test_sample_data_is_registered_at_startup_and_trains(tmp_path, monkeypatch):
    import urllib.request

    sampleData = SampleDataModule()
    monkeypatch.setitem(sys.modules, "SampleData", sampleData)
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        slicer.app.startupCompleted.emit()  # Slicer emits it once every module is loaded
        names = [s["sampleName"] for s in sampleData.sources]
        assert names == ["SyntheticImagingBraTS", "SyntheticImagingHeadCT"]
        brats = sampleData.sources[0]
        assert brats["category"] == "SyntheticImaging" and Path(brats["thumbnailFileName"]).exists()
        assert brats["loadFileTypes"] == ["VolumeFile", "VolumeFile", "SegmentationFile"]
        loaded = []
        for uri, fileName, nodeName, fileType in zip(brats["uris"], brats["fileNames"], brats["nodeNames"],
                                                     brats["loadFileTypes"]):
            local = tmp_path / "cache" / fileName
            local.parent.mkdir(exist_ok=True)
            urllib.request.urlretrieve(uri, local)  # what SampleData's downloader does with a file:// URI
            loaded.append(slicer.util.loadNodeFromFile(str(local), fileType, {"name": nodeName}))
        flair, t1, segmentation = loaded
        assert segmentation.IsA("vtkMRMLSegmentationNode") and flair.GetName() == "BraTS case_0 FLAIR"
        sc.addSceneCases([([flair, t1], segmentation)])
        assert sc.ui.datasetInfoLabel.text.startswith("1 cases (1 labelled), MR, channels FLAIR, T1")
        sc.ui.generatorFamilyComboBox.select("gan3d")
        sc.click("onTrain", sc.button("trainButton"), wait=False)
        assert sc.widget.jobs.busy("process") and sc.ui.cancelButton.enabled
        sc.click("onCancelJob", sc.button("cancelButton"))
        assert sc.ui.statusLabel.text.startswith("train: cancelled after")
        assert not [m for m in rt.messages("error")]


def test_evaluate_without_a_held_out_set_runs_the_k_fold_protocol(tmp_path, monkeypatch):
    """No held-out real cases: the evaluation job is started without --real-test (k-fold over the real cases)."""
    from SyntheticImagingModule.jobs import cli_arguments

    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        started = []
        monkeypatch.setattr(sc.widget, "_startJob", lambda command, options, done=None: started.append(
            (command, options)))
        sc.p.datasetPath = SAMPLE
        sc.p.syntheticDataset = SAMPLE
        sc.wait()
        sc.click("onEvaluate", sc.button("evaluateButton"))
        assert not _errorTexts(rt)
        ((command, options),) = started
        assert command == "evaluate" and options["real_test"] is None
        assert "--real-test" not in cli_arguments(command, options)
