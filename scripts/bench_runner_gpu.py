"""The runner's verdict task on a GPU: transformers (bf16), naive, and vLLM.

Usage: python scripts/bench_runner_gpu.py [--model demo|PATH] [--cases 2000]

For a machine with CUDA (it stops with exit status 2 and a one-line reason
on a machine without). On one generated k8s suite, in one process:

* ``runner-transformers``: ``run_suite`` with the transformers backend
  (bf16 on CUDA, length-sorted batches under ``--max-batch-tokens``,
  out-of-memory backoff), ``--batch-size`` cases per journal write;
* ``naive``: a transformers ``pipeline("text-generation")``, one prompt at
  a time, greedy, 8 new tokens, on the first ``--naive-cases`` cases only
  (it is slow) and scaled to per-case time;
* ``runner-vllm``: ``run_suite`` with the vLLM backend, when ``import vllm``
  works (``--tensor-parallel-size`` passed through).

It prints cases per second for each and the verdict agreement between the
runner's backends, then ``runner_vs_naive: <ratio>x`` last.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_LABEL = re.compile(r"\b(UNSAFE|SAFE)\b", re.IGNORECASE)


def _answers(out: Path) -> dict[str, str]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return {r["case_id"]: r["answer"] for r in map(json.loads, lines)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--naive-cases", type=int, default=64)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-batch-tokens", type=int, default=65536)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    if not torch.cuda.is_available():
        print(
            "bench_runner_gpu: no CUDA device here (torch.cuda.is_available() is "
            "False); run scripts/bench_runner.py for the CPU benchmark",
            file=sys.stderr,
        )
        return 2

    from transformers import pipeline

    from generator.prompts import load_template, render_case
    from generator.run.models import local_checkpoint
    from generator.run.runner import run_suite
    from generator.rundata import iter_cases
    from generator.suite import generate_suite

    local_checkpoint(args.model)
    print(f"device: {torch.cuda.get_device_name(0)}, model {args.model}")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-runner-gpu-") as tmp:
        suite = Path(tmp) / "suite"
        generate_suite(
            domains=("k8s",), count=args.cases, seed=args.seed, out_dir=suite
        )
        cases = list(iter_cases(suite))

        common = {
            "model": args.model,
            "batch_size": args.batch_size,
            "progress": False,
        }
        started = time.monotonic()
        run_suite(
            suite,
            out_dir=Path(tmp) / "transformers",
            max_batch_tokens=args.max_batch_tokens,
            **common,
        )
        rates["runner-transformers"] = len(cases) / (time.monotonic() - started)

        if importlib.util.find_spec("vllm") is not None:
            started = time.monotonic()
            run_suite(
                suite,
                out_dir=Path(tmp) / "vllm",
                backend="vllm",
                backend_options={
                    "tensor_parallel_size": args.tensor_parallel_size,
                    "gpu_memory_utilization": 0.5,
                },
                **common,
            )
            rates["runner-vllm"] = len(cases) / (time.monotonic() - started)
            a = _answers(Path(tmp) / "transformers")
            b = _answers(Path(tmp) / "vllm")
            same = sum(a[k] == b.get(k) for k in a) / len(a)
            print(f"verdict agreement transformers vs vllm: {same:.3f}")
        else:
            print("vllm: not installed here; skipped")

        pipe = pipeline(
            "text-generation",
            model=str(local_checkpoint(args.model)),
            dtype=torch.bfloat16,
            device="cuda",
        )
        template = load_template("k8s", "verdict")
        started = time.monotonic()
        for case in cases[: args.naive_cases]:
            pipe(render_case(template, case), max_new_tokens=8, do_sample=False)
        rates["naive"] = args.naive_cases / (time.monotonic() - started)

    for name, rate in rates.items():
        print(f"{name}: {rate:.1f} cases/s")
    print(f"runner_vs_naive: {rates['runner-transformers'] / rates['naive']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
