"""``DIR/fuzz.json``: what a fuzz is, and how far it got.

The file is rewritten whole, atomically (written beside, fsync'd, renamed),
after every round, so it always describes rounds that are completely on
disk: ``rounds`` says how many are folded into the statistics. A round
after that one may be half done; the loop finishes it on resume (see
``generator.fuzz.loop``).

What it holds:

* ``params``: the options that make the fuzz what it is (``IDENTITY``: the
  model, backend, task, domains, question, seed and round size) and the
  ones that only say how to run it (batch sizes, the backend's own
  options). A resume may change the second kind, never the first: two
  models' answers in one directory would make one meaningless record.
* ``budget``: ``hours`` of wall-clock time over all sessions and/or
  ``cases`` answered in all; a resume may give a new one.
* the arms' statistics (``generator.fuzz.bandit.ArmStats``), the case
  families' and the operators' counts, the totals and ``elapsed`` seconds.

No random state is stored: each round draws from a ``random.Random``
seeded by the fuzz seed and the round number, so the statistics alone fix
the next round's choices.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument, SuiteError
from generator.fuzz.bandit import ArmStats
from generator.run.journal import write_json_atomic

__all__ = [
    "FUZZ_VERSION",
    "IDENTITY",
    "FuzzState",
    "load_state",
    "merged_params",
    "save_state",
]

FUZZ_VERSION = 1
FILE = "fuzz.json"
IDENTITY = ("model", "backend", "task", "domains", "question", "seed", "round_size")
# How each identity option is spelled on the command line, for errors.
FLAGS = {
    "model": "--model",
    "backend": "--backend",
    "task": "--task",
    "domains": "--domain",
    "question": "--level/--pss-version",
    "seed": "--seed",
    "round_size": "--round-size",
}


@dataclass
class FuzzState:
    """Everything fuzz.json holds, as the loop updates it."""

    params: dict[str, Any]
    budget: dict[str, Any]
    rounds: int = 0
    answered: int = 0
    failures: int = 0
    elapsed: float = 0.0
    status: str = "running"
    failure_kinds: Counter[str] = field(default_factory=Counter)
    truth: Counter[str] = field(default_factory=Counter)
    arms: dict[str, ArmStats] = field(default_factory=dict)
    families: dict[str, dict[str, int]] = field(default_factory=dict)
    operators: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fuzz_version": FUZZ_VERSION,
            "params": self.params,
            "budget": self.budget,
            "status": self.status,
            "rounds": self.rounds,
            "answered": self.answered,
            "failures": self.failures,
            "failure_kinds": dict(sorted(self.failure_kinds.items())),
            "truth": dict(sorted(self.truth.items())),
            "elapsed_seconds": round(self.elapsed, 3),
            "arms": {k: v.to_dict() for k, v in sorted(self.arms.items())},
            "families": dict(sorted(self.families.items())),
            "operators": dict(sorted(self.operators.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FuzzState:
        return cls(
            params=data["params"],
            budget=data["budget"],
            rounds=int(data["rounds"]),
            answered=int(data["answered"]),
            failures=int(data["failures"]),
            elapsed=float(data["elapsed_seconds"]),
            status=str(data.get("status", "running")),
            failure_kinds=Counter(data.get("failure_kinds", {})),
            truth=Counter(data.get("truth", {})),
            arms={k: ArmStats.from_dict(v) for k, v in data["arms"].items()},
            families=data.get("families", {}),
            operators=data.get("operators", {}),
        )


def load_state(out: Path) -> FuzzState | None:
    """The state in ``out/fuzz.json``; None when there is no such file."""
    path = out / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("fuzz_version") != FUZZ_VERSION:
        raise SuiteError(
            f"{path}: not a fuzz state of version {FUZZ_VERSION}; start the fuzz "
            "in another --out directory"
        )
    try:
        return FuzzState.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteError(f"{path}: broken ({exc!r}); start in another --out") from None


def save_state(out: Path, state: FuzzState) -> None:
    """Rewrite ``out/fuzz.json`` atomically."""
    write_json_atomic(out / FILE, state.to_dict())


def merged_params(
    out: Path, recorded: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """``recorded`` with what was ``given`` (None: not given) laid over it.

    An identity option given with another value than the recorded one is
    an ``InvalidArgument`` naming both and the way out.
    """
    for key in IDENTITY:
        value = given.get(key)
        if value is not None and value != recorded.get(key):
            raise InvalidArgument(
                f"{out / FILE}: this fuzz was started with {FLAGS[key]} "
                f"{_spell(recorded.get(key))}, not {_spell(value)}; resume with "
                "the same value (or leave it out) or fuzz into another --out"
            )
    merged = dict(recorded)
    for key, value in given.items():
        if key in IDENTITY or value is None:
            continue
        if isinstance(value, dict):
            # Backend options: each one given replaces the recorded one.
            chosen = {k: v for k, v in value.items() if v is not None}
            value = {**merged.get(key, {}), **chosen}
        merged[key] = value
    return merged


def _spell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value)
