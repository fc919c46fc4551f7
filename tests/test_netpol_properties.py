"""Properties of NetworkPolicy semantics that hold for every policy set.

* Adding a policy never widens a pod's ingress beyond the union: once the
  destination is isolated, what is allowed after adding P is what was
  allowed before or what P allows alone (policies are additive, §2.1).
* For an already isolated destination, adding a policy never closes a flow.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.oracle.netpol import answer, load, parse_question
from tests.netpol_world import NAMESPACES, PODS, policy, text, world

PEERS = [
    {"podSelector": {}},
    {"podSelector": {"matchLabels": {"pod": "b"}}},
    {"namespaceSelector": {}},
    {"namespaceSelector": {"matchLabels": {"ns": "y"}}},
    {
        "namespaceSelector": {"matchLabels": {"ns": "y"}},
        "podSelector": {"matchLabels": {"pod": "c"}},
    },  # fmt: skip
    {
        "podSelector": {
            "matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["a"]}]
        }
    },  # fmt: skip
    {"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.128/25"]}},
]
PORTS = [{"port": 80}, {"port": 81, "protocol": "UDP"}, {"port": "serve-80-tcp"},
         {"port": 70, "endPort": 80}, {"protocol": "UDP"}]  # fmt: skip

rules = st.fixed_dictionaries(
    {},
    optional={
        "from": st.lists(st.sampled_from(PEERS), max_size=2),
        "ports": st.lists(st.sampled_from(PORTS), max_size=2),
    },
)
selectors = st.sampled_from([{}, {"matchLabels": {"pod": "a"}}])
policies = st.builds(
    lambda ns, sel, ingress: {"namespace": ns, "podSelector": sel, "ingress": ingress},
    st.sampled_from(NAMESPACES), selectors, st.lists(rules, max_size=2),
)  # fmt: skip
sources = st.sampled_from(
    [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
    + ["198.51.100.7", "198.51.100.200"]
)
ports = st.sampled_from(["80", "81/udp", "75", "8080"])


def _docs(specs):
    return [
        policy(
            f"p{i}",
            s["namespace"],
            {"podSelector": s["podSelector"], "ingress": s["ingress"]},
        )
        for i, s in enumerate(specs)
    ]


def _ask(specs, question):
    found, cluster = load(text(world() + _docs(specs)))
    traffic, _ = parse_question(question, cluster)
    return answer(found, cluster, traffic).value


@settings(max_examples=150, deadline=None)
@given(st.lists(policies, min_size=1, max_size=3), policies, sources, ports)
def test_adding_a_policy_stays_within_the_union(before, added, src, port):
    # Only the ingress side is isolated by these policies (Ingress only).
    dst = f"{added['namespace']}/a"
    if src == dst:
        return
    question = f"from={src},to={dst},port={port}"
    isolated_before = any(
        p["namespace"] == added["namespace"] for p in before
    )  # every selector here selects pod a
    old, new, alone = (
        _ask(before, question),
        _ask([*before, added], question),
        _ask([added], question),
    )
    if isolated_before:
        assert (new == "yes") == (old == "yes" or alone == "yes") or "undecidable" in (
            old,
            new,
            alone,
        )
        assert not (old == "yes" and new == "no")  # never closes
    else:
        assert new == alone or "undecidable" in (new, alone)
