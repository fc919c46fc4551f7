"""The NetworkPolicy oracle on every gotcha of research/netpol.md §4.

Each expected value is argued from the NetworkPolicy API reference
(k8s.io/api/networking/v1 type comments), the API server's defaulting
(SetDefaults_NetworkPolicy) and label selector semantics
(apimachinery/pkg/labels), as the comment above it says; none comes from
running the oracle. World: tests/netpol_world.py.
"""

from __future__ import annotations

import pytest

from generator.errors import ConfigError, InvalidArgument, Undecidable
from generator.oracle.netpol import load, truth, truth_table
from tests.netpol_world import ask, policy, text, world

A_IN_X = {"matchLabels": {"pod": "a"}}


def ingress(*rules, **extra):
    return policy("p", "x", {"podSelector": A_IN_X, "ingress": list(rules), **extra})


# 1 / 22: one list item with both selectors is AND, two items are OR.
def test_namespace_and_pod_selector_in_one_peer_is_an_intersection():
    p = ingress({"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                           "podSelector": {"matchLabels": {"pod": "b"}}}]})  # fmt: skip
    assert ask([p], "from=y/b,to=x/a,port=80") == "yes"  # in y and pod=b
    assert ask([p], "from=y/c,to=x/a,port=80") == "no"  # in y, not pod=b
    assert ask([p], "from=x/b,to=x/a,port=80") == "no"  # pod=b, not in y


def test_two_peers_are_a_union_and_the_pod_peer_means_the_policy_namespace():
    p = ingress({"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}},
                          {"podSelector": {"matchLabels": {"pod": "b"}}}]})  # fmt: skip
    assert ask([p], "from=y/c,to=x/a,port=80") == "yes"  # any pod of y
    assert ask([p], "from=x/b,to=x/a,port=80") == "yes"  # pod=b of x (13)
    assert ask([p], "from=z/b,to=x/a,port=80") == "no"  # pod=b, but in z


def test_dns_rule_written_as_two_peers_is_wider_than_one():
    # Egress to "kube-dns pods in y" as one peer vs "y OR pod=b" as two.
    one = [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
            "podSelector": {"matchLabels": {"pod": "b"}}}]  # fmt: skip
    two = [{"namespaceSelector": {"matchLabels": {"ns": "y"}}},
           {"podSelector": {"matchLabels": {"pod": "b"}}}]  # fmt: skip
    for peers, want in ((one, "no"), (two, "yes")):
        p = policy("dns", "x", {"podSelector": A_IN_X, "policyTypes": ["Egress"],
                                "egress": [{"to": peers, "ports": [
                                    {"port": 53, "protocol": "UDP"}]}]})  # fmt: skip
        assert ask([p], "from=x/a,to=y/c,port=53/udp") == want


# 2: from: [] is the same as a missing from: every source.
def test_empty_from_list_allows_every_source():
    p = ingress({"from": []})
    assert ask([p], "from=z/c,to=x/a,port=80") == "yes"
    assert ask([p], "from=203.0.113.9,to=x/a,port=80") == "yes"


def test_empty_ingress_list_isolates_and_allows_nothing():
    p = ingress()  # ingress: [] with Ingress in the defaulted policyTypes
    assert ask([p], "from=x/b,to=x/a,port=80") == "no"


# 3: one empty rule allows every source, port and protocol.
def test_one_empty_rule_allows_everything_including_external_ips():
    p = ingress({})
    assert ask([p], "from=203.0.113.9,to=x/a,port=9999/udp") == "yes"
    assert ask([p], "from=z/c,to=x/a,port=132/sctp") == "yes"


# 4: an empty peer is rejected by validation ("must specify a peer").
def test_empty_peer_is_invalid_not_everyone():
    with pytest.raises(ConfigError, match="must specify a peer"):
        ask([ingress({"from": [{}]})], "from=x/b,to=x/a,port=80")


# 5: egress rules and no policyTypes default to [Ingress, Egress].
def test_egress_rules_without_policy_types_also_deny_all_ingress():
    p = policy("p", "x", {"podSelector": A_IN_X, "egress": [{}]})
    assert ask([p], "from=y/b,to=x/a,port=80") == "no"  # ingress isolated
    assert ask([p], "from=x/a,to=y/b,port=80") == "yes"  # egress allows all


# 6: egress: [] is zero rules, so Egress is not added by defaulting.
def test_empty_egress_without_policy_types_leaves_egress_open():
    p = policy("p", "x", {"podSelector": A_IN_X, "egress": []})
    assert ask([p], "from=x/a,to=y/b,port=80") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=80") == "no"  # Ingress deny-all


# 7: rules of a direction missing from a written policyTypes are ignored.
def test_rules_outside_written_policy_types_are_ignored():
    only_ingress = policy("p", "x", {"podSelector": A_IN_X,
                                     "policyTypes": ["Ingress"], "ingress": [{}],
                                     "egress": [{"ports": [{"port": 9}]}]})  # fmt: skip
    assert ask([only_ingress], "from=x/a,to=y/b,port=80") == "yes"
    only_egress = policy("p", "x", {"podSelector": A_IN_X,
                                    "policyTypes": ["Egress"],
                                    "ingress": [{"ports": [{"port": 9}]}]})  # fmt: skip
    assert ask([only_egress], "from=y/b,to=x/a,port=80") == "yes"  # not isolated
    assert ask([only_egress], "from=x/a,to=y/b,port=80") == "no"  # no egress rule


# 8 / 9: protocol defaults to TCP, in a port entry with or without a port.
def test_port_without_protocol_is_tcp_only():
    p = ingress({"ports": [{"port": 53}]})
    assert ask([p], "from=y/b,to=x/a,port=53/tcp") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=53/udp") == "no"


def test_empty_port_entry_is_every_tcp_port_not_every_protocol():
    p = ingress({"ports": [{}]})
    assert ask([p], "from=y/b,to=x/a,port=12345") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=81/udp") == "no"


def test_protocol_without_port_is_every_port_of_it():
    p = ingress({"ports": [{"protocol": "UDP"}]})
    assert ask([p], "from=y/b,to=x/a,port=40000/udp") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=80/tcp") == "no"


# 10: named ports resolve on the destination pod, by name and protocol.
def test_named_port_resolves_per_destination_pod():
    # serve-80-tcp is 80 in x and 8080 in z (world docstring).
    p = policy("p", "z", {"podSelector": A_IN_X,
                          "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]})  # fmt: skip
    assert ask([p], "from=x/b,to=z/a,port=8080") == "yes"
    assert ask([p], "from=x/b,to=z/a,port=80") == "no"


def test_named_port_must_match_the_container_port_protocol():
    tcp = ingress({"ports": [{"port": "serve-81-udp"}]})  # protocol TCP
    assert ask([tcp], "from=y/b,to=x/a,port=81/udp") == "no"
    assert ask([tcp], "from=y/b,to=x/a,port=81/tcp") == "no"
    udp = ingress({"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]})
    assert ask([udp], "from=y/b,to=x/a,port=81/udp") == "yes"


def test_named_port_in_egress_to_an_ip_block_matches_nothing():
    # Nothing to resolve the name against outside the cluster.
    p = policy("p", "x", {"podSelector": A_IN_X, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                      "ports": [{"port": "serve-80-tcp"}]}]})  # fmt: skip
    assert ask([p], "from=x/a,to=198.51.100.7,port=80") == "no"


def test_named_egress_port_resolves_on_the_peer_pod():
    p = policy("p", "x", {"podSelector": A_IN_X, "policyTypes": ["Egress"],
                          "egress": [{"ports": [{"port": "serve-80-tcp"}]}]})  # fmt: skip
    assert ask([p], "from=x/a,to=z/b,port=8080") == "yes"
    assert ask([p], "from=x/a,to=y/b,port=80") == "yes"
    assert ask([p], "from=x/a,to=z/b,port=80") == "no"


# 11: endPort is an inclusive range and needs a numeric port.
def test_end_port_is_an_inclusive_range():
    p = ingress({"ports": [{"port": 80, "endPort": 90}]})
    assert ask([p], "from=y/b,to=x/a,port=80") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=90") == "yes"
    assert ask([p], "from=y/b,to=x/a,port=91") == "no"


def test_end_port_with_a_named_port_is_invalid():
    with pytest.raises(ConfigError, match="endPort: needs a numeric port"):
        ask(
            [ingress({"ports": [{"port": "http", "endPort": 90}]})],
            "from=y/b,to=x/a,port=80",
        )


# 14: namespaceSelector {} is every namespace, but never an external IP.
def test_empty_namespace_selector_is_every_namespace_and_no_address():
    p = ingress({"from": [{"namespaceSelector": {}}]})
    assert ask([p], "from=z/c,to=x/a,port=80") == "yes"
    assert ask([p], "from=203.0.113.9,to=x/a,port=80") == "no"


# 15: NotIn and DoesNotExist match pods without the key.
def test_not_in_matches_pods_without_the_key():
    expression = {"key": "team", "operator": "NotIn", "values": ["red"]}
    p = ingress({"from": [{"podSelector": {"matchExpressions": [expression]}}]})
    assert ask([p], "from=x/b,to=x/a,port=80") == "yes"  # no team label at all


def test_not_in_excludes_the_listed_values_and_exists_needs_the_key():
    not_b = {"key": "pod", "operator": "NotIn", "values": ["b"]}
    p = ingress({"from": [{"podSelector": {"matchExpressions": [not_b]}}]})
    assert ask([p], "from=x/b,to=x/a,port=80") == "no"
    assert ask([p], "from=x/c,to=x/a,port=80") == "yes"
    exists = {"key": "team", "operator": "Exists"}
    q = ingress({"from": [{"podSelector": {"matchExpressions": [exists]}}]})
    assert ask([q], "from=x/c,to=x/a,port=80") == "no"
    absent = {"key": "team", "operator": "DoesNotExist"}
    r = ingress({"from": [{"podSelector": {"matchExpressions": [absent]}}]})
    assert ask([r], "from=x/c,to=x/a,port=80") == "yes"


def test_duplicate_match_labels_keys_are_refused():
    # The API server's strict decoding refuses a repeated key; PyYAML would
    # silently keep the last (Kubernetes issue 56847). We refuse too.
    yaml_text = (
        text(world())
        + """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a, pod: b}}
"""
    )
    with pytest.raises(ConfigError, match="duplicate key"):
        load(yaml_text)


# 16 / 24: only a policy in the pod's own namespace isolates it.
def test_a_policy_in_another_namespace_never_isolates():
    deny_all_y = policy("deny", "y", {"podSelector": {}})
    assert ask([deny_all_y], "from=x/b,to=x/a,port=80") == "yes"
    assert ask([deny_all_y], "from=x/b,to=y/a,port=80") == "no"


# 17: both ends must allow.
def test_egress_of_the_source_must_allow_too():
    let_in = policy("in", "y", {"podSelector": {}, "ingress": [{}]})
    no_out = policy("out", "x", {"podSelector": {"matchLabels": {"pod": "b"}},
                                 "policyTypes": ["Egress"]})  # fmt: skip
    assert ask([let_in], "from=x/b,to=y/a,port=80") == "yes"
    assert ask([let_in, no_out], "from=x/b,to=y/a,port=80") == "no"


# 18: policies are a union; the first selecting policy flips to deny.
def test_policies_add_up_and_the_first_one_isolates():
    from_b = ingress({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]})
    from_c = policy("q", "x", {"podSelector": A_IN_X, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]})  # fmt: skip
    assert ask([], "from=x/c,to=x/a,port=80") == "yes"  # nothing isolates a
    assert ask([from_b], "from=x/c,to=x/a,port=80") == "no"
    assert ask([from_b, from_c], "from=x/c,to=x/a,port=80") == "yes"
    assert ask([from_b, from_c], "from=x/b,to=x/a,port=80") == "yes"


# 19: ipBlock is about addresses: IPv4 /0 is not IPv6, and pod IPs depend
# on the CNI (Cilium does not match them, iptables CNIs do).
def test_ipv4_world_block_does_not_cover_ipv6():
    p = ingress({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    assert ask([p], "from=198.51.100.7,to=x/a,port=80") == "yes"
    assert ask([p], "from=2001:db8::1,to=x/a,port=80") == "no"


def test_ip_block_against_a_pod_is_undecidable_unless_surely_outside():
    p = ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})
    assert ask([p], "from=x/b,to=x/a,port=80") == "undecidable"  # IP unknown
    inside = {"x/b": "10.1.2.3"}
    assert ask([p], "from=x/b,to=x/a,port=80", pod_ips=inside) == "undecidable"
    outside = {"x/b": "192.168.1.1"}
    assert ask([p], "from=x/b,to=x/a,port=80", pod_ips=outside) == "no"


# 20: except carves holes, and must be strictly inside cidr.
def test_except_removes_addresses_from_the_block():
    p = ingress(
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}
    )
    assert ask([p], "from=10.1.2.3,to=x/a,port=80") == "no"
    assert ask([p], "from=10.2.0.1,to=x/a,port=80") == "yes"


@pytest.mark.parametrize("hole", ["10.0.0.0/8", "192.168.0.0/16", "10.0.0.0/7"])
def test_except_equal_to_or_outside_cidr_is_invalid(hole):
    p = ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [hole]}}]})
    with pytest.raises(ConfigError, match="strictly inside"):
        ask([p], "from=10.2.0.1,to=x/a,port=80")


def test_ip_block_with_host_bits_is_its_network():
    p = ingress({"from": [{"ipBlock": {"cidr": "10.1.2.3/8"}}]})
    assert ask([p], "from=10.200.0.1,to=x/a,port=80") == "yes"


# 21: namespaces are selected by labels; the name label is the API server's.
def test_namespace_by_name_needs_the_metadata_name_label():
    by_name = ingress({"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]})  # fmt: skip
    assert ask([by_name], "from=y/b,to=x/a,port=80") == "yes"
    by_convention = ingress({"from": [{"namespaceSelector": {
        "matchLabels": {"name": "y"}}}]})  # fmt: skip
    assert ask([by_convention], "from=y/b,to=x/a,port=80") == "no"


def test_undeclared_namespace_labels_are_unknown():
    stray = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "s", "namespace": "w", "labels": {"pod": "s"}},
             "spec": {"containers": [{"name": "c", "image": "i"}]}}  # fmt: skip
    p = ingress({"from": [{"namespaceSelector": {"matchLabels": {"ns": "w"}}}]})
    assert ask([p, stray], "from=w/s,to=x/a,port=80") == "undecidable"
    q = ingress({"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "w"}}}]})  # fmt: skip
    assert ask([q, stray], "from=w/s,to=x/a,port=80") == "yes"


# 23: hostNetwork pods and a pod to itself are outside the spec.
def test_host_network_and_loopback_are_undecidable():
    host = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "h", "namespace": "x"},
            "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "i"}]}}  # fmt: skip
    assert ask([host], "from=x/h,to=x/a,port=80") == "undecidable"
    assert ask([], "from=x/a,to=x/a,port=80") == "undecidable"


# 25: defaulting is done, and matchExpressions are understood (not only
# matchLabels): see the tests above for policyTypes, protocol, NotIn.
def test_deployment_stands_for_its_pods():
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "x"},
              "spec": {"template": {"metadata": {"labels": {"pod": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}}  # fmt: skip
    p = ingress({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]})
    assert ask([p, deploy], "from=x/web,to=x/a,port=80") == "yes"


def test_question_errors_name_the_problem():
    with pytest.raises(InvalidArgument, match="no pod x/nope"):
        ask([], "from=x/nope,to=x/a,port=80")
    with pytest.raises(InvalidArgument, match="port="):
        ask([], "from=x/b,to=x/a,port=80/icmp")
    with pytest.raises(InvalidArgument, match="one end must be a pod"):
        ask([], "from=1.2.3.4,to=5.6.7.8,port=80")


def test_truth_table_covers_every_pair_and_matches_single_answers():
    p = ingress({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]})
    policies, cluster = load(text(world() + [p]))
    table = truth_table(policies, cluster, [(80, "TCP"), (81, "UDP")])
    assert len(table) == 9 * 9 * 2
    assert table[("x/b", "x/a", 80, "TCP")] == "yes"
    assert table[("y/b", "x/a", 80, "TCP")] == "no"
    assert table[("x/a", "x/a", 80, "TCP")] == "undecidable"  # loopback
    assert table[("x/a", "y/b", 81, "UDP")] == "yes"  # nothing isolates y/b
    denied_into_a = [k for k, v in table.items() if k[1] == "x/a" and v == "no"]
    # Every pod but a itself and b, on both ports: a rule without ports
    # allows every port and protocol, so x/b gets UDP/81 too.
    assert len(denied_into_a) == 7 * 2


def test_truth_maps_allowed_to_unsafe():
    p = ingress({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]})
    config = text(world() + [p])
    assert truth(config, "netpol:from=x/b,to=x/a,port=80").verdict == "unsafe"
    assert truth(config, "netpol:from=x/c,to=x/a,port=80").verdict == "safe"
    with pytest.raises(Undecidable):
        truth(config, "netpol:from=x/a,to=x/a,port=80")
