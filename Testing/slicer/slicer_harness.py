"""What Slicer's application sets up and Qt-free slicer-core does not, shared by the MRML tests and the screenshot.

Imports nothing at module level: slicer-core's ``slicer`` package imports the modules of folders named ``slicer``
on ``sys.path`` while ``import slicer`` runs.
"""

from __future__ import annotations

__all__ = ["register_segmentation_converters"]


def register_segmentation_converters() -> None:
    """Register the labelmap <-> closed-surface conversion rules (once; Slicer's application does this at start)."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    rules = {factory.GetConverterRule(i).GetName() for i in range(factory.GetConverterRules().size())} \
        if hasattr(factory, "GetConverterRule") else set()
    for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule(),
                 slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule()):
        if rule.GetName() not in rules:
            factory.RegisterConverterRule(rule)
