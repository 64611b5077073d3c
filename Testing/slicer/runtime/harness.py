"""Install Slicer 5.12's Python layer (vendored) over slicer-core with the Qt stand-ins, and open the module.

``install_runtime()`` binds, for the whole process until ``uninstall_runtime()``:

* ``qt`` and ``ctk`` (stand-in modules) in ``sys.modules``; ``slicer.qMRML*`` / ``slicer.qSlicer*`` stand-ins;
* Slicer 5.12's ``slicer.util``, ``slicer.i18n``, ``slicer.testing``, ``slicer.ScriptedLoadableModule``,
  ``slicer.packaging``, ``slicer.parameterNodeWrapper`` (loaded by path from ``vendor/``, never via ``sys.path``:
  slicer-core's ``slicer`` package would import every module of a folder named ``slicer``), ``DICOMLib.DICOMUtils``
  and ``PyTorchUtils`` (or ``PyTorchUtils`` missing, ``pytorch_utils=False``);
* ``slicer.mrmlScene`` (a real scene), ``slicer.app``, ``slicer.modules`` (real module logics),
  ``slicer.dicomDatabase``; the segmentation converter rules.

Everything replaced is put back by ``uninstall_runtime()``, so the tests that use slicer-core's own ``slicer.util``
pass in the same process, before or after.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import core, ctk, mrml, uiloader, widgets

__all__ = ["Runtime", "install_runtime", "uninstall_runtime", "slicer_runtime", "current", "VENDOR", "MODULE_DIR"]

VENDOR = Path(__file__).resolve().parent / "vendor"
#: The module folder opened by make_module_widget (env SYNTHETIC_IMAGING_MODULE_DIR overrides it).
MODULE_DIR = Path(__file__).resolve().parents[3] / "SyntheticImaging"
#: Slicer's pure-Python modules, in import order (packaging imports slicer.util at import time).
SLICER_MODULES = ("i18n", "util", "testing", "ScriptedLoadableModule", "packaging")
#: Module names the module under test owns (imported fresh in the runtime, the previous ones put back after).
MODULE_PACKAGES = ("SyntheticImaging", "SyntheticImagingModule")
_MISSING = object()
_STATE: dict[str, Any] = {}


def _load(name: str, path: Path, package: bool = False) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py" if package else path,
        submodule_search_locations=[str(path)] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _namespace(name: str, *sources: types.ModuleType) -> types.ModuleType:
    module = types.ModuleType(name, f"Stand-in for Slicer's compiled {name} module (Testing/slicer/runtime).")
    for source in sources:
        for attr in source.__all__:
            setattr(module, attr, getattr(source, attr))
    return module


QT_EXTRA = {"QObject": core.QObject, "Qt": core.Qt, "QTimer": core.QTimer, "QUiLoader": uiloader.QUiLoader}


class Runtime:
    """The installed runtime: the scene, the application, what the dialogs recorded."""

    def __init__(self, home: Path, testing: bool) -> None:
        import slicer

        from .application import build_scene_services, qSlicerApplication

        self.home = home
        widgets.QStandardPaths.HOME = home
        self.scene = slicer.vtkMRMLScene()
        self.appLogic, self.modules = build_scene_services(self.scene)
        self.app = qSlicerApplication(self.scene, self.appLogic, home, testing=testing)
        self.dicomDatabase: Any = None
        self.widgets: list[Any] = []
        #: Exceptions raised inside VTK observer callbacks (printed and swallowed by VTK, as in Slicer's console):
        #: e.g. a parameter-node -> GUI update that fails. Tests should assert this stays empty.
        self.callback_errors: list[BaseException] = []

    def callback_tracebacks(self) -> str:
        """The observer-callback exceptions, formatted."""
        return "".join("".join(traceback.format_exception(e)) for e in self.callback_errors)

    # -- what the dialogs and services recorded -----------------------------------------------------------------
    @staticmethod
    def messages(kind: str | None = None) -> list[widgets.MessageRecord]:
        """Message boxes shown so far (optionally only "error", "warning", "information" or "question")."""
        return [m for m in widgets.MESSAGES if kind is None or m.kind == kind]

    @staticmethod
    def clear_messages() -> None:
        """Forget the recorded message boxes."""
        widgets.MESSAGES.clear()

    @staticmethod
    def set_confirm_answer(answer: bool) -> None:
        """What Ok/Cancel, Yes/No and Retry/Close boxes answer from now on."""
        widgets.DIALOG_ANSWERS["confirm"] = bool(answer)

    @staticmethod
    def process_timers(rounds: int = 1) -> int:
        """Fire the active QTimers ``rounds`` times."""
        return core.process_timers(rounds)

    @staticmethod
    def active_timers() -> list[core.QTimer]:
        """The active QTimers."""
        return core.active_timers()

    @property
    def opened_urls(self) -> list[str]:
        """URLs opened with QDesktopServices."""
        return widgets.OPENED_URLS

    @property
    def progress_dialogs(self) -> list[widgets.QProgressDialog]:
        """Progress dialogs created."""
        return widgets.PROGRESS_DIALOGS

    def open_dicom_database(self) -> Any:
        """Make ``slicer.dicomDatabase`` an open database stand-in (it is None until then, as before the DICOM
        module was first opened)."""
        import slicer

        from .application import DicomDatabase

        self.dicomDatabase = DicomDatabase(self.home / "dicom")
        slicer.dicomDatabase = self.dicomDatabase
        return self.dicomDatabase

    # -- the module -----------------------------------------------------------------------------------------------
    def make_module_widget(self, module_dir: str | os.PathLike[str] | None = None, name: str = "SyntheticImaging",
                           enter: bool = True) -> Any:
        """What Slicer does when a scripted module is loaded and its panel opened: import ``<name>.py`` (its folder
        on sys.path), build the module with a qSlicerScriptedLoadableModule parent, build the widget into a
        panel, ``setup()``, then (``enter``) set ``isEntered`` and call ``enter()``. Returns the Python widget."""
        import slicer

        from .application import register_module

        folder = Path(module_dir or os.environ.get("SYNTHETIC_IMAGING_MODULE_DIR") or MODULE_DIR).resolve()
        path = folder / f"{name}.py"
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
            _STATE["sys.path"].append(str(folder))
        for mod in [m for m in sys.modules if m.split(".")[0] in (name, f"{name}Module")]:
            del sys.modules[mod]
        pyModule = _load(name, path)
        parent = mrml.qSlicerScriptedLoadableModule(str(path), name)
        parent._self = getattr(pyModule, name)(parent)
        register_module(self.app, self.modules, parent)
        panel = mrml.qSlicerScriptedLoadableModuleWidget(parent)
        panel.setMRMLScene(slicer.mrmlScene)
        widget = getattr(pyModule, f"{name}Widget")(panel)
        panel._self = widget
        parent._widget = panel
        setattr(self.modules, f"{name}Widget", widget)
        self.widgets.append(widget)
        widget.setup()
        if enter:
            self.enter(widget)
        return widget

    @staticmethod
    def enter(widget: Any) -> None:
        """The user opens the module (isEntered is set first, as qSlicerAbstractModuleWidget::enter does)."""
        widget.parent.isEntered = True
        widget.enter()

    @staticmethod
    def exit(widget: Any) -> None:
        """The user switches to another module."""
        widget.parent.isEntered = False
        widget.exit()

    def close_scene(self) -> None:
        """File > Close scene: ``mrmlScene.Clear(0)`` (StartCloseEvent ... EndCloseEvent)."""
        self.scene.Clear(0)

    def unload(self, widget: Any) -> None:
        """The application closes: moduleAboutToBeUnloaded, so the widget's cleanup() runs."""
        self.app.moduleManager().unloadModule(widget.moduleName)


def _slicer_harness() -> types.ModuleType:
    """Testing/slicer/slicer_harness.py (shared with the MRML tests), imported or loaded by path."""
    if "slicer_harness" in sys.modules:
        return sys.modules["slicer_harness"]
    return _load("slicer_harness", Path(__file__).resolve().parents[1] / "slicer_harness.py")


def current() -> Runtime:
    """The installed runtime."""
    if "runtime" not in _STATE:
        raise RuntimeError("the Slicer runtime is not installed: call install_runtime() first")
    return _STATE["runtime"]


def _save(obj: Any, name: str) -> None:
    key = (id(obj), name)
    if key not in _STATE["saved"]:
        _STATE["saved"][key] = (obj, name, getattr(obj, name, _MISSING) if not isinstance(obj, dict)
                                else obj.get(name, _MISSING))


def _bind(obj: Any, name: str, value: Any) -> None:
    _save(obj, name)
    if isinstance(obj, dict):
        obj[name] = value
    else:
        setattr(obj, name, value)


def install_runtime(*, pytorch_utils: bool = True, testing: bool = False, home: str | os.PathLike[str] | None = None
                    ) -> Runtime:
    """Install the runtime (idempotent: if installed, return it). See the module docstring."""
    if "runtime" in _STATE:
        return _STATE["runtime"]
    import slicer

    _STATE.update(saved={}, modules=[], **{"sys.path": []})
    ownedModules = [m for m in sys.modules if m.split(".")[0] in MODULE_PACKAGES]
    _STATE["ownedModules"] = {m: sys.modules.pop(m) for m in ownedModules}
    qt = _namespace("qt", widgets)
    for attr, value in QT_EXTRA.items():
        setattr(qt, attr, value)
    ctkModule = _namespace("ctk", ctk)
    _bind(sys.modules, "qt", qt)
    _bind(sys.modules, "ctk", ctkModule)
    for attr in mrml.__all__:
        _bind(slicer, attr, getattr(mrml, attr))
    uiloader.register_classes(qt, ctkModule, mrml)
    for name in SLICER_MODULES:
        _bind(sys.modules, f"slicer.{name}", sys.modules.get(f"slicer.{name}", _MISSING))  # saved for restore
        _bind(slicer, name, _load(f"slicer.{name}", VENDOR / "slicer" / f"{name}.py"))
    pnw = "slicer.parameterNodeWrapper"
    for name in [m for m in sys.modules if m == pnw or m.startswith(pnw + ".")]:
        _bind(sys.modules, name, sys.modules[name])
    _bind(sys.modules, pnw, sys.modules.get(pnw, _MISSING))
    _bind(slicer, "parameterNodeWrapper", _load(pnw, VENDOR / "slicer" / "parameterNodeWrapper", package=True))
    for name in [m for m in sys.modules if m.startswith(pnw + ".")]:
        _save(sys.modules, name)  # submodules loaded by the package import: removed on uninstall
    dicomLib = types.ModuleType("DICOMLib")
    dicomLib.__path__ = [str(VENDOR / "DICOMLib")]
    _bind(sys.modules, "DICOMLib", dicomLib)
    _bind(sys.modules, "DICOMLib.DICOMUtils", sys.modules.get("DICOMLib.DICOMUtils", _MISSING))
    dicomLib.DICOMUtils = _load("DICOMLib.DICOMUtils", VENDOR / "DICOMLib" / "DICOMUtils.py")
    _bind(sys.modules, "PyTorchUtils", sys.modules.get("PyTorchUtils", _MISSING))
    if pytorch_utils:
        _load("PyTorchUtils", VENDOR / "PyTorchUtils" / "PyTorchUtils.py")
    else:
        sys.modules["PyTorchUtils"] = None  # type: ignore[assignment]  # `import PyTorchUtils` raises
    _slicer_harness().register_segmentation_converters()
    homePath = Path(home) if home else Path(tempfile.mkdtemp(prefix="slicer-runtime-"))
    runtime = Runtime(homePath, testing)
    _bind(slicer, "mrmlScene", runtime.scene)
    _bind(slicer, "app", runtime.app)
    _bind(slicer, "modules", runtime.modules)
    _bind(slicer, "dicomDatabase", None)
    _bind(slicer, "dicomDatabaseDirectorySettingsKey", "DatabaseDirectory_5.12")
    _bind(slicer, "selfTests", {})
    _reset_recorders()
    _bind(sys, "excepthook", lambda kind, value, tb: runtime.callback_errors.append(value.with_traceback(tb)))
    _STATE["runtime"] = runtime
    return runtime


def _reset_recorders() -> None:
    widgets.MESSAGES.clear()
    widgets.OPENED_URLS.clear()
    widgets.PROGRESS_DIALOGS.clear()
    widgets.DIALOG_ANSWERS["confirm"] = True
    widgets.QSettings.STORE.clear()
    widgets.QApplication._cursors.clear()
    core.reset_timers()


def uninstall_runtime() -> None:
    """Put back everything ``install_runtime`` replaced (no-op when not installed)."""
    runtime = _STATE.pop("runtime", None)
    if runtime is None:
        return
    for widget in runtime.widgets:
        with contextlib.suppress(Exception):
            widget.removeObservers()
    mrml.detach_all_combo_boxes()
    runtime.app.layoutManager().release()
    runtime.scene.Clear(1)
    for obj, name, value in reversed(list(_STATE["saved"].values())):
        if isinstance(obj, dict):
            if value is _MISSING:
                obj.pop(name, None)
            else:
                obj[name] = value
        elif value is _MISSING:
            if hasattr(obj, name):
                delattr(obj, name)
        else:
            setattr(obj, name, value)
    for mod in [m for m in sys.modules if m.split(".")[0] in MODULE_PACKAGES]:
        del sys.modules[mod]
    sys.modules.update(_STATE["ownedModules"])
    for folder in _STATE["sys.path"]:
        if folder in sys.path:
            sys.path.remove(folder)
    _reset_recorders()
    _STATE.clear()


@contextlib.contextmanager
def slicer_runtime(**options: Any) -> Iterator[Runtime]:
    """A fresh runtime (new scene, application, recorders) for one test; global state restored afterwards."""
    uninstall_runtime()
    runtime = install_runtime(**options)
    try:
        yield runtime
    finally:
        uninstall_runtime()
