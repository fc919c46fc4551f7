"""The security-group oracle on the cases of research/sg-terraform.md §3.2.

Question: is TCP/22 open to the whole IPv4 / IPv6 internet? Expected values
come from the AWS security group model and terraform-provider-aws (§2: a
group is a union of allow rules; -1/all is every protocol and port; tcp
0..0 is port 0; coverage is over addresses, not strings), not from running
the oracle. Each case letter is the research table's.
"""

from __future__ import annotations

import pytest

from generator.config.terraform import load_module
from generator.errors import InvalidArgument, Undecidable
from generator.oracle.sg import ANY, answer, covers_all, parse_question, truth
from generator.oracle.sg_rules import security_groups


def inline(body: str, extra: str = "") -> str:
    return f'{extra}\nresource "aws_security_group" "web" {{\n{body}\n}}\n'


def block(protocol="tcp", low=22, high=22, **sources) -> str:
    lines = [f"from_port = {low}", f"to_port = {high}", f'protocol = "{protocol}"']
    lines += [f"{k} = {v}" for k, v in sources.items()]
    return "ingress {\n" + "\n".join(lines) + "\n}"


def rule(name="r", protocol="tcp", low=22, high=22, extra="", **sources) -> str:
    body = [
        'type = "ingress"', "security_group_id = aws_security_group.web.id",
        f'protocol = "{protocol}"', f"from_port = {low}", f"to_port = {high}",
    ]  # fmt: skip
    body += [f"{k} = {v}" for k, v in sources.items()]
    return (
        f'resource "aws_security_group_rule" "{name}" {{\n{extra}'
        + "\n".join(body)
        + "\n}\n"
    )


WORLD = '["0.0.0.0/0"]'
EMPTY_GROUP = 'resource "aws_security_group" "web" {}\n'


def verdicts(hcl: str, question: str = "22/tcp") -> tuple[str, str]:
    groups = security_groups(load_module(hcl, source="t.tf"))
    asked = parse_question(question)
    (group,) = [g for g in groups if not g.external] or groups
    return answer(group, asked, 4).value, answer(group, asked, 6).value


CASES = {
    # A: two /1 halves are all of IPv4.
    "A": (inline(block(cidr_blocks='["0.0.0.0/1", "128.0.0.0/1"]')), ("yes", "no")),
    # B: a self block does not hide a later world-open block.
    "B": (
        inline(block(low=443, high=443, self="true") + block(cidr_blocks=WORLD)),
        ("yes", "no"),
    ),
    # C: self and a world CIDR in one block are two grants.
    "C": (inline(block(self="true", cidr_blocks=WORLD)), ("yes", "no")),
    # D: a prefix list beside 0.0.0.0/0 does not remove it.
    "D": (
        inline(block(prefix_list_ids='["pl-123"]', cidr_blocks=WORLD)),
        ("yes", "undecidable"),
    ),
    # E: protocol -1 on a separate rule ignores its ports: everything is open.
    "E": (
        EMPTY_GROUP + rule(protocol="-1", low=8080, high=8080, cidr_blocks=WORLD),
        ("yes", "no"),
    ),
    # F: the VPC rule with ip_protocol -1 takes no ports and opens everything.
    "F": (
        EMPTY_GROUP + 'resource "aws_vpc_security_group_ingress_rule" "f" {\n'
        'security_group_id = aws_security_group.web.id\nip_protocol = "-1"\n'
        'cidr_ipv4 = "0.0.0.0/0"\n}\n',
        ("yes", "no"),
    ),  # fmt: skip
    # G: tcp 0..0 is port 0 only.
    "G": (inline(block(low=0, high=0, cidr_blocks=WORLD)), ("no", "no")),
    # H: udp 22 does not open TCP/22.
    "H": (inline(block(protocol="udp", cidr_blocks=WORLD)), ("no", "no")),
    # J: a security-group source is never the internet.
    "J": (
        EMPTY_GROUP + 'resource "aws_vpc_security_group_ingress_rule" "j" {\n'
        'security_group_id = aws_security_group.web.id\nip_protocol = "tcp"\n'
        'from_port = 22\nto_port = 22\nreferenced_security_group_id = "sg-1"\n}\n',
        ("no", "no"),
    ),  # fmt: skip
    # K: a prefix list known only by id may hold anything.
    "K": (
        EMPTY_GROUP + 'resource "aws_vpc_security_group_ingress_rule" "k" {\n'
        'security_group_id = aws_security_group.web.id\nip_protocol = "tcp"\n'
        'from_port = 22\nto_port = 22\nprefix_list_id = "pl-9"\n}\n',
        ("undecidable", "undecidable"),
    ),  # fmt: skip
    # L: a variable's default is what a plan without tfvars uses.
    "L": (
        inline(
            block(cidr_blocks="var.allowed"),
            'variable "allowed" {\ndefault = ["0.0.0.0/0"]\n}',
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # M: ::0/0 is ::/0.
    "M": (inline(block(ipv6_cidr_blocks='["::0/0"]')), ("no", "yes")),
    # N: dynamic blocks over a literal list expand.
    "N": (
        inline(
            'dynamic "ingress" {\nfor_each = [22, 3389]\ncontent {\n'
            'from_port = ingress.value\nto_port = ingress.value\nprotocol = "tcp"\n'
            'cidr_blocks = ["0.0.0.0/0"]\n}\n}'
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # N2: ... and over a variable default.
    "N2": (
        inline(
            'dynamic "ingress" {\nfor_each = var.ports\ncontent {\n'
            'from_port = ingress.value\nto_port = ingress.value\nprotocol = "tcp"\n'
            'cidr_blocks = ["0.0.0.0/0"]\n}\n}',
            'variable "ports" {\ndefault = [22]\n}',
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # N3: ... over a list of objects.
    "N3": (
        inline(
            'dynamic "ingress" {\nfor_each = var.rules\ncontent {\n'
            "from_port = ingress.value.port\nto_port = ingress.value.port\n"
            'protocol = "tcp"\ncidr_blocks = [ingress.value.cidr]\n}\n}',
            'variable "rules" {\ndefault = [{port = 22, cidr = "0.0.0.0/0"}]\n}',
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # Q: a local.
    "Q": (
        inline(block(cidr_blocks="local.world"), 'locals {\nworld = ["0.0.0.0/0"]\n}'),
        ("yes", "no"),
    ),  # fmt: skip
    # R: two separate rules, one /1 each: together the world.
    "R": (
        EMPTY_GROUP
        + rule("r1", cidr_blocks='["0.0.0.0/1"]')
        + rule("r2", cidr_blocks='["128.0.0.0/1"]'),
        ("yes", "no"),
    ),  # fmt: skip
    # S: count = 0 creates no rule.
    "S": (EMPTY_GROUP + rule(extra="count = 0\n", cidr_blocks=WORLD), ("no", "no")),
    # T: protocol "6" is TCP; 20..25 holds 22.
    "T": (
        inline(block(protocol="6", low=20, high=25, cidr_blocks=WORLD)),
        ("yes", "no"),
    ),
    # U: attribute syntax.
    "U": (
        inline(
            'ingress = [{\nfrom_port = 22\nto_port = 22\nprotocol = "tcp"\n'
            'cidr_blocks = ["0.0.0.0/0"]\nipv6_cidr_blocks = []\nprefix_list_ids = []\n'
            'security_groups = []\nself = false\ndescription = ""\n}]'
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # V: host bits set: the provider refuses the config, so nothing is proven.
    "V": (inline(block(cidr_blocks='["1.2.3.4/0"]')), ("undecidable", "no")),
    # W: a conditional on a variable with a default.
    "W": (
        inline(
            block(cidr_blocks='var.public ? ["0.0.0.0/0"] : ["10.0.0.0/8"]'),
            'variable "public" {\ndefault = true\n}',
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # X: egress rules never open inbound traffic.
    "X": (
        inline(
            'egress {\nfrom_port = 0\nto_port = 0\nprotocol = "-1"\n'
            'cidr_blocks = ["0.0.0.0/0"]\n}'
        ),
        ("no", "no"),
    ),  # fmt: skip
    # Y: inline -1 with 0/0 ports is everything.
    "Y": (
        inline(block(protocol="-1", low=0, high=0, cidr_blocks=WORLD)),
        ("yes", "no"),
    ),
    # Z1: "all" on a separate rule is -1.
    "Z1": (
        EMPTY_GROUP + rule(protocol="all", low=0, high=65535, cidr_blocks=WORLD),
        ("yes", "no"),
    ),
    # Z2: concat.
    "Z2": (
        inline(block(cidr_blocks='concat(["10.0.0.0/8"], ["0.0.0.0/0"])')),
        ("yes", "no"),
    ),
    # Z3: cidrsubnet halves.
    "Z3": (
        inline(
            block(
                cidr_blocks='[cidrsubnet("0.0.0.0/0", 1, 0), cidrsubnet("0.0.0.0/0", 1, 1)]'
            )
        ),
        ("yes", "no"),
    ),  # fmt: skip
    # Z4: ports written as strings.
    "Z4": (inline(block(low='"0"', high='"65535"', cidr_blocks=WORLD)), ("yes", "no")),
    # Z5: icmp -1/-1 opens no TCP port.
    "Z5": (
        inline(block(protocol="icmp", low=-1, high=-1, cidr_blocks=WORLD)),
        ("no", "no"),
    ),
}


@pytest.mark.parametrize("letter", sorted(CASES))
def test_research_case(letter):
    hcl, want = CASES[letter]
    assert verdicts(hcl) == want


# §2.5: coverage is arithmetic over the union.
@pytest.mark.parametrize(
    ("cidrs", "version", "want"),
    [
        (["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"], 4, True),
        (["0.0.0.0/1", "0.0.0.0/2", "128.0.0.0/1"], 4, True),  # overlaps
        (["0.0.0.0/1", "128.0.0.0/2"], 4, False),  # a quarter missing
        (["0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4",
          "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"], 4, False),  # all but 10/8
        (["::/1", "8000::/1"], 6, True),
        (["0:0:0:0:0:0:0:0/0"], 6, True),
        (["0.0.0.0/0"], 6, False),
        (["::/0"], 4, False),
    ],
)  # fmt: skip
def test_covers_all(cidrs, version, want):
    import ipaddress

    assert covers_all([ipaddress.ip_network(c) for c in cidrs], version) is want


def test_halves_across_an_inline_block_and_a_vpc_rule_of_another_style():
    hcl = inline(block(cidr_blocks='["0.0.0.0/1"]'))
    hcl += ('resource "aws_vpc_security_group_ingress_rule" "v" {\n'
            'security_group_id = aws_security_group.web.id\nip_protocol = "tcp"\n'
            'from_port = 22\nto_port = 22\ncidr_ipv4 = "128.0.0.0/1"\n}\n')  # fmt: skip
    # Inline ingress and a separate rule on one group: each apply rewrites
    # the other's rules (§2.3), so only what both states agree on is known.
    assert verdicts(hcl) == ("undecidable", "no")


def test_inline_and_separate_rules_agreeing_are_answered():
    hcl = inline(block(cidr_blocks=WORLD)) + rule(cidr_blocks='["10.0.0.0/8"]')
    assert verdicts(hcl) == ("yes", "no")  # the inline rules alone open it
    closed = inline(block(cidr_blocks='["10.0.0.0/8"]')) + rule(
        cidr_blocks='["10.0.0.0/8"]'
    )
    assert verdicts(closed) == ("no", "no")


def test_inline_minus_one_with_ports_fails_at_apply_so_it_is_undecidable():
    assert (
        verdicts(inline(block(protocol="-1", low=22, high=22, cidr_blocks=WORLD)))[0]
        == "undecidable"
    )


@pytest.mark.parametrize(
    "sources",
    [
        {"cidr_blocks": "data.aws_ip_ranges.x.cidr_blocks"},  # data source
        {"cidr_blocks": "module.net.cidrs"},  # module output
        {"cidr_blocks": "var.undeclared_default"},
    ],
)
def test_unresolvable_sources_are_undecidable(sources):
    extra = 'variable "undeclared_default" {}\ndata "aws_ip_ranges" "x" {}'
    assert verdicts(inline(block(**sources), extra))[0] == "undecidable"


def test_dynamic_over_unknown_input_is_undecidable():
    hcl = inline('dynamic "ingress" {\nfor_each = var.rules\ncontent {\n'
                 'from_port = 22\nto_port = 22\nprotocol = "tcp"\n'
                 'cidr_blocks = ["0.0.0.0/0"]\n}\n}', 'variable "rules" {}')  # fmt: skip
    assert verdicts(hcl) == ("undecidable", "undecidable")


def test_count_over_unknown_input_is_undecidable():
    hcl = EMPTY_GROUP + rule(extra="count = var.n\n", cidr_blocks=WORLD)
    assert verdicts(hcl + 'variable "n" {}')[0] == "undecidable"


def test_rule_on_a_group_defined_elsewhere_is_yes_or_undecidable():
    hcl = rule(cidr_blocks='["10.0.0.0/8"]').replace(
        "aws_security_group.web.id", "var.sg_id"
    )
    groups = security_groups(load_module(hcl, source="t.tf"))
    assert [g.address for g in groups] == ["var.sg_id"]
    assert answer(groups[0], parse_question("22"), 4).value == "undecidable"


def test_groups_with_count_are_instances():
    hcl = inline(block(cidr_blocks=WORLD)).replace("{\n", "{\ncount = 2\n", 1)
    groups = security_groups(load_module(hcl, source="t.tf"))
    assert [g.address for g in groups] == [
        "aws_security_group.web[0]",
        "aws_security_group.web[1]",
    ]


def test_any_port_question_lists_the_open_ranges():
    hcl = inline(block(low=1000, high=2000, cidr_blocks=WORLD)
                 + block(protocol="udp", low=53, high=53, cidr_blocks='["0.0.0.0/1"]'))  # fmt: skip
    (group,) = security_groups(load_module(hcl, source="t.tf"))
    result = answer(group, ANY, 4)
    assert (
        result.value == "yes" and result.reason == "tcp 1000-2000 open to all of IPv4"
    )
    assert answer(group, parse_question("any/udp"), 4).value == "no"
    assert answer(group, parse_question("port=1500/tcp"), 4).value == "yes"
    assert answer(group, parse_question("2001"), 4).value == "no"


def test_question_syntax():
    assert str(parse_question("port=22/tcp")) == "22/tcp"
    assert str(parse_question("53/udp")) == "53/udp"
    assert str(parse_question("any")) == "any"
    for bad in ("port=22/icmp", "ssh", "port=70000"):
        with pytest.raises(InvalidArgument):
            parse_question(bad)


def test_truth():
    assert (
        truth(inline(block(cidr_blocks=WORLD)), "sg:open_ipv4:22/tcp").verdict
        == "unsafe"
    )
    assert (
        truth(inline(block(cidr_blocks=WORLD)), "sg:open_ipv6:22/tcp").verdict == "safe"
    )
    with pytest.raises(Undecidable):
        truth(
            inline(block(cidr_blocks="var.x"), 'variable "x" {}'), "sg:open_ipv4:22/tcp"
        )
