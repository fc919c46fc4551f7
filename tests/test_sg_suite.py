"""sg suites: oracle truth, balance per question kind, siblings, templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator import tags as T
from generator.config.terraform import load_module
from generator.oracle.sg import truth
from generator.prompts import load_template, render_case
from generator.records import Case
from generator.suite import generate_suite

KINDS = ("sg:open_ipv4", "sg:open_ipv6")


def _read(out: Path) -> list[Case]:
    lines = (out / "cases.jsonl").read_text().splitlines()
    return [Case.from_dict(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg-suite")
    manifest = generate_suite(domains=("sg",), count=60, seed=12, out_dir=out)
    return manifest, _read(out)


def test_an_sg_suite_holds_count_hcl_cases_of_both_kinds(suite):
    manifest, cases = suite
    assert len(cases) == manifest["cases"] == 60
    assert {c.format for c in cases} == {"hcl"}
    assert {c.question.rpartition(":")[0] for c in cases} == set(KINDS)
    assert manifest["questions"] == list(KINDS)


def test_each_verdict_is_at_least_thirty_percent_per_kind(suite):
    _, cases = suite
    for kind in KINDS:
        asked = [c for c in cases if c.question.startswith(kind + ":")]
        unsafe = sum(c.truth.verdict == "unsafe" for c in asked)
        assert 0.3 * len(asked) <= unsafe <= 0.7 * len(asked), kind


def test_every_config_parses_and_its_truth_is_the_oracles(suite):
    for case in suite[1]:
        assert load_module(case.config, source=case.id).resources
        assert case.truth == truth(case.config, case.question)


def test_tags_use_the_sg_keys_and_the_styles_vary(suite):
    _, cases = suite
    assert all(set(c.tags) == set(T.SG_KEYS) for c in cases)
    assert len({c.tags[T.RULE_STYLE] for c in cases}) >= 3


def test_opposite_siblings_flip_and_same_siblings_keep(suite):
    _, cases = suite
    by_id = {c.id: c for c in cases}
    pairs = [(c, by_id[o], r) for c in cases for r, o in c.siblings.items()
             if c.tags[T.RELATION] == "base"]  # fmt: skip
    assert {r for _, _, r in pairs} == {"same", "opposite"}
    for base, twin, relation in pairs:
        assert (twin.truth.verdict != base.truth.verdict) == (relation == "opposite")


def test_both_templates_name_the_port_and_the_internet(suite):
    case = next(c for c in suite[1] if c.question.startswith("sg:open_ipv6"))
    port = case.question.split(":")[2].split("/")[0]
    for task in ("verdict", "repair"):
        text = render_case(load_template("sg", task), case)[1]["content"]
        assert f"port {port}" in text and "IPv6" in text
