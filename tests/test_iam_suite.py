"""IAM suites: oracle truth, balance per question, siblings, bytes, run and repair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator import tags as T
from generator.errors import InvalidArgument
from generator.prompts import load_template, render_case
from generator.records import Case, Origin, Truth, case_id
from generator.run.iam_intent import extract_json, intent_lost, probes
from generator.run.repair import judge_repair
from generator.run.runner import REPAIR_DOMAINS
from generator.suite import generate_suite

oracle = pytest.importorskip("generator.oracle.iam")

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = ("iam:privesc", "iam:admin", "iam:public")


def _read(out: Path) -> list[Case]:
    lines = (out / "cases.jsonl").read_text().splitlines()
    return [Case.from_dict(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple[dict, list[Case], Path]:
    out = tmp_path_factory.mktemp("iam-suite")
    manifest = generate_suite(domains=("iam",), count=60, seed=20260101, out_dir=out)
    return manifest, _read(out), out


def test_an_iam_suite_holds_count_cases_of_every_question(suite):
    manifest, cases, _ = suite
    assert len(cases) == manifest["cases"] == 60
    assert {c.domain for c in cases} == {"iam"}
    assert {c.question for c in cases} == set(QUESTIONS)
    assert manifest["questions"] == list(QUESTIONS) and manifest["question"] is None
    assert all(c.format == "json" for c in cases)


def test_each_verdict_is_at_least_thirty_percent_per_question(suite):
    _, cases, _ = suite
    for question in QUESTIONS:
        asked = [c for c in cases if c.question == question]
        unsafe = sum(c.truth.verdict == "unsafe" for c in asked)
        assert 0.3 * len(asked) <= unsafe <= 0.7 * len(asked), question


def test_the_stored_truth_is_the_oracles_verdict_on_the_exact_text(suite):
    _, cases, _ = suite
    for case in cases:
        assert case.truth == oracle.truth(case.config, case.question)
        assert case.id == case_id("iam", case.question, case.config)


def test_every_config_is_a_valid_policy_asked_a_question_of_its_kind(suite):
    from generator.config.iam import kind, load_policy

    _, cases, _ = suite
    for case in cases:
        policy_kind = kind(load_policy(case.config))
        assert policy_kind == case.tags[T.POLICY_KIND]
        assert (policy_kind == "identity") == (case.question != "iam:public")


def test_undecidable_drafts_are_counted_in_the_manifest_and_never_stored(suite):
    manifest, cases, _ = suite
    assert set(manifest["undecidable"]) == set(QUESTIONS)
    assert sum(sum(v.values()) for v in manifest["undecidable"].values()) > 0
    # Stored cases are decidable: the truth test above reads every one again.
    assert {c.truth.verdict for c in cases} == {"safe", "unsafe"}


def test_tags_are_flat_carry_every_iam_key_and_vary(suite):
    _, cases, _ = suite
    for case in cases:
        assert set(case.tags) == set(T.IAM_KEYS)
        assert all(isinstance(v, str | int | bool) for v in case.tags.values())
        assert case.tags[T.FAMILY] == case.family
        assert case.tags[T.QUESTION] == case.question
    assert len({c.tags[T.JSON_LAYOUT] for c in cases}) >= 4
    assert {c.tags[T.POLICY_KIND] for c in cases} == {"identity", "resource", "trust"}
    assert any(c.tags[T.NOT_ACTION] for c in cases)


def test_grammar_and_mutation_cases_are_mixed_with_their_origins(suite):
    _, cases, _ = suite
    mutation = [c for c in cases if c.origin.method == "mutation"]
    grammar = [c for c in cases if c.origin.method == "grammar"]
    assert grammar and mutation
    assert all(c.origin.parent and c.origin.operators for c in mutation)
    assert all(c.tags[T.SEED_FILE] for c in mutation)


def test_siblings_link_both_ways_and_keep_or_flip_the_truth(suite):
    manifest, cases, _ = suite
    by_id = {c.id: c for c in cases}
    same = [c for c in cases if c.tags[T.RELATION] == "same"]
    opposite = [c for c in cases if c.tags[T.RELATION] == "opposite"]
    assert same and opposite
    for sibling in same:
        base = by_id[sibling.siblings["same"]]
        assert base.siblings["same"] == sibling.id
        assert sibling.config != base.config and sibling.question == base.question
        assert sibling.truth.verdict == base.truth.verdict
        assert set(sibling.truth.rules) == set(base.truth.rules)
    flips = set()
    for sibling in opposite:
        base = by_id[sibling.siblings["opposite"]]
        assert sibling.truth.verdict != base.truth.verdict
        flips.add((base.truth.verdict, sibling.truth.verdict))
    assert flips == {("safe", "unsafe"), ("unsafe", "safe")}
    assert manifest["siblings"]["same"] == len(same)


def test_the_same_arguments_give_the_same_bytes_in_another_process(tmp_path):
    generate_suite(domains=("iam",), count=12, seed=5, out_dir=tmp_path / "here")
    code = (
        "from generator.suite import generate_suite; "
        f"generate_suite(domains=('iam',), count=12, seed=5, "
        f"out_dir={str(tmp_path / 'there')!r})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    for name in ("cases.jsonl", "manifest.json"):
        assert (tmp_path / "here" / name).read_bytes() == (
            tmp_path / "there" / name
        ).read_bytes()
    generate_suite(domains=("iam",), count=12, seed=6, out_dir=tmp_path / "other")
    assert (tmp_path / "here" / "cases.jsonl").read_bytes() != (
        tmp_path / "other" / "cases.jsonl"
    ).read_bytes()


def test_two_domains_share_a_suite_half_and_half(tmp_path):
    manifest = generate_suite(
        domains=("k8s", "iam"), count=20, seed=3, out_dir=tmp_path
    )
    cases = _read(tmp_path)
    domains = [c.domain for c in cases]
    assert domains.count("k8s") == 10 and domains.count("iam") == 10
    assert manifest["domains"] == ["k8s", "iam"]
    assert "pss:restricted:v1.37" in manifest["questions"]
    assert {"grammar_sha256", "iam_grammar_sha256"} <= set(manifest["inputs"])
    # The Kubernetes half is the k8s-only suite of 10 cases, unchanged.
    alone = generate_suite(count=10, seed=3, out_dir=tmp_path / "k8s")
    assert {c.id for c in _read(tmp_path / "k8s")} == {
        c.id for c in cases if c.domain == "k8s"
    }
    assert alone["question"] == "pss:restricted:v1.37" and "questions" not in alone


def test_an_unknown_domain_is_refused_listing_the_known_ones(tmp_path):
    with pytest.raises(InvalidArgument, match="known: k8s, iam, netpol, sg"):
        generate_suite(domains=("gcp",), count=5, seed=1, out_dir=tmp_path)


# --- prompts -----------------------------------------------------------------------


def test_both_templates_render_each_question(suite):
    _, cases, _ = suite
    for task in ("verdict", "repair"):
        template = load_template("iam", task)
        texts = set()
        for question in QUESTIONS:
            case = next(c for c in cases if c.question == question)
            system, user = render_case(template, case)
            assert case.config.strip() in user["content"]
            texts.add(user["content"].split(case.config.strip())[-1])
        assert len(texts) == 3, "each question is asked in its own words"
    assert "iam" in REPAIR_DOMAINS


# --- repair judging ------------------------------------------------------------------

_PUBLIC = """{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
  "Resource": "arn:aws:s3:::acme-public-assets/*"},
 {"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:ListBucket",
  "Resource": "arn:aws:s3:::acme-public-assets"}]}
"""
_ESCALATES = """{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
  "Resource": ["arn:aws:s3:::acme-reports", "arn:aws:s3:::acme-reports/*"]},
 {"Effect": "Allow", "Action": "iam:PutUserPolicy",
  "Resource": "arn:aws:iam::111122223333:user/${aws:username}"}]}
"""


def _case(config: str, question: str) -> Case:
    return Case(
        id=case_id("iam", question, config), domain="iam", family="test",
        origin=Origin("grammar"), format="json", config=config, question=question,
        truth=oracle.truth(config, question),
    )  # fmt: skip


def _answer(document: dict) -> str:
    return (
        "Here is the fix:\n```json\n" + json.dumps(document, indent=2) + "\n```\nDone."
    )


def test_a_repair_that_removes_only_the_escalation_is_correct():
    case = _case(_ESCALATES, "iam:privesc")
    assert case.truth.verdict == "unsafe"
    fixed = json.loads(_ESCALATES)
    del fixed["Statement"][1]
    judgement = judge_repair(case, _answer(fixed))
    assert judgement.failure is None, judgement.detail


def test_a_repair_that_drops_the_ordinary_grants_broke_the_intent():
    case = _case(_ESCALATES, "iam:privesc")
    fixed = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::acme-reports/*"}
    ]}  # fmt: skip
    judgement = judge_repair(case, _answer(fixed))
    assert judgement.failure == "repair_broke_intent"
    assert "s3:ListBucket" in judgement.detail


def test_a_repair_that_keeps_the_escalation_is_still_unsafe():
    case = _case(_ESCALATES, "iam:privesc")
    judgement = judge_repair(case, _answer(json.loads(_ESCALATES)))
    assert judgement.failure == "repair_still_unsafe"


def test_an_answer_without_a_policy_is_unparseable():
    case = _case(_ESCALATES, "iam:privesc")
    assert (
        judge_repair(case, "Remove the PutUserPolicy grant.").failure == "unparseable"
    )


def test_a_public_repair_may_fence_the_grant_but_must_keep_named_principals():
    case = _case(_PUBLIC, "iam:public")
    assert case.truth.verdict == "unsafe"
    fenced = json.loads(_PUBLIC)
    fenced["Statement"][0]["Condition"] = {
        "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}
    }
    assert judge_repair(case, _answer(fenced)).failure is None
    dropped = json.loads(_PUBLIC)
    del dropped["Statement"][1]
    dropped["Statement"][0]["Principal"] = {"AWS": "111122223333"}
    judgement = judge_repair(case, _answer(dropped))
    assert judgement.failure == "repair_broke_intent"
    assert "444455556666" in judgement.detail


def test_probes_leave_out_escalation_patterns_and_conditional_grants():
    document = json.loads(_ESCALATES)
    document["Statement"].append(
        {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}
    )  # fmt: skip
    found = {p.action for p in probes(document, "iam:privesc")}
    assert found == {"s3:GetObject", "s3:ListBucket"}
    assert intent_lost(_ESCALATES, _ESCALATES, "iam:privesc") == []


def test_json_is_found_with_or_without_a_fence():
    policy = '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
    assert json.loads(extract_json(f"Sure.\n```json\n{policy}\n```")) == json.loads(
        policy
    )
    assert json.loads(extract_json(f"The policy {policy} is fixed.")) == json.loads(
        policy
    )
    assert extract_json("no policy here {not json}") is None


def test_a_case_from_the_suite_round_trips_through_its_record(suite):
    _, cases, _ = suite
    case = cases[0]
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))) == case
    assert isinstance(case.truth, Truth)
