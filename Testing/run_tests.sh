#!/usr/bin/env bash
# Install (CPU torch pinned) and run the whole test suite: the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test]"
python3 -m ruff check SyntheticImagingLib SyntheticImaging Testing
python3 -m mypy
python3 -m pytest -q "$@"
