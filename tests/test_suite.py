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
from generator.errors import InvalidArgument
from generator.oracle.k8s import active_checks, truth
from generator.records import Case, case_id
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
        ({"domains": ("k8s", "iam")}, "'iam'"),
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
