"""Stand-ins for the CTK widget classes (module ``ctk`` in Slicer) used by the module's .ui and Slicer's Python layer.

Classes that Slicer's parameter-node connectors only compare types against (``type(widget) in (ctk.ctkSliderWidget,
...)``) exist as :class:`NotEmulated` subclasses: they can be named but not built, so a .ui that starts using one
fails loudly instead of running on a guess.
"""

from __future__ import annotations

from typing import Any

from .core import Qt, QtProperty, Signal, getter, setter
from .widgets import (
    QAbstractButton,
    QComboBox,
    QGroupBox,
    QMessageBox,
    QModelIndex,
    QStandardItemModel,
    QWidget,
)

__all__ = [
    "ctkCollapsibleButton", "ctkCollapsibleGroupBox", "ctkPathLineEdit", "ctkRangeWidget", "ctkCheckableComboBox",
    "ctkMessageBox", "ctkDICOMIndexer", "NotEmulated", "ctkCheckBox", "ctkCheckablePushButton", "ctkSliderWidget",
    "ctkDoubleSlider", "ctkDoubleSpinBox", "ctkComboBox", "ctkDoubleRangeSlider", "ctkDirectoryButton",
    "ctkColorPickerButton",
]


class ctkCollapsibleButton(QAbstractButton):
    """ctkCollapsibleButton: a checkable button whose ``collapsed`` is ``not checked``; contentsCollapsed(bool)."""

    collapsedHeight = QtProperty(10, convert=int)
    flat = QtProperty(False, convert=bool)
    contentsCollapsed = Signal("contentsCollapsed(bool)")
    setCollapsedHeight = setter("collapsedHeight")

    def __init__(self, text: str | QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.checkable = True
        self.checked = True

    @property
    def collapsed(self) -> bool:
        """Contents hidden."""
        return not self.checked

    @collapsed.setter
    def collapsed(self, value: bool) -> None:
        self.checked = not value

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        return True if name == "collapsed" else super()._qtProperty(name)

    def setCollapsed(self, value: bool) -> None:
        """Collapse or expand."""
        self.collapsed = value

    def collapse(self, value: bool) -> None:
        """Collapse or expand (slot)."""
        self.collapsed = value

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        if name == "checked":
            self._emit("contentsCollapsed", not new)


class ctkCollapsibleGroupBox(QGroupBox):
    """ctkCollapsibleGroupBox: ``collapsed`` (= not checked)."""

    collapsedHeight = QtProperty(14, convert=int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.checkable = True

    @property
    def collapsed(self) -> bool:
        """Contents hidden."""
        return not self.checked

    @collapsed.setter
    def collapsed(self, value: bool) -> None:
        self.checked = not value

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        return True if name == "collapsed" else super()._qtProperty(name)

    def setCollapsed(self, value: bool) -> None:
        """Collapse or expand."""
        self.collapsed = value

    def expand(self, value: bool) -> None:
        """Expand (or collapse)."""
        self.collapsed = not value


class ctkPathLineEdit(QWidget):
    """ctkPathLineEdit: ``currentPath`` (currentPathChanged(QString)), ``filters``, ``nameFilters``."""

    Dirs, Files, Drives, NoSymLinks, AllEntries = 0x001, 0x002, 0x004, 0x008, 0x007
    TypeMask, Readable, Writable, Executable, PermissionMask = 0x00F, 0x010, 0x020, 0x040, 0x070
    Modified, Hidden, System, AccessMask = 0x080, 0x100, 0x200, 0x3F0
    AllDirs, CaseSensitive, NoDot, NoDotDot, NoDotAndDotDot, NoFilter = 0x400, 0x800, 0x2000, 0x4000, 0x6000, -1
    currentPath = QtProperty("", notify="currentPathChanged", convert=str)
    filters = QtProperty(0x007 | 0x010)
    nameFilters = QtProperty([])
    settingKey = QtProperty("", convert=str)
    label = QtProperty("", convert=str)
    showBrowseButton = QtProperty(True, convert=bool)
    showHistoryButton = QtProperty(True, convert=bool)
    currentPathChanged = Signal("currentPathChanged(QString)")
    validInputChanged = Signal("validInputChanged(bool)")
    setCurrentPath = setter("currentPath")
    setFilters = setter("filters")
    setNameFilters = setter("nameFilters")
    setSettingKey = setter("settingKey")
    setLabel = setter("label")
    setShowBrowseButton = setter("showBrowseButton")
    setShowHistoryButton = setter("showHistoryButton")

    def addCurrentPathToHistory(self) -> None:
        """No history here."""


class ctkRangeWidget(QWidget):
    """ctkRangeWidget: range [minimum, maximum] (default 0..99), values [minimumValue, maximumValue] kept inside it
    and rounded to ``decimals`` (default 2); valuesChanged(double,double) once per change."""

    decimals = QtProperty(2, convert=int)
    singleStep = QtProperty(1.0, convert=float)
    prefix = QtProperty("", convert=str)
    suffix = QtProperty("", convert=str)
    tracking = QtProperty(True, convert=bool)
    symmetricMoves = QtProperty(False, convert=bool)
    valuesChanged = Signal("valuesChanged(double,double)")
    minimumValueChanged = Signal("minimumValueChanged(double)")
    maximumValueChanged = Signal("maximumValueChanged(double)")
    rangeChanged = Signal("rangeChanged(double,double)")
    setDecimals = setter("decimals")
    setSingleStep = setter("singleStep")
    setPrefix = setter("prefix")
    setSuffix = setter("suffix")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._range = [0.0, 99.0]
        self._lower, self._upper = 0.0, 99.0

    def _set(self, lower: float, upper: float) -> None:
        lower, upper = sorted((float(lower), float(upper)))
        lower = round(max(self._range[0], min(self._range[1], lower)), self.decimals)
        upper = round(max(self._range[0], min(self._range[1], upper)), self.decimals)
        old = (self._lower, self._upper)
        self._lower, self._upper = lower, upper
        if lower != old[0]:
            self._emit("minimumValueChanged", lower)
        if upper != old[1]:
            self._emit("maximumValueChanged", upper)
        if (lower, upper) != old:
            self._emit("valuesChanged", lower, upper)

    @property
    def minimum(self) -> float:
        """Lower bound of the range."""
        return self._range[0]

    @minimum.setter
    def minimum(self, value: float) -> None:
        self.setRange(value, max(value, self._range[1]))

    @property
    def maximum(self) -> float:
        """Upper bound of the range."""
        return self._range[1]

    @maximum.setter
    def maximum(self, value: float) -> None:
        self.setRange(min(value, self._range[0]), value)

    @property
    def minimumValue(self) -> float:
        """Lower value."""
        return self._lower

    @minimumValue.setter
    def minimumValue(self, value: float) -> None:
        self._set(value, max(value, self._upper))

    @property
    def maximumValue(self) -> float:
        """Upper value."""
        return self._upper

    @maximumValue.setter
    def maximumValue(self, value: float) -> None:
        self._set(min(value, self._lower), value)

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        if name in ("minimum", "maximum", "minimumValue", "maximumValue"):
            return True
        return super()._qtProperty(name)

    def setRange(self, minimum: float, maximum: float) -> None:
        """Set the range (values clamped into it)."""
        old = tuple(self._range)
        self._range = [float(minimum), float(max(minimum, maximum))]
        if tuple(self._range) != old:
            self._emit("rangeChanged", *self._range)
        self._set(self._lower, self._upper)

    def setMinimum(self, value: float) -> None:
        """Lower bound of the range."""
        self.minimum = value

    def setMaximum(self, value: float) -> None:
        """Upper bound of the range."""
        self.maximum = value

    def setValues(self, minimumValue: float, maximumValue: float) -> None:
        """Both values."""
        self._set(minimumValue, maximumValue)

    def setMinimumValue(self, value: float) -> None:
        """Lower value."""
        self.minimumValue = value

    def setMaximumValue(self, value: float) -> None:
        """Upper value."""
        self.maximumValue = value

    def values(self) -> tuple[float, float]:
        """(lower, upper)."""
        return self._lower, self._upper

    def range(self) -> tuple[float, float]:
        """(minimum, maximum)."""
        return self._range[0], self._range[1]


class ctkCheckableComboBox(QComboBox):
    """ctkCheckableComboBox: every item has a check state; checkedIndexesChanged() when they change."""

    checkedIndexesChanged = Signal("checkedIndexesChanged()")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = QStandardItemModel(self)

    def checkableModel(self) -> QStandardItemModel:
        """The item model (rows = items)."""
        return self._model

    def _row(self, index: QModelIndex) -> int:
        if not isinstance(index, QModelIndex) or index.model() is not self._model or not index.isValid():
            raise TypeError(f"{self.objectName}: {index!r} is not a valid index of this combo box's model")
        return index.row()

    def setCheckState(self, index: QModelIndex, state: int) -> None:
        """Check or uncheck one item."""
        row = self._row(index)
        if self._items[row][2] != int(state):
            self._items[row][2] = int(state)
            self._emit("checkedIndexesChanged")

    def checkState(self, index: QModelIndex) -> int:
        """Qt.Checked / Qt.Unchecked."""
        return Qt.Checked if self._items[self._row(index)][2] == int(Qt.Checked) else Qt.Unchecked

    def checkedIndexes(self) -> list[QModelIndex]:
        """Indexes of the checked items."""
        return [self._model.index(r, 0) for r, item in enumerate(self._items) if item[2] == int(Qt.Checked)]

    def allChecked(self) -> bool:
        """Every item checked."""
        return all(item[2] == int(Qt.Checked) for item in self._items)

    def noneChecked(self) -> bool:
        """No item checked."""
        return not self.checkedIndexes()

    def toggle(self, text: str) -> None:
        """Test helper: the user clicks the check box of the item with this text."""
        row = self.findText(text)
        if row < 0:
            raise ValueError(f"{self.objectName}: no item {text!r}")
        index = self._model.index(row, 0)
        self.setCheckState(index, Qt.Unchecked if self.checkState(index) == Qt.Checked else Qt.Checked)


class ctkMessageBox(QMessageBox):
    """ctkMessageBox (what slicer.util.messageBox shows): recorded like :class:`QMessageBox`."""

    dontShowAgain = QtProperty(False, convert=bool)
    dontShowAgainSettingsKey = QtProperty("", convert=str)
    dontShowAgainVisible = QtProperty(False, convert=bool)
    setDontShowAgain = setter("dontShowAgain")
    setDontShowAgainSettingsKey = setter("dontShowAgainSettingsKey")
    setDontShowAgainVisible = setter("dontShowAgainVisible")
    isDontShowAgainVisible = getter("dontShowAgainVisible")


class ctkDICOMIndexer:
    """ctkDICOMIndexer: ``addDirectory(database, folder, copy)`` hands the folder to the database stand-in."""

    def addDirectory(self, database: Any, directory: str, copyFiles: bool = False) -> None:
        """Index a folder into ``database`` (see ``application.DicomDatabase``)."""
        if database is None:
            raise RuntimeError("ctkDICOMIndexer.addDirectory: no database")
        database.insertDirectory(directory, copyFiles)

    def waitForImportFinished(self) -> None:
        """Imports are synchronous here."""


class NotEmulated(QWidget):
    """A real CTK/qMRML class name the harness does not emulate: it exists (for type comparisons) but building one
    raises, so a test using it fails instead of running on an invented behaviour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not emulated by Testing/slicer/runtime: add a stand-in")


class ctkCheckBox(NotEmulated):
    """Not emulated."""


class ctkCheckablePushButton(NotEmulated):
    """Not emulated."""


class ctkSliderWidget(NotEmulated):
    """Not emulated."""


class ctkDoubleSlider(NotEmulated):
    """Not emulated."""


class ctkDoubleSpinBox(NotEmulated):
    """Not emulated."""


class ctkComboBox(NotEmulated):
    """Not emulated."""


class ctkDoubleRangeSlider(NotEmulated):
    """Not emulated."""


class ctkDirectoryButton(NotEmulated):
    """Not emulated."""


class ctkColorPickerButton(NotEmulated):
    """Not emulated."""


