"""``qt.QUiLoader``: builds a Qt Designer ``.ui`` file with the stand-in classes, as Slicer's loader does.

Widgets are created by class name (an unknown class raises), with their static properties (an unknown property
raises) and their dynamic ones (``stdset="0"``, e.g. ``SlicerParameterName``), nested through their layouts; the
``<connections>`` are made with PythonQt's ``connect``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from .core import QObject, Qt
from .widgets import QFile, QLayout, QRect, QSize, QWidget

__all__ = ["QUiLoader", "register_classes", "UI_CLASSES"]

#: Class name -> class, for every widget and layout the loader can build.
UI_CLASSES: dict[str, type] = {}


def register_classes(*namespaces: Any) -> None:
    """Make the QObject classes of these modules buildable by name."""
    for namespace in namespaces:
        for name in getattr(namespace, "__all__", dir(namespace)):
            value = getattr(namespace, name)
            if isinstance(value, type) and issubclass(value, QObject):
                UI_CLASSES[name] = value


def _enum(text: str) -> int:
    """``Qt::Horizontal`` / ``QSlider::TicksBelow`` / ``ctkPathLineEdit::Dirs`` -> its value."""
    owner, _, name = text.rpartition("::")
    namespace = Qt if owner in ("", "Qt") else UI_CLASSES.get(owner)
    if namespace is None or not hasattr(namespace, name):
        raise ValueError(f".ui enum {text!r} is not known to the stand-ins")
    return int(getattr(namespace, name))


def _value(prop: ET.Element) -> Any:
    node = next(iter(prop))
    tag, text = node.tag, node.text or ""
    if tag in ("string", "cstring"):
        return text
    if tag == "bool":
        return text == "true"
    if tag == "number":
        return int(text)
    if tag == "double":
        return float(text)
    if tag == "enum":
        return _enum(text)
    if tag == "set":
        value = 0
        for part in text.split("|"):
            value |= _enum(part.strip())
        return value
    if tag == "stringlist":
        return [s.text or "" for s in node.findall("string")]
    if tag == "size":
        return QSize(int(node.findtext("width")), int(node.findtext("height")))
    if tag == "rect":
        return QRect(*(int(node.findtext(k)) for k in ("x", "y", "width", "height")))
    raise ValueError(f".ui property type <{tag}> is not handled by the stand-in loader")


class QUiLoader(QObject):
    """Qt's QUiLoader over the stand-ins."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._named: dict[str, QObject] = {}

    def load(self, device: QFile | str, parentWidget: QWidget | None = None) -> QWidget | None:
        """Build the .ui's top widget (None if the file cannot be read, as in Qt)."""
        path = device.fileName() if isinstance(device, QFile) else str(device)
        if isinstance(device, QFile) and not device.isOpen() and not device.open(QFile.ReadOnly):
            return None
        root = ET.parse(path).getroot()
        self._named = {}
        top = self._widget(root.find("widget"), parentWidget)
        for conn in root.iter("connection"):
            sender = self._named[conn.findtext("sender")]
            receiver = self._named[conn.findtext("receiver")]
            slot = conn.findtext("slot").split("(")[0]
            sender.connect(conn.findtext("signal"), getattr(receiver, slot))
        return top

    def _create(self, element: ET.Element) -> QObject:
        className = element.get("class")
        cls = UI_CLASSES.get(className)
        if cls is None:
            raise TypeError(f".ui class {className!r} has no stand-in in Testing/slicer/runtime")
        obj = cls()
        obj.objectName = element.get("name", "")
        self._named[obj.objectName] = obj
        for prop in element.findall("property"):
            name, value = prop.get("name"), _value(prop)
            if prop.get("stdset") == "0":
                obj.setProperty(name, value)
            elif obj._qtProperty(name) is None:
                raise AttributeError(f".ui property {className}.{name} is not a property of the stand-in")
            else:
                setattr(obj, name, value)
        return obj

    def _widget(self, element: ET.Element, parent: QWidget | None) -> QWidget:
        widget = self._create(element)
        assert isinstance(widget, QWidget)
        if parent is not None:
            widget.setParent(parent)
        for child in element:
            if child.tag == "widget":
                self._widget(child, widget)
            elif child.tag == "layout":
                widget.setLayout(self._layout(child))
        return widget

    def _layout(self, element: ET.Element) -> QLayout:
        layout = self._create(element)
        assert isinstance(layout, QLayout)
        for item in element.findall("item"):
            for child in item:
                if child.tag == "widget":
                    layout.addWidget(self._widget(child, None))
                elif child.tag == "layout":
                    layout.addLayout(self._layout(child))
                elif child.tag == "spacer":
                    layout.addStretch()
        return layout
