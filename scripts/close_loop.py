"""Does the loop close? Fuzz, export, fine-tune, and measure on fresh cases.

1. Generate the evaluation suite first (its own seed), so every later step
   can keep away from it.
2. Fuzz the base model for a fixed number of cases.
3. Export the fuzz's failures with oracle answers, excluding every case equal
   or near-equal to one of the evaluation suite, labels balanced with
   correctly answered cases (failures alone lean to one label and mostly
   move the decision threshold; research/finetune-feasibility.md).
4. Fine-tune the base model on the export's training split.
5. Run base and tuned on the evaluation suite, report both.

Prints the missed-unsafe rate (unsafe configs called safe) of both models,
with false alarms and accuracy beside it, since a model that calls
everything unsafe misses nothing; the last line is
``relative_reduction: <fraction>``, (base - tuned) / base of the
missed-unsafe rate. Everything runs through the ``spotcheck`` command line
except the training step. Usage: scripts/close_loop [--out DIR] [...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.finetune import TrainSettings, finetune, load_chats  # noqa: E402


def main() -> int:
    args = _arguments()
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    _step(
        started, f"1/5 evaluation suite: {args.eval_count} cases, seed {args.eval_seed}"
    )
    suite = out / "eval-suite"
    _spotcheck("generate", "--domain", "k8s", "--count", str(args.eval_count),
               "--seed", str(args.eval_seed), "--out", str(suite))  # fmt: skip

    _step(started, f"2/5 fuzzing {args.model} for {args.fuzz_cases} cases")
    fuzz = out / "fuzz"
    _spotcheck("fuzz", "--model", args.model, "--domain", "k8s", "--cases",
               str(args.fuzz_cases), "--seed", str(args.fuzz_seed), "--out",
               str(fuzz), "--no-progress")  # fmt: skip

    _step(started, "3/5 exporting failures (evaluation suite excluded)")
    data = out / "data"
    _spotcheck("export", str(fuzz), "--out", str(data), "--exclude", str(suite),
               "--balance", "fill", "--test-fraction", "0")  # fmt: skip
    chats = load_chats(_train_file(data))

    _step(started, f"4/5 fine-tuning on {len(chats)} examples")
    settings = TrainSettings(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        seed=args.fuzz_seed,
        max_tokens=args.max_tokens,
        train_layers=args.train_layers or None,
    )
    tuned = out / "tuned"
    shutil.rmtree(tuned, ignore_errors=True)
    summary = finetune(args.model, chats, tuned, settings, progress=_progress())
    print(f"\ntrained {summary['steps']} steps in {summary['seconds']:.0f} s, loss "
          f"{summary['first_loss']:.3f} -> {summary['last_loss']:.3f}")  # fmt: skip

    _step(started, "5/5 evaluating base and tuned on the evaluation suite")
    rates = {}
    for name, model in (("base", args.model), ("tuned", str(tuned))):
        run = out / f"eval-{name}"
        _spotcheck("run", "--suite", str(suite), "--model", model, "--out", str(run),
                   "--no-progress")  # fmt: skip
        rates[name] = _rates(run)

    for name, r in rates.items():
        print(f"{name}: missed_unsafe {_pct(r['missed_unsafe'])}, false_alarm "
              f"{_pct(r['false_alarm'])}, accuracy {_pct(r['accuracy'])}")  # fmt: skip
    print(f"elapsed: {(time.monotonic() - started) / 60:.1f} min")
    base, after = (
        rates["base"]["missed_unsafe"]["value"],
        rates["tuned"]["missed_unsafe"]["value"],
    )
    reduction = (base - after) / base if base else 0.0
    print(f"relative_reduction: {reduction:.3f}")
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "close-loop-out")
    parser.add_argument("--model", default="demo")
    # Sized for 2 CPU cores without fast bf16, where the demo model reads
    # ~250 tokens/s: under 30 minutes in all, measured (see the README).
    parser.add_argument("--fuzz-cases", type=int, default=100)
    parser.add_argument("--eval-count", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=768,
        help="training examples longer than this are left out",
    )
    parser.add_argument(
        "--train-layers",
        type=int,
        default=6,
        help="train the last N transformer blocks (0: all)",
    )
    parser.add_argument("--fuzz-seed", type=int, default=1)
    parser.add_argument("--eval-seed", type=int, default=2)
    return parser.parse_args()


def _spotcheck(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "spotcheck"), *args]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL)
    if completed.returncode != 0:
        sys.exit(
            f"close_loop: spotcheck {args[0]} failed (exit {completed.returncode})"
        )


def _train_file(data: Path) -> Path:
    for candidate in ("messages/train.jsonl", "train.jsonl", "failures.jsonl"):
        if (data / candidate).is_file():
            return data / candidate
    sys.exit(f"close_loop: no training file in {data}")


def _rates(run: Path) -> dict:
    report = subprocess.run(
        [str(Path(sys.executable).parent / "spotcheck"), "report", str(run), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(report.stdout)["runs"][0]["rates"]


def _step(started: float, text: str) -> None:
    print(f"[{(time.monotonic() - started) / 60:5.1f} min] {text}", flush=True)


def _progress():
    last = [0.0]

    def show(step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if now - last[0] > 10 or step == steps:
            last[0] = now
            print(f"\r  step {step}/{steps} loss {loss:.3f}", end="", flush=True)

    return show


def _pct(r: dict) -> str:
    return (
        f"{r['value']:.3f} ({r['count']}/{r['of']})"
        if r["value"] is not None
        else "n/a"
    )


if __name__ == "__main__":
    sys.exit(main())
