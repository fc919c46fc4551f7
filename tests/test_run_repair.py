"""Repair answers: YAML extraction and failure kinds on hand-written outputs."""

from __future__ import annotations

import json

import pytest
from tinymodel import SAFE_POD, build_tiny_model, make_case

from generator.prompts import load_template
from generator.records import FAILURE_KINDS, Case
from generator.run.repair import RepairGenerator, extract_yaml, judge_repair

UNSAFE_POD = SAFE_POD.replace("allowPrivilegeEscalation: false", "privileged: true")
CASE = make_case(UNSAFE_POD)


def fenced(text: str, info: str = "yaml") -> str:
    return f"Here is the fixed manifest:\n```{info}\n{text}```\nIt now passes."


# --- extraction -----------------------------------------------------------------


@pytest.mark.parametrize("info", ["yaml", "yml", "YAML", ""])
def test_fenced_block_is_extracted_without_the_prose(info):
    assert extract_yaml(fenced(SAFE_POD, info)) == SAFE_POD


def test_a_fence_in_another_language_is_skipped_for_the_yaml_one():
    output = "```python\nprint('hi')\n```\n" + fenced(SAFE_POD)
    assert extract_yaml(output) == SAFE_POD


def test_an_unclosed_fence_yields_the_rest_of_the_answer():
    # A model that ran out of tokens never writes the closing fence.
    assert extract_yaml("Sure.\n```yaml\n" + SAFE_POD) == SAFE_POD


def test_bare_yaml_is_cut_out_between_prose_lines():
    output = f"The fixed pod follows.\n{SAFE_POD}This drops escalation.\n"
    assert extract_yaml(output) == SAFE_POD


@pytest.mark.parametrize(
    "output",
    ["", "I cannot help with that.", "SAFE", "\x00\x01\xff\xfe" * 20],
)
def test_no_yaml_in_the_answer_gives_none(output):
    assert extract_yaml(output) is None


# --- judging ------------------------------------------------------------------


def test_a_safe_repair_of_the_same_workload_is_correct():
    judgement = judge_repair(CASE, fenced(SAFE_POD))
    assert judgement.failure is None
    assert judgement.answer == SAFE_POD


def test_an_unchanged_manifest_is_still_unsafe_and_names_the_rule():
    judgement = judge_repair(CASE, fenced(UNSAFE_POD))
    assert judgement.failure == "repair_still_unsafe"
    assert "privileged" in judgement.detail


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.replace("name: web", "name: other"), "Pod/web became Pod/other"),
        (lambda t: t.replace("nginx:1.27", "nginx:latest"), "image nginx:1.27"),
        (lambda t: t.replace("name: app", "name: main"), "containers lost app"),
        (
            lambda t: t.replace("kind: Pod", "kind: ReplicaSet").replace(
                "spec:\n", "spec:\n  template:\n    spec:\n", 1
            ),
            "workloads",
        ),
    ],
)
def test_a_repair_that_changes_the_workload_broke_intent(change, words):
    repaired = change(SAFE_POD)
    judgement = judge_repair(CASE, fenced(repaired))
    assert judgement.failure == "repair_broke_intent"
    assert words in judgement.detail or "became" in judgement.detail


def test_dropping_a_container_broke_intent_even_when_the_rest_is_safe():
    two = UNSAFE_POD + "  - name: sidecar\n    image: busybox\n"
    judgement = judge_repair(make_case(two), fenced(SAFE_POD))
    assert judgement.failure == "repair_broke_intent"
    assert "lost sidecar" in judgement.detail


@pytest.mark.parametrize(
    "output",
    [
        "no yaml here at all",
        fenced("apiVersion: v1\nkind: Pod\n  bad: [indent\n"),
        fenced("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"),
        fenced("just a string"),
        fenced("\x00\x07binary\xff" * 10),
        fenced("a: &a [*a, *a]\n"),
        fenced("kind: Pod\napiVersion: v1\nspec: [1, 2]\n"),
        fenced("key: value\nkey: again\n"),
        fenced("- 1\n- 2\n"),
    ],
)
def test_unreadable_repairs_are_recorded_as_unparseable_never_raised(output):
    judgement = judge_repair(CASE, output)
    assert judgement.failure == "unparseable"
    assert judgement.detail


# --- generation ---------------------------------------------------------------


def test_generated_repairs_from_a_tiny_model_are_judged_not_raised(tmp_path):
    from generator.run.models import load_model

    loaded = load_model(str(build_tiny_model(tmp_path)), device="cpu")
    generator = RepairGenerator(
        loaded, load_template("k8s", "repair"), max_new_tokens=24
    )
    results = generator.generate([CASE, make_case(UNSAFE_POD + "  hostPID: true\n")])
    assert [r.case_id for r in results][0] == CASE.id
    for result in results:
        assert result.task == "repair"
        assert result.template_id == "k8s-repair"
        assert 0 < result.tokens <= 24
        assert result.failure in FAILURE_KINDS
        assert result.correct is False


@pytest.mark.parametrize("domain", ["netpol", "sg"])
def test_network_repairs_are_judged_by_their_domain(tmp_path, domain):
    from generator.run.repair import judge_repair
    from generator.suite import generate_suite

    generate_suite(domains=(domain,), count=20, seed=2, out_dir=tmp_path)
    lines = (tmp_path / "cases.jsonl").read_text().splitlines()
    cases = [Case.from_dict(json.loads(line)) for line in lines]
    unsafe = next(c for c in cases if c.truth.verdict == "unsafe")
    fence = "yaml" if domain == "netpol" else "hcl"
    # Handing back the config unchanged leaves the asked exposure open.
    unchanged = judge_repair(unsafe, f"```{fence}\n{unsafe.config}```\n")
    assert unchanged.failure == "repair_still_unsafe"
    assert judge_repair(unsafe, "I cannot help.").failure == "unparseable"
