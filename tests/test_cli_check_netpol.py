"""``spotcheck check`` on NetworkPolicies with a cluster model."""

from __future__ import annotations

import json

from generator.cli import main
from tests.netpol_world import policy, text, world

DENY_INTO_A = policy("only-b", "x", {
    "podSelector": {"matchLabels": {"pod": "a"}},
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
})  # fmt: skip


def run(capsys, *args):
    status = main(["check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def lines(out):
    return [json.loads(line) for line in out.splitlines()]


def files(tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(text(world()))
    policies = tmp_path / "netpol.yaml"
    policies.write_text(text([DENY_INTO_A]))
    return str(policies), str(cluster)


def test_questions_answer_allowed_and_yes_does_not_fail(tmp_path, capsys):
    policies, cluster = files(tmp_path)
    status, out, err = run(
        capsys, "--json", policies, "--cluster", cluster,
        "--question", "from=x/b,to=x/a,port=80/tcp",
        "--question", "from=y/b,to=x/a,port=80",
    )  # fmt: skip
    first, second = lines(out)
    assert err == "" and status == 0
    assert first["domain"] == "netpol" and first["kind"] == "Reachability"
    assert first["verdicts"] == {"allowed": "yes"}
    assert second["verdicts"] == {"allowed": "no"}
    assert second["question"] == "from=y/b,to=x/a,port=80"


def test_expect_turns_a_question_into_a_gate(tmp_path, capsys):
    policies, cluster = files(tmp_path)
    q = "from=x/b,to=x/a,port=80,expect=no"
    status, out, _ = run(
        capsys, "--json", policies, "--cluster", cluster, "--question", q
    )
    (report,) = lines(out)
    assert status == 1 and report["expect"] == "no"
    assert report["findings"][0]["rule"] == "expected"


def test_undecidable_fails(tmp_path, capsys):
    policies, cluster = files(tmp_path)
    q = "from=x/a,to=x/a,port=80"  # a pod to itself
    status, out, _ = run(
        capsys, "--json", policies, "--cluster", cluster, "--question", q
    )
    assert status == 1 and lines(out)[0]["verdicts"] == {"allowed": "undecidable"}


def test_without_a_question_each_policy_reports_what_it_isolates(tmp_path, capsys):
    policies, cluster = files(tmp_path)
    status, out, _ = run(capsys, "--json", policies, "--cluster", cluster)
    (report,) = lines(out)
    assert (
        status == 0
        and report["kind"] == "NetworkPolicy"
        and report["name"] == "x/only-b"
    )
    assert report["verdicts"] == {"isolates_ingress": "yes", "isolates_egress": "no"}
    assert [f["path"] for f in report["findings"] if f["rule"] == "selects"] == ["x/a"]


def test_pods_in_the_same_files_are_still_judged_for_pod_security(tmp_path, capsys):
    both = tmp_path / "all.yaml"
    both.write_text(text(world() + [DENY_INTO_A]))
    status, out, _ = run(
        capsys, "--json", str(both), "--question", "from=x/c,to=x/a,port=80"
    )
    reports = lines(out)
    assert [r["domain"] for r in reports].count("k8s") == 9
    assert reports[-1]["verdicts"] == {"allowed": "no"}
    assert status == 1  # the pods fail restricted; the reachability does not


def test_a_bad_policy_is_one_line_naming_file_and_place(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text([policy("p", "x", {"podSelector": {}, "ingress": [{"from": [{}]}]})])
    )
    status, _, err = run(capsys, str(bad))
    assert status == 2 and err.count("\n") == 1
    assert f"{bad}: document 0: spec.ingress[0].from[0]" in err


def test_files_without_network_policies_are_checked_as_before(tmp_path, capsys):
    pods = tmp_path / "pods.yaml"
    pods.write_text(text(world()))
    status, out, _ = run(capsys, str(pods))
    assert "Reachability" not in out and "NetworkPolicy" not in out
    assert "document(s) without a pod spec (Namespace)" in out
    assert status == 1
