"""The long jobs from the Python console: train, synthesize, evaluate, rank, export. Each runs the library's CLI in
a background process (as the panel does) and blocks until it is done, printing its progress; scene cases are
written as a dataset folder first.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.io import load_dataset

from .jobs import BackgroundJob, JobEvent, JobOutcome, cli_command, format_status
from .nodes import CaseNodes, safeId, stamp
from .result_nodes import ResultsLogic

__all__ = ["JobsLogic", "MODULE_CHECKS"]

#: The checks the module runs by default (adherence shares the utility check's reference segmenter).
MODULE_CHECKS = ("utility", "adherence", "fidelity", "privacy")


class JobsLogic(ResultsLogic):
    """Console forms of the module's jobs (the panel starts the same CLI calls without blocking)."""

    def __init__(self) -> None:
        self.lastSyntheticDataset: Path | None = None
        self.lastEvaluation: Path | None = None

    # -- datasets ------------------------------------------------------------------------------------------------
    @staticmethod
    def describeDataset(path: str | Path) -> dict[str, Any]:
        """What a dataset folder holds (reads its first case only)."""
        return load_dataset(path).describe()

    @staticmethod
    def datasetProblems(path: str | Path, progress: Callable[[int, int, str], bool] | None = None) -> list[str]:
        """Load every case of a dataset and return what is wrong with each (geometry, labels, unreadable files).
        ``progress(done, total, case_id)`` may return False to stop early."""
        from SyntheticImagingLib.errors import SyntheticImagingError

        ds = load_dataset(path)
        problems = []
        for i, caseId in enumerate(ds.case_ids):
            if progress is not None and progress(i, len(ds), caseId) is False:
                problems.append("(check stopped before the end)")
                break
            try:
                ds[i]
            except SyntheticImagingError as err:
                problems.append(str(err))
        return problems


    def _datasetPath(self, data: Any, task: str | None, workDir: Path, name: str) -> Path:
        """A dataset folder for the CLI: a path as it is, scene cases written under ``workDir``."""
        if data is None or isinstance(data, (str, Path)):
            return Path(data) if data is not None else None  # type: ignore[return-value]
        return self.writeDataset(data, workDir / f"{name}-{stamp()}", task=task)

    # -- background jobs (the CLI) -----------------------------------------------------------------------------
    @staticmethod
    def cliJob(command: str, options: Mapping[str, Any] | None = None, positional: Sequence[str] = (), *,
               logDir: str | Path | None = None, onEvent: Callable[[JobEvent], None] | None = None) -> BackgroundJob:
        """An (unstarted) CLI job; its log goes to ``logDir/<command>-<time>.log`` (beside, never inside, the
        output folder, which the CLI wants new or empty)."""
        logPath = Path(logDir) / f"{command}-{stamp()}.log" if logDir else None
        return BackgroundJob(cli_command(command, options, positional), log_path=logPath, on_event=onEvent,
                             name=command)

    def runCli(self, command: str, options: Mapping[str, Any] | None = None, positional: Sequence[str] = (), *,
               logDir: str | Path | None = None, onEvent: Callable[[JobEvent], None] | None = None) -> JobOutcome:
        """Run one CLI call to the end (the console's blocking form), printing progress at most once a second.

        Raises:
            JobError: the job failed (its message and log path are in the error).
        """
        last = [0.0, ""]

        def show(event: JobEvent) -> None:
            if onEvent is not None:
                onEvent(event)
            if event.kind == "progress":
                now = time.monotonic()
                if now - last[0] >= 1.0 or event.stage != last[1] or event.step == event.total:
                    last[:] = [now, event.stage]
                    logging.info(format_status(event))
            elif event.kind == "log" and event.message.strip():
                logging.debug(event.message)

        return self.cliJob(command, options, positional, logDir=logDir, onEvent=show).start().wait().check()

    @staticmethod
    def lesionOptions(*, lesionVolumeMl: float | tuple[float, float] | None = None, lesionCount: int | None = None,
                      location: Any | None = None, subtypes: Sequence[str] | None = None) -> dict[str, Any]:
        """CLI options of the lesion controls. ``location`` is a markups point list (its first point) or an
        ``(R, A, S)`` point in Slicer's world coordinates; the CLI takes LPS millimetres."""
        options: dict[str, Any] = {}
        if lesionVolumeMl is not None:
            low, high = (lesionVolumeMl, lesionVolumeMl) if isinstance(lesionVolumeMl, (int, float)) else lesionVolumeMl
            options["lesion_volume"] = f"{float(low):g}:{float(high):g}"
        if lesionCount is not None:
            options["lesion_count"] = int(lesionCount)
        if location is not None:
            if hasattr(location, "GetNumberOfControlPoints"):
                if location.GetNumberOfControlPoints() < 1:
                    raise InputError(f"the point list {location.GetName()!r} has no point",
                                     fix="place a point where the lesion should be, or pick no location")
                ras = [0.0, 0.0, 0.0]
                location.GetNthControlPointPositionWorld(0, ras)
            else:
                ras = [float(v) for v in location]
            options["location"] = f"{-ras[0]:g},{-ras[1]:g},{ras[2]:g}"  # RAS -> LPS
        if subtypes:
            options["subtypes"] = list(subtypes)
        return options

    def train(self, data: Any, *, task: str, family: str, outDir: str | Path, steps: int | None = None,
              batchSize: int | None = None, device: str = "auto", resume: bool = False) -> Path:
        """Train (or, for training-free families, prepare) a generator; returns its checkpoint folder.

        Args:
            data: a dataset folder, or scene cases (a list of :class:`CaseNodes` or ``(volumes, segmentation)``).
            task: ``"brain-tumor-mri"`` or ``"head-hemorrhage-ct"``.
            family: generator family (e.g. ``"label-to-image"``).
            outDir: checkpoint folder to write.
            steps, batchSize, device, resume: training settings (None: the family's defaults).
        """
        outDir = Path(outDir)
        dataPath = self._datasetPath(data, task, outDir.parent, "training-data")
        self.runCli("train", {"data": dataPath, "task": task, "generator": family, "out": outDir, "steps": steps,
                              "batch_size": batchSize, "device": device, "resume": resume},
                    logDir=outDir.parent / "logs")
        return outDir

    def synthesize(self, generator: str | Path, *, task: str, n: int, seed: int = 0, data: Any = None,
                   outDir: str | Path | None = None, lesionVolumeMl: float | tuple[float, float] | None = None,
                   lesionCount: int | None = None, location: Any | None = None, subtypes: Sequence[str] | None = None,
                   load: bool = True, showSurface: bool = True, device: str = "auto") -> list[CaseNodes]:
        """Synthesize ``n`` labelled cases and load them as nodes (``load=False``: only write them).

        Args:
            generator: a checkpoint folder, or a family name (then ``data`` gives its reference cases).
            task: the task preset.
            n, seed: how many cases, reproducibly.
            data: real cases for training-free families (dataset folder or scene cases).
            outDir: the synthetic dataset folder (default: a new temporary folder); kept in
                ``self.lastSyntheticDataset``.
            lesionVolumeMl, lesionCount, location, subtypes: lesion controls (see :meth:`lesionOptions`).
            device: where a trained generator's network runs (``auto``: the GPU when present, bf16 where native).
        """
        outDir = Path(outDir) if outDir is not None else Path(tempfile.mkdtemp(prefix="SyntheticImaging-")) / "synth"
        dataPath = self._datasetPath(data, task, outDir.parent, "reference-data")
        lesion = self.lesionOptions(lesionVolumeMl=lesionVolumeMl, lesionCount=lesionCount, location=location,
                                    subtypes=subtypes)
        options = {"generator": generator, "data": dataPath, "task": task, "n": int(n), "seed": int(seed),
                   "out": outDir, "label_format": "seg.nrrd", "device": device, **lesion}
        self.runCli("synthesize", options, logDir=outDir.parent / "logs")
        self.lastSyntheticDataset = outDir
        if not load:
            return []
        dataset = load_dataset(outDir)
        return [self.caseToNodes(case.replace(metadata={**case.metadata, "dataset": str(outDir)}),
                                 showSurface=showSurface) for case in dataset]

    def evaluate(self, realTrain: Any, realTest: Any, synthetic: Any, *, outDir: str | Path,
                 checks: Sequence[str] = MODULE_CHECKS, profile: str = "quick",
                 device: str = "auto", task: str | None = None, plots: bool = True) -> dict[str, Any]:
        """Run the checks and return their tables as table nodes (name -> node); with ``plots`` also adds the
        plot chart nodes (Dice per regime with CIs, DCR histograms) to the scene. The adherence check's
        per-case table is ``"adherence per_case"``; :meth:`loadAdherenceCase` shows a case with its prediction.

        ``realTrain``, ``realTest`` and ``synthetic`` are dataset folders or scene cases (see :meth:`train`).
        """
        outDir = Path(outDir)
        work = outDir.parent
        options = {"real_train": self._datasetPath(realTrain, task, work, "real-train"),
                   "real_test": self._datasetPath(realTest, task, work, "real-test"),
                   "synthetic": self._datasetPath(synthetic, task, work, "synthetic"),
                   "out": outDir, "checks": list(checks), "profile": profile, "device": device,
                   "cache_dir": work / "cache"}  # later evaluations against the same real cases reuse segmenters
        self.runCli("evaluate", options, logDir=work / "logs")
        self.lastEvaluation = outDir
        tables = self.resultsToTables(outDir)
        if plots:
            self.resultsToPlots(outDir)
        return tables

    def rankGenerators(self, realTrain: Any, realTest: Any, syntheticSets: Mapping[str, Any] | Sequence[Any], *,
                       outDir: str | Path, checks: Sequence[str] = MODULE_CHECKS, profile: str = "quick",
                       device: str = "auto", task: str | None = None) -> dict[str, Any]:
        """Evaluate several generators' synthetic sets against one real split and rank them (the library's
        ``rank_generators``, through the CLI's ``evaluate`` with several ``--synthetic`` sets).

        Args:
            realTrain, realTest: dataset folders or scene cases (see :meth:`train`).
            syntheticSets: generator name -> its synthetic set (folder or scene cases), or a list of folders
                (named by folder). A set's folder name is its generator name in the ranking.
            outDir: the ranking folder (``ranking.csv``/``.json``/``.png`` and one report folder per generator).
            checks, profile, device, task: as :meth:`evaluate`.

        Returns:
            Table nodes: ``"ranking"`` (one row per generator, best first) and, per generator, its tables as
            ``"<generator> <table>"`` (e.g. ``"gan adherence per_case"``).
        """
        outDir = Path(outDir)
        work = outDir.parent
        items = list(syntheticSets.items()) if isinstance(syntheticSets, Mapping) else [
            (Path(s).name, s) for s in syntheticSets]
        if len(items) < 2:
            raise InputError("ranking needs two or more synthetic sets", fix="use evaluate() for one set")
        paths = []
        for name, data in items:
            if isinstance(data, (str, Path)) and (Path(data).name == name or not isinstance(syntheticSets, Mapping)):
                paths.append(Path(data))
            else:  # the CLI names a generator by its folder: write the set under its name
                paths.append(self._namedDataset(data, task, work / f"synthetic-sets-{stamp()}" / safeId(name)))
        options = {"real_train": self._datasetPath(realTrain, task, work, "real-train"),
                   "real_test": self._datasetPath(realTest, task, work, "real-test"),
                   "synthetic": paths, "out": outDir, "checks": list(checks), "profile": profile,
                   "device": device, "cache_dir": work / "cache"}
        self.runCli("evaluate", options, logDir=work / "logs")
        self.lastEvaluation = outDir
        return self.rankingToTables(outDir)

    def _namedDataset(self, data: Any, task: str | None, target: Path) -> Path:
        # a copy, not a link: the CLI resolves links before it takes the folder name
        return self.writeDataset(data, target, task=task)


    def exportDicom(self, synthetic: Any, outDir: str | Path, *, patientPrefix: str | None = None,
                    addToDatabase: bool = True, task: str | None = None) -> Path:
        """Export a synthetic set (folder or scene cases) as DICOM studies (image series + SEG, marked synthetic);
        optionally import them into Slicer's DICOM database."""
        outDir = Path(outDir)
        source = self._datasetPath(synthetic, task, outDir.parent, "export-input")
        self.runCli("export-dicom", {"input": source, "out": outDir, "patient_prefix": patientPrefix or None},
                    logDir=outDir.parent / "logs")
        if addToDatabase:
            self.importIntoDicomDatabase(outDir)
        return outDir

    @staticmethod
    def importIntoDicomDatabase(folder: str | Path) -> int:
        """Add a folder of DICOM files to Slicer's DICOM database (indexed, not copied); returns how many of its
        files the database now lists.

        Raises:
            RuntimeError: the database is not open, or the import failed (``DICOMUtils.importDicom`` reports a
                failure by returning False, not by raising).
        """
        import slicer
        from DICOMLib import DICOMUtils

        database = slicer.dicomDatabase
        if database is None or not database.isOpen:
            raise RuntimeError("Slicer's DICOM database is not open: open the DICOM module once to create it, "
                               "then add the exported folder with 'Import DICOM files'")
        if not DICOMUtils.importDicom(str(folder), database):
            raise RuntimeError(f"Slicer could not import the DICOM files of {folder} into its database (see the "
                               "Python console); the files are complete on disk: import them from the DICOM module")
        files = {str(Path(f).resolve()) for f in Path(folder).rglob("*") if f.is_file()}
        listed = {str(Path(f).resolve()) for f in database.allFiles()} & files
        return len(listed)

    def exportFiles(self, synthetic: Any, outDir: str | Path, *, labelFormat: str = "seg.nrrd",
                    task: str | None = None, progress: Callable[[int, str], None] | None = None) -> Path:
        """Write a synthetic set (folder or scene cases) as NIfTI images with NIfTI or ``.seg.nrrd`` labels."""
        return self.writeDataset(synthetic, outDir, task=task, labelFormat=labelFormat, progress=progress)

