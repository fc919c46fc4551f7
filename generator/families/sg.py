"""Security-group case families: named regions of the "open to the internet" space.

Each family is a strategy of ``SgModel``s for one question kind
(``sg:open_ipv4`` or ``sg:open_ipv6``) that draws the choices deciding the
verdict independently, so each holds near misses on both sides; the oracle
gives every draft its verdict. Each family opens with a comment listing the
space it covers; section numbers are those of
shared/research/sg-terraform.md (3.5 is its list of cross-tool blind
spots). The list is explicit and ordered.

Left out on purpose: a group with inline ingress *and* separate rules, an
unresolvable variable or data source, and a prefix list defined elsewhere
(when it could decide the answer) are ``undecidable`` and never enter a
suite; ``-1`` with non-zero ports in an inline block is invalid at apply
time (also undecidable).
"""

from __future__ import annotations

from hypothesis import strategies as st

from generator.families.netpol_sg_build import Family
from generator.grammar.sg import SgGrant, SgModel, cidr_list, grammar, quote

__all__ = ["FAMILIES", "KINDS"]

KINDS = ("sg:open_ipv4", "sg:open_ipv6")

_SPLITS = {
    4: {
        "whole": ("0.0.0.0/0",),
        "halves": ("0.0.0.0/1", "128.0.0.0/1"),
        "quarters": ("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"),
        # Everything but 10/8: the public internet, not the whole space.
        "all-but-private": ("0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6",
                            "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"),
        "overlapping": ("0.0.0.0/1", "64.0.0.0/2", "128.0.0.0/1"),
        "one-half": ("128.0.0.0/1",),
    },
    6: {
        "whole": ("::/0",),
        "halves": ("::/1", "8000::/1"),
        "quarters": ("::/2", "4000::/2", "8000::/2", "c000::/2"),
        "all-but-private": ("::/1", "8000::/2", "c000::/3", "e000::/4", "f000::/5",
                            "f800::/6", "fe00::/7"),
        "overlapping": ("::/1", "4000::/2", "8000::/1"),
        "one-half": ("8000::/1",),
    },
}  # fmt: skip


def _version(kind: str) -> int:
    return 6 if kind.endswith("ipv6") else 4


def _ports():
    weights = grammar()["ports"]
    return st.sampled_from([int(p) for p, w in weights.items() for _ in range(w)])


def _styles(*allowed: str):
    weights = grammar()["styles"]
    pool = [s for s, w in weights.items() if s in allowed for _ in range(w)]
    return st.sampled_from(pool)


def _private(version: int) -> tuple[str, ...]:
    key = "private_ipv4" if version == 4 else "private_ipv6"
    return cidr_list(grammar()[key][0])


def _grant(version: int, cidrs, **fields) -> SgGrant:
    """A grant whose CIDRs go to the field of ``version``."""
    if version == 4:
        return SgGrant(cidrs=cidrs, **fields)
    return SgGrant(ipv6=cidrs, **fields)


def _ports_of(port: int) -> dict[str, str]:
    return {"from_port": str(port), "to_port": str(port)}


# World coverage by CIDR arithmetic (2.5; 3.5 #1): the whole space as one
# block, halves, quarters, overlapping blocks, one half missing, everything
# but private space; in one grant or spread over two grants or resources.
@st.composite
def cidr_splits(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    split = draw(st.sampled_from(sorted(_SPLITS[version])))
    cidrs = cidr_list(*_SPLITS[version][split])
    style = draw(_styles("inline", "attribute", "rule", "vpc"))
    if len(cidrs) > 1 and draw(st.booleans()):
        half = len(cidrs) // 2
        grants = (_grant(version, cidrs[:half], **_ports_of(port)),
                  _grant(version, cidrs[half:], **_ports_of(port)))  # fmt: skip
    else:
        grants = (_grant(version, cidrs, **_ports_of(port)),)
    return SgModel(grants, port, style=style, align=draw(st.booleans()))


# Protocol and port semantics (2.2; 3.5 #2, #3, #7, #8): -1 / "all" with
# ports on a separate rule (opens every port), a VPC rule with ip_protocol
# -1 and no ports, inline -1 with 0/0; decoys: tcp 0..0 (port 0 only), udp,
# icmp -1/-1, ESP ("50"); numeric "6" for tcp.
@st.composite
def protocol_all(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    world = cidr_list(_SPLITS[version]["whole"][0])
    variant = draw(
        st.sampled_from(
            [
                "rule-all",
                "rule-all-word",
                "vpc-all",
                "inline-all",
                "tcp-zero",
                "udp",
                "icmp",
                "esp",
                "numeric-tcp",
            ]
        )
    )
    style, protocol, ports = {
        "rule-all": ("rule", "-1", ("8080", "8080")),
        "rule-all-word": ("rule", "all", ("443", "443")),
        "vpc-all": ("vpc", "-1", (None, None)),
        "inline-all": ("inline", "-1", ("0", "0")),
        "tcp-zero": (draw(_styles("inline", "rule", "vpc")), "tcp", ("0", "0")),
        "udp": (draw(_styles("inline", "rule", "vpc")), "udp", (str(port), str(port))),
        "icmp": (draw(_styles("inline", "rule")), "icmp", ("-1", "-1")),
        "esp": ("rule", "50", ("0", "0")),
        "numeric-tcp": (draw(_styles("inline", "rule", "vpc")), "6",
                        (str(port), str(port))),
    }[variant]  # fmt: skip
    grant = _grant(version, world, protocol=quote(protocol), from_port=ports[0],
                   to_port=ports[1])  # fmt: skip
    return SgModel((grant,), port, style=style)


# Port ranges (2.2; 3.5 #7): a range holding the port, ending just below
# it, starting just above it, all ports 0..65535; ports written as numbers,
# strings ("22") or floats (22.0).
@st.composite
def port_ranges(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    low, high = draw(
        st.sampled_from(
            [
                (port, port),
                (port - 1, port - 1),
                (port + 1, port + 100),
                (0, 65535),
                (port - 10, port + 10),
                (1024, 65535),
            ]
        )
    )
    spell = draw(st.sampled_from(["number", "number", "string", "float"]))
    text = {"number": str, "string": lambda p: quote(str(p)),
            "float": lambda p: f"{p}.0"}[spell]  # fmt: skip
    world = cidr_list(_SPLITS[version]["whole"][0])
    grant = _grant(version, world, from_port=text(max(low, 0)), to_port=text(high))
    return SgModel((grant,), port, style=draw(_styles("inline", "rule", "vpc")))


# Mixed sources (2.3; 3.5 #4): self or a prefix list beside the world CIDR
# in one inline block, a self-only block first and the world block after
# (checkov returns early), source security groups only, self only.
@st.composite
def mixed_sources(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    world = cidr_list(_SPLITS[version]["whole"][0])
    variant = draw(st.sampled_from(["self-and-world", "prefix-and-world",
                                    "self-first", "groups-only", "self-only",
                                    "private-and-groups"]))  # fmt: skip
    p = _ports_of(port)
    grants = {
        "self-and-world": (_grant(version, world, self_=True, **p),),
        "prefix-and-world": (_grant(version, world, prefix=True, **p),),
        "self-first": (SgGrant(self_=True, **_ports_of(443)),
                       _grant(version, world, **p)),
        "groups-only": (SgGrant(groups=True, **p),),
        "self-only": (SgGrant(self_=True, **p),),
        "private-and-groups": (_grant(version, _private(version), groups=True, **p),),
    }[variant]  # fmt: skip
    return SgModel(grants, port, style=draw(_styles("inline", "rule", "vpc")))


# Computed CIDRs (2.5, 2.6; 3.5 #5): a variable default, a local, concat,
# cidrsubnet halves, a conditional on a variable defaulting either way,
# flatten over a variable, and a dynamic "ingress" block over a literal port list
# that holds the port or not.
@st.composite
def computed_cidrs(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    whole = _SPLITS[version]["whole"][0]
    private = _private(version)
    world = cidr_list(whole)
    variant = draw(
        st.sampled_from(
            [
                "variable",
                "variable-private",
                "local",
                "concat",
                "cidrsubnet",
                "conditional",
                "flatten",
                "dynamic",
            ]
        )
    )
    p = _ports_of(port)
    variables: tuple[tuple[str, str], ...] = ()
    local: tuple[tuple[str, str], ...] = ()
    style = draw(_styles("inline", "rule"))
    if variant in ("variable", "variable-private"):
        listed = world if variant == "variable" else private
        variables = (("allowed_cidrs", "[" + ", ".join(listed) + "]"),)
        grant = _grant(version, "var.allowed_cidrs", **p)
    elif variant == "local":
        local = (("admin_cidrs", "[" + ", ".join(draw(st.sampled_from([world, private])))
                  + "]"),)  # fmt: skip
        grant = _grant(version, "local.admin_cidrs", **p)
    elif variant == "concat":
        second = draw(st.sampled_from([world, private]))
        grant = _grant(version, f"concat([{private[0]}], [{second[0]}])", **p)
    elif variant == "cidrsubnet":
        halves = [f"cidrsubnet({quote(whole)}, 1, {i})" for i in (0, 1)]
        grant = _grant(version, tuple(halves[: draw(st.sampled_from([1, 2]))]), **p)
    elif variant == "conditional":
        default = draw(st.sampled_from(["true", "false"]))
        variables = (("public", default),)
        grant = _grant(version, f"var.public ? [{world[0]}] : [{private[0]}]", **p)
    elif variant == "flatten":
        listed = draw(st.sampled_from([world, private]))
        variables = (("cidrs", "[" + ", ".join(listed) + "]"),)
        grant = _grant(version, "flatten([var.cidrs])", **p)
    else:
        style = "inline"
        ports = draw(st.sampled_from([[port, 443], [80, 443], [port]]))
        listed = "[" + ", ".join(str(x) for x in ports) + "]"
        grant = _grant(version, world, for_each=listed)
    return SgModel((grant,), port, style=style, variables=variables, locals=local)


# IPv6 spellings (2.5; 3.5 #6): ::/0, ::0/0, the fully written zero
# address, /1 halves, 2000::/3 (global unicast, not the whole space), and
# IPv4-only grants asked about IPv6 (0.0.0.0/0 says nothing about IPv6).
@st.composite
def ipv6_spellings(draw, kind: str) -> SgModel:
    port = draw(_ports())
    ipv6 = draw(
        st.sampled_from(
            [
                ("::/0",),
                ("::0/0",),
                ("0:0:0:0:0:0:0:0/0",),
                ("0000:0000:0000:0000:0000:0000:0000:0000/0",),
                ("::/1", "8000::/1"),
                ("2000::/3",),
                (),
            ]
        )
    )
    ipv4 = draw(st.sampled_from([("0.0.0.0/0",), ("10.0.0.0/8",)]))
    grant = SgGrant(cidrs=cidr_list(*ipv4), ipv6=cidr_list(*ipv6), **_ports_of(port))
    return SgModel((grant,), port, style=draw(_styles("inline", "rule", "attribute")))


# Decoys that look open (3.5 #8): a world rule with count = 0, a world
# egress rule, the world on another port or on UDP, a description that
# says "open"; next to a private grant on the asked port, or a world one.
@st.composite
def decoys(draw, kind: str) -> SgModel:
    version = _version(kind)
    port = draw(_ports())
    world = cidr_list(_SPLITS[version]["whole"][0])
    variant = draw(st.sampled_from(["count-zero", "egress", "other-port", "udp",
                                    "description"]))  # fmt: skip
    open_too = draw(st.integers(0, 3)) == 0
    base = _grant(version, world if open_too else _private(version), **_ports_of(port))
    style = draw(_styles("inline", "rule"))
    egress = False
    if variant == "count-zero":
        style = "rule"
        decoy = _grant(version, world, count_zero=True, **_ports_of(port))
    elif variant == "egress":
        egress, decoy = True, None
    elif variant == "other-port":
        decoy = _grant(version, world, **_ports_of(port + 1))
    elif variant == "udp":
        decoy = _grant(version, world, protocol=quote("udp"), **_ports_of(port))
    else:
        base = SgGrant(cidrs=base.cidrs, ipv6=base.ipv6, description="open to the world",
                       **_ports_of(port))  # fmt: skip
        decoy = None
    grants = (base,) if decoy is None else (decoy, base)
    return SgModel(grants, port, style=style, egress_world=egress)


_BOTH = {KINDS[0]: 3, KINDS[1]: 3}
FAMILIES: tuple[Family, ...] = (
    Family("cidr-splits", cidr_splits, {KINDS[0]: 4, KINDS[1]: 4}, "3.5 #1, 2.5"),
    Family("protocol-all", protocol_all, {KINDS[0]: 4, KINDS[1]: 2}, "3.5 #2, #3, 2.2"),
    Family("port-ranges", port_ranges, {KINDS[0]: 3, KINDS[1]: 1}, "3.5 #7, 2.2"),
    Family("mixed-sources", mixed_sources, _BOTH, "3.5 #4, 2.3"),
    Family("computed-cidrs", computed_cidrs, {KINDS[0]: 4, KINDS[1]: 2}, "3.5 #5"),
    Family("ipv6-spellings", ipv6_spellings, {KINDS[0]: 1, KINDS[1]: 4}, "3.5 #6"),
    Family("decoys", decoys, _BOTH, "3.5 #8"),
)
