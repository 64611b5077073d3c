"""Python dependencies, installed on first use (never at import), each after the user agreed.

Only the installing methods need Slicer; the checks (:func:`missingRequirements`) are plain Python.

* PyTorch comes from the PyTorch Utils extension (``EXTENSION_DEPENDS PyTorch``): it picks the wheel that matches
  the computer's CUDA driver, which a plain ``pip install torch`` would not.
* Everything else is listed in ``Resources/requirements.txt`` and installed with
  ``slicer.packaging.pip_ensure`` (Slicer >= 5.12: it asks, installs, and offers a restart when an already
  imported package changed), or, on older Slicer, with ``slicer.util.pip_install`` after a confirmation dialog.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["InstallLogic", "requirementsPath", "readRequirements", "missingRequirements", "TORCH_REQUIREMENT"]

#: The torch versions the library supports (as its pyproject.toml says).
TORCH_REQUIREMENT = ">=2.2"
_MODULE_DIR = Path(__file__).resolve().parent.parent


def requirementsPath() -> Path:
    """``requirements.txt``: among the module's resources when installed, at the top of a source checkout."""
    for candidate in (_MODULE_DIR / "Resources" / "requirements.txt",
                      _MODULE_DIR.parent / "Resources" / "requirements.txt"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"requirements.txt not found beside {_MODULE_DIR}")


def readRequirements(path: str | os.PathLike[str]) -> list[str]:
    """Requirement lines of a requirements file (comments, blank lines and pip options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def missingRequirements(requirements: Iterable[str]) -> list[str]:
    """The requirements not satisfied by the installed packages (markers that do not apply are skipped)."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not req.specifier.contains(installed, prereleases=True):
            missing.append(text)
    return missing


class InstallLogic:
    """Checks and installs the module's dependencies.

    Args:
        askConfirmation: ask before installing anything (off only in tests and scripted setups).
        requester: name shown in Slicer's install dialogs.
        log: receives progress messages.
    """

    def __init__(self, *, askConfirmation: bool = True, requester: str = "SyntheticImaging",
                 log: Callable[[str], None] | None = None) -> None:
        self.askConfirmation = askConfirmation
        self.requester = requester
        self.log = log or logging.info
        self.needsRestart = False

    @staticmethod
    def torchInstalled() -> bool:
        """``torch`` can be imported in a version the library supports."""
        return importlib.util.find_spec("torch") is not None and not missingRequirements([f"torch{TORCH_REQUIREMENT}"])

    def missing(self) -> list[str]:
        """What is not installed yet (torch first), without installing anything."""
        torch = [] if self.torchInstalled() else [f"torch{TORCH_REQUIREMENT}"]
        return torch + missingRequirements(readRequirements(requirementsPath()))

    def ensureDependencies(self) -> None:
        """Install what is missing (asking first). Raises RuntimeError when declined, failed, or when Slicer must
        restart before the new packages can be used."""
        if not self.missing():
            return
        self.ensureTorch()
        self.ensureRequirements()
        importlib.invalidate_caches()  # let this session import what was just installed
        if self.needsRestart:
            raise RuntimeError("The PyTorch extension was installed: restart Slicer, then run again.")

    def ensureTorch(self) -> None:
        """PyTorch through the PyTorch Utils extension (offering to install the extension when it is absent)."""
        if self.torchInstalled():
            return
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            self._installPyTorchExtension()
            return
        self.log(f"Installing PyTorch {TORCH_REQUIREMENT} with PyTorch Utils (this can take several minutes)...")
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=self.askConfirmation,
                                                                 torchVersionRequirement=TORCH_REQUIREMENT)
        if torch is None:
            raise RuntimeError("PyTorch was not installed (declined or failed); the generators need it.")

    def _installPyTorchExtension(self) -> None:
        import slicer

        text = ("SyntheticImaging needs the PyTorch extension (it installs the PyTorch build that fits this "
                "computer). Install it from the Extensions Manager now? Slicer must restart afterwards.")
        if self.askConfirmation and not slicer.util.confirmOkCancelDisplay(text, windowTitle="Install PyTorch"):
            raise RuntimeError("The PyTorch extension is required: install 'PyTorch' from the Extensions Manager.")
        manager = slicer.app.extensionsManagerModel()
        if not manager.isExtensionInstalled("PyTorch") and not manager.installExtensionFromServer("PyTorch"):
            raise RuntimeError("The PyTorch extension could not be installed: install it from the Extensions Manager.")
        self.needsRestart = True

    def ensureRequirements(self) -> None:
        """The packages of ``requirements.txt``."""
        import slicer

        path = requirementsPath()
        try:
            import slicer.packaging  # noqa: F401  (Slicer >= 5.12)
        except ImportError:
            pass
        else:
            self.log(f"Checking the Python packages of {path.name}...")
            slicer.packaging.pip_ensure(slicer.packaging.load_requirements(path), prompt_install=self.askConfirmation,
                                        requester=self.requester)
            return
        missing = missingRequirements(readRequirements(path))
        if not missing:
            return
        text = (f"SyntheticImaging needs these Python packages: {', '.join(missing)}.\n"
                "Install them now? This can take a few minutes.")
        if self.askConfirmation and not slicer.util.confirmOkCancelDisplay(text, windowTitle="Install packages"):
            raise RuntimeError(f"Installation declined; missing packages: {', '.join(missing)}")
        self.log(f"Installing {', '.join(missing)}...")
        slicer.util.pip_install(" ".join(missing))
