"""Suites: deterministic bytes, balanced verdicts, every check, honest records."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator import tags as T
from generator.cli import main
from generator.errors import InvalidArgument
from generator.families import k8s_siblings
from generator.families.k8s import Draft
from generator.families.k8s_build import Candidate
from generator.mutate.base import Manifest
from generator.mutate.k8s import mutator_named
from generator.mutate.seeds import load_seeds
from generator.oracle.k8s import active_checks, truth
from generator.records import Case, Origin, case_id
from generator.suite import generate_suite

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple[dict, list[Case], Path]:
    out = tmp_path_factory.mktemp("suite")
    manifest = generate_suite(count=200, seed=20260101, out_dir=out)
    lines = (out / "cases.jsonl").read_text().splitlines()
    return manifest, [Case.from_dict(json.loads(line)) for line in lines], out


def test_a_suite_holds_exactly_count_cases_sorted_by_id(suite):
    manifest, cases, _ = suite
    assert len(cases) == manifest["cases"] == 200
    assert [c.id for c in cases] == sorted(c.id for c in cases)
    assert len({c.id for c in cases}) == 200


def test_each_verdict_is_at_least_thirty_percent(suite):
    _, cases, _ = suite
    unsafe = sum(c.truth.verdict == "unsafe" for c in cases)
    assert 60 <= unsafe <= 140


def test_every_restricted_check_is_violated_somewhere_at_count_200(suite):
    _, cases, _ = suite
    violated = {rule for c in cases for rule in c.truth.rules}
    assert {c.id for c in active_checks("restricted", (1, 37))} <= violated


def test_the_stored_truth_is_the_oracles_verdict_on_the_exact_text(suite):
    _, cases, _ = suite
    for case in cases:
        assert case.truth == truth(case.config, case.question)
        assert case.id == case_id("k8s", case.question, case.config)


def test_tags_are_flat_and_carry_every_key(suite):
    _, cases, _ = suite
    for case in cases:
        assert set(case.tags) == set(T.K8S_KEYS)
        assert all(isinstance(v, str | int | bool) for v in case.tags.values())
        assert case.tags[T.FAMILY] == case.family


def test_grammar_and_mutation_cases_are_mixed_with_their_origins(suite):
    _, cases, _ = suite
    grammar = [c for c in cases if c.origin.method == "grammar"]
    mutation = [c for c in cases if c.origin.method == "mutation"]
    assert len(grammar) > len(mutation) > 0.2 * len(cases)
    assert all(c.origin.parent and c.origin.operators for c in mutation)
    assert all(c.origin.parent is None and c.origin.seed is not None for c in grammar)


def test_the_motivating_scenario_and_its_near_misses_are_well_represented(suite):
    _, cases, _ = suite
    region = [c for c in cases if c.family == "hostpath-escalation"]
    assert len(region) >= 0.1 * len(cases)
    with_escalation = [
        c for c in region if c.tags[T.HAS_HOSTPATH] and c.tags[T.APE] != "false"
    ]
    read_only = [c for c in region if c.tags[T.HOSTPATH_READ_ONLY]]
    look_alikes = [c for c in region if c.truth.verdict == "safe"]
    assert with_escalation and read_only and look_alikes


def test_the_manifest_counts_and_hash_describe_the_file(suite):
    manifest, cases, out = suite
    body = (out / "cases.jsonl").read_bytes()
    assert manifest["cases_sha256"] == hashlib.sha256(body).hexdigest()
    assert json.loads((out / "manifest.json").read_text()) == manifest
    counts = manifest["counts"]
    assert sum(counts["family"].values()) == sum(counts["verdict"].values()) == 200
    assert counts["method"]["grammar"] + counts["method"]["mutation"] == 200
    assert manifest["question"] == "pss:restricted:v1.37"
    assert set(manifest["mutator_profile"]) >= {"add_host_path_mount", "shuffle_keys"}


def test_the_same_arguments_give_the_same_bytes(tmp_path):
    generate_suite(count=60, seed=3, out_dir=tmp_path / "a")
    generate_suite(count=60, seed=3, out_dir=tmp_path / "b")
    generate_suite(count=60, seed=4, out_dir=tmp_path / "c")
    for name in ("cases.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (
            tmp_path / "b" / name
        ).read_bytes()
    assert (tmp_path / "a" / "cases.jsonl").read_bytes() != (
        tmp_path / "c" / "cases.jsonl"
    ).read_bytes()


def test_another_process_writes_the_same_bytes(tmp_path):
    generate_suite(count=60, seed=3, out_dir=tmp_path / "here")
    code = (
        "from generator.suite import generate_suite; "
        f"generate_suite(count=60, seed=3, out_dir={str(tmp_path / 'there')!r})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    for name in ("cases.jsonl", "manifest.json"):
        assert (tmp_path / "here" / name).read_bytes() == (
            tmp_path / "there" / name
        ).read_bytes()


def test_a_baseline_suite_covers_the_baseline_checks(tmp_path):
    manifest = generate_suite(count=60, seed=9, out_dir=tmp_path, level="baseline")
    assert manifest["question"] == "pss:baseline:v1.37"
    violated = set(manifest["counts"]["rule"])
    assert {c.id for c in active_checks("baseline", (1, 37))} <= violated


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"count": 0}, "count=0"),
        ({"count": "10"}, "count='10'"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"domains": ("k8s", "gcp")}, "'gcp'"),
        ({"level": "privileged"}, "level='privileged'"),
        ({"pss_version": "1.37"}, "'1.37'"),
    ],
)
def test_bad_arguments_raise_invalid_argument_naming_them(tmp_path, kwargs, shown):
    arguments = {"count": 10, "seed": 1, "out_dir": tmp_path, **kwargs}
    with pytest.raises(InvalidArgument) as info:
        generate_suite(**arguments)
    assert shown in str(info.value)


def test_constants_of_other_imported_modules_do_not_change_the_suite(tmp_path):
    # Hypothesis draws literals harvested from local modules it finds in
    # sys.modules; a caller that imported more code must get the same suite.
    noisy = tmp_path / "noisy_constants.py"
    literals = [str(n) for n in range(3, 3000, 7)] + [f"'v{n}'" for n in range(400)]
    noisy.write_text("VALUES = [" + ", ".join(literals) + "]\n")
    script = (
        "import sys; sys.path.insert(0, {where!r}); {pre}"
        "from generator.suite import generate_suite; "
        "generate_suite(count=60, seed=3, out_dir={out!r})"
    )
    for name, pre in (("plain", ""), ("noisy", "import noisy_constants; ")):
        code = script.format(where=str(tmp_path), pre=pre, out=str(tmp_path / name))
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    for name in ("cases.jsonl", "manifest.json"):
        plain = (tmp_path / "plain" / name).read_bytes()
        assert plain == (tmp_path / "noisy" / name).read_bytes()


# --- siblings ---------------------------------------------------------------


def test_sibling_ids_resolve_in_the_suite_and_link_both_ways(suite):
    manifest, cases, _ = suite
    by_id = {c.id: c for c in cases}
    linked = [c for c in cases if c.siblings]
    assert linked
    for case in linked:
        for relation, other in case.siblings.items():
            assert by_id[other].siblings.get(relation) == case.id
            # Exactly one side of a pair is the base case.
            assert {case.tags[T.RELATION], by_id[other].tags[T.RELATION]} == {
                "base",
                relation,
            }
    relations = manifest["counts"]["relation"]
    assert relations["same"] == manifest["siblings"]["same"]
    assert relations["opposite"] == manifest["siblings"]["opposite"]


def test_about_forty_percent_of_the_suite_are_siblings(suite):
    manifest, cases, _ = suite
    siblings = [c for c in cases if c.tags[T.RELATION] != "base"]
    assert len(siblings) == 80  # floor(0.4 * 200); every slot is filled
    assert manifest["siblings"]["same"] >= 30 and manifest["siblings"]["opposite"]


def test_a_same_meaning_sibling_has_the_identical_truth(suite):
    _, cases, _ = suite
    by_id = {c.id: c for c in cases}
    same = [c for c in cases if c.tags[T.RELATION] == "same"]
    assert same
    for sibling in same:
        base = by_id[sibling.siblings["same"]]
        assert sibling.config != base.config
        assert sibling.truth.verdict == base.truth.verdict
        assert set(sibling.truth.rules) == set(base.truth.rules)


def test_an_opposite_sibling_has_the_other_verdict_both_ways(suite):
    _, cases, _ = suite
    by_id = {c.id: c for c in cases}
    flips = {
        (by_id[c.siblings["opposite"]].truth.verdict, c.truth.verdict)
        for c in cases
        if c.tags[T.RELATION] == "opposite"
    }
    # Breaks of safe cases and repairs of unsafe ones.
    assert flips == {("safe", "unsafe"), ("unsafe", "safe")}


def test_no_siblings_writes_base_cases_only(tmp_path):
    manifest = generate_suite(count=60, seed=3, out_dir=tmp_path, siblings=False)
    lines = (tmp_path / "cases.jsonl").read_text().splitlines()
    cases = [Case.from_dict(json.loads(line)) for line in lines]
    assert len(cases) == 60 and '"siblings"' not in "".join(lines)
    assert {c.tags[T.RELATION] for c in cases} == {"base"}
    assert manifest["siblings"] == {
        "enabled": False, "share": 0.0, "paired_bases": 0, "same": 0, "opposite": 0,
    }  # fmt: skip
    with pytest.raises(InvalidArgument, match="siblings=1"):
        generate_suite(count=10, seed=3, out_dir=tmp_path, siblings=1)


def test_the_generate_command_takes_no_siblings(tmp_path, capsys):
    assert (
        main(["generate", "--count", "12", "--no-siblings", "--out", str(tmp_path)])
        == 0
    )
    assert "siblings" not in capsys.readouterr().out
    assert '"siblings"' not in (tmp_path / "cases.jsonl").read_text()


def test_a_respelling_that_moves_the_truth_is_dropped_with_a_warning(
    monkeypatch, caplog
):
    # A mutator wrongly marked keeps_meaning must never make a "same" sibling.
    question = "pss:restricted:v1.37"
    manifests = (Manifest(s.documents) for s in load_seeds())
    manifest = next(m for m in manifests if truth(m.text(), question).verdict == "safe")
    base = truth(manifest.text(), question)
    candidate = Candidate(
        "mutation", "seed", "safe", (), manifest.text(), Draft("seed", manifest, ())
    )
    case = Case(
        id=case_id("k8s", "pss:restricted:v1.37", candidate.text),
        domain="k8s", family="seed", origin=Origin("mutation"),
        format="yaml", config=candidate.text, question="pss:restricted:v1.37",
        truth=base,
    )  # fmt: skip
    monkeypatch.setattr(
        k8s_siblings, "_SPELLINGS", (mutator_named("drop_escalation_guard"),)
    )
    made = k8s_siblings.same_sibling(
        candidate, case, seed=1, level="restricted", version=(1, 37), taken=set()
    )
    assert made is None
    assert "should keep the meaning" in caplog.text
