#!/usr/bin/env python3
"""How many Kubernetes cases ``generate`` makes per second on one core.

    .venv/bin/python scripts/bench_generate.py [--count 1000]

One process, one core: grammar draws and mutation chains, the oracle's
verdict on every candidate and on every kept case, and rendering to YAML,
exactly as ``spotcheck generate`` does them (cases.jsonl and manifest.json are
written to a temporary directory). Prints where the time went, then
``k8s_cases_per_second_per_core: <n>`` as its last line.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.suite import generate_suite  # noqa: E402

# Where the time goes, by the function that owns it (cumulative seconds).
STAGES = {
    "hypothesis engine (grammar draws)": "draw_examples",
    "oracle on candidates": "_judge",
    "cases: oracle on the exact text, tags": "to_case",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        generate_suite(count=args.count, seed=args.seed, out_dir=out)
        profile.disable()
        seconds = time.perf_counter() - started

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for stage, function in STAGES.items():
        spent = sum(v[3] for k, v in stats.items() if k[2] == function)
        print(f"{stage}: {spent:.2f} s")
    print(f"cases: {args.count} in {seconds:.2f} s (profiled)")
    print(f"k8s_cases_per_second_per_core: {args.count / seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
