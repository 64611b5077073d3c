"""Stand-ins for the compiled qMRML / qSlicer widget classes (``slicer.qMRML*`` in Slicer), on the real MRML scene.

The node combo boxes list the nodes of their ``nodeTypes`` found in the real ``vtkMRMLScene`` they are given
(observing it, so added and removed nodes show up), as Slicer's do.
"""

from __future__ import annotations

import weakref
from typing import Any

from .core import QObject, Qt, QtProperty, Signal, getter, setter
from .ctk import NotEmulated
from .widgets import QWidget

__all__ = ["qMRMLWidget", "qSlicerWidget", "qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox",
           "qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget", "qSlicerScriptedLoadableModuleWidget",
           "qSlicerScriptedLoadableModule", "qSlicerAbstractCoreModule"]


#: Every node combo box alive, so the runtime can detach them from its scene when it is uninstalled.
_COMBOS: weakref.WeakSet[qMRMLNodeComboBox] = weakref.WeakSet()


def detach_all_combo_boxes() -> None:
    """Stop every node combo box observing its scene (the runtime's scene is about to go)."""
    for combo in list(_COMBOS):
        combo.setMRMLScene(None)


class qMRMLWidget(QWidget):
    """qMRMLWidget: ``setMRMLScene(scene)`` stores it and emits mrmlSceneChanged(vtkMRMLScene*) (the .ui connects
    that signal to its node combo boxes' setMRMLScene)."""

    mrmlSceneChanged = Signal("mrmlSceneChanged(vtkMRMLScene*)")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene: Any = None

    def mrmlScene(self) -> Any:
        """The scene."""
        return self._scene

    def setMRMLScene(self, scene: Any) -> None:
        """Set the scene and tell the connected widgets."""
        if scene is self._scene:
            return
        self._scene = scene
        self._emit("mrmlSceneChanged", scene)


class qSlicerWidget(qMRMLWidget):
    """qSlicerWidget (parameterNodeWrapper's generated GUIs use it)."""


class qMRMLNodeComboBox(QWidget):
    """qMRMLNodeComboBox over a real scene: nodeTypes, noneEnabled, currentNode()/setCurrentNode(), nodes(),
    currentNodeChanged(vtkMRMLNode*) (and its (bool) overload), currentNodeID. Without noneEnabled the first node
    is selected as soon as there is one, as Slicer does."""

    nodeTypes = QtProperty([])
    hideChildNodeTypes = QtProperty([])
    showChildNodeTypes = QtProperty(True, convert=bool)
    showHidden = QtProperty(False, convert=bool)
    noneEnabled = QtProperty(False, convert=bool)
    addEnabled = QtProperty(True, convert=bool)
    removeEnabled = QtProperty(True, convert=bool)
    editEnabled = QtProperty(False, convert=bool)
    renameEnabled = QtProperty(False, convert=bool)
    selectNodeUponCreation = QtProperty(True, convert=bool)
    noneDisplay = QtProperty("None", convert=str)
    baseName = QtProperty("", convert=str)
    currentNodeChanged = Signal("currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)")
    currentNodeIDChanged = Signal("currentNodeIDChanged(QString)")
    nodeAdded = Signal("nodeAdded(vtkMRMLNode*)")
    nodeAboutToBeRemoved = Signal("nodeAboutToBeRemoved(vtkMRMLNode*)")
    nodeActivated = Signal("nodeActivated(vtkMRMLNode*)")
    nodeAddedByUser = Signal("nodeAddedByUser(vtkMRMLNode*)")
    setNodeTypes = setter("nodeTypes")
    setHideChildNodeTypes = setter("hideChildNodeTypes")
    setShowChildNodeTypes = setter("showChildNodeTypes")
    setShowHidden = setter("showHidden")
    setNoneEnabled = setter("noneEnabled")
    setAddEnabled = setter("addEnabled")
    setRemoveEnabled = setter("removeEnabled")
    setEditEnabled = setter("editEnabled")
    setRenameEnabled = setter("renameEnabled")
    setSelectNodeUponCreation = setter("selectNodeUponCreation")
    setNoneDisplay = setter("noneDisplay")
    setBaseName = setter("baseName")
    isNoneEnabled = getter("noneEnabled")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene: Any = None
        self._observers: list[int] = []
        self._current: Any = None
        self._attributes: dict[str, Any] = {}
        _COMBOS.add(self)

    # -- scene --------------------------------------------------------------------------------------------------
    def mrmlScene(self) -> Any:
        """The scene."""
        return self._scene

    def setMRMLScene(self, scene: Any) -> None:
        """List the nodes of this scene (and follow its changes)."""
        if scene is self._scene:
            return
        if self._scene is not None:
            for tag in self._observers:
                self._scene.RemoveObserver(tag)
        self._observers = []
        self._scene = scene
        if scene is not None:
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent, scene.EndImportEvent):
                self._observers.append(scene.AddObserver(event, self._onSceneChanged))
        self._refresh()

    def _onSceneChanged(self, caller: Any, event: Any) -> None:
        if self._scene is not None and self._scene.IsClosing():
            return  # nodes go one by one while closing; refreshed at EndCloseEvent
        self._refresh()

    def _matches(self, node: Any) -> bool:
        if node is None:
            return False
        if not self.showHidden and node.GetHideFromEditors():
            return False
        if not any(node.IsA(t) if self.showChildNodeTypes else node.GetClassName() == t for t in self.nodeTypes):
            return False
        if any(node.IsA(t) for t in self.hideChildNodeTypes):
            return False
        return all(node.GetAttribute(k) == (None if v is None else str(v)) for k, v in self._attributes.items())

    def nodes(self) -> list[Any]:
        """The listed nodes, in scene order."""
        if self._scene is None:
            return []
        found = []
        for i in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(i)
            if self._matches(node):
                found.append(node)
        return found

    def nodeCount(self) -> int:
        """Number of listed nodes."""
        return len(self.nodes())

    def _refresh(self) -> None:
        listed = self.nodes()
        current = self._current if any(n is self._current for n in listed) else None
        if current is None and not self.noneEnabled and listed:
            current = listed[0]
        self._select(current)

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        if name in ("nodeTypes", "noneEnabled", "showHidden", "showChildNodeTypes", "hideChildNodeTypes"):
            self._refresh()

    # -- current node -------------------------------------------------------------------------------------------
    def _select(self, node: Any) -> None:
        if node is self._current:
            return
        self._current = node
        self._emit("currentNodeIDChanged", node.GetID() if node is not None else "")
        self._emit("currentNodeChanged", node)

    def currentNode(self) -> Any:
        """The selected node (None: none)."""
        return self._current

    @property
    def currentNodeID(self) -> str:
        """ID of the selected node ("" for none)."""
        return self._current.GetID() if self._current is not None else ""

    @currentNodeID.setter
    def currentNodeID(self, nodeID: str) -> None:
        self.setCurrentNodeID(nodeID)

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        return True if name == "currentNodeID" else super()._qtProperty(name)

    def setCurrentNode(self, node: Any) -> None:
        """Select a listed node; None (or a node that is not listed) selects none, as in Slicer."""
        if node is not None and not any(n is node for n in self.nodes()):
            node = None
        if node is None and not self.noneEnabled and self.nodes():
            node = self.nodes()[0] if self._current is None else self._current
        self._select(node)

    def setCurrentNodeID(self, nodeID: str) -> None:
        """Select by node ID."""
        self.setCurrentNode(self._scene.GetNodeByID(nodeID) if self._scene is not None and nodeID else None)

    def setCurrentNodeIndex(self, index: int) -> None:
        """Select the ``index``-th listed node."""
        listed = self.nodes()
        self.setCurrentNode(listed[index] if 0 <= index < len(listed) else None)

    def addAttribute(self, nodeType: str, name: str, value: Any = None) -> None:
        """List only nodes with this attribute value."""
        self._attributes[name] = value
        self._refresh()

    def removeAttribute(self, nodeType: str, name: str) -> None:
        """Drop an attribute filter."""
        self._attributes.pop(name, None)
        self._refresh()

    def addNode(self, nodeType: str | None = None) -> Any:
        """The user's 'Create new node' action: a node of the (first) type, selected."""
        if self._scene is None:
            return None
        node = self._scene.AddNewNodeByClass(nodeType or self.nodeTypes[0], self.baseName or "")
        self._emit("nodeAddedByUser", node)
        self.setCurrentNode(node)
        return node


class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):
    """qMRMLCheckableNodeComboBox: check state per listed node, checkedNodes(), checkedNodesChanged()."""

    checkedNodesChanged = Signal("checkedNodesChanged()")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._checked: list[Any] = []

    def _refresh(self) -> None:
        super()._refresh()
        listed = self.nodes()
        kept = [n for n in self._checked if any(n is m for m in listed)]
        if len(kept) != len(self._checked):
            self._checked = kept
            self._emit("checkedNodesChanged")

    def setCheckState(self, node: Any, state: int) -> None:
        """Check or uncheck a listed node."""
        if not any(node is n for n in self.nodes()):
            raise ValueError(f"{self.objectName}: {node.GetName() if node else node!r} is not listed")
        checked = any(node is n for n in self._checked)
        if int(state) == int(Qt.Checked) and not checked:
            self._checked.append(node)
        elif int(state) != int(Qt.Checked) and checked:
            self._checked = [n for n in self._checked if n is not node]
        else:
            return
        self._emit("checkedNodesChanged")

    def checkState(self, node: Any) -> int:
        """Qt.Checked or Qt.Unchecked."""
        return Qt.Checked if any(node is n for n in self._checked) else Qt.Unchecked

    def check(self, node: Any) -> None:
        """Check a node."""
        self.setCheckState(node, Qt.Checked)

    def uncheck(self, node: Any) -> None:
        """Uncheck a node."""
        self.setCheckState(node, Qt.Unchecked)

    def checkedNodes(self) -> list[Any]:
        """Checked nodes, in scene order."""
        return [n for n in self.nodes() if any(n is c for c in self._checked)]

    def uncheckedNodes(self) -> list[Any]:
        """Unchecked nodes."""
        return [n for n in self.nodes() if not any(n is c for c in self._checked)]

    def allChecked(self) -> bool:
        """Every node checked."""
        return not self.uncheckedNodes()

    def noneChecked(self) -> bool:
        """No node checked."""
        return not self.checkedNodes()


class qMRMLSliderWidget(NotEmulated):
    """Not emulated."""


class qMRMLSpinBox(NotEmulated):
    """Not emulated."""


class qMRMLRangeWidget(NotEmulated):
    """Not emulated."""


class qSlicerAbstractCoreModule(QObject):
    """Base of module objects."""


class qSlicerScriptedLoadableModule(qSlicerAbstractCoreModule):
    """What Slicer hands a scripted module's ``__init__`` as ``parent``: title, categories, help... and ``path``
    (the module file); ``widgetRepresentation()`` is the panel once created."""

    def __init__(self, path: str, name: str) -> None:
        super().__init__(None)
        self.path = path
        self.name = name
        self.title = ""
        self.categories: list[str] = []
        self.dependencies: list[str] = []
        self.contributors: list[str] = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.icon: Any = None
        self.hidden = False
        self._widget: qSlicerScriptedLoadableModuleWidget | None = None
        self._self: Any = None

    def self(self) -> Any:
        """The Python module object."""
        return self._self

    def widgetRepresentation(self) -> qSlicerScriptedLoadableModuleWidget | None:
        """The module panel."""
        return self._widget

    createNewWidgetRepresentation = widgetRepresentation

    def logic(self) -> None:
        """Scripted modules have no C++ logic."""
        return None


class qSlicerScriptedLoadableModuleWidget(QWidget):
    """The panel a scripted module's widget is built into: a QWidget with a vertical layout, ``isEntered``,
    ``self()`` (the Python widget), ``module()``."""

    def __init__(self, module: qSlicerScriptedLoadableModule | None = None) -> None:
        super().__init__(None)
        from .widgets import QVBoxLayout

        self.setLayout(QVBoxLayout())
        self.isEntered = False
        self._module = module
        self._self: Any = None
        self._scene: Any = None

    def self(self) -> Any:
        """The Python widget object."""
        return self._self

    def module(self) -> qSlicerScriptedLoadableModule | None:
        """The module."""
        return self._module

    def mrmlScene(self) -> Any:
        """The scene."""
        return self._scene

    def setMRMLScene(self, scene: Any) -> None:
        """Set the scene."""
        self._scene = scene
