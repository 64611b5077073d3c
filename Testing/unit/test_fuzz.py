"""Property-based fuzzing (hypothesis) of the readers and the CLI: a result or the project's own error, never a
traceback from inside a dependency. The long run (>= 10,000 inputs) is Testing/benchmarks/fuzz_inputs.py."""

from __future__ import annotations

import random

import pytest
from fuzzing import CLI_VOCABULARY, TARGETS, make_seeds, run_target, target_cli, target_dataset_json, target_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)


@pytest.fixture(scope="module")
def seeds():
    return make_seeds()


@pytest.mark.parametrize("name", list(TARGETS))
@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_inputs_end_in_own_errors(seeds, name, seed):
    assert run_target(seeds, name, random.Random(seed)) in ("ok", "error", "usage")


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from(["nii", "nii.gz", "nrrd", "mha"]))
def test_random_bytes_as_images(seeds, data, suffix):
    assert target_image(seeds, data, suffix) in ("ok", "error")


@FUZZ
@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                         max_leaves=20), wrap=st.booleans())
def test_random_json_as_dataset(seeds, data, wrap):
    import json

    assert target_dataset_json(seeds, json.dumps({"training": data} if wrap else data)) in ("ok", "error")


@FUZZ
@given(argv=st.lists(st.sampled_from(CLI_VOCABULARY) | st.text(max_size=12), max_size=10))
def test_random_cli_arguments(seeds, argv):
    assert target_cli(seeds, argv) in ("ok", "error", "usage")
