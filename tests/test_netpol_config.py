"""Reading NetworkPolicies as the API server validates and defaults them."""

from __future__ import annotations

import pytest

from generator.config.netpol import NAME_LABEL
from generator.errors import ConfigError
from generator.oracle.netpol import load
from tests.netpol_world import policy, text, world


def read(spec, namespace="x"):
    policies, _ = load(text([policy("p", namespace, spec)]))
    return policies[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.podSelector: is required"),
        (
            {
                "podSelector": {},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}
                ],
            },
            "ipBlock cannot be combined",
        ),  # fmt: skip
        ({"podSelector": {}, "policyTypes": ["ingress"]}, "use Ingress or Egress"),
        (
            {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]},
            "use one of TCP, UDP, SCTP",
        ),  # fmt: skip
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
            "must be 1..65535",
        ),
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            "must be 90..65535",
        ),  # fmt: skip
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": "HTTP"}]}]},
            "neither a port number nor a port name",
        ),  # fmt: skip
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "must be non-empty with In",
        ),  # fmt: skip
        (
            {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "a", "operator": "Exists", "values": ["x"]}
                    ]
                }
            },
            "must be empty with Exists",
        ),  # fmt: skip
        (
            {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "a", "operator": "Equals", "values": ["x"]}
                    ]
                }
            },
            "use one of In, NotIn",
        ),  # fmt: skip
        ({"podSelector": {"matchLabels": {"a": 1}}}, "must be a string, is 1"),
        (
            {
                "podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0/8"}}]}],
            },
            "is not a CIDR",
        ),  # fmt: skip
    ],
)
def test_what_validation_rejects_is_a_one_line_error(spec, message):
    with pytest.raises(ConfigError, match=message) as caught:
        read(spec)
    assert "\n" not in str(caught.value)
    assert "document 0" in str(caught.value)


def test_defaults_filled_in():
    p = read({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]})
    assert p.policy_types == {"Ingress", "Egress"} and not p.types_written
    assert p.egress[0].ports[0].protocol == "TCP"
    assert read({"podSelector": {}, "egress": []}).policy_types == {"Ingress"}
    written = read({"podSelector": {}, "policyTypes": ["Egress"]})
    assert written.policy_types == {"Egress"} and written.types_written


def test_missing_namespace_is_default():
    doc = policy("p", "x", {"podSelector": {}})
    del doc["metadata"]["namespace"]
    policies, _ = load(text([doc]))
    assert policies[0].namespace == "default"


def test_namespace_object_always_carries_its_name_label():
    _, cluster = load(text(world()))
    assert cluster.namespaces["x"].labels == {"ns": "x", NAME_LABEL: "x"}
    undeclared = cluster.namespace("w")
    assert undeclared.labels == {NAME_LABEL: "w"} and not undeclared.complete


def test_a_policy_defined_twice_is_refused():
    doc = policy("p", "x", {"podSelector": {}})
    with pytest.raises(ConfigError, match="defined twice"):
        load(text([doc, doc]))


def test_list_items_are_read_with_their_path():
    bad = {"apiVersion": "v1", "kind": "List",
           "items": [policy("p", "x", {"podSelector": {}, "ingress": [{"from": [{}]}]})]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"items\[0\]\.spec\.ingress\[0\]\.from\[0\]"):
        load(text([bad]))
