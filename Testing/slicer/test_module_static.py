"""Static checks of the Slicer module (3D Slicer itself cannot run here):

* every slicer.util / slicer.packaging / ScriptedLoadableModule / parameterNodeWrapper / ctk / qMRML / qSlicer /
  vtkMRML name the module uses exists in Slicer (``shared/slicer-api/check_slicer_api.py``), and so do the module
  logic methods (``slicer.modules.<name>.logic().<Method>``), application, layout-manager and DICOMUtils calls;
* every ``self.ui.<name>`` exists in the .ui file and every ``SlicerParameterName`` there is a parameter;
* importing the module file imports no torch/monai (run with stand-ins for slicer, qt, ctk, vtk);
* CMake lists every script and resource; requirements.txt and the catalog entry are consistent.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "SyntheticImaging"
API_DIR = ROOT.parent / "shared" / "slicer-api"
API = API_DIR / "slicer-python-api.json"
UI = MODULE / "Resources" / "UI" / "SyntheticImaging.ui"
SOURCES = sorted(p for p in MODULE.rglob("*.py") if "Testing" not in p.parts)

needs_api = pytest.mark.skipif(not API.exists(), reason="shared/slicer-api is not available")
#: qSlicerCoreApplication / QApplication members the module calls on slicer.app; the API file lists
#: qSlicerApplication's own members only.
CORE_APPLICATION = {"processEvents", "applicationLogic", "extensionsManagerModel", "connect"}


def _code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)


@pytest.fixture(scope="module")
def api() -> dict:
    return json.loads(API.read_text(encoding="utf-8"))


@needs_api
def test_check_slicer_api_passes():
    result = subprocess.run([sys.executable, str(API_DIR / "check_slicer_api.py"), "SyntheticImaging", str(API)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"checked (\d+) names, 0 unknown", result.stdout)
    assert int(re.search(r"checked (\d+) names", result.stdout).group(1)) > 100


@needs_api
def test_module_logic_methods_exist(api):
    logics = {name.lower(): methods for name, methods in api["module_logic_classes"].items()}
    calls = re.findall(r"slicer\.modules\.(\w+)\.logic\(\)\.(\w+)", _code())
    assert calls, "the module uses module logics"
    for module, method in calls:
        methods = logics.get(f"vtkslicer{module}logic") or logics.get(f"vtkslicer{module}modulelogic")
        assert methods is not None, f"no logic class for slicer.modules.{module}"
        assert method in methods, f"slicer.modules.{module}.logic().{method} does not exist"


@needs_api
def test_application_layout_and_dicom_calls_exist(api):
    code = _code()
    widgets = api["qt_widgets_and_qt_classes"]
    application = set(widgets["qSlicerApplication"]) | CORE_APPLICATION
    for name in set(re.findall(r"slicer\.app\.(\w+)", code)):
        assert name in application, f"slicer.app.{name}"
    layout = set(widgets["qMRMLLayoutManager"]) | set(widgets["qSlicerLayoutManager"])
    for name in set(re.findall(r"\blayoutManager(?:\(\))?\.(\w+)", code)):
        assert name in layout, f"layoutManager.{name}"
    for name in set(re.findall(r"\bsliceWidget(?:\([^)]*\))?\.(\w+)\(", code)):
        assert name in widgets["qMRMLSliceWidget"], f"qMRMLSliceWidget.{name}"
    for name in set(re.findall(r"DICOMUtils\.(\w+)", code)):
        assert name in api["DICOMLib.DICOMUtils"], f"DICOMUtils.{name}"


#: CamelCase calls that are not VTK/MRML methods (the PyTorch Utils logic class).
_NOT_VTK = {"PyTorchUtilsLogic", "TemporaryDirectory"}


def test_vtk_and_mrml_methods_called_exist():
    """Every ``.CamelCase(`` call in the Slicer-facing files names a method of some MRML/VTK class (slicer-core):
    catches a misspelt MRML method, which nothing else would before a user clicks."""
    slicer = pytest.importorskip("slicer")
    vtk = pytest.importorskip("vtk")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    known = set()
    for name in dir(slicer):
        if name.startswith("vtk"):
            known |= set(dir(getattr(slicer, name)))
    for cls in (vtk.vtkTable, vtk.vtkDoubleArray, vtk.vtkStringArray, vtk.vtkMatrix4x4, vtk.vtkCornerAnnotation,
                vtk.vtkTextActor, vtk.vtkTextProperty, vtk.vtkCoordinate, vtk.vtkRenderer, vtk.vtkRendererCollection,
                vtk.vtkRenderWindow):
        known |= set(dir(cls))
    files = [MODULE / "SyntheticImaging.py"] + [MODULE / "SyntheticImagingModule" / f for f in
                                                ("logic.py", "nodes.py", "result_nodes.py", "jobs_logic.py", "views.py",
                                                 "widget.py", "install.py", "panel_data.py", "panel_generate.py",
                                                 "panel_checks.py", "panel_export.py", "panel_reader_study.py")]
    called = set()
    for path in files:
        called |= set(re.findall(r"\.([A-Z][A-Za-z0-9]+)\(", path.read_text(encoding="utf-8")))
    own = set(re.findall(r"^class (\w+)", _code(), re.M))
    called = {c for c in called if not c.startswith(("Q", "vtk", "ctk", "q")) and c not in _NOT_VTK | own}
    called -= set(dir(slicer.util)) if hasattr(slicer, "util") else set()
    assert len(called) > 40
    assert not called - known, sorted(called - known)


#: Qt base-class methods (QObject, QWidget, QComboBox) the module calls on CTK/qMRML widgets; the API file lists
#: each CTK/qMRML class's own members only.
_QT_BASE = {"connect", "blockSignals", "setEnabled", "addItems", "addItem", "itemText", "clear", "setToolTip"}


@needs_api
def test_methods_called_on_ctk_and_qmrml_widgets_exist(api):
    root = ET.parse(UI).getroot()
    classes = {w.get("name"): w.get("class") for w in root.iter("widget")}
    bases = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}
    known = {**api["ctk_classes"], **api["qt_widgets_and_qt_classes"]}
    checked = 0
    calls = set(re.findall(r"\bself\.ui\.(\w+)\.(\w+)", _code()))
    signals = set(re.findall(r"\bself\.ui\.(\w+)\.connect\(\"(\w+)\(", _code()))  # connect("signal(...)", slot)
    for widget, method in calls | signals:
        cls = classes[widget]
        if cls not in known:
            continue  # a Qt class: its methods are not in the API file
        members, parent = set(known[cls]), bases.get(cls)
        while parent in known:
            members |= set(known[parent])
            parent = bases.get(parent)
        checked += 1
        assert method in members | _QT_BASE, f"{cls}.{method} (self.ui.{widget})"
    assert checked >= 5


def _uiNames() -> tuple[set[str], dict[str, str]]:
    root = ET.parse(UI).getroot()
    names = {e.get("name") for e in root.iter() if e.tag in ("widget", "layout", "action") and e.get("name")}
    parameters = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameters[widget.get("name")] = prop.findtext("string")
    return names, parameters


def test_ui_names_used_by_the_code_exist():
    names, _ = _uiNames()
    used = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bself\.ui\.(\w+)", text)) | set(re.findall(r"\bui\.(\w+)", text))
    used = {n for n in used if not n.startswith(("connect", "setup"))}
    assert len(used) > 30
    assert not used - names, f"not in {UI.name}: {sorted(used - names)}"


def _parameterNames() -> set[str]:
    tree = ast.parse((MODULE / "SyntheticImagingModule" / "parameters.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SyntheticImagingParameterNode")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def test_ui_parameter_bindings_name_real_parameters():
    _, bound = _uiNames()
    parameters = _parameterNames()
    assert len(bound) > 25
    assert not set(bound.values()) - parameters, sorted(set(bound.values()) - parameters)
    assert len(set(bound.values())) == len(bound), "two widgets bound to one parameter"


_STUBS = textwrap.dedent('''
    import sys, types

    class _Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _new(name)
        def __getitem__(cls, item):
            return cls
        def __or__(cls, other):
            return cls

    class _Any(metaclass=_Meta):
        def __init__(self, *args, **kwargs):
            pass
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _new(name)()
        def __call__(self, *args, **kwargs):
            return _Any()

    def _new(name):
        return _Meta(name, (_Any,), {})

    class _StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            value = _new(name)
            setattr(self, name, value)
            return value

    for name in ("slicer", "slicer.util", "slicer.i18n", "slicer.ScriptedLoadableModule",
                 "slicer.parameterNodeWrapper", "slicer.packaging", "qt", "ctk", "vtk"):
        module = _StubModule(name)
        module.__path__ = []
        sys.modules[name] = module
        if "." in name:
            parent, child = name.rsplit(".", 1)
            setattr(sys.modules[parent], child, module)
''')


def test_module_file_imports_no_torch_or_monai():
    script = _STUBS + textwrap.dedent(f'''
        sys.path.insert(0, {str(MODULE)!r})
        import SyntheticImaging
        assert SyntheticImaging.SyntheticImagingWidget and SyntheticImaging.SyntheticImagingLogic
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai"))
        print("HEAVY", heavy)
        print("LOADED", "SyntheticImagingModule.widget" in sys.modules, "SyntheticImagingLib" in sys.modules)
    ''')
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    assert "LOADED True True" in result.stdout


def test_no_top_level_torch_or_monai_import_in_module_sources():
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("torch", "monai") for n in names), f"{path.name}: {names}"


def _cmakeList(text: str, variable: str) -> list[str]:
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [line.strip().replace("${MODULE_NAME}", "SyntheticImaging") for line in block.splitlines() if line.strip()]


def test_cmake_lists_every_script_and_resource():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = _cmakeList(text, "MODULE_PYTHON_SCRIPTS")
    assert sorted(scripts) == sorted(str(p.relative_to(MODULE)) for p in SOURCES)
    for resource in _cmakeList(text, "MODULE_PYTHON_RESOURCES"):
        assert (MODULE / resource).exists(), resource
    assert "slicerMacroBuildScriptedModule" in text
    top = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for needed in ("find_package(Slicer REQUIRED)", "add_subdirectory(SyntheticImaging)", 'EXTENSION_DEPENDS "PyTorch"',
                   "SyntheticImagingLib/*.py", "Resources/requirements.txt", "Slicer_EXTENSION_GENERATE_CONFIG",
                   "Resources/SampleData/*.nii.gz", "${SyntheticImaging_SAMPLE_DATA}"):
        assert needed in top, needed


def test_icon_is_a_128px_png():
    data = (MODULE / "Resources" / "Icons" / "SyntheticImaging.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (128, 128)


def test_requirements_are_the_library_dependencies_without_torch():
    tomllib = pytest.importorskip("tomllib")
    Requirement = pytest.importorskip("packaging.requirements").Requirement
    sys.path.insert(0, str(MODULE))
    from SyntheticImagingModule.install import missingRequirements, readRequirements

    requirements = {Requirement(r).name.lower(): Requirement(r) for r in readRequirements(
        ROOT / "Resources" / "requirements.txt")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    library = {Requirement(r).name.lower() for r in project["dependencies"]}
    assert set(requirements) == library - {"torch"}
    assert all(any(s.operator == ">=" for s in r.specifier) for r in requirements.values()), "lower bounds"
    assert missingRequirements(["numpy>=1.0", "numpy<1.0", "no-such-package-xyz>=1", "numpy<1; python_version<'3'"]) \
        == ["numpy<1.0", "no-such-package-xyz>=1"]


def test_catalog_entry():
    entry = json.loads((ROOT / "Resources" / "SyntheticImaging.json").read_text(encoding="utf-8"))
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["build_dependencies"] == ["PyTorch"] and entry["build_subdirectory"] == "."
    assert entry["scm_url"].startswith("https://") and entry["scm_revision"] and entry["category"]
