#!/usr/bin/env python3
"""How fast the IAM oracle answers, on the policies a generated suite holds.

    .venv/bin/python scripts/bench_iam_oracle.py [--count 300] [--seed 1]
    .venv/bin/python scripts/bench_iam_oracle.py --cases DIR/cases.jsonl

A suite is generated in a child process (``spotcheck generate --domain iam``),
so the oracle's caches in this process start empty; ``--cases`` reads an
existing suite instead. After a warm-up (the action catalogue and its
entries for the escalation methods' actions, one small policy) every
distinct policy of the suite is asked each question that applies to it
(privesc then admin for identity policies, public for the others), one at
a time, and each answer is timed in CPU time of this process
(``time.process_time``), so other work on a loaded machine inflates the
figures little. Prints the mean, p50, p99 and worst answer times per
question and overall, the slowest policies, and as its last line
``iam_answers_per_second: <n>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.config.iam import kind, load_policy, parse_policy  # noqa: E402
from generator.errors import ConfigError  # noqa: E402
from generator.oracle.iam import answer  # noqa: E402
from generator.oracle.iam_catalogue import action_info, all_actions  # noqa: E402
from generator.oracle.iam_privesc import methods  # noqa: E402


def suite_cases(args: argparse.Namespace) -> list[str]:
    """The policy texts of the suite, each distinct meaning once."""
    if args.cases:
        path = Path(args.cases)
        return _configs(path)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "generator",
            "generate",
            "--domain",
            "iam",
            "--count",
            str(args.count),
            "--seed",
            str(args.seed),
            "--out",
            tmp,
        ]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        cases = Path(tmp) / "cases.jsonl"
        if not cases.is_file():
            raise SystemExit(f"spotcheck generate wrote no {cases.name}")
        return _configs(cases)


def _configs(path: Path) -> list[str]:
    texts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        config = json.loads(line)["config"]
        try:
            key = json.dumps(json.loads(config), sort_keys=True)
        except ValueError:
            continue
        texts.setdefault(key, config)
    return list(texts.values())


def warm_up() -> None:
    """Load the action catalogue and what it says about every method's actions."""
    all_actions()
    for method in methods():
        for action in (*method.required, *(a for g in method.any_of for a in g)):
            action_info(action)
    small = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    answer(parse_policy(small), "privesc")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * (len(ordered) - 1) + 0.5))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", help="an existing suite's cases.jsonl")
    parser.add_argument("--slowest", type=int, default=5)
    args = parser.parse_args(argv)

    configs = suite_cases(args)
    warm_up()
    times: dict[str, list[float]] = {}
    slow: list[tuple[float, str, str]] = []
    for text in configs:
        try:
            policy = load_policy(text)
        except ConfigError:
            continue
        questions = ("privesc", "admin") if kind(policy) == "identity" else ("public",)
        for question in questions:
            started = time.process_time()
            try:
                answer(policy, question)
            except ConfigError:
                continue
            elapsed = time.process_time() - started
            times.setdefault(question, []).append(elapsed)
            slow.append((elapsed, question, " ".join(text.split())[:160]))

    every = [t for values in times.values() for t in values]
    if not every:
        print("no policy to answer", file=sys.stderr)
        return 1
    print(f"{len(configs)} policies, {len(every)} answers")
    for name, values in [*sorted(times.items()), ("all", every)]:
        print(
            f"{name:8} n={len(values):5}  mean {1000 * statistics.mean(values):7.2f} ms"
            f"  p50 {1000 * percentile(values, 0.5):7.2f} ms"
            f"  p99 {1000 * percentile(values, 0.99):7.2f} ms"
            f"  max {1000 * max(values):7.2f} ms"
        )
    print("slowest:")
    for elapsed, question, text in sorted(slow, reverse=True)[: args.slowest]:
        print(f"  {1000 * elapsed:8.2f} ms  {question:7}  {text}")
    print(f"iam_answers_per_second: {len(every) / sum(every):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
