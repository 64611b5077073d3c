"""Core of the Qt stand-ins: PythonQt-style signals, Qt properties, the QObject tree, Qt enums and timers.

PythonQt (Slicer's Qt binding) exposes a Qt property as a Python attribute (``button.checked = True``), a signal
both as ``obj.connect("clicked(bool)", slot)`` and as ``obj.clicked.connect(slot)``, and the object tree through
``parent()``, ``children()``, ``findChildren(cls)``. These classes do the same in plain Python, with real state:
a value set is read back, a change emits the property's signal, a blocked object emits nothing. Names the real
classes lack are not invented, so a misspelt call raises ``AttributeError`` as it would in Slicer.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Signal", "BoundSignal", "QtProperty", "QObject", "Qt", "QTimer", "active_timers", "process_timers",
           "setter"]


def _normalize(signature: str) -> str:
    """``"clicked( bool )"`` -> ``"clicked(bool)"`` (Qt's normalized signature, const and spaces dropped)."""
    return re.sub(r"\s+|\bconst\b", "", signature)


class Signal:
    """A signal declared on a class, by its Qt signature(s): ``clicked = Signal("clicked(bool)", "clicked()")``.

    The first signature is the default overload (what ``obj.clicked.connect(slot)`` connects to, as in PythonQt);
    emission passes as many arguments as each slot's overload declares.
    """

    def __init__(self, *signatures: str) -> None:
        self.signatures = [_normalize(s) for s in signatures]
        self.name = self.signatures[0].split("(")[0]

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"signal {self.signatures[0]} declared as attribute {name}")

    def arity(self, signature: str) -> int:
        """Number of arguments of one overload."""
        inside = signature[signature.index("(") + 1:-1]
        return len([a for a in inside.split(",") if a])

    def __get__(self, obj: QObject | None, owner: type) -> Any:
        if obj is None:
            return self
        return BoundSignal(obj, self, self.signatures[0])


class BoundSignal:
    """A signal of one object (and one overload): ``connect``, ``disconnect``, ``emit``."""

    def __init__(self, obj: QObject, signal: Signal, signature: str) -> None:
        self._obj, self._signal, self._signature = obj, signal, signature

    def connect(self, slot: Callable[..., Any]) -> bool:
        """Call ``slot`` on each emission (a slot connected twice is called twice, as in Qt)."""
        if not callable(slot):
            raise TypeError(f"{self._signature}: slot {slot!r} is not callable")
        self._obj._connections.append((self._signal.name, self._signature, slot))
        return True

    def disconnect(self, slot: Callable[..., Any] | None = None) -> bool:
        """Remove ``slot`` (or every slot); a slot never connected raises, as PythonQt does."""
        before = len(self._obj._connections)
        if slot is None:
            self._obj._connections[:] = [c for c in self._obj._connections if c[0] != self._signal.name]
            return True
        for i, (name, _signature, connected) in enumerate(self._obj._connections):
            if name == self._signal.name and connected == slot:
                del self._obj._connections[i]
                break
        if len(self._obj._connections) == before:
            raise ValueError(f"{type(self._obj).__name__}.{self._signature}: slot {slot!r} is not connected")
        return True

    def emit(self, *args: Any) -> None:
        """Call the connected slots (nothing while the object's signals are blocked)."""
        self._obj._emit(self._signal.name, *args)

    def __call__(self, *args: Any) -> None:
        self.emit(*args)


class QtProperty:
    """A Qt property exposed the PythonQt way, as an attribute; ``notify`` names the signal emitted (with the new
    value) when a set changes the value. ``convert`` normalises what is stored (e.g. ``int``)."""

    def __init__(self, default: Any = None, *, notify: str | None = None,
                 convert: Callable[[Any], Any] | None = None) -> None:
        self.default, self.notify, self.convert = default, notify, convert
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: QObject | None, owner: type) -> Any:
        if obj is None:
            return self
        value = obj._values.get(self.name, self.default)
        return list(value) if isinstance(value, list) else value

    def __set__(self, obj: QObject, value: Any) -> None:
        obj._setProperty(self.name, value)


def setter(name: str) -> Callable[[QObject, Any], None]:
    """A ``setX(value)`` method for the Qt property ``name``."""

    def set_value(self: QObject, value: Any) -> None:
        setattr(self, name, value)

    set_value.__name__ = "set" + name[0].upper() + name[1:]
    set_value.__doc__ = f"Set the ``{name}`` property."
    return set_value


def getter(name: str) -> Callable[[QObject], Any]:
    """An ``isX()`` / ``x()``-style method reading the Qt property ``name``."""

    def get_value(self: QObject) -> Any:
        return getattr(self, name)

    get_value.__doc__ = f"The ``{name}`` property."
    return get_value


class QObject:
    """QObject: the object tree, object name, static and dynamic properties, signals."""

    destroyed = Signal("destroyed()")
    objectNameChanged = Signal("objectNameChanged(QString)")
    objectName = QtProperty("", notify="objectNameChanged", convert=str)

    def __init__(self, parent: QObject | None = None) -> None:
        self._values: dict[str, Any] = {}
        self._dynamic: dict[str, Any] = {}
        self._connections: list[tuple[str, str, Callable[..., Any]]] = []
        self._signalsBlocked = False
        self._children: list[QObject] = []
        self._parent: QObject | None = None
        if parent is not None:
            self.setParent(parent)

    # -- tree ---------------------------------------------------------------------------------------------------
    def parent(self) -> QObject | None:
        """The parent object."""
        return self._parent

    def setParent(self, parent: QObject | None) -> None:
        """Move this object under ``parent``."""
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        self._parent = parent
        if parent is not None:
            parent._children.append(self)

    def children(self) -> list[QObject]:
        """Direct children, in creation order."""
        return list(self._children)

    def _descendants(self) -> Iterator[QObject]:
        for child in self._children:
            yield child
            yield from child._descendants()

    def findChildren(self, cls: type | str = None, name: str = "") -> list[QObject]:  # type: ignore[assignment]
        """Descendants (depth first) that are instances of ``cls`` (a class or class name), optionally named."""
        found = []
        for child in self._descendants():
            if isinstance(cls, str):
                if cls and cls not in (c.__name__ for c in type(child).__mro__):
                    continue
            elif cls is not None and not isinstance(child, cls):
                continue
            if name and child.objectName != name:
                continue
            found.append(child)
        return found

    def findChild(self, cls: type | str, name: str = "") -> QObject | None:
        """The first of :meth:`findChildren`, or None."""
        found = self.findChildren(cls, name)
        return found[0] if found else None

    def deleteLater(self) -> None:
        """Detach from the parent (no event loop deletes anything here)."""
        self.setParent(None)

    # -- names and properties -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """PythonQt's alias of ``objectName``."""
        return self.objectName

    @name.setter
    def name(self, value: str) -> None:
        self.objectName = value

    def setObjectName(self, value: str) -> None:
        """Set the object name."""
        self.objectName = value

    def className(self) -> str:
        """The Qt class name."""
        return type(self).__name__

    def inherits(self, className: str) -> bool:
        """Whether the class or a base class is named ``className``."""
        return any(c.__name__ == className for c in type(self).__mro__)

    def isWidgetType(self) -> bool:
        """True for widgets."""
        return False

    @classmethod
    def _qtProperty(cls, name: str) -> QtProperty | None:
        for klass in cls.__mro__:
            attr = klass.__dict__.get(name)
            if isinstance(attr, QtProperty):
                return attr
        return None

    def property(self, name: str) -> Any:
        """A static Qt property's value, or a dynamic property (None when unset), as ``QObject::property``."""
        if self._qtProperty(name) is not None:
            return getattr(self, name)
        return self._dynamic.get(name)

    def setProperty(self, name: str, value: Any) -> bool:
        """Set a static property (True) or a dynamic one (False, as ``QObject::setProperty``)."""
        if self._qtProperty(name) is not None:
            setattr(self, name, value)
            return True
        self._dynamic[name] = value
        return False

    def dynamicPropertyNames(self) -> list[str]:
        """Names of the dynamic properties."""
        return list(self._dynamic)

    def _setProperty(self, name: str, value: Any) -> None:
        prop = self._qtProperty(name)
        assert prop is not None
        if prop.convert is not None and value is not None:
            value = prop.convert(value)
        old = self._values.get(name, prop.default)
        self._values[name] = value
        if old != value:
            if prop.notify:
                self._emit(prop.notify, value)
            self._propertyChanged(name, old, value)

    def _propertyChanged(self, name: str, old: Any, new: Any) -> None:
        """Hook for subclasses: a property changed value (after its notify signal)."""

    # -- signals ------------------------------------------------------------------------------------------------
    @classmethod
    def _signal(cls, signature: str) -> Signal:
        wanted = _normalize(signature)
        for klass in cls.__mro__:
            for attr in klass.__dict__.values():
                if isinstance(attr, Signal) and wanted in attr.signatures:
                    return attr
        raise AttributeError(f"{cls.__name__} has no signal {signature!r}")

    def connect(self, signature: str, slot: Callable[..., Any]) -> bool:
        """PythonQt's ``obj.connect("signal(args)", slot)`` (an unknown signature raises AttributeError)."""
        signal = self._signal(signature)
        return BoundSignal(self, signal, _normalize(signature)).connect(slot)

    def disconnect(self, signature: str, slot: Callable[..., Any] | None = None) -> bool:
        """PythonQt's ``obj.disconnect("signal(args)", slot)``."""
        signal = self._signal(signature)
        return BoundSignal(self, signal, _normalize(signature)).disconnect(slot)

    def blockSignals(self, block: bool) -> bool:
        """Block (or unblock) emission; returns the previous state."""
        previous, self._signalsBlocked = self._signalsBlocked, bool(block)
        return previous

    def signalsBlocked(self) -> bool:
        """Whether emission is blocked."""
        return self._signalsBlocked

    def _emit(self, name: str, *args: Any) -> None:
        if self._signalsBlocked:
            return
        signal = None
        for klass in type(self).__mro__:
            attr = klass.__dict__.get(name)
            if isinstance(attr, Signal):
                signal = attr
                break
        assert signal is not None, f"{type(self).__name__} emits unknown signal {name}"
        for connName, signature, slot in list(self._connections):
            if connName == name:
                _call(slot, args[:signal.arity(signature)])

    def receivers(self, signature: str) -> int:
        """Number of slots connected to a signal."""
        name = self._signal(signature).name
        return sum(1 for c in self._connections if c[0] == name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.objectName!r}>"


def _max_positional(slot: Callable[..., Any]) -> int | None:
    """How many positional arguments a Python slot takes (None: any number)."""
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _call(slot: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Call a slot as PythonQt does: with no more arguments than the Python callable accepts."""
    count = _max_positional(slot)
    slot(*(args if count is None else args[:count]))


class _Enum(int):
    """An enum value that prints its name (like PythonQt's enum wrappers) and combines with ``|``."""

    def __new__(cls, value: int, name: str = "") -> _Enum:
        obj = super().__new__(cls, value)
        obj._name = name
        return obj

    def __or__(self, other: int) -> _Enum:
        return _Enum(int(self) | int(other), f"{self._name}|{getattr(other, '_name', other)}")

    __ror__ = __or__

    def __repr__(self) -> str:
        return self._name or str(int(self))


def enum_namespace(name: str, values: dict[str, int]) -> type:
    """A class holding named enum values (``Qt.Checked``); unknown names raise AttributeError."""
    return type(name, (), {key: _Enum(value, f"{name}.{key}") for key, value in values.items()})


Qt = enum_namespace("Qt", {
    "Unchecked": 0, "PartiallyChecked": 1, "Checked": 2,
    "Horizontal": 1, "Vertical": 2,
    "ArrowCursor": 0, "WaitCursor": 3, "BusyCursor": 16,
    "NoModifier": 0, "ShiftModifier": 0x02000000, "ControlModifier": 0x04000000,
    "DisplayRole": 0, "EditRole": 2, "ToolTipRole": 3, "CheckStateRole": 10, "UserRole": 0x100,
    "AlignLeft": 1, "AlignRight": 2, "AlignCenter": 0x84, "AlignTop": 0x20,
    "TextSelectableByMouse": 1, "TextSelectableByKeyboard": 2, "LinksAccessibleByMouse": 4,
    "TextBrowserInteraction": 13,
    "ItemIsSelectable": 1, "ItemIsEditable": 2, "ItemIsUserCheckable": 16, "ItemIsEnabled": 32,
    "WindowCloseButtonHint": 0x08000000, "WidgetWithChildrenShortcut": 1, "Key_Escape": 0x01000000,
    "NonModal": 0, "WindowModal": 1, "ApplicationModal": 2,
})


_TIMERS: list[QTimer] = []


class QTimer(QObject):
    """QTimer without an event loop: ``start()`` makes it active, :func:`process_timers` fires the active ones
    (``timeout()``), as the event loop would after ``interval`` ms. ``singleShot`` timers fire once."""

    timeout = Signal("timeout()")
    interval = QtProperty(0, convert=int)
    singleShot = QtProperty(False, convert=bool)  # the property; the static call is QTimer.singleShot(ms, slot)
    active = QtProperty(False, convert=bool)
    setInterval = setter("interval")
    setSingleShot = setter("singleShot")
    isActive = getter("active")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        _TIMERS.append(self)

    def start(self, msec: int | None = None) -> None:
        """Activate (optionally with a new interval)."""
        if msec is not None:
            self.interval = msec
        self.active = True

    def stop(self) -> None:
        """Deactivate."""
        self.active = False

    def fire(self) -> None:
        """Fire once, as the event loop would when the interval passed."""
        if self.singleShot:
            self.active = False
        self._emit("timeout")


class _SingleShotTimer(QTimer):
    pass


def _single_shot(msec: int, slot: Callable[[], Any]) -> None:
    timer = _SingleShotTimer()
    timer.singleShot = True
    timer.timeout.connect(slot)
    timer.start(msec)


# ``QTimer.singleShot(ms, slot)`` is a static function in Qt while ``timer.singleShot`` is a property: a class-level
# callable that still reads as the property on instances.
class _SingleShotDescriptor(QtProperty):
    def __get__(self, obj: QObject | None, owner: type) -> Any:
        if obj is None:
            return _single_shot
        return super().__get__(obj, owner)


_descriptor = _SingleShotDescriptor(False, convert=bool)
_descriptor.__set_name__(QTimer, "singleShot")
QTimer.singleShot = _descriptor  # type: ignore[assignment]


def active_timers() -> list[QTimer]:
    """Timers started and not stopped."""
    return [t for t in _TIMERS if t.active]


def process_timers(rounds: int = 1) -> int:
    """Fire every active timer ``rounds`` times (what the event loop does as time passes); returns how many fired."""
    fired = 0
    for _ in range(rounds):
        for timer in active_timers():
            timer.fire()
            fired += 1
    return fired


def reset_timers() -> None:
    """Forget every timer (between tests)."""
    for timer in _TIMERS:
        timer.active = False
    _TIMERS.clear()
