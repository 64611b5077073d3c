"""``slicer.app`` and the services around it: qSlicerApplication, the layout manager (slice and 3D views backed by
the real MRML view nodes and slice logics), the module manager, the extensions manager, the DICOM database.

The MRML side is real (slicer-core): scene, ``vtkSlicerApplicationLogic``, slice logics, layout logic and the module
logics exposed as ``slicer.modules.<name>.logic()``. Only the Qt side is stood in for; nothing renders.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from .core import QObject, Signal
from .mrml import qSlicerScriptedLoadableModule
from .widgets import QApplication, QSettings, QThread, QWidget

__all__ = ["qSlicerApplication", "qSlicerLayoutManager", "qSlicerModuleManager", "ExtensionsManagerModel",
           "DicomDatabase", "CommandOptions", "CoreModule", "ModulesNamespace", "build_scene_services"]

#: (name in slicer.modules, slicer-core class name) of the module logics exposed; colors comes from the app logic.
MODULE_LOGICS = (("segmentations", "vtkSlicerSegmentationsModuleLogic"), ("volumes", "vtkSlicerVolumesLogic"),
                 ("tables", "vtkSlicerTablesLogic"), ("plots", "vtkSlicerPlotsLogic"),
                 ("markups", "vtkSlicerMarkupsLogic"), ("models", "vtkSlicerModelsLogic"),
                 ("subjecthierarchy", "vtkSlicerSubjectHierarchyModuleLogic"))
SLICE_VIEW_NAMES = ("Red", "Yellow", "Green")


@dataclasses.dataclass
class CommandOptions:
    """``slicer.app.commandOptions()``."""

    testingEnabled: bool = False
    noMainWindow: bool = False
    disableMessageHandlers: bool = False
    pythonScript: str = ""


class CoreModule:
    """A C++ module as seen from Python: ``slicer.modules.<name>.logic()``, ``.name``."""

    def __init__(self, name: str, logic: Any) -> None:
        self.name = name
        self._logic = logic

    def logic(self) -> Any:
        """The module's real logic (slicer-core)."""
        return self._logic

    def widgetRepresentation(self) -> None:
        """No panel for the C++ modules here."""
        return None


class ModulesNamespace:
    """``slicer.modules``: the modules by lower-case name (and ``<Name>Widget`` of scripted ones); an unknown name
    raises AttributeError as in Slicer."""

    def __repr__(self) -> str:
        return f"<slicer.modules {sorted(vars(self))}>"


class qMRMLThreeDView(QObject):
    """The 3D view of a threeDWidget: camera resets are accepted (nothing renders)."""

    def __init__(self, viewNode: Any) -> None:
        super().__init__(None)
        self._viewNode = viewNode
        self.resets = 0

    def mrmlViewNode(self) -> Any:
        """The real view node."""
        return self._viewNode

    def resetFocalPoint(self) -> None:
        """Counted."""
        self.resets += 1

    def resetCamera(self) -> None:
        """Counted."""
        self.resets += 1

    def forceRender(self) -> None:
        """Nothing renders."""

    def scheduleRender(self) -> None:
        """Nothing renders."""


class qMRMLThreeDWidget(QWidget):
    """A 3D view widget backed by a real vtkMRMLViewNode."""

    def __init__(self, viewNode: Any) -> None:
        super().__init__(None)
        self._view = qMRMLThreeDView(viewNode)

    def threeDView(self) -> qMRMLThreeDView:
        """The view."""
        return self._view

    def mrmlViewNode(self) -> Any:
        """The real view node."""
        return self._view.mrmlViewNode()


class qMRMLSliceView(QObject):
    """The slice view of a sliceWidget: a real vtkCornerAnnotation and a real (offscreen, never rendered)
    vtkRenderWindow with one renderer, so actors a module adds can be read back; rendering is a no-op."""

    def __init__(self) -> None:
        super().__init__(None)
        import vtk

        self._corner = vtk.vtkCornerAnnotation()
        self._renderWindow = vtk.vtkRenderWindow()
        self._renderWindow.SetOffScreenRendering(True)
        renderer = vtk.vtkRenderer()
        renderer.AddViewProp(self._corner)
        self._renderWindow.AddRenderer(renderer)

    def renderWindow(self) -> Any:
        """The view's render window (ctkVTKAbstractView::renderWindow)."""
        return self._renderWindow

    def cornerAnnotation(self) -> Any:
        """The corner annotation (a real VTK object: its text can be read back)."""
        return self._corner

    def forceRender(self) -> None:
        """Nothing renders."""

    def scheduleRender(self) -> None:
        """Nothing renders."""


class qMRMLSliceWidget(QWidget):
    """A slice view widget backed by a real vtkMRMLSliceLogic (its slice and composite nodes are in the scene)."""

    def __init__(self, sliceLogic: Any) -> None:
        super().__init__(None)
        self._logic = sliceLogic
        self._view = qMRMLSliceView()

    def sliceLogic(self) -> Any:
        """The real slice logic."""
        return self._logic

    def mrmlSliceNode(self) -> Any:
        """The real slice node."""
        return self._logic.GetSliceNode()

    def mrmlSliceCompositeNode(self) -> Any:
        """The real slice composite node."""
        return self._logic.GetSliceCompositeNode()

    def sliceView(self) -> qMRMLSliceView:
        """The view."""
        return self._view


class qSlicerLayoutManager(QObject):
    """The layout manager: ``setLayout(id)`` sets the real layout node's arrangement; slice and 3D widgets."""

    layoutChanged = Signal("layoutChanged(int)")

    def __init__(self, scene: Any, appLogic: Any) -> None:
        import slicer

        super().__init__(None)
        self._scene, self._appLogic = scene, appLogic
        self._layoutLogic = slicer.vtkMRMLLayoutLogic()
        self._layoutLogic.SetMRMLScene(scene)
        self._sliceWidgets: dict[str, qMRMLSliceWidget] = {}
        for name in SLICE_VIEW_NAMES:
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLScene(scene)
            logic.SetMRMLApplicationLogic(appLogic)
            logic.AddSliceNode(name)
            appLogic.GetSliceLogics().AddItem(logic)
            self._sliceWidgets[name] = qMRMLSliceWidget(logic)
        viewNode = scene.GetSingletonNode("1", "vtkMRMLViewNode")
        if viewNode is None:
            viewNode = slicer.vtkMRMLViewNode()
            viewNode.SetSingletonTag("1")
            viewNode.SetLayoutName("1")
            viewNode = scene.AddNode(viewNode)
        self._threeD = [qMRMLThreeDWidget(viewNode)]

    def release(self) -> None:
        """Detach the slice and layout logics from the scene (a scene Clear(1) with them attached never returns)."""
        for widget in self._sliceWidgets.values():
            widget.sliceLogic().SetMRMLScene(None)
        self._appLogic.GetSliceLogics().RemoveAllItems()
        self._layoutLogic.SetMRMLScene(None)

    @property
    def layout(self) -> int:
        """The current view arrangement."""
        return self._layoutLogic.GetLayoutNode().GetViewArrangement()

    @layout.setter
    def layout(self, layoutId: int) -> None:
        self.setLayout(layoutId)

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        return True if name == "layout" else super()._qtProperty(name)

    def setLayout(self, layoutId: int) -> None:
        """Switch the layout (a custom id must have been added to the layout node first, as in Slicer)."""
        node = self._layoutLogic.GetLayoutNode()
        if layoutId >= node.SlicerLayoutUserView and not node.IsLayoutDescription(layoutId):
            raise ValueError(f"layout {layoutId} has no description in the layout node")
        node.SetViewArrangement(layoutId)
        self._emit("layoutChanged", layoutId)

    def layoutLogic(self) -> Any:
        """The real vtkMRMLLayoutLogic."""
        return self._layoutLogic

    def sliceViewNames(self) -> list[str]:
        """Red, Yellow, Green."""
        return list(self._sliceWidgets)

    def sliceWidget(self, name: str) -> qMRMLSliceWidget | None:
        """A slice widget by view name (None if there is no such view, as in Slicer)."""
        return self._sliceWidgets.get(name)

    def mrmlSliceLogics(self) -> Any:
        """The vtkCollection of slice logics."""
        return self._appLogic.GetSliceLogics()

    def threeDViewCount(self) -> int:
        """One 3D view."""
        return len(self._threeD)

    def threeDWidget(self, index: int) -> qMRMLThreeDWidget | None:
        """A 3D widget by index."""
        return self._threeD[index] if 0 <= index < len(self._threeD) else None


class _FactoryManager:
    def __init__(self, manager: qSlicerModuleManager) -> None:
        self._manager = manager

    def loadedModuleNames(self) -> list[str]:
        return list(self._manager._modules)


class qSlicerModuleManager(QObject):
    """Module manager: ``module(name)``, moduleAboutToBeUnloaded(QString) (emitted by :meth:`unloadModule`)."""

    moduleAboutToBeUnloaded = Signal("moduleAboutToBeUnloaded(QString)")
    moduleLoaded = Signal("moduleLoaded(QString)")

    def __init__(self) -> None:
        super().__init__(None)
        self._modules: dict[str, Any] = {}

    def module(self, name: str) -> Any:
        """The module object (None when unknown)."""
        return self._modules.get(name)

    def factoryManager(self) -> _FactoryManager:
        """The factory manager (loadedModuleNames)."""
        return _FactoryManager(self)

    def register(self, name: str, module: Any) -> None:
        """Harness: a module is loaded."""
        self._modules[name] = module
        self._emit("moduleLoaded", name)

    def unloadModule(self, name: str) -> None:
        """Harness: what the application does on exit (the scripted widgets' cleanup() runs)."""
        self._emit("moduleAboutToBeUnloaded", name)
        self._modules.pop(name, None)


class ExtensionsManagerModel(QObject):
    """Extensions manager: installed extensions and install requests (recorded in ``requests``)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.installed: set[str] = set()
        self.requests: list[str] = []
        self.installSucceeds = True

    def isExtensionInstalled(self, name: str) -> bool:
        """Whether an extension is installed."""
        return name in self.installed

    def installExtensionFromServer(self, name: str, restart: bool = False, update: bool = False) -> bool:
        """Record the request; succeed per ``installSucceeds``."""
        self.requests.append(name)
        if self.installSucceeds:
            self.installed.add(name)
        return self.installSucceeds

    def installedExtensions(self) -> list[str]:
        """Installed extension names."""
        return sorted(self.installed)


class DicomDatabase(QObject):
    """Slicer's DICOM database (ctkDICOMDatabase) as ``DICOMUtils.importDicom`` and the module use it: indexing a
    folder reads every file's header with pydicom (files that are not DICOM are skipped, as ctkDICOMIndexer does)
    and files it under its patient, study and series UIDs."""

    def __init__(self, folder: str | Path | None = None) -> None:
        super().__init__(None)
        self.isOpen = True
        self.databaseFilename = str(Path(folder or tempfile.mkdtemp(prefix="dicomdb-")) / "ctkDICOM.sql")
        self.imports: list[str] = []
        self.files: list[str] = []
        self._series: dict[str, list[str]] = {}
        self._studies: dict[str, set[str]] = {}
        self._patients: dict[str, set[str]] = {}
        self._headers: dict[str, Any] = {}

    def insertDirectory(self, directory: str, copyFiles: bool = False) -> None:
        """Index every DICOM file under ``directory`` (called by ctkDICOMIndexer.addDirectory)."""
        import pydicom

        self.imports.append(str(directory))
        for path in sorted(Path(directory).rglob("*")):
            if not path.is_file():
                continue
            try:
                header = pydicom.dcmread(str(path), stop_before_pixels=True)
                patient, study, series = header.PatientID, header.StudyInstanceUID, header.SeriesInstanceUID
            except Exception:  # noqa: BLE001  (not DICOM: skipped, as the indexer does)
                continue
            file = str(path)
            self.files.append(file)
            self._headers[file] = header
            self._series.setdefault(str(series), []).append(file)
            self._studies.setdefault(str(study), set()).add(str(series))
            self._patients.setdefault(str(patient), set()).add(str(study))

    def allFiles(self) -> list[str]:
        """Every indexed file."""
        return list(self.files)

    def patients(self) -> list[str]:
        """Patient ids (the stand-in's patient keys are the DICOM PatientID)."""
        return sorted(self._patients)

    def studiesForPatient(self, patient: str) -> list[str]:
        """Study instance UIDs of a patient."""
        return sorted(self._patients.get(patient, ()))

    def seriesForStudy(self, study: str) -> list[str]:
        """Series instance UIDs of a study."""
        return sorted(self._studies.get(study, ()))

    def filesForSeries(self, series: str) -> list[str]:
        """Files of a series."""
        return list(self._series.get(series, []))

    def fileValue(self, file: str, tag: str) -> str:
        """A header value of an indexed file, by ``"gggg,eeee"`` tag."""
        group, element = (int(part, 16) for part in tag.split(","))
        header = self._headers.get(file)
        value = header.get((group, element)) if header is not None else None
        return "" if value is None else str(value.value)

    def closeDatabase(self) -> None:
        """Close."""
        self.isOpen = False


class qSlicerCoreIOManager(QObject):
    """``slicer.app.coreIOManager()`` for ``slicer.util.loadVolume``/``loadSegmentation``/``loadNodeFromFile``:
    files are read by Slicer's real logics from slicer-core (volumes: vtkSlicerVolumesLogic; segmentations:
    vtkSlicerSegmentationsModuleLogic.LoadSegmentationFromFile), as the application's readers do."""

    def __init__(self, modules: Any) -> None:
        super().__init__(None)
        self._modules = modules

    @staticmethod
    def fileType(filename: str) -> str:
        """``SegmentationFile`` for ``.seg.nrrd``, else ``VolumeFile``."""
        return "SegmentationFile" if str(filename).lower().endswith(".seg.nrrd") else "VolumeFile"

    def loadNodes(self, fileType: str, properties: dict[str, Any], loadedNodes: Any = None,
                  userMessages: Any = None) -> bool:
        """Load ``properties["fileName"]``; add the node to ``loadedNodes``. Returns False (with a message) on
        failure, as Slicer's IO manager does."""
        filename = str(properties["fileName"])
        name = properties.get("name") or Path(filename).name.split(".")[0]
        node = None
        if fileType == "VolumeFile":
            labelmap = 1 if properties.get("labelmap") else 0
            node = self._modules.volumes.logic().AddArchetypeVolume(filename, name, labelmap)
        elif fileType == "SegmentationFile":
            node = self._modules.segmentations.logic().LoadSegmentationFromFile(filename, True, name)
        if node is None:
            if userMessages is not None:
                userMessages.AddMessage(0, f"cannot read {filename} as {fileType}")
            return False
        if loadedNodes is not None:
            loadedNodes.AddItem(node)
        return True


class qSlicerMainWindow(QWidget):
    """The main window (so slicer.util.mainWindow() finds one and message boxes are shown, i.e. recorded)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.objectName = "qSlicerMainWindow"


class qSlicerApplication(QObject):
    """``slicer.app``: what the module and Slicer's Python layer call on it. Testing mode is off (as for a user),
    so slicer.util shows (records) its message boxes; set ``testing=True`` to get Slicer's testing behaviour."""

    aboutToQuit = Signal("aboutToQuit()")
    startupCompleted = Signal("startupCompleted()")
    applicationName = "Slicer"
    applicationVersion = "5.12.0"
    majorVersion, minorVersion = 5, 12
    documentationBaseUrl = "https://slicer.readthedocs.io/en/5.12/"

    def __init__(self, scene: Any, appLogic: Any, home: Path, testing: bool = False) -> None:
        super().__init__(None)
        self._scene, self._appLogic = scene, appLogic
        self._layoutManager = qSlicerLayoutManager(scene, appLogic)
        self._moduleManager = qSlicerModuleManager()
        self._extensions = ExtensionsManagerModel()
        self._options = CommandOptions(testingEnabled=testing)
        self._mainWindow = qSlicerMainWindow()
        self.temporaryPath = str(home / "tmp")
        self.slicerHome = str(home / "Slicer")
        self.restartRequests = 0
        self.processedEvents = 0
        Path(self.temporaryPath).mkdir(parents=True, exist_ok=True)

    def testingEnabled(self) -> bool:
        """Slicer's testing mode."""
        return self._options.testingEnabled

    def commandOptions(self) -> CommandOptions:
        """Command-line options."""
        return self._options

    def processEvents(self, *args: Any) -> None:
        """Counted (nothing is queued: timers are fired with runtime.process_timers())."""
        self.processedEvents += 1

    def applicationLogic(self) -> Any:
        """The real vtkSlicerApplicationLogic."""
        return self._appLogic

    def mrmlScene(self) -> Any:
        """The scene."""
        return self._scene

    def layoutManager(self) -> qSlicerLayoutManager:
        """The layout manager."""
        return self._layoutManager

    def moduleManager(self) -> qSlicerModuleManager:
        """The module manager."""
        return self._moduleManager

    def extensionsManagerModel(self) -> ExtensionsManagerModel:
        """The extensions manager."""
        return self._extensions

    def mainWindow(self) -> qSlicerMainWindow:
        """The main window."""
        return self._mainWindow

    def coreIOManager(self) -> qSlicerCoreIOManager:
        """The IO manager (``slicer.util.loadVolume`` and friends)."""
        import slicer

        return qSlicerCoreIOManager(slicer.modules)

    ioManager = coreIOManager

    def topLevelWidgets(self) -> list[QWidget]:
        """The main window."""
        return [self._mainWindow]

    def settings(self) -> QSettings:
        """Application settings."""
        return QSettings()

    userSettings = settings
    revisionUserSettings = settings

    def translate(self, context: str, text: str) -> str:
        """No translation (English)."""
        return text

    def setOverrideCursor(self, cursor: Any) -> None:
        """Push an override cursor."""
        QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self) -> None:
        """Pop the override cursor."""
        QApplication.restoreOverrideCursor()

    def overrideCursor(self) -> Any:
        """The override cursor."""
        return QApplication.overrideCursor()

    def keyboardModifiers(self) -> int:
        """No key held."""
        return QApplication.keyboardModifiers()

    def thread(self) -> QThread:
        """The main thread."""
        return QThread.currentThread()

    def restart(self) -> None:
        """Counted (nothing restarts)."""
        self.restartRequests += 1

    def moduleDocumentationUrl(self, moduleName: str) -> str:
        """Documentation URL of a module."""
        return f"{self.documentationBaseUrl}user_guide/modules/{moduleName.lower()}.html"


def build_scene_services(scene: Any) -> tuple[Any, ModulesNamespace]:
    """The application logic and the module logics of a fresh scene (as Slicer's application sets them up)."""
    import slicer
    import vtk

    appLogic = slicer.vtkSlicerApplicationLogic()
    appLogic.SetMRMLScene(scene)
    appLogic.SetSliceLogics(vtk.vtkCollection())
    appLogic.SetViewLogics(vtk.vtkCollection())
    colors = appLogic.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    modules = ModulesNamespace()
    modules.colors = CoreModule("Colors", colors)
    for name, className in MODULE_LOGICS:
        logic = getattr(slicer, className)()
        if hasattr(logic, "SetMRMLApplicationLogic"):
            logic.SetMRMLApplicationLogic(appLogic)
        logic.SetMRMLScene(scene)
        setattr(modules, name, CoreModule(name, logic))
    return appLogic, modules


def register_module(app: qSlicerApplication, modules: ModulesNamespace, module: qSlicerScriptedLoadableModule) -> None:
    """A scripted module is loaded: ``slicer.modules.<name>`` and the module manager know it."""
    setattr(modules, module.name.lower(), module)
    app.moduleManager().register(module.name, module)
