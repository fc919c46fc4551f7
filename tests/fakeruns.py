"""Small synthetic suites and runs for the report, cluster and export tests.

Cases here are made by hand, not by the generator, so these tests pin the
downstream stages without waiting on (or breaking with) generation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from generator.records import (
    Case,
    Origin,
    Result,
    TagValue,
    Truth,
    Violation,
    dumps_line,
)

QUESTION = "pss:restricted:v1.37"


def make_case(
    number: int,
    *,
    tags: dict[str, TagValue] | None = None,
    verdict: str = "unsafe",
    rules: Iterable[str] = (),
    family: str = "pod",
    config: str | None = None,
) -> Case:
    """A case whose truth is given rather than computed by the oracle."""
    violations = tuple(
        Violation(rule, f"spec.containers[0].{rule}", f"{rule} is not allowed")
        for rule in rules
    )
    if violations:
        verdict = "unsafe"
    text = config if config is not None else f"kind: Pod\n# case {number}\n"
    return Case(
        id=f"k8s-{number:06d}",
        domain="k8s",
        family=family,
        origin=Origin("grammar", seed=number),
        format="yaml",
        config=text,
        question=QUESTION,
        truth=Truth(verdict, violations),  # type: ignore[arg-type]
        tags=dict(tags or {}),
    )


def answer(case: Case, said: str | None, *, model: str = "fake") -> Result:
    """The verdict-task result of a model that said ``said`` (None: garbage)."""
    truth = case.truth.verdict
    failure = None
    if said is None:
        failure = "unparseable"
    elif said != truth:
        failure = "missed_unsafe" if truth == "unsafe" else "false_alarm"
    return Result(
        case_id=case.id,
        task="verdict",
        template_id="k8s-verdict",
        template_version=1,
        model_id=model,
        output=(said or "no idea").upper(),
        answer=said,
        correct=failure is None,
        failure=failure,
    )


def write_suite(suite_dir: Path, cases: Iterable[Case]) -> Path:
    suite_dir.mkdir(parents=True, exist_ok=True)
    cases = list(cases)
    path = suite_dir / "cases.jsonl"
    path.write_text("".join(dumps_line(c) for c in cases), encoding="utf-8")
    manifest = {"sha256": sha256(path), "count": len(cases), "question": QUESTION}
    (suite_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return suite_dir


def write_run(
    run_dir: Path,
    suite_dir: Path,
    results: Iterable[Result],
    *,
    model: str = "fake",
    task: str = "verdict",
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(dumps_line(r) for r in results)
    (run_dir / "results.jsonl").write_text(lines, encoding="utf-8")
    meta = {
        "suite": str(suite_dir.resolve()),
        "suite_sha256": sha256(suite_dir / "cases.jsonl"),
        "model": model,
        "task": task,
        # As the runner writes it.
        "template": {"id": f"k8s-{task}", "version": 1},
    }
    (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    return run_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
