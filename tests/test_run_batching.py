"""Results do not depend on how cases are batched, beyond float noise."""

from __future__ import annotations

import json

import pytest
from tinymodel import SAFE_POD, build_tiny_model, make_case, pod_variants, write_suite

from generator.records import Result
from generator.run.runner import run_suite


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    texts = list(pod_variants())
    texts += [SAFE_POD.replace("name: web", f"name: w{'x' * i}") for i in range(12)]
    return write_suite(tmp_path_factory.mktemp("suite"), [make_case(t) for t in texts])


def _results(out) -> dict[str, Result]:
    lines = (out / "results.jsonl").read_text().splitlines()
    results = [Result.from_dict(json.loads(line)) for line in lines]
    return {r.case_id: r for r in results}


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 16},
        {"batch_size": 16, "max_batch_tokens": 200},
    ],
)
def test_batch_size_1_and_16_give_the_same_verdicts(
    suite, tmp_path, tiny_model, options
):
    one = tmp_path / "one"
    run_suite(suite, model=tiny_model, out_dir=one, batch_size=1, progress=False)
    many = tmp_path / "many"
    summary = run_suite(
        suite, model=tiny_model, out_dir=many, progress=False, **options
    )
    assert summary["backend"]["max_batch_tokens"] == options.get(
        "max_batch_tokens", 16384
    )

    a, b = _results(one), _results(many)
    assert a.keys() == b.keys()
    for case_id, result in a.items():
        other = b[case_id]
        for key, value in result.scores.items():
            assert other.scores[key] == pytest.approx(value, abs=1e-4), key
        if abs(result.scores["decision"]) > 1e-3:
            assert other.answer == result.answer
