"""Logic of the SyntheticImaging module: MRML nodes <-> library cases, results -> table and plot nodes, and the
Python-console API. Usable without the widget (and, for everything but the views, without the application:
the tests run it on a bare MRML scene with slicer-core).

Python console::

    logic = slicer.util.getModuleLogic("SyntheticImaging")
    case = logic.caseFromNodes([flair, t1], segmentation, task="brain-tumor-mri")     # nodes -> Case
    nodes = logic.caseToNodes(case)                                                     # Case -> CaseNodes
    ckpt = logic.train([([flair, t1], segmentation)], task="brain-tumor-mri", family="gan3d",
                       outDir="/tmp/gen", steps=200)                       # scene cases (or a dataset folder)
    synthetic = logic.synthesize(ckpt, task="brain-tumor-mri", n=2, seed=0, location=pointListNode)
    tables = logic.evaluate("/data/train", "/data/test", synthetic, outDir="/tmp/eval")  # name -> table node
    nodes = logic.loadAdherenceCase("/tmp/eval", "synthetic_0001")    # label + the segmenter's prediction
    logic.showAdherenceCase(nodes)
    ranking = logic.rankGenerators("/data/train", "/data/test", {"gan": "/gen/gan", "l2i": "/gen/l2i"},
                                   outDir="/tmp/ranking")                  # name -> table node ("ranking" first)
    logic.exportDicom(synthetic, "/tmp/dicom", addToDatabase=True)

Long jobs (train, synthesize, evaluate, export-dicom) run the library's CLI in a separate process, the same
way the panel does; from the console they block until done and print their progress.

The logic is split by what it does: :mod:`.nodes` (MRML <-> cases), :mod:`.result_nodes` (results -> tables,
plots, overlays), :mod:`.jobs_logic` (the CLI jobs from the console) and :mod:`.reader_study` (the study's cases);
this class puts them together as the module's logic.
"""

from __future__ import annotations

from typing import Any

from .jobs_logic import MODULE_CHECKS, JobsLogic
from .nodes import CaseNodes, geometryFromVolumeNode
from .reader_study import readerStudyCase

try:
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic
except ImportError:  # slicer-core (MRML without the application): the same logic runs on a bare scene
    ScriptedLoadableModuleLogic = object  # type: ignore[assignment,misc]

__all__ = ["SyntheticImagingLogic", "CaseNodes", "geometryFromVolumeNode", "MODULE_CHECKS"]


class SyntheticImagingLogic(JobsLogic, ScriptedLoadableModuleLogic):
    """Everything the module does, callable without its panel (see the module docstring for console use)."""

    readerStudyCase = staticmethod(readerStudyCase)

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        JobsLogic.__init__(self)

    def getParameterNode(self) -> Any:
        """The module's parameter node, wrapped (see :mod:`.parameters`)."""
        from .parameters import SyntheticImagingParameterNode

        return SyntheticImagingParameterNode(super().getParameterNode())
