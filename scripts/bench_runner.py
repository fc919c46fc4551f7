"""The runner's verdict task against the naive way, on the demo model, on CPU.

Usage: .venv/bin/python scripts/bench_runner.py [--cases 64] [--seed 3]

Both sides answer the same cases of one generated k8s suite, in one process,
one after the other, so the shared machine's load moves both alike:

* runner: ``spotcheck run`` as a library call (``run_suite``), verdict task,
  default options: label log-likelihoods with the template's shared prefix
  cached, length-sorted batches, calibration on content-free configs;
* naive: a transformers ``pipeline("text-generation")`` over the same
  checkpoint, one prompt at a time, greedy, at most ``--naive-tokens`` new
  tokens (32: one sentence; it stops earlier at end-of-turn). The verdict
  is the first SAFE/UNSAFE in the answer, else "does not meet" (unsafe) or
  "meets" (safe), the demo model's usual wording.

The naive side's cost is the same prompt pass plus one decoding step per
new token, so the ratio depends on that budget. Measured on this 2-core host,
quiet, 64 cases (2026-12-05): 2.21x (runner 2.27 s/case, naive 5.01 s/case;
32 new tokens, every answer held a verdict). With 8 new tokens (too few:
none of 64 answers held a verdict) the ratio was 1.70x. An earlier 3.54x was
measured while another process loaded the machine, which slows the naive
side's many small decoding steps more than the runner's large matrix
products; do not trust a ratio measured under load.

Why about 2.2x is the ceiling here: a bare forward pass of a 460-token
prompt takes 2.1 s (matrix products at ~65 GFLOP/s, what MKL reaches on
these two cores), the naive side's 32 decoding steps about 2.9 s, and the
runner costs about 1.1x a bare pass. A runner that computes every prompt
token once cannot beat (prompt pass + decoding) / prompt pass, about 2.4x;
reusing prefixes shared between cases (not only the template's) would
compute about 1.2x fewer tokens on generated suites (measured on k8s and
IAM suites), still short of 4x.

Each side's time includes loading the model from the converted checkpoint
cache (about 3 s; run ``spotcheck run --model demo`` once first so that the
GGUF conversion is not timed). The last line is ``runner_vs_naive: <ratio>x``
(naive seconds over runner seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.prompts import load_template, render_case  # noqa: E402
from generator.run.models import local_checkpoint  # noqa: E402
from generator.run.runner import run_suite  # noqa: E402
from generator.rundata import iter_cases  # noqa: E402
from generator.suite import generate_suite  # noqa: E402

_LABEL = re.compile(r"\b(UNSAFE|SAFE)\b", re.IGNORECASE)
_WORDING = re.compile(r"\b(does not meet|doesn't meet|not meet|meets)\b", re.IGNORECASE)


def _verdict(text: str) -> str | None:
    found = _LABEL.search(text)
    if found:
        return found[1].lower()
    found = _WORDING.search(text)
    if found:
        return "safe" if found[1].lower() == "meets" else "unsafe"
    return None


def naive(suite: Path, count: int, new_tokens: int) -> tuple[float, float, int]:
    """Seconds, accuracy and unparseable answers of the pipeline, one by one."""
    import torch
    from transformers import pipeline

    started = time.monotonic()
    pipe = pipeline(
        "text-generation",
        model=str(local_checkpoint("demo")),
        dtype=torch.float32,
        device="cpu",
    )
    template = load_template("k8s", "verdict")
    correct = unparseable = 0
    cases = list(iter_cases(suite))[:count]
    for case in cases:
        reply = pipe(
            render_case(template, case), max_new_tokens=new_tokens, do_sample=False
        )
        answer = _verdict(reply[0]["generated_text"][-1]["content"])
        unparseable += answer is None
        correct += answer == case.truth.verdict
    return time.monotonic() - started, correct / len(cases), unparseable


def runner(suite: Path, count: int, out: Path) -> tuple[float, float]:
    """Seconds and accuracy of ``run_suite`` on the first ``count`` cases."""
    started = time.monotonic()
    summary = run_suite(suite, model="demo", out_dir=out, limit=count, progress=False)
    return time.monotonic() - started, summary["accuracy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--naive-tokens", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    # Convert the GGUF now if it never was, outside both timings.
    local_checkpoint("demo")
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        suite = Path(tmp) / "suite"
        generate_suite(
            domains=("k8s",), count=args.cases, seed=args.seed, out_dir=suite
        )
        run_seconds, run_accuracy = runner(suite, args.cases, Path(tmp) / "run")
        settings = json.loads((Path(tmp) / "run" / "run.json").read_text())
        naive_seconds, naive_accuracy, lost = naive(
            suite, args.cases, args.naive_tokens
        )

    print(f"cases: {args.cases} (k8s suite, seed {args.seed}), demo model on CPU")
    print(
        f"runner: {run_seconds:.1f} s ({run_seconds / args.cases:.2f} s/case), "
        f"accuracy {run_accuracy:.3f}, rule {settings['settings']['rule']}"
    )
    print(
        f"naive:  {naive_seconds:.1f} s ({naive_seconds / args.cases:.2f} s/case), "
        f"accuracy {naive_accuracy:.3f}, {lost} answers without a verdict "
        f"({args.naive_tokens} new tokens at most)"
    )
    print(f"runner_vs_naive: {naive_seconds / run_seconds:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
