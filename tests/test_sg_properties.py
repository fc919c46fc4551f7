"""Monotonicity of the security-group verdict (groups are unions of allows).

* Removing a CIDR from a rule never opens a port.
* Adding an ingress rule never closes one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from generator.config.terraform import load_module
from generator.oracle.sg import answer, parse_question
from generator.oracle.sg_rules import security_groups

CIDRS = ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2",
         "10.0.0.0/8", "::/0", "::/1", "8000::/1"]  # fmt: skip
rules = st.tuples(
    st.sampled_from(["tcp", "udp", "-1", "6", "icmp"]),
    st.integers(0, 30),
    st.integers(0, 30),
    st.lists(st.sampled_from(CIDRS), min_size=1, max_size=3, unique=True),
)
RANK = {"no": 0, "undecidable": 1, "yes": 2}


def hcl(rule_list) -> str:
    blocks = []
    for protocol, low, span, cidrs in rule_list:
        if protocol == "-1":
            low, span = 0, 0
        v4 = [c for c in cidrs if ":" not in c]
        v6 = [c for c in cidrs if ":" in c]
        blocks.append(
            f'ingress {{\nfrom_port = {low}\nto_port = {low + span}\nprotocol = "{protocol}"\n'
            f"cidr_blocks = {v4!r}\nipv6_cidr_blocks = {v6!r}\n}}".replace("'", '"')
        )
    return 'resource "aws_security_group" "g" {\n' + "\n".join(blocks) + "\n}\n"


def verdict(rule_list, port, version):
    groups = security_groups(load_module(hcl(rule_list), source="t.tf"))
    return answer(groups[0], parse_question(port), version).value


ports = st.sampled_from(["22", "0", "25/udp", "any"])


@settings(max_examples=120, deadline=None)
@given(
    st.lists(rules, min_size=1, max_size=4), st.data(), ports, st.sampled_from([4, 6])
)
def test_removing_a_cidr_never_opens(rule_list, data, port, version):
    i = data.draw(st.integers(0, len(rule_list) - 1))
    protocol, low, span, cidrs = rule_list[i]
    smaller = list(rule_list)
    smaller[i] = (protocol, low, span, cidrs[1:])
    if not cidrs[1:]:
        del smaller[i]
    if not smaller:
        return
    assert (
        RANK[verdict(smaller, port, version)] <= RANK[verdict(rule_list, port, version)]
    )


@settings(max_examples=120, deadline=None)
@given(st.lists(rules, min_size=1, max_size=3), rules, ports, st.sampled_from([4, 6]))
def test_adding_an_ingress_rule_never_closes(rule_list, added, port, version):
    before = verdict(rule_list, port, version)
    after = verdict([*rule_list, added], port, version)
    assert RANK[after] >= RANK[before]
