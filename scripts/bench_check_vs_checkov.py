#!/usr/bin/env python3
"""How fast ``spotcheck check`` judges manifests, against checkov on the same files.

    scripts/crosscheck_checkov.py --setup        # once: checkov in .venv-checkov
    .venv/bin/python scripts/bench_check_vs_checkov.py [--fixtures DIR]

Both tools get all 4,537 upstream Pod Security fixtures in one process call
each, parsing and start-up included: ``spotcheck check --json FILE...`` and
``checkov -d DIR`` offline (``--skip-download``, ``BC_SKIP_MAPPING=TRUE``,
``--compact --quiet``). The last line is ``oracle_vs_checkov: <ratio>x``, the
ratio of manifests per second, measured in this run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SPOTCHECK = ROOT / ".venv" / "bin" / "spotcheck"
FIXTURES = ROOT.parent / "shared" / "conformance" / "pss"


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        check=False,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args()
    files = sorted(str(p) for p in args.fixtures.glob("*/v*/*/*.yaml"))
    if not files:
        sys.exit(f"no fixtures under {args.fixtures}; pass --fixtures DIR")
    if not CHECKOV.exists():
        sys.exit(f"{CHECKOV} is missing; run scripts/crosscheck_checkov.py --setup")

    ours = timed([str(SPOTCHECK), "check", "--json", *files])
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    theirs = timed(
        [str(CHECKOV), "-d", str(args.fixtures), "--framework", "kubernetes",
         "--skip-download", "--compact", "--quiet", "-o", "json"],
        env,
    )  # fmt: skip
    ours_rate, theirs_rate = len(files) / ours, len(files) / theirs
    print(f"manifests: {len(files)}")
    print(f"spotcheck_check_per_second: {ours_rate:.0f} ({ours:.2f} s)")
    print(f"checkov_per_second: {theirs_rate:.0f} ({theirs:.2f} s)")
    print(f"oracle_vs_checkov: {ours_rate / theirs_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
