"""Showing the module's results in Slicer's views: a case with its segmentation, the compare layout, tables
and plots, files. Needs the Slicer application (layout manager); everything that builds nodes is in the logic.
"""

from __future__ import annotations

import os
from typing import Any

import qt
import slicer
import vtk

from .nodes import segmentationDisplay

__all__ = ["showCase", "showAdherenceCase", "showCompare", "showResults", "openPath", "setViewTitle",
           "clearViewTitles", "COMPARE_LAYOUT_ID"]

#: Layout id of the side-by-side compare layout (any id Slicer does not use).
COMPARE_LAYOUT_ID = 31501
_COMPARE_LAYOUT = """
<layout type="horizontal" split="true">
 <item>
  <view class="vtkMRMLSliceNode" singletontag="Red">
   <property name="orientation" action="default">Axial</property>
   <property name="viewlabel" action="default">R</property>
   <property name="viewcolor" action="default">#F34A33</property>
  </view>
 </item>
 <item>
  <view class="vtkMRMLSliceNode" singletontag="Yellow">
   <property name="orientation" action="default">Axial</property>
   <property name="viewlabel" action="default">Y</property>
   <property name="viewcolor" action="default">#EDD54C</property>
  </view>
 </item>
</layout>
"""


def _lesionCenter(segmentationNode: Any) -> tuple[float, float, float] | None:
    segmentation = segmentationNode.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        center = segmentationNode.GetSegmentCenterRAS(segmentation.GetNthSegmentID(i))
        if center is not None:
            return tuple(center)
    return None


def _showSegmentation(segmentationNode: Any, *, show3D: bool, viewNodeIDs: list[str] | None = None) -> None:
    display = segmentationDisplay(segmentationNode)
    display.SetVisibility(True)
    display.SetVisibility2DFill(True)
    display.SetVisibility2DOutline(True)
    display.SetVisibility3D(show3D)
    display.RemoveAllViewNodeIDs()
    for viewNodeID in viewNodeIDs or []:
        display.AddViewNodeID(viewNodeID)
    if show3D:
        segmentationNode.CreateClosedSurfaceRepresentation()


#: Title text actors by slice view name (one per view; replaced or removed by the next view change).
_titles: dict[str, Any] = {}


def setViewTitle(sliceWidget: Any, title: str) -> Any:
    """Show ``title`` at the top of a slice view in a text actor of its own.

    Not in the view's corner annotation: the Data Probe module rewrites those corners whenever the slice moves,
    so a title put there disappears at the first scroll. A separate 2D actor in the view's renderer is left alone.
    """
    name = sliceWidget.mrmlSliceNode().GetName()
    renderer = sliceWidget.sliceView().renderWindow().GetRenderers().GetFirstRenderer()
    actor = _titles.get(name)
    if actor is None:
        actor = vtk.vtkTextActor()
        actor.SetTextScaleModeToNone()
        actor.GetTextProperty().SetFontSize(16)
        actor.GetTextProperty().SetColor(1.0, 1.0, 0.6)
        actor.GetTextProperty().SetShadow(True)
        actor.GetTextProperty().SetJustificationToCentered()
        actor.GetTextProperty().SetVerticalJustificationToTop()
        actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        actor.SetPosition(0.5, 0.97)
        _titles[name] = actor
    if not renderer.HasViewProp(actor):
        renderer.AddActor2D(actor)
    actor.SetInput(title)
    actor.SetVisibility(True)
    sliceWidget.sliceView().scheduleRender()
    return actor


def clearViewTitles() -> None:
    """Hide the titles :func:`setViewTitle` put in the slice views."""
    for actor in _titles.values():
        actor.SetVisibility(False)


def showCase(caseNodes: Any, *, show3D: bool = True) -> None:
    """The case's first channel in the slice views, its segmentation overlaid and (``show3D``) as surfaces in the
    3D view; the slices are moved to the lesion."""
    layoutManager = slicer.app.layoutManager()
    layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    clearViewTitles()
    slicer.util.setSliceViewerLayers(background=caseNodes.referenceVolume, foreground=None, label=None, fit=True)
    segmentation = caseNodes.segmentation
    if segmentation is None:
        return
    _showSegmentation(segmentation, show3D=show3D)
    center = _lesionCenter(segmentation)
    if center is not None:
        for name in layoutManager.sliceViewNames():
            layoutManager.sliceWidget(name).mrmlSliceNode().JumpSliceByOffsetting(*center)
    if show3D:
        threeDView = layoutManager.threeDWidget(0).threeDView()
        threeDView.resetFocalPoint()


def showAdherenceCase(caseNodes: Any) -> None:
    """A case from the logic's ``loadAdherenceCase``: its label filled and the reference segmenter's prediction
    outlined over the first channel in the slice views (the logic styled both), slices at the lesion."""
    layoutManager = slicer.app.layoutManager()
    layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    clearViewTitles()
    slicer.util.setSliceViewerLayers(background=caseNodes.referenceVolume, foreground=None, label=None, fit=True)
    for node in (caseNodes.segmentation, caseNodes.prediction):
        if node is not None and node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetVisibility(True)
    center = _lesionCenter(caseNodes.segmentation) if caseNodes.segmentation is not None else None
    if center is None and caseNodes.prediction is not None:
        center = _lesionCenter(caseNodes.prediction)
    if center is not None:
        for name in layoutManager.sliceViewNames():
            layoutManager.sliceWidget(name).mrmlSliceNode().JumpSliceByOffsetting(*center)


def showCompare(left: Any, right: Any, leftTitle: str, rightTitle: str) -> None:
    """Two cases side by side (left: Red view, right: Yellow view), both axial, slices linked, each view showing
    only its own case and segmentation."""
    layoutManager = slicer.app.layoutManager()
    layoutNode = layoutManager.layoutLogic().GetLayoutNode()
    if not layoutNode.IsLayoutDescription(COMPARE_LAYOUT_ID):
        layoutNode.AddLayoutDescription(COMPARE_LAYOUT_ID, _COMPARE_LAYOUT)
    layoutManager.setLayout(COMPARE_LAYOUT_ID)
    for viewName, nodes, title in (("Red", left, leftTitle), ("Yellow", right, rightTitle)):
        sliceWidget = layoutManager.sliceWidget(viewName)
        sliceNode = sliceWidget.mrmlSliceNode()
        sliceNode.SetOrientation("Axial")
        composite = sliceWidget.mrmlSliceCompositeNode()
        composite.SetBackgroundVolumeID(nodes.referenceVolume.GetID())
        composite.SetForegroundVolumeID(None)
        composite.SetLabelVolumeID(None)
        composite.SetLinkedControl(True)
        composite.SetHotLinkedControl(True)
        if nodes.segmentation is not None:
            _showSegmentation(nodes.segmentation, show3D=False, viewNodeIDs=[sliceNode.GetID()])
        sliceWidget.sliceLogic().FitSliceToAll()
        setViewTitle(sliceWidget, title)
    if left.segmentation is not None:
        center = _lesionCenter(left.segmentation)
        if center is not None:
            layoutManager.sliceWidget("Red").mrmlSliceNode().JumpSliceByOffsetting(*center)


def showResults(tableNode: Any | None = None, chartNode: Any | None = None) -> None:
    """A table in the table view and a chart in the plot view (layout with both)."""
    slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
    if tableNode is not None:
        applicationLogic = slicer.app.applicationLogic()
        applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
        applicationLogic.PropagateTableSelection()
    if chartNode is not None:
        slicer.modules.plots.logic().ShowChartInLayout(chartNode)


def openPath(path: str | os.PathLike[str]) -> None:
    """Open a file or folder with the system's application for it (the HTML report in the web browser)."""
    qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(path)))
