"""Stand-ins for the Qt classes (module ``qt`` in Slicer) the module and Slicer's Python layer use.

Each keeps its real state and emits its real signals when a value changes, whether set from code or by a
simulated user action (``button.click()``, ``combo.currentIndex = 2``). Dialogs never block: message boxes are
recorded in :data:`MESSAGES` (read them with ``runtime.messages()``) and answer :data:`DIALOG_ANSWERS`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from .core import QObject, Qt, QtProperty, Signal, getter, setter

__all__ = [
    "QWidget", "QFrame", "QLabel", "QAbstractButton", "QPushButton", "QToolButton", "QCheckBox", "QRadioButton",
    "QGroupBox", "QAbstractSpinBox", "QSpinBox", "QDoubleSpinBox", "QSlider", "QComboBox", "QLineEdit", "QTextEdit",
    "QPlainTextEdit", "QListWidget", "QListWidgetItem", "QProgressBar", "QLayout", "QBoxLayout", "QVBoxLayout",
    "QHBoxLayout", "QFormLayout", "QGridLayout", "QDialog", "QMessageBox", "QProgressDialog", "QMenu", "QAction",
    "QSizePolicy", "QStandardItemModel", "QModelIndex", "QApplication", "QStandardPaths", "QFile", "QIODevice",
    "QSettings", "QIcon", "QColor", "QUrl", "QDesktopServices", "QFont", "QThread", "QSize", "QRect",
    "MessageRecord", "MESSAGES", "DIALOG_ANSWERS", "OPENED_URLS", "PROGRESS_DIALOGS",
]


@dataclasses.dataclass
class MessageRecord:
    """One message box Slicer would have shown."""

    kind: str  # "error", "warning", "information", "question" (from the box's icon)
    text: str
    detailedText: str = ""
    windowTitle: str = ""
    answer: Any = None


#: Every message box shown (``exec_()`` of QMessageBox / ctkMessageBox), in order.
MESSAGES: list[MessageRecord] = []
#: What a question box answers: True -> Ok/Yes/Retry, False -> Cancel/No/Close.
DIALOG_ANSWERS: dict[str, bool] = {"confirm": True}
#: URLs given to QDesktopServices.openUrl.
OPENED_URLS: list[str] = []
#: Progress dialogs created (slicer.util.createProgressDialog).
PROGRESS_DIALOGS: list[QProgressDialog] = []


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class QSize(tuple):
    """A (width, height) pair."""

    def __new__(cls, width: int = -1, height: int = -1) -> QSize:
        return super().__new__(cls, (width, height))

    def width(self) -> int:
        """Width."""
        return self[0]

    def height(self) -> int:
        """Height."""
        return self[1]


class QRect(tuple):
    """An (x, y, width, height) rectangle."""

    def __new__(cls, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> QRect:
        return super().__new__(cls, (x, y, width, height))


# -- widgets ------------------------------------------------------------------------------------------------------
class QWidget(QObject):
    """QWidget: enabled, visible, tool tip, layout, window title."""

    enabled = QtProperty(True, convert=bool)
    visible = QtProperty(True, convert=bool)
    toolTip = QtProperty("", convert=str)
    statusTip = QtProperty("", convert=str)
    whatsThis = QtProperty("", convert=str)
    windowTitle = QtProperty("", notify="windowTitleChanged", convert=str)
    styleSheet = QtProperty("", convert=str)
    minimumSize = QtProperty(QSize(0, 0))
    maximumSize = QtProperty(QSize(16777215, 16777215))
    geometry = QtProperty(QRect())
    sizePolicy = QtProperty(None)
    windowTitleChanged = Signal("windowTitleChanged(QString)")
    customContextMenuRequested = Signal("customContextMenuRequested(QPoint)")
    setEnabled = setter("enabled")
    setVisible = setter("visible")
    setToolTip = setter("toolTip")
    setStatusTip = setter("statusTip")
    setWindowTitle = setter("windowTitle")
    setStyleSheet = setter("styleSheet")
    setSizePolicy = setter("sizePolicy")
    setMinimumSize = setter("minimumSize")
    setMaximumSize = setter("maximumSize")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout: QLayout | None = None

    def isWidgetType(self) -> bool:
        """Widgets are widgets."""
        return True

    def isEnabled(self) -> bool:
        """Enabled, and every ancestor widget enabled (as Qt's effective enabled state)."""
        widget: QObject | None = self
        while isinstance(widget, QWidget):
            if not widget.enabled:
                return False
            widget = widget.parent()
        return True

    def isVisible(self) -> bool:
        """Visible flag."""
        return self.visible

    def isHidden(self) -> bool:
        """Hidden flag."""
        return not self.visible

    def show(self) -> None:
        """Show."""
        self.visible = True

    def hide(self) -> None:
        """Hide."""
        self.visible = False

    def close(self) -> bool:
        """Hide (close)."""
        self.visible = False
        return True

    def setDisabled(self, disabled: bool) -> None:
        """Qt's setDisabled slot."""
        self.enabled = not disabled

    def layout(self) -> QLayout | None:
        """The widget's layout."""
        return self._layout

    def setLayout(self, layout: QLayout) -> None:
        """Install ``layout``: its widgets become children of this widget."""
        self._layout = layout
        layout._attach(self)

    def setFixedWidth(self, width: int) -> None:
        """Accepted and ignored (no geometry here)."""

    def setFixedHeight(self, height: int) -> None:
        """Accepted and ignored (no geometry here)."""

    def setContextMenuPolicy(self, policy: int) -> None:
        """Accepted and ignored."""

    def update(self) -> None:
        """No painting here."""

    def repaint(self) -> None:
        """No painting here."""


class QFrame(QWidget):
    """QFrame."""

    frameShape = QtProperty(0)
    frameShadow = QtProperty(0)


class QLabel(QFrame):
    """QLabel."""

    text = QtProperty("", convert=str)
    wordWrap = QtProperty(False, convert=bool)
    textFormat = QtProperty(0)
    textInteractionFlags = QtProperty(0)
    openExternalLinks = QtProperty(False, convert=bool)
    alignment = QtProperty(0)
    linkActivated = Signal("linkActivated(QString)")
    setText = setter("text")
    setWordWrap = setter("wordWrap")
    setTextInteractionFlags = setter("textInteractionFlags")
    setOpenExternalLinks = setter("openExternalLinks")

    def __init__(self, text: str | QWidget | None = None, parent: QWidget | None = None) -> None:
        if isinstance(text, QWidget):
            text, parent = None, text
        super().__init__(parent)
        if text:
            self.text = text

    def clear(self) -> None:
        """Empty the text."""
        self.text = ""


class QAbstractButton(QWidget):
    """QAbstractButton: text, checkable/checked, clicked/toggled/pressed/released; ``click()`` as a user click."""

    text = QtProperty("", convert=str)
    checkable = QtProperty(False, convert=bool)
    checked = QtProperty(False, notify="toggled", convert=bool)
    clicked = Signal("clicked(bool)", "clicked()")
    toggled = Signal("toggled(bool)")
    pressed = Signal("pressed()")
    released = Signal("released()")
    setText = setter("text")
    setCheckable = setter("checkable")
    isCheckable = getter("checkable")
    isChecked = getter("checked")

    def __init__(self, text: str | QWidget | None = None, parent: QWidget | None = None) -> None:
        if isinstance(text, QWidget):
            text, parent = None, text
        super().__init__(parent)
        if text:
            self.text = text

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "checked" and not self.checkable:
            return  # Qt ignores setChecked on a button that is not checkable
        super().__setattr__(name, value)

    def setChecked(self, checked: bool) -> None:
        """Set the checked state (ignored when not checkable, as in Qt)."""
        self.checked = checked

    def toggle(self) -> None:
        """Invert the checked state."""
        self.checked = not self.checked

    def click(self) -> None:
        """A user click: nothing on a disabled (or disabled-parent) button; toggles a checkable one; emits
        pressed, released, (toggled,) clicked(checked)."""
        if not self.isEnabled():
            return
        self._emit("pressed")
        self._emit("released")
        if self.checkable:
            self.checked = not self.checked
        self._emit("clicked", self.checked)

    animateClick = click


class QPushButton(QAbstractButton):
    """QPushButton."""

    default = QtProperty(False, convert=bool)
    autoDefault = QtProperty(False, convert=bool)
    flat = QtProperty(False, convert=bool)

    def setMenu(self, menu: QMenu) -> None:
        """Attach a menu."""
        self._menu = menu


class QToolButton(QAbstractButton):
    """QToolButton (used by the developer section of ScriptedLoadableModuleWidget)."""

    popupMode = QtProperty(0)
    triggered = Signal("triggered(QAction*)")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._menu: QMenu | None = None
        self._defaultAction: QAction | None = None

    def setMenu(self, menu: QMenu) -> None:
        """Attach a menu."""
        self._menu = menu

    def menu(self) -> QMenu | None:
        """The menu."""
        return self._menu

    def setDefaultAction(self, action: QAction) -> None:
        """The action triggered by a click."""
        self._defaultAction = action

    def defaultAction(self) -> QAction | None:
        """The default action."""
        return self._defaultAction


class QCheckBox(QAbstractButton):
    """QCheckBox: checkable; emits toggled(bool) and stateChanged(int) (0 or 2)."""

    tristate = QtProperty(False, convert=bool)
    stateChanged = Signal("stateChanged(int)")

    def __init__(self, text: str | QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.checkable = True

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        if name == "checked":
            self._emit("stateChanged", int(Qt.Checked if new else Qt.Unchecked))

    def checkState(self) -> int:
        """Qt.Checked or Qt.Unchecked."""
        return Qt.Checked if self.checked else Qt.Unchecked

    def setCheckState(self, state: int) -> None:
        """Set from a Qt.CheckState."""
        self.checked = int(state) == int(Qt.Checked)


class QRadioButton(QAbstractButton):
    """QRadioButton."""

    def __init__(self, text: str | QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.checkable = True


class QGroupBox(QWidget):
    """QGroupBox."""

    title = QtProperty("", convert=str)
    checkable = QtProperty(False, convert=bool)
    checked = QtProperty(True, notify="toggled", convert=bool)
    flat = QtProperty(False, convert=bool)
    toggled = Signal("toggled(bool)")
    clicked = Signal("clicked(bool)")
    setTitle = setter("title")
    setChecked = setter("checked")
    isChecked = getter("checked")


class QAbstractSpinBox(QWidget):
    """QAbstractSpinBox."""

    readOnly = QtProperty(False, convert=bool)
    keyboardTracking = QtProperty(True, convert=bool)
    prefix = QtProperty("", convert=str)
    suffix = QtProperty("", convert=str)
    editingFinished = Signal("editingFinished()")
    setPrefix = setter("prefix")
    setSuffix = setter("suffix")


class _Ranged:
    """Shared value/minimum/maximum behaviour: the value is kept within the range, as Qt does."""

    _number: type = int

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("minimum", "maximum", "value") and value is not None:
            value = self._number(value)
            if name == "value":
                value = _clamp(value, self.minimum, self.maximum)
            elif name == "minimum":
                QObject.__setattr__(self, "minimum", value)
                if self.maximum < value:
                    QObject.__setattr__(self, "maximum", value)
                super().__setattr__("value", _clamp(self.value, self.minimum, self.maximum))
                return
            else:
                QObject.__setattr__(self, "maximum", value)
                if self.minimum > value:
                    QObject.__setattr__(self, "minimum", value)
                super().__setattr__("value", _clamp(self.value, self.minimum, self.maximum))
                return
        super().__setattr__(name, value)

    def setRange(self, minimum: float, maximum: float) -> None:
        """Set both bounds (the value is clamped into them)."""
        self.minimum = minimum
        self.maximum = max(minimum, maximum)

    def setMinimum(self, value: float) -> None:
        """Lower bound."""
        self.minimum = value

    def setMaximum(self, value: float) -> None:
        """Upper bound."""
        self.maximum = value

    def setValue(self, value: float) -> None:
        """Value (clamped to the range)."""
        self.value = value


class QSpinBox(_Ranged, QAbstractSpinBox):
    """QSpinBox: int value within [minimum, maximum] (default 0..99), valueChanged(int)."""

    minimum = QtProperty(0)
    maximum = QtProperty(99)
    value = QtProperty(0, notify="valueChanged")
    singleStep = QtProperty(1, convert=int)
    valueChanged = Signal("valueChanged(int)")
    textChanged = Signal("textChanged(QString)")
    setSingleStep = setter("singleStep")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        if name == "value":
            self._emit("textChanged", f"{self.prefix}{new}{self.suffix}")


class QDoubleSpinBox(_Ranged, QAbstractSpinBox):
    """QDoubleSpinBox: float value rounded to ``decimals`` (default 2) within [0, 99.99]."""

    _number = float
    minimum = QtProperty(0.0)
    maximum = QtProperty(99.99)
    value = QtProperty(0.0, notify="valueChanged")
    decimals = QtProperty(2, convert=int)
    singleStep = QtProperty(1.0, convert=float)
    valueChanged = Signal("valueChanged(double)")
    setDecimals = setter("decimals")
    setSingleStep = setter("singleStep")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "value" and value is not None:
            value = round(float(value), self.decimals)
        super().__setattr__(name, value)


class QSlider(_Ranged, QWidget):
    """QSlider: int value within [minimum, maximum] (default 0..99)."""

    NoTicks, TicksAbove, TicksBelow, TicksBothSides = 0, 1, 2, 3
    TicksLeft, TicksRight = 1, 2
    minimum = QtProperty(0)
    maximum = QtProperty(99)
    value = QtProperty(0, notify="valueChanged")
    singleStep = QtProperty(1, convert=int)
    pageStep = QtProperty(10, convert=int)
    orientation = QtProperty(Qt.Vertical)
    tickPosition = QtProperty(0)
    tickInterval = QtProperty(0, convert=int)
    tracking = QtProperty(True, convert=bool)
    valueChanged = Signal("valueChanged(int)")
    sliderMoved = Signal("sliderMoved(int)")
    sliderPressed = Signal("sliderPressed()")
    sliderReleased = Signal("sliderReleased()")
    setSingleStep = setter("singleStep")
    setOrientation = setter("orientation")
    setTickPosition = setter("tickPosition")
    setTickInterval = setter("tickInterval")


class QComboBox(QWidget):
    """QComboBox: items (text, data), currentIndex (-1 when empty), currentText, editable.

    Signals as Qt 5: currentIndexChanged(int) (default overload) / (QString), currentTextChanged(QString),
    activated(int). As in Qt, adding the first item makes it current; ``setCurrentText`` on an editable box only
    sets the edit text.
    """

    editable = QtProperty(False, convert=bool)
    maxVisibleItems = QtProperty(10, convert=int)
    sizeAdjustPolicy = QtProperty(0)
    currentIndexChanged = Signal("currentIndexChanged(int)", "currentIndexChanged(QString)")
    currentTextChanged = Signal("currentTextChanged(QString)")
    editTextChanged = Signal("editTextChanged(QString)")
    activated = Signal("activated(int)", "activated(QString)")
    setEditable = setter("editable")
    isEditable = getter("editable")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: list[list[Any]] = []  # [text, data, checkState]
        self._index = -1
        self._editText = ""

    # currentIndex / currentText are Qt properties with custom semantics
    @property
    def currentIndex(self) -> int:
        """Index of the current item (-1: none)."""
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        self.setCurrentIndex(index)

    @property
    def currentText(self) -> str:
        """Text of the current item (the edit text for an editable box)."""
        if self.editable:
            return self._editText
        return self._items[self._index][0] if self._index >= 0 else ""

    @currentText.setter
    def currentText(self, text: str) -> None:
        self.setCurrentText(text)

    @property
    def count(self) -> int:
        """Number of items."""
        return len(self._items)

    @classmethod
    def _qtProperty(cls, name: str) -> Any:
        if name in ("currentIndex", "currentText", "count"):
            return True
        return super()._qtProperty(name)

    def _setIndex(self, index: int) -> None:
        if index < -1 or index >= len(self._items):
            index = -1
        oldText = self.currentText
        changed = index != self._index
        self._index = index
        if self.editable:
            self._editText = self._items[index][0] if index >= 0 else ""
        if changed:
            self._emit("currentIndexChanged", index)
        if self.currentText != oldText:
            self._emit("currentTextChanged", self.currentText)

    def setCurrentIndex(self, index: int) -> None:
        """Make item ``index`` current (out of range: none)."""
        self._setIndex(int(index))

    def setCurrentText(self, text: str) -> None:
        """Editable: set the edit text. Otherwise select the item with this text (if any)."""
        if self.editable:
            if text != self._editText:
                self._editText = text
                self._emit("editTextChanged", text)
                self._emit("currentTextChanged", text)
            return
        index = self.findText(text)
        if index >= 0:
            self._setIndex(index)

    def setEditText(self, text: str) -> None:
        """Set the edit text of an editable box."""
        if self.editable:
            self.setCurrentText(text)

    def addItem(self, text: str, userData: Any = None) -> None:
        """Append an item (the first one becomes current)."""
        self.insertItem(len(self._items), text, userData)

    def addItems(self, texts: list[str]) -> None:
        """Append items."""
        for text in texts:
            self.addItem(text)

    def insertItem(self, index: int, text: str, userData: Any = None) -> None:
        """Insert an item."""
        if not isinstance(text, str):
            raise TypeError(f"QComboBox.insertItem: text must be a str, not {type(text).__name__}")
        index = max(0, min(index, len(self._items)))
        self._items.insert(index, [text, userData, int(Qt.Unchecked)])
        if self._index == -1:
            self._setIndex(0)
        elif index <= self._index:
            self._index += 1

    def removeItem(self, index: int) -> None:
        """Remove an item (the current one: the next item becomes current)."""
        if not 0 <= index < len(self._items):
            return
        oldIndex, oldText = self._index, self.currentText
        del self._items[index]
        if index < oldIndex:
            self._index -= 1
        elif index == oldIndex:
            self._index = min(index, len(self._items) - 1)
            if self.editable:
                self._editText = self.itemText(self._index)
        if self._index != oldIndex:
            self._emit("currentIndexChanged", self._index)
        if self.currentText != oldText:
            self._emit("currentTextChanged", self.currentText)

    def clear(self) -> None:
        """Remove every item."""
        oldIndex, oldText = self._index, self.currentText
        self._items.clear()
        self._index, self._editText = -1, ""
        if oldIndex != -1:
            self._emit("currentIndexChanged", -1)
        if oldText:
            self._emit("currentTextChanged", "")

    def findText(self, text: str) -> int:
        """Index of the item with this text, or -1."""
        for i, item in enumerate(self._items):
            if item[0] == text:
                return i
        return -1

    def findData(self, data: Any) -> int:
        """Index of the item with this data, or -1."""
        for i, item in enumerate(self._items):
            if item[1] == data:
                return i
        return -1

    def itemText(self, index: int) -> str:
        """Text of item ``index`` ("" out of range)."""
        return self._items[index][0] if 0 <= index < len(self._items) else ""

    def itemData(self, index: int) -> Any:
        """Data of item ``index``."""
        return self._items[index][1] if 0 <= index < len(self._items) else None

    def setItemText(self, index: int, text: str) -> None:
        """Change an item's text."""
        if 0 <= index < len(self._items):
            self._items[index][0] = text

    def currentData(self) -> Any:
        """Data of the current item."""
        return self.itemData(self._index)

    def showPopup(self) -> None:
        """No popup here."""

    def hidePopup(self) -> None:
        """No popup here."""

    def select(self, text: str) -> None:
        """Test helper: the user picks the item with this text (emits activated too)."""
        index = self.findText(text)
        if index < 0:
            raise ValueError(f"{self.objectName}: no item {text!r} in {[i[0] for i in self._items]}")
        self._setIndex(index)
        self._emit("activated", index)


class QLineEdit(QWidget):
    """QLineEdit."""

    text = QtProperty("", notify="textChanged", convert=str)
    placeholderText = QtProperty("", convert=str)
    readOnly = QtProperty(False, convert=bool)
    textChanged = Signal("textChanged(QString)")
    textEdited = Signal("textEdited(QString)")
    editingFinished = Signal("editingFinished()")
    returnPressed = Signal("returnPressed()")
    setText = setter("text")
    setPlaceholderText = setter("placeholderText")
    setReadOnly = setter("readOnly")
    isReadOnly = getter("readOnly")

    def clear(self) -> None:
        """Empty the text."""
        self.text = ""

    def type(self, text: str) -> None:
        """Test helper: the user types ``text`` (replacing the content) and leaves the field."""
        self.text = text
        self._emit("textEdited", text)
        self._emit("editingFinished")


class QTextEdit(QWidget):
    """QTextEdit (plain text only)."""

    readOnly = QtProperty(False, convert=bool)
    plainText = QtProperty("", notify="textChanged", convert=str)
    textChanged = Signal("textChanged()")
    setPlainText = setter("plainText")
    toPlainText = getter("plainText")
    setReadOnly = setter("readOnly")

    def clear(self) -> None:
        """Empty the text."""
        self.plainText = ""


class QPlainTextEdit(QWidget):
    """QPlainTextEdit: appendPlainText (keeps at most maximumBlockCount lines when set), toPlainText, clear."""

    readOnly = QtProperty(False, convert=bool)
    maximumBlockCount = QtProperty(0, convert=int)
    plainText = QtProperty("", notify="textChanged", convert=str)
    placeholderText = QtProperty("", convert=str)
    textChanged = Signal("textChanged()")
    setPlainText = setter("plainText")
    toPlainText = getter("plainText")
    setReadOnly = setter("readOnly")
    setMaximumBlockCount = setter("maximumBlockCount")

    def appendPlainText(self, text: str) -> None:
        """Add a paragraph."""
        lines = (self.plainText.split("\n") if self.plainText else []) + str(text).split("\n")
        if self.maximumBlockCount > 0:
            lines = lines[-self.maximumBlockCount:]
        self.plainText = "\n".join(lines)

    def clear(self) -> None:
        """Empty the text."""
        self.plainText = ""


class QListWidgetItem:
    """An item of a QListWidget."""

    def __init__(self, text: str = "") -> None:
        self._text = text
        self._data: dict[int, Any] = {}

    def text(self) -> str:
        """The item text."""
        return self._text

    def setText(self, text: str) -> None:
        """Change the text."""
        self._text = text

    def data(self, role: int) -> Any:
        """Data of a role."""
        return self._text if role == Qt.DisplayRole else self._data.get(role)

    def setData(self, role: int, value: Any) -> None:
        """Set data of a role."""
        self._data[role] = value

    def setToolTip(self, text: str) -> None:
        """Tool tip."""
        self._data[Qt.ToolTipRole] = text


class QListWidget(QWidget):
    """QListWidget of text items."""

    currentRow = QtProperty(-1, notify="currentRowChanged", convert=int)
    currentRowChanged = Signal("currentRowChanged(int)")
    itemSelectionChanged = Signal("itemSelectionChanged()")
    setCurrentRow = setter("currentRow")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: list[QListWidgetItem] = []

    @property
    def count(self) -> int:
        """Number of items."""
        return len(self._items)

    def addItem(self, item: str | QListWidgetItem) -> None:
        """Append an item (text or QListWidgetItem)."""
        self._items.append(item if isinstance(item, QListWidgetItem) else QListWidgetItem(str(item)))

    def addItems(self, texts: list[str]) -> None:
        """Append items."""
        for text in texts:
            self.addItem(text)

    def item(self, row: int) -> QListWidgetItem | None:
        """The item of a row."""
        return self._items[row] if 0 <= row < len(self._items) else None

    def takeItem(self, row: int) -> QListWidgetItem | None:
        """Remove and return an item."""
        return self._items.pop(row) if 0 <= row < len(self._items) else None

    def clear(self) -> None:
        """Remove every item."""
        self._items.clear()
        self.currentRow = -1

    def texts(self) -> list[str]:
        """Test helper: the texts of the items."""
        return [i.text() for i in self._items]


class QProgressBar(_Ranged, QWidget):
    """QProgressBar: value within [minimum, maximum] (0..100); setRange(0, 0) means busy."""

    minimum = QtProperty(0)
    maximum = QtProperty(100)
    value = QtProperty(-1, notify="valueChanged")
    format = QtProperty("%p%", convert=str)
    textVisible = QtProperty(True, convert=bool)
    valueChanged = Signal("valueChanged(int)")
    setFormat = setter("format")
    setTextVisible = setter("textVisible")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "value" and value is not None and not self.minimum <= int(value) <= self.maximum:
            return  # Qt ignores a value out of range
        super().__setattr__(name, value)

    def reset(self) -> None:
        """Back to 'no progress' (value -1... shown as minimum - 1 in Qt)."""
        self._values["value"] = self.minimum - 1


# -- layouts ------------------------------------------------------------------------------------------------------
class QLayout(QObject):
    """A layout: its widgets are children of the widget it is installed on (as in Qt)."""

    spacing = QtProperty(6, convert=int)
    setSpacing = setter("spacing")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(None)
        self._items: list[QWidget | QLayout | None] = []
        self._widget: QWidget | None = None
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def _attach(self, widget: QWidget) -> None:
        self._widget = widget
        self.setParent(widget)
        for item in self._items:
            self._adopt(item)

    def _adopt(self, item: QWidget | QLayout | None) -> None:
        if self._widget is None or item is None:
            return
        if isinstance(item, QLayout):
            item._attach(self._widget)
            item.setParent(self)
        else:
            item.setParent(self._widget)

    def parentWidget(self) -> QWidget | None:
        """The widget the layout is installed on."""
        return self._widget

    def addWidget(self, widget: QWidget, *args: Any) -> None:
        """Add a widget (stretch/alignment arguments ignored)."""
        if not isinstance(widget, QWidget):
            raise TypeError(f"addWidget: {widget!r} is not a QWidget")
        self._items.append(widget)
        self._adopt(widget)

    def addLayout(self, layout: QLayout, *args: Any) -> None:
        """Add a nested layout."""
        self._items.append(layout)
        self._adopt(layout)

    def addStretch(self, stretch: int = 0) -> None:
        """A stretch (an empty item)."""
        self._items.append(None)

    def addSpacing(self, size: int) -> None:
        """A spacing (an empty item)."""
        self._items.append(None)

    def addItem(self, item: Any) -> None:
        """A spacer item."""
        self._items.append(None)

    def count(self) -> int:
        """Number of items."""
        return len(self._items)

    def itemAt(self, index: int) -> Any:
        """Item ``index``."""
        return self._items[index] if 0 <= index < len(self._items) else None

    def removeItem(self, item: Any) -> None:
        """Remove an item."""
        if item in self._items:
            self._items.remove(item)

    def removeWidget(self, widget: QWidget) -> None:
        """Remove a widget from the layout (it stays a child of the widget, as in Qt)."""
        self.removeItem(widget)

    def setContentsMargins(self, *margins: int) -> None:
        """Accepted and ignored."""


class QBoxLayout(QLayout):
    """QBoxLayout."""


class QVBoxLayout(QBoxLayout):
    """QVBoxLayout."""


class QHBoxLayout(QBoxLayout):
    """QHBoxLayout."""


class QGridLayout(QLayout):
    """QGridLayout (row/column arguments ignored)."""


class QFormLayout(QLayout):
    """QFormLayout: ``addRow(label, field)`` / ``addRow(widget)``."""

    def addRow(self, label: Any, field: Any = None) -> None:
        """A row: a label (text or widget) and a field (widget or layout), or one widget/layout."""
        for item in (label, field):
            if isinstance(item, str):
                item = QLabel(item)
            if isinstance(item, QLayout):
                self.addLayout(item)
            elif isinstance(item, QWidget):
                self.addWidget(item)


class QSizePolicy:
    """QSizePolicy (stored, unused)."""

    Fixed, Minimum, Maximum, Preferred, MinimumExpanding, Expanding, Ignored = 0, 1, 4, 5, 3, 7, 13

    def __init__(self, horizontal: int = 5, vertical: int = 5) -> None:
        self.horizontal, self.vertical = horizontal, vertical


# -- dialogs ------------------------------------------------------------------------------------------------------
class QDialog(QWidget):
    """QDialog: ``exec_()`` returns at once (Accepted) since no user is there."""

    Rejected, Accepted = 0, 1
    modal = QtProperty(False, convert=bool)
    accepted = Signal("accepted()")
    rejected = Signal("rejected()")
    finished = Signal("finished(int)")
    setModal = setter("modal")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.visible = False
        self._result = QDialog.Rejected

    def exec_(self) -> int:
        """Show and return the result (Accepted)."""
        self.visible = True
        self.accept()
        return self._result

    exec = exec_

    def open(self) -> None:
        """Show non-modally."""
        self.visible = True

    def accept(self) -> None:
        """Close with Accepted."""
        self._result = QDialog.Accepted
        self.visible = False
        self._emit("accepted")
        self._emit("finished", self._result)

    def reject(self) -> None:
        """Close with Rejected."""
        self._result = QDialog.Rejected
        self.visible = False
        self._emit("rejected")
        self._emit("finished", self._result)

    def result(self) -> int:
        """The result code."""
        return self._result


class QMessageBox(QDialog):
    """QMessageBox: ``exec_()`` records a :class:`MessageRecord` in :data:`MESSAGES` and answers at once; a
    question (a box with Ok/Cancel, Yes/No or Retry/Close) answers ``DIALOG_ANSWERS["confirm"]``."""

    NoButton, Ok, Save, Open, Yes, No, Abort, Retry, Ignore, Close, Cancel = (
        0, 0x400, 0x800, 0x2000, 0x4000, 0x10000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000)
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4
    AcceptRole, RejectRole, DestructiveRole, ActionRole, HelpRole, YesRole, NoRole = 0, 1, 2, 3, 4, 5, 6
    text = QtProperty("", convert=str)
    informativeText = QtProperty("", convert=str)
    detailedText = QtProperty("", convert=str)
    icon = QtProperty(0)
    standardButtons = QtProperty(0x400)
    textFormat = QtProperty(0)
    buttonClicked = Signal("buttonClicked(QAbstractButton*)")
    setText = setter("text")
    setInformativeText = setter("informativeText")
    setDetailedText = setter("detailedText")
    setIcon = setter("icon")
    setStandardButtons = setter("standardButtons")

    _KINDS = {0: "message", 1: "information", 2: "warning", 3: "error", 4: "question"}
    _ANSWERS = ((0x400, 0x400000), (0x4000, 0x10000), (0x80000, 0x200000))  # (yes-like, no-like) pairs

    def setDefaultButton(self, button: int) -> None:
        """Accepted and ignored."""

    def exec_(self) -> int:
        """Record the box; return the answer button."""
        buttons = int(self.standardButtons)
        answer = QMessageBox.Ok
        for yes, no in self._ANSWERS:
            if buttons & yes and buttons & no:
                answer = yes if DIALOG_ANSWERS["confirm"] else no
                break
        else:
            for button in (QMessageBox.Ok, QMessageBox.Yes, QMessageBox.Close):
                if buttons & button:
                    answer = button
                    break
        MESSAGES.append(MessageRecord(self._KINDS.get(int(self.icon), "message"), self.text, self.detailedText,
                                      self.windowTitle.strip(), answer))
        self.visible = False
        return answer

    exec = exec_

    def show(self) -> None:
        """A non-modal box (slicer.util.MessageDialog): recorded like a modal one."""
        self.exec_()


class QProgressDialog(QDialog):
    """QProgressDialog: value, maximum, labelText, wasCanceled (a test may call ``cancel()``)."""

    minimum = QtProperty(0, convert=int)
    maximum = QtProperty(100, convert=int)
    value = QtProperty(0, convert=int)
    labelText = QtProperty("", convert=str)
    minimumDuration = QtProperty(4000, convert=int)
    autoClose = QtProperty(True, convert=bool)
    autoReset = QtProperty(True, convert=bool)
    wasCanceled = QtProperty(False, convert=bool)
    canceled = Signal("canceled()")
    setMinimum = setter("minimum")
    setMaximum = setter("maximum")
    setValue = setter("value")
    setLabelText = setter("labelText")
    setMinimumDuration = setter("minimumDuration")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.visible = True
        self.values: list[int] = []
        PROGRESS_DIALOGS.append(self)

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        if name == "value":
            self.values.append(new)

    def setRange(self, minimum: int, maximum: int) -> None:
        """Both bounds."""
        self.minimum, self.maximum = minimum, maximum

    def cancel(self) -> None:
        """The user pressed Cancel."""
        self.wasCanceled = True
        self._emit("canceled")

    def setCancelButton(self, button: Any) -> None:
        """Accepted and ignored."""


class QAction(QObject):
    """QAction."""

    text = QtProperty("", convert=str)
    statusTip = QtProperty("", convert=str)
    checkable = QtProperty(False, convert=bool)
    checked = QtProperty(False, notify="toggled", convert=bool)
    enabled = QtProperty(True, convert=bool)
    triggered = Signal("triggered(bool)", "triggered()")
    toggled = Signal("toggled(bool)")
    setStatusTip = setter("statusTip")
    setText = setter("text")
    setCheckable = setter("checkable")
    setChecked = setter("checked")
    setEnabled = setter("enabled")

    def __init__(self, text: str | QObject | None = None, parent: QObject | None = None) -> None:
        if isinstance(text, QObject):
            text, parent = None, text
        super().__init__(parent)
        if text:
            self.text = text

    def trigger(self) -> None:
        """Activate the action."""
        if self.checkable:
            self.checked = not self.checked
        self._emit("triggered", self.checked)


class QMenu(QWidget):
    """QMenu."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent if isinstance(parent, QWidget) else None)
        self._actions: list[QAction] = []

    def addAction(self, action: QAction | str) -> QAction:
        """Add an action."""
        if isinstance(action, str):
            action = QAction(action, self)
        self._actions.append(action)
        return action

    def actions(self) -> list[QAction]:
        """The actions."""
        return list(self._actions)


# -- item model (ctkCheckableComboBox.checkableModel()) -----------------------------------------------------------
class QModelIndex:
    """An index into a :class:`QStandardItemModel` (rows of a combo box)."""

    def __init__(self, model: QStandardItemModel | None = None, row: int = -1, column: int = 0) -> None:
        self._model, self._row, self._column = model, row, column

    def isValid(self) -> bool:
        """Points at an existing row."""
        return self._model is not None and 0 <= self._row < self._model.rowCount()

    def row(self) -> int:
        """Row."""
        return self._row

    def column(self) -> int:
        """Column."""
        return self._column

    def model(self) -> QStandardItemModel | None:
        """The model."""
        return self._model

    def data(self, role: int = 0) -> Any:
        """Data of a role (DisplayRole: the text)."""
        return self._model.data(self, role) if self.isValid() else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QModelIndex) and (self._model, self._row, self._column) == (
            other._model, other._row, other._column)

    def __hash__(self) -> int:
        return hash((id(self._model), self._row, self._column))


class QStandardItemModel(QObject):
    """The item model of a combo box: one column, rows = the combo's items."""

    dataChanged = Signal("dataChanged(QModelIndex,QModelIndex)")

    def __init__(self, combo: QComboBox) -> None:
        super().__init__(None)
        self._combo = combo

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        """Number of rows."""
        return len(self._combo._items)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        """One column."""
        return 1

    def index(self, row: int, column: int = 0, parent: QModelIndex | None = None) -> QModelIndex:
        """Index of a row."""
        return QModelIndex(self, row, column)

    def data(self, index: QModelIndex, role: int = 0) -> Any:
        """DisplayRole: text; UserRole: item data; CheckStateRole: check state."""
        item = self._combo._items[index.row()]
        return {int(Qt.DisplayRole): item[0], int(Qt.EditRole): item[0], int(Qt.UserRole): item[1],
                int(Qt.CheckStateRole): item[2]}.get(int(role))


# -- application and services -------------------------------------------------------------------------------------
class QApplication(QObject):
    """Static parts of QApplication: override cursor stack, processEvents, keyboard modifiers."""

    _cursors: list[int] = []

    @staticmethod
    def setOverrideCursor(cursor: Any) -> None:
        """Push an override cursor."""
        QApplication._cursors.append(cursor)

    @staticmethod
    def restoreOverrideCursor() -> None:
        """Pop the override cursor (Qt ignores an extra restore)."""
        if QApplication._cursors:
            QApplication._cursors.pop()

    @staticmethod
    def overrideCursor() -> Any:
        """The current override cursor, or None."""
        return QApplication._cursors[-1] if QApplication._cursors else None

    @staticmethod
    def processEvents(*args: Any) -> None:
        """Nothing queued here (timers are fired by the test)."""

    @staticmethod
    def keyboardModifiers() -> int:
        """No key held."""
        return Qt.NoModifier


class QStandardPaths:
    """Writable locations under the runtime's temporary home (:data:`HOME`)."""

    DesktopLocation, DocumentsLocation, TempLocation, HomeLocation, DataLocation = 0, 1, 7, 8, 9
    CacheLocation, ConfigLocation, DownloadLocation, AppDataLocation, AppLocalDataLocation = 10, 13, 14, 17, 9
    HOME = Path(tempfile.gettempdir()) / "slicer-runtime-home"
    _FOLDERS = {0: "Desktop", 1: "Documents", 7: "tmp", 8: "", 9: ".local/share/Slicer", 10: ".cache/Slicer",
                13: ".config", 14: "Downloads", 17: ".local/share/Slicer"}

    @staticmethod
    def writableLocation(location: int) -> str:
        """The folder (as a string, not created)."""
        return str(QStandardPaths.HOME / QStandardPaths._FOLDERS[int(location)])


class QIODevice:
    """Open modes."""

    NotOpen, ReadOnly, WriteOnly, ReadWrite, Append, Truncate, Text = 0, 1, 2, 3, 4, 8, 16


class QFile(QIODevice):
    """QFile over a path: exists, open (read), readAll, close."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = str(path)
        self._mode = QIODevice.NotOpen

    def fileName(self) -> str:
        """The path."""
        return self._path

    def exists(self) -> bool:
        """Whether the file exists."""
        return os.path.isfile(self._path)

    def open(self, mode: int) -> bool:
        """Open; reading a missing file fails (False), as in Qt."""
        if mode & QIODevice.ReadOnly and not self.exists():
            return False
        self._mode = mode
        return True

    def isOpen(self) -> bool:
        """Opened."""
        return self._mode != QIODevice.NotOpen

    def readAll(self) -> bytes:
        """The content."""
        if not self._mode & QIODevice.ReadOnly:
            raise OSError(f"QFile {self._path} is not open for reading")
        return Path(self._path).read_bytes()

    def close(self) -> None:
        """Close."""
        self._mode = QIODevice.NotOpen


class QSettings(QObject):
    """QSettings over one in-memory store (reset by the runtime per test)."""

    STORE: dict[str, Any] = {}
    IniFormat, NativeFormat = 1, 0

    def __init__(self, *args: Any) -> None:
        super().__init__(None)

    def value(self, key: str, defaultValue: Any = None) -> Any:
        """The value or the default."""
        return QSettings.STORE.get(key, defaultValue)

    def setValue(self, key: str, value: Any) -> None:
        """Store a value."""
        QSettings.STORE[key] = value

    def contains(self, key: str) -> bool:
        """Whether a value is stored."""
        return key in QSettings.STORE

    def remove(self, key: str) -> None:
        """Remove a key."""
        QSettings.STORE.pop(key, None)

    def allKeys(self) -> list[str]:
        """All keys."""
        return list(QSettings.STORE)

    def sync(self) -> None:
        """Nothing to write."""


class QIcon:
    """QIcon of a file."""

    def __init__(self, path: str = "") -> None:
        self._path = str(path)

    def isNull(self) -> bool:
        """No file."""
        return not self._path


class QColor:
    """QColor (name in #rrggbb or #aarrggbb)."""

    def __init__(self, *args: Any) -> None:
        self._rgba = (0, 0, 0, 255)
        self._valid = bool(args)
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith("#"):
            text = args[0][1:]
            if len(text) == 8:
                a, r, g, b = (int(text[i:i + 2], 16) for i in range(0, 8, 2))
            else:
                r, g, b, a = int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16), 255
            self._rgba = (r, g, b, a)
        elif len(args) >= 3:
            self._rgba = (*[int(v) for v in args[:3]], int(args[3]) if len(args) > 3 else 255)

    def isValid(self) -> bool:
        """Constructed from a value."""
        return self._valid

    def name(self, format: int = 0) -> str:
        """#rrggbb (format 1: #aarrggbb)."""
        r, g, b, a = self._rgba
        return f"#{a:02x}{r:02x}{g:02x}{b:02x}" if format == 1 else f"#{r:02x}{g:02x}{b:02x}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QColor) and self._rgba == other._rgba

    __hash__ = None  # type: ignore[assignment]


class QUrl:
    """QUrl."""

    TolerantMode, StrictMode = 0, 1

    def __init__(self, url: str = "", mode: int = 0) -> None:
        self._url = str(url)

    @staticmethod
    def fromLocalFile(path: str) -> QUrl:
        """A file:// URL."""
        return QUrl(Path(path).absolute().as_uri())

    def toString(self) -> str:
        """The URL."""
        return self._url

    def toLocalFile(self) -> str:
        """The path of a file:// URL."""
        return self._url[len("file://"):] if self._url.startswith("file://") else ""


class QDesktopServices:
    """openUrl records the URL in :data:`OPENED_URLS` (nothing is opened)."""

    @staticmethod
    def openUrl(url: QUrl) -> bool:
        """Record and report success."""
        OPENED_URLS.append(url.toString())
        return True


class QFont:
    """QFont (unused style hints)."""

    TypeWriter, Monospace = 2, 7

    def __init__(self, *args: Any) -> None:
        self._family = args[0] if args else ""

    def setStyleHint(self, hint: int) -> None:
        """Accepted and ignored."""


class QThread(QObject):
    """QThread: only what Slicer's packaging uses."""

    _MAIN: QThread | None = None

    @staticmethod
    def currentThread() -> QThread:
        """The (only) thread."""
        if QThread._MAIN is None:
            QThread._MAIN = QThread()
        return QThread._MAIN

    @staticmethod
    def msleep(msec: int) -> None:
        """No sleeping in tests."""

