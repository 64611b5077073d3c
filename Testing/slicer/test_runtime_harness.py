"""The Slicer-runtime harness (``Testing/slicer/runtime``): the module's real widget, built from its .ui, bound to
its parameter node by Slicer 5.12's own ``parameterNodeWrapper`` (vendored), on slicer-core's real MRML scene.

``SYNTHETIC_IMAGING_MODULE_DIR`` points the tests at another copy of the module folder (default: this checkout's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from runtime import MODULE_DIR, VENDOR, slicer_runtime  # noqa: E402  (Testing/slicer on sys.path)

MODULE = Path(os.environ.get("SYNTHETIC_IMAGING_MODULE_DIR") or MODULE_DIR)
UI = MODULE / "Resources" / "UI" / "SyntheticImaging.ui"


def _ui_widgets() -> dict[str, tuple[str, str | None]]:
    """name -> (class, SlicerParameterName) of every widget in the .ui (the top widget excluded)."""
    root = ET.parse(UI).getroot()
    top = root.find("widget")
    found = {}
    for element in top.iter("widget"):
        if element is top:
            continue
        param = next((p.findtext("string") for p in element.findall("property")
                      if p.get("name") == "SlicerParameterName"), None)
        found[element.get("name")] = (element.get("class"), param)
    return found


def _assert_clean(rt) -> None:
    assert not rt.callback_errors, "exception in a VTK observer callback:\n" + rt.callback_tracebacks()
    errors = rt.messages("error") + rt.messages("warning")
    assert not errors, "message boxes: " + "; ".join(f"{m.text} {m.detailedText}" for m in errors)


def test_runtime_binds_slicer_512_python_layer_and_restores_slicer_core():
    import importlib

    coreUtil = slicer.util
    with slicer_runtime() as rt:
        import qt

        for name in ("util", "parameterNodeWrapper", "ScriptedLoadableModule", "packaging", "i18n", "testing"):
            module = getattr(slicer, name)
            assert Path(module.__file__).is_relative_to(VENDOR), (name, module.__file__)
            assert sys.modules[f"slicer.{name}"] is module
        dicomUtils = importlib.import_module("DICOMLib.DICOMUtils")
        pytorchUtils = importlib.import_module("PyTorchUtils")
        assert Path(dicomUtils.__file__).is_relative_to(VENDOR) and Path(pytorchUtils.__file__).is_relative_to(VENDOR)
        assert slicer.mrmlScene is rt.scene and slicer.app is rt.app
        assert slicer.modules.segmentations.logic().GetMRMLScene() is rt.scene
        assert slicer.app.applicationLogic().GetMRMLScene() is rt.scene
        assert slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetLayoutName() == "Red"
        assert isinstance(qt.QPushButton(), qt.QWidget)
    assert slicer.util is coreUtil and sys.modules["slicer.util"] is coreUtil
    assert "qt" not in sys.modules and not hasattr(slicer, "app") and not hasattr(slicer, "qMRMLNodeComboBox")
    with slicer_runtime(pytorch_utils=False):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("PyTorchUtils")


def test_stand_ins_are_strict_and_emit_signals():
    with slicer_runtime() as rt:
        import ctk
        import qt

        button = qt.QPushButton("Go")
        with pytest.raises(AttributeError):
            button.clickd.connect(print)  # noqa: B018  (a misspelt signal)
        with pytest.raises(AttributeError):
            button.connect("clickd(bool)", print)
        with pytest.raises(AttributeError):
            ctk.ctkNoSuchWidget  # noqa: B018
        calls = []
        button.connect("clicked(bool)", calls.append)
        button.clicked.connect(lambda: calls.append("no-arg slot"))
        button.click()
        button.enabled = False
        button.click()  # a disabled button does not click
        assert calls == [False, "no-arg slot"]
        combo = qt.QComboBox()
        combo.currentTextChanged.connect(calls.append)
        combo.addItems(["a", "b"])
        combo.currentIndex = 1
        assert combo.currentText == "b" and calls[-2:] == ["a", "b"]
        with pytest.raises(NotImplementedError):
            ctk.ctkSliderWidget()  # named by Slicer's connectors, not emulated
        timer = qt.QTimer()
        timer.connect("timeout()", lambda: calls.append("tick"))
        timer.start(100)
        assert rt.process_timers(2) == 2 and calls[-2:] == ["tick", "tick"]
        timer.stop()
        assert rt.process_timers() == 0
        slicer.util.errorDisplay("Failed", detailedText="details")
        rt.set_confirm_answer(False)
        assert slicer.util.confirmOkCancelDisplay("Install?") is False
        assert [(m.kind, m.text, m.detailedText) for m in rt.messages()] == [
            ("error", "Failed", "details"), ("question", "Install?", "")]


def test_every_ui_widget_is_built_and_every_parameter_widget_is_bound():
    with slicer_runtime() as rt:
        widget = rt.make_module_widget(MODULE)
        expected = _ui_widgets()
        for name, (className, _param) in expected.items():
            assert type(getattr(widget.ui, name)).__name__ == className, name
        bound = widget._parameterNode._parameterGUIs[widget._parameterNodeGuiTag]
        wanted = {param: name for name, (_cls, param) in expected.items() if param}
        assert set(bound) == set(wanted)
        for param, name in wanted.items():
            assert bound[param].widget() is getattr(widget.ui, name), param
        _assert_clean(rt)


def test_panel_lifecycle_and_two_way_binding():
    with slicer_runtime() as rt:
        widget = rt.make_module_widget(MODULE)  # setup() + enter()
        ui, widgets = widget.ui, {param: name for name, (_c, param) in _ui_widgets().items() if param}
        spin = getattr(ui, widgets["seed"])
        spin.value = 7  # GUI -> parameter node
        assert widget._parameterNode.seed == 7
        widget._parameterNode.seed = 11  # parameter node -> GUI
        assert spin.value == 11
        rangeWidget = getattr(ui, widgets["lesionVolumeMl"])
        assert (rangeWidget.minimumValue, rangeWidget.maximumValue) == (10.0, 60.0)
        rangeWidget.setValues(5.0, 20.0)
        assert (widget._parameterNode.lesionVolumeMl.minimum, widget._parameterNode.lesionVolumeMl.maximum) == (5, 20)
        path = getattr(ui, widgets["outputDirectory"])
        assert path.currentPath == str(widget._parameterNode.outputDirectory)

        rt.exit(widget)
        spin.value = 3  # unbound: the parameter keeps its value
        assert widget._parameterNode.seed == 11
        rt.enter(widget)
        assert spin.value == 11
        rt.close_scene()  # StartCloseEvent / EndCloseEvent: a fresh parameter node, bound again
        assert widget._parameterNode.seed == 0 and spin.value == 0
        spin.value = 5
        assert widget._parameterNode.seed == 5
        rt.unload(widget)  # cleanup()
        _assert_clean(rt)


def test_opening_the_panel_imports_no_torch_or_monai():
    """Slicer without PyTorch yet: torch and monai cannot be found, and opening the panel must not need them."""
    code = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "monai"):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(HERE)!r})
        from runtime import slicer_runtime
        with slicer_runtime() as rt:
            widget = rt.make_module_widget({str(MODULE)!r})
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai"))
            print(json.dumps({{"heavy": heavy, "errors": [m.text for m in rt.messages("error")],
                              "families": [widget.ui.generatorFamilyComboBox.itemText(i)
                                           for i in range(widget.ui.generatorFamilyComboBox.count)]}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=HERE.parents[1], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [] and report["errors"] == []
    assert report["families"], "the generator family list is filled without torch"
