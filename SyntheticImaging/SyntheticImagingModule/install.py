"""Python dependencies, installed on first use (never at import), each after the user agreed.

Only the installing methods need Slicer; the checks (:func:`missingRequirements`) are plain Python.

* PyTorch comes from the PyTorch Utils extension (``EXTENSION_DEPENDS PyTorch``): it picks the wheel that matches
  the computer's CUDA driver, which a plain ``pip install torch`` would not.
* Everything else is listed in ``Resources/requirements.txt`` and installed with
  ``slicer.packaging.pip_ensure`` (Slicer >= 5.12: it installs, and offers a restart when an already imported
  package changed) with a constraints file pinning the installed torch, or, on older Slicer, with
  ``slicer.util.pip_install``.
* The user is asked once, for everything that is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["InstallLogic", "requirementsPath", "readRequirements", "missingRequirements", "torchConstraints",
           "TORCH_REQUIREMENT"]

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


#: Set once an install needs Slicer to restart (the PyTorch extension, or packages that were already imported);
#: kept at module level so a reloaded panel still knows.
_restartPending = False


def torchConstraints(directory: str | os.PathLike[str]) -> Path:
    """A pip constraints file pinning the installed torch, so that installing MONAI (which requires torch) keeps
    the build PyTorch Utils chose for this computer instead of pulling a PyPI one."""
    version = importlib.metadata.version("torch")
    path = Path(directory) / "SyntheticImaging-torch-constraints.txt"
    path.write_text(f"torch=={version}\n", encoding="utf-8")
    return path


class InstallLogic:
    """Checks and installs the module's dependencies, with one confirmation for all of them.

    Order matters: PyTorch first (through the PyTorch Utils extension, which picks the CUDA build), then the other
    packages pinned to that torch. When the extension itself is missing or a restart is pending, nothing is
    pip-installed: MONAI installed now would pull a PyPI torch into this Slicer.

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

    @property
    def needsRestart(self) -> bool:
        """An install of this session needs Slicer to restart before the packages can be used."""
        return _restartPending

    @staticmethod
    def _setRestartPending() -> None:
        global _restartPending
        _restartPending = True

    @staticmethod
    def torchInstalled() -> bool:
        """``torch`` can be imported in a version the library supports."""
        return importlib.util.find_spec("torch") is not None and not missingRequirements([f"torch{TORCH_REQUIREMENT}"])

    @staticmethod
    def pytorchUtilsAvailable() -> bool:
        """The PyTorch Utils extension is installed (its module can be imported)."""
        return importlib.util.find_spec("PyTorchUtils") is not None

    def missing(self) -> list[str]:
        """What is not installed yet (torch first), without installing anything."""
        torch = [] if self.torchInstalled() else [f"torch{TORCH_REQUIREMENT}"]
        return torch + missingRequirements(readRequirements(requirementsPath()))

    def ensureDependencies(self) -> None:
        """Install what is missing after one confirmation. Raises RuntimeError when declined, failed, or when
        Slicer must restart before the packages can be used (then nothing else is installed)."""
        if self.needsRestart:
            raise RuntimeError("Slicer must restart to finish installing SyntheticImaging's dependencies: "
                               "restart Slicer, then run again.")
        missing = self.missing()
        if not missing:
            return
        if not self.torchInstalled() and not self.pytorchUtilsAvailable():
            self._installPyTorchExtension()  # asks; then a restart is needed before anything else
            raise RuntimeError("The PyTorch extension was installed: restart Slicer, then run again.")
        if self.askConfirmation:
            import slicer

            text = (f"SyntheticImaging needs these Python packages: {', '.join(missing)}.\n"
                    "Install them now? This can take several minutes (PyTorch comes from the PyTorch extension, "
                    "in the build that fits this computer).")
            if not slicer.util.confirmOkCancelDisplay(text, windowTitle="Install dependencies"):
                raise RuntimeError(f"Installation declined; missing packages: {', '.join(missing)}")
        self.ensureTorch()
        self.ensureRequirements()
        importlib.invalidate_caches()  # let this session import what was just installed
        if self.needsRestart:
            raise RuntimeError("Packages that were already loaded were updated: restart Slicer, then run again.")

    def ensureTorch(self) -> None:
        """PyTorch through the PyTorch Utils extension (already confirmed by :meth:`ensureDependencies`)."""
        if self.torchInstalled():
            return
        import PyTorchUtils

        self.log(f"Installing PyTorch {TORCH_REQUIREMENT} with PyTorch Utils (this can take several minutes)...")
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                                 torchVersionRequirement=TORCH_REQUIREMENT)
        if torch is None:
            raise RuntimeError("PyTorch was not installed; the generators need it. Install it from the PyTorch "
                               "Utils module, then run again.")

    def _installPyTorchExtension(self) -> None:
        import slicer

        text = ("SyntheticImaging needs the PyTorch extension (it installs the PyTorch build that fits this "
                "computer). Install it from the Extensions Manager now? Slicer must restart afterwards.")
        if self.askConfirmation and not slicer.util.confirmOkCancelDisplay(text, windowTitle="Install PyTorch"):
            raise RuntimeError("The PyTorch extension is required: install 'PyTorch' from the Extensions Manager.")
        manager = slicer.app.extensionsManagerModel()
        if not manager.isExtensionInstalled("PyTorch") and not manager.installExtensionFromServer("PyTorch"):
            raise RuntimeError("The PyTorch extension could not be installed: install it from the Extensions Manager.")
        self._setRestartPending()

    def ensureRequirements(self) -> None:
        """The packages of ``requirements.txt``, pinned to the installed torch (already confirmed)."""
        import tempfile

        import slicer

        path = requirementsPath()
        try:
            import slicer.packaging  # noqa: F401  (Slicer >= 5.12)
        except ImportError:
            pass
        else:
            self.log(f"Checking the Python packages of {path.name}...")
            with tempfile.TemporaryDirectory(prefix="SyntheticImaging-") as folder:
                constraints = torchConstraints(folder) if self.torchInstalled() else None
                slicer.packaging.pip_ensure(slicer.packaging.load_requirements(path), constraints=constraints,
                                            prompt_install=False, requester=self.requester)
            return
        missing = missingRequirements(readRequirements(path))
        if not missing:
            return
        self.log(f"Installing {', '.join(missing)}...")
        slicer.util.pip_install(" ".join(missing))
