"""NetworkPolicy repairs: blocked and kept, broke intent, still unsafe, unparseable."""

from __future__ import annotations

import json

from generator.records import Case, Origin, Truth, case_id
from generator.repair_netpol import extract_yaml, judge, judge_output

NS = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in "xy"]
PODS = [
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
     "spec": {"containers": [{"name": "c", "image": "i",
                              "ports": [{"name": "http", "containerPort": 80}]}]}}
    for ns, name in (("x", "a"), ("x", "c"), ("y", "b"))
]  # fmt: skip
QUESTION = "netpol:from=x/a,to=y/b,port=80/tcp"


def _policy(peers) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "y"},
            "spec": {"podSelector": {}, "ingress": [{"from": peers}]}}  # fmt: skip


def _text(*policies, pods=PODS) -> str:
    return "\n---\n".join(json.dumps(d) for d in [*NS, *pods, *policies]) + "\n"


# The original lets all of x in: a (the asked source) and c.
ORIGINAL = _text(_policy([{"namespaceSelector": {"matchLabels": {
    "kubernetes.io/metadata.name": "x"}}}]))  # fmt: skip
CASE = Case(
    case_id("netpol", QUESTION, ORIGINAL),
    "netpol",
    "peer-and-or",
    Origin("grammar"),
    "yaml",
    ORIGINAL,
    QUESTION,
    Truth("unsafe"),
)


def test_blocking_only_the_asked_source_is_a_good_repair():
    only_c = _policy(
        [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "c"}}}]
    )
    assert judge(CASE, _text(only_c)) == (None, "")


def test_a_deny_all_blocks_the_flow_but_also_the_other_source():
    failure, detail = judge(
        CASE, _text(_policy([{"podSelector": {"matchLabels": {"app": "zz"}}}]))
    )
    assert failure == "repair_broke_intent" and "x/c -> y/b 80/TCP" in detail


def test_relabelling_the_destination_is_not_a_repair():
    pods = json.loads(json.dumps(PODS))
    pods[2]["metadata"]["labels"]["app"] = "gone"
    failure, _ = judge(CASE, _text(_policy([]), pods=pods))
    assert failure == "repair_broke_intent"


def test_leaving_the_flow_open_is_still_unsafe():
    assert judge(CASE, ORIGINAL)[0] == "repair_still_unsafe"


def test_an_invalid_policy_or_no_yaml_is_unparseable():
    assert judge(CASE, _text(_policy([{}])))[0] == "unparseable"
    assert judge_output(CASE, "I would add a deny-all policy.") == (
        None, "unparseable", "no YAML in the answer")  # fmt: skip


def test_yaml_is_found_in_a_fence_or_from_its_first_key():
    assert extract_yaml("fix:\n```yaml\nkind: Pod\n```\n") == "kind: Pod\n"
    assert extract_yaml("Here:\nkind: Pod\n") == "kind: Pod\n"


def test_pods_with_several_ports_are_judged():
    # The pod model is compared sorted; two ports on one pod once raised
    # TypeError here (ports were not orderable). The repair must now keep
    # x/a -> y/b on the second port: only port 80 was asked about.
    two = [{"name": "http", "containerPort": 80}, {"name": "m", "containerPort": 9}]
    pods = json.loads(json.dumps(PODS))
    pods[2]["spec"]["containers"][0]["ports"] = two
    original = _text(_policy([{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "x"}}}]), pods=pods)  # fmt: skip
    case = Case(case_id("netpol", QUESTION, original), "netpol", "peer-and-or",
                Origin("grammar"), "yaml", original, QUESTION, Truth("unsafe"))  # fmt: skip
    any_ns = {"namespaceSelector": {}}
    only_c = _policy([{**any_ns, "podSelector": {"matchLabels": {"app": "c"}}}])
    failure, detail = judge(case, _text(only_c, pods=pods))
    assert failure == "repair_broke_intent" and "x/a -> y/b 9/TCP" in detail
    kept = json.loads(json.dumps(only_c))
    kept["spec"]["ingress"].append({
        "from": [{**any_ns, "podSelector": {"matchLabels": {"app": "a"}}}],
        "ports": [{"port": 9}],
    })  # fmt: skip
    assert judge(case, _text(kept, pods=pods)) == (None, "")
