"""Long fuzz run over the readers (NIfTI/NRRD/MHA/DICOM/dataset.json/model card) and the CLI.

    python Testing/benchmarks/fuzz_inputs.py --count 10000

Prints how many inputs ran per target, the outcome counts, and every unexpected exception (exit 1 if any).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzzing import TARGETS, UnexpectedError, make_seeds, run_target  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10000, help="inputs in all (split over the targets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    names = args.targets.split(",")
    seeds = make_seeds()
    rnd = random.Random(args.seed)
    outcomes: dict[str, collections.Counter] = {n: collections.Counter() for n in names}
    failures = []
    started = time.monotonic()
    for i in range(args.count):
        name = names[i % len(names)]
        try:
            outcomes[name][run_target(seeds, name, rnd)] += 1
        except UnexpectedError as err:
            outcomes[name]["UNEXPECTED"] += 1
            failures.append((name, str(err), traceback.format_exc(limit=-3)))
    elapsed = time.monotonic() - started
    print(f"{args.count} inputs in {elapsed:.0f} s")
    for name, counts in outcomes.items():
        print(f"  {name:13s} {sum(counts.values()):6d} inputs  " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    print(f"unexpected exceptions: {len(failures)}")
    for name, message, tb in failures[:20]:
        print(f"--- {name}: {message}\n{tb}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
