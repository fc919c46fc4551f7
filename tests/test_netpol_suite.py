"""netpol suites: oracle truth, balance, siblings, bytes, templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator import tags as T
from generator.oracle.netpol import truth
from generator.prompts import load_template, render_case
from generator.records import Case
from generator.suite import generate_suite

REPO = Path(__file__).resolve().parent.parent


def _read(out: Path) -> list[Case]:
    lines = (out / "cases.jsonl").read_text().splitlines()
    return [Case.from_dict(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("netpol-suite")
    manifest = generate_suite(domains=("netpol",), count=60, seed=11, out_dir=out)
    return manifest, _read(out)


def test_a_netpol_suite_holds_count_yaml_cases_each_asking_one_flow(suite):
    manifest, cases = suite
    assert len(cases) == manifest["cases"] == 60
    assert {c.domain for c in cases} == {"netpol"} and {c.format for c in cases} == {
        "yaml"
    }
    assert all(c.question.startswith("netpol:from=") for c in cases)
    assert manifest["questions"] == ["netpol:reach"] and manifest["question"] is None


def test_each_verdict_is_at_least_thirty_percent(suite):
    _, cases = suite
    unsafe = sum(c.truth.verdict == "unsafe" for c in cases)
    assert 18 <= unsafe <= 42


def test_the_stored_truth_is_the_oracles_verdict_on_the_exact_text(suite):
    for case in suite[1]:
        assert case.truth == truth(case.config, case.question)


def test_families_and_mutations_are_mixed_and_tags_use_the_netpol_keys(suite):
    _, cases = suite
    assert len({c.family for c in cases}) >= 8
    assert {c.origin.method for c in cases} == {"grammar", "mutation"}
    assert all(set(c.tags) == set(T.NETPOL_KEYS) for c in cases)


def test_siblings_link_both_ways_and_keep_or_flip_the_truth(suite):
    _, cases = suite
    by_id = {c.id: c for c in cases}
    relations = {"same": 0, "opposite": 0}
    for case in cases:
        if case.tags[T.RELATION] == "base":
            for relation, other in case.siblings.items():
                twin = by_id[other]
                assert twin.siblings == {relation: case.id}
                assert twin.question == case.question
                flipped = twin.truth.verdict != case.truth.verdict
                assert flipped == (relation == "opposite")
                relations[relation] += 1
    assert relations["same"] >= 5 and relations["opposite"] >= 5


def test_the_same_arguments_give_the_same_bytes_in_another_process(tmp_path):
    code = (
        "import sys; from generator.suite import generate_suite; "
        "generate_suite(domains=('netpol', 'sg'), count=30, seed=4, out_dir=sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], cwd=REPO,
                       env=env | {"PYTHONHASHSEED": str(len(name) * 7 + ord(name))},
                       check=True)  # fmt: skip
    for file in ("cases.jsonl", "manifest.json"):
        assert (tmp_path / "a" / file).read_bytes() == (
            tmp_path / "b" / file
        ).read_bytes()


def test_both_templates_render_the_flow_of_a_case(suite):
    case = next(c for c in suite[1] if c.truth.verdict == "unsafe")
    src = case.question.split("from=")[1].split(",")[0]
    for task in ("verdict", "repair"):
        messages = render_case(load_template("netpol", task), case)
        assert (
            src in messages[1]["content"]
            and case.config.strip() in messages[1]["content"]
        )
