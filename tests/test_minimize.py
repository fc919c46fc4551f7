"""Minimal examples: a failing case shrunk to what keeps it failing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tinymodel import make_case

from generator.minimize import AnswerCache, minimize_report, shrink_case
from generator.oracle.k8s import truth
from generator.records import Case, Origin, case_id

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web-frontend
  labels:
    app: web
    tier: frontend
spec:
  serviceAccountName: web
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: app
    image: nginx:1.27
    env:
    - name: MODE
      value: production
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: [ALL]
  - name: sidecar
    image: busybox:1.36
    securityContext:
      allowPrivilegeEscalation: true
  volumes:
  - name: cache
    emptyDir: {}
  - name: sock
    hostPath:
      path: /var/run/docker.sock
"""


class HostPathBlind:
    """A fake model that calls every config with a hostPath safe."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, cases):
        self.asked += [c.config for c in cases]
        return ["safe" if "hostPath" in c.config else "unsafe" for c in cases]


def test_shrunk_pod_keeps_the_failing_feature_and_drops_the_rest() -> None:
    case = make_case(POD)
    judge = HostPathBlind()

    shrunk = shrink_case(
        case,
        kind="missed_unsafe",
        conditions=[("has_hostpath", True), ("rule", "restrictedVolumes")],
        judge=judge,
    )

    config = shrunk.config
    assert "hostPath" in config and "path:" in config
    for gone in ("labels", "env", "serviceAccountName", "sidecar", "emptyDir",
                 "nginx", "capabilities"):  # fmt: skip
        assert gone not in config, gone
    # Still a pod with a container, still unsafe for the cluster's rule.
    assert "kind: Pod" in config and "containers:" in config and "image:" in config
    again = truth(config, case.question)
    assert again.verdict == "unsafe" and "restrictedVolumes" in again.rules
    assert "invalidField" not in again.rules
    # Every model call is counted: the first reproduces the failure.
    assert shrunk.model_calls == len(judge.asked) > 1
    assert judge.asked[0] == POD
    assert shrunk.checked == ["has_hostpath=true", "rule=restrictedVolumes"]
    assert len(config) < len(POD) / 2
    # The pod-level runAsNonRoot and seccompProfile stay: without them it
    # would break checks the original passed.
    assert set(again.rules) <= set(truth(POD, case.question).rules)
    assert "runAsNonRoot: true" in config and "RuntimeDefault" in config


def test_a_shrunk_example_breaks_no_check_the_original_passed() -> None:
    # Only the volume is wrong here: the example must keep every setting
    # that makes the rest pass, or it no longer shows what was missed.
    hardened = POD.replace(
        "      allowPrivilegeEscalation: true",
        "      allowPrivilegeEscalation: false\n      capabilities:\n"
        "        drop: [ALL]",
    )
    case = make_case(hardened)
    assert case.truth.rules == ("restrictedVolumes",)

    shrunk = shrink_case(
        case,
        kind="missed_unsafe",
        conditions=[("rule", "restrictedVolumes")],
        judge=HostPathBlind(),
    )

    assert truth(shrunk.config, case.question).rules == ("restrictedVolumes",)
    assert "allowPrivilegeEscalation: false" in shrunk.config
    assert "sidecar" not in shrunk.config and "labels" not in shrunk.config


def test_the_call_budget_is_kept_and_the_result_still_fails() -> None:
    judge = HostPathBlind()
    shrunk = shrink_case(make_case(POD), kind="missed_unsafe", judge=judge, max_calls=3)
    assert shrunk.model_calls == len(judge.asked) == 3
    assert "hostPath" in shrunk.config
    assert truth(shrunk.config, make_case(POD).question).verdict == "unsafe"


def test_a_failure_the_model_does_not_repeat_is_not_shrunk() -> None:
    case = make_case(POD)
    shrunk = shrink_case(
        case, kind="missed_unsafe", judge=lambda cases: ["unsafe"] * len(cases)
    )
    assert not shrunk.reproduced
    assert shrunk.config == POD and shrunk.model_calls == 1


def test_a_tag_condition_is_held_on_the_shrunk_config() -> None:
    # The model fails on anything with a hostPath or an emptyDir; the
    # cluster is about emptyDir volumes, so the hostPath must go and the
    # emptyDir must stay, although either keeps the model failing.
    case = replace(make_case(POD), tags={"volume_sources": "emptyDir,hostPath"})

    def blind(cases):
        return ["safe" if "Dir" in c.config or "hostPath" in c.config else "unsafe"
                for c in cases]  # fmt: skip

    shrunk = shrink_case(
        case,
        kind="missed_unsafe",
        conditions=[("volume_sources", "emptyDir,hostPath")],
        judge=blind,
    )
    assert "emptyDir" in shrunk.config and "hostPath" in shrunk.config
    assert shrunk.checked == ["volume_sources=emptyDir,hostPath"]


def test_an_iam_policy_keeps_the_escalating_statement_only() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Read", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"]},
            {"Sid": "Keys", "Effect": "Allow",
             "Action": ["iam:CreateAccessKey", "ec2:DescribeInstances"],
             "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        ],
    }  # fmt: skip
    text = json.dumps(policy, indent=4) + "\n"
    from generator.oracle.iam import truth as iam_truth

    question = "iam:privesc"
    case = Case(
        id=case_id("iam", question, text), domain="iam", family="hand",
        origin=Origin("grammar"), format="json", config=text, question=question,
        truth=iam_truth(text, question),
    )  # fmt: skip
    calls = []

    def blind(cases):
        calls.extend(cases)
        return ["safe" if "CreateAccessKey" in c.config else "unsafe" for c in cases]

    shrunk = shrink_case(
        case,
        kind="missed_unsafe",
        conditions=[("rule", "iam-create-access-key")],
        judge=blind,
    )

    data = json.loads(shrunk.config)
    statements = data["Statement"]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Action"] == ["iam:CreateAccessKey"]
    assert set(statement) == {"Effect", "Action", "Resource"}
    assert data["Version"] == "2012-10-17"
    assert shrunk.model_calls == len(calls)


def test_answers_are_cached_by_prompt_and_persisted(tmp_path: Path) -> None:
    judge = HostPathBlind()
    path = tmp_path / "cache.jsonl"
    cache = AnswerCache(judge, key=lambda c: c.config, path=path)
    first = shrink_case(make_case(POD), kind="missed_unsafe", judge=cache)
    asked = len(judge.asked)

    again = AnswerCache(judge, key=lambda c: c.config, path=path)
    second = shrink_case(make_case(POD), kind="missed_unsafe", judge=again)

    assert len(judge.asked) == asked  # nothing new asked
    assert second.config == first.config
    assert second.model_calls == first.model_calls == second.cache_hits
    assert again.misses == 0


def test_minimize_report_fills_the_minimal_example_and_nearest_passing(
    tmp_path: Path,
) -> None:
    from fakeruns import answer
    from tinymodel import pod_variants, write_suite

    from generator.report import build_report

    cases = [make_case(text) for text in pod_variants()]
    hostpath = make_case(POD)
    cases.append(hostpath)
    suite = write_suite(tmp_path / "suite", cases)
    judge = HostPathBlind()
    results = [answer(c, a) for c, a in zip(cases, judge(cases), strict=True)]
    from fakeruns import write_run

    run_dir = write_run(tmp_path / "run", suite, results)
    # Too few cases for a cluster: hand the shrinker a cluster of one.
    from generator.rundata import load_run

    run = load_run(run_dir)
    report = build_report([run_dir])["runs"][0]
    report["clusters"] = [{
        "kind": "missed_unsafe", "slice": "has_hostpath=true",
        "conditions": [{"key": "rule", "value": "restrictedVolumes"}],
        "example_case_id": hostpath.id, "minimal_example": None,
    }]  # fmt: skip
    report["leads"] = []
    judge.asked.clear()

    minimize_report(run, report, judge, max_calls=50)

    minimal = report["clusters"][0]["minimal_example"]
    assert "hostPath" in minimal["config"] and "sidecar" not in minimal["config"]
    assert minimal["model_calls"] == len(judge.asked)
    passing = minimal["nearest_passing"]
    correct = {r.case_id for r in results if r.correct}
    assert passing["case_id"] in correct
    assert passing["distance"] > 0
    # No other passing case is closer by the same measure.
    from generator.minimize import _lines

    def distance(text: str) -> int:
        a, b = _lines(minimal["config"]), _lines(text)
        return sum(((a - b) + (b - a)).values())

    assert passing["distance"] == min(
        distance(c.config) for c in cases if c.id in correct
    )


def test_max_calls_must_be_positive() -> None:
    with pytest.raises(Exception, match="max_calls"):
        shrink_case(make_case(POD), kind="missed_unsafe", judge=HostPathBlind(),
                    max_calls=0)  # fmt: skip


def test_the_respellings_are_the_mutators_that_change_the_style() -> None:
    import random

    from generator.mutate.base import Manifest
    from generator.mutate.k8s import MUTATORS
    from generator.mutate.k8s_spelling import RESTYLING
    from generator.mutate.seeds import load_seeds

    restyling = set()
    for seed in load_seeds():
        for mutator in MUTATORS:
            for i in range(3):
                manifest = Manifest(seed.documents)
                result = mutator(manifest, random.Random(i))
                if result is not None and result.style != manifest.style:
                    restyling.add(mutator.name)
    assert restyling == RESTYLING


def test_a_respelling_condition_is_said_to_be_lost_not_held() -> None:
    # A misleading comment is gone once the pod is written back: the
    # example must not claim to hold it.
    case = make_case("# privileged: false is enforced by policy\n" + POD)
    shrunk = shrink_case(
        case,
        kind="missed_unsafe",
        conditions=[("operator", "add_misleading_comment"), ("operator", "harden")],
        judge=HostPathBlind(),
    )
    assert shrunk.unchecked == [
        "operator=add_misleading_comment (a respelling, lost in re-rendering)"
    ]
    assert shrunk.checked == ["operator=harden (kept: provenance)"]
    assert "#" not in shrunk.config
