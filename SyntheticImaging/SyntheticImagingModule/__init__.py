"""The SyntheticImaging Slicer module's code, kept out of the thin module file (as SlicerNNUnet does):

* :mod:`.parameters` - the ``@parameterNodeWrapper`` parameter node (saved with the scene);
* :mod:`.logic` - MRML nodes <-> :class:`SyntheticImagingLib.cases.Case`, results -> table/plot nodes, and the
  Python-console API (``slicer.util.getModuleLogic("SyntheticImaging")``);
* :mod:`.jobs` - the library's CLI in a background process, its JSON progress lines, cancel of the process tree;
* :mod:`.install` - dependencies on first use (PyTorch extension, ``slicer.packaging.pip_ensure``);
* :mod:`.reader_study` - randomisation, scoring and CSV of the real-vs-synthetic reader study;
* :mod:`.results` - reading evaluation reports (tables, nearest pairs, plot data);
* :mod:`.views` - layouts and views (needs the Slicer application);
* :mod:`.widget` - the module panel.

Installed, ``SyntheticImagingLib`` lies beside this package. Run from a source checkout (the module folder added to
Slicer's module paths, or the tests), it lies one folder up: put that folder on ``sys.path`` so both work.
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("SyntheticImagingLib") is None:
    _source_root = Path(__file__).resolve().parents[2]
    if (_source_root / "SyntheticImagingLib" / "__init__.py").exists():
        sys.path.append(str(_source_root))
