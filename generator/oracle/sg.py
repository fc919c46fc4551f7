"""The security-group oracle: is PORT/PROTO open to the whole internet?

Ground truth for every sg case (research/sg-terraform.md). For one group
and one IP version the question is: do the CIDRs of the ingress grants that
let PORT/PROTO in, taken together, cover the whole address space
(``0.0.0.0/0`` or ``::/0``)? Coverage is CIDR arithmetic, not string
matching: two ``/1`` halves cover it, ``::0/0`` is ``::/0``, overlaps are
fine, ``0.0.0.0/0`` says nothing about IPv6. A grant from another security
group or ``self`` is never the internet. "Everything but 10/8" is not the
whole internet here (that would be a different, public-only question).

Answers are ``yes``, ``no`` or ``undecidable``:

* ``yes`` when the grants known to apply already cover the space;
* ``undecidable`` otherwise, when something unknown could still add
  addresses: an unresolved variable or data source, a prefix list defined
  elsewhere, a grant whose protocol or ports are unknown or invalid, a rule
  that may target this group, an unexpandable ``dynamic`` block, or a group
  with inline ingress *and* separate rules (each apply rewrites the other's
  rules, so the deployed set depends on the order; only what both orders
  agree on is answered);
* ``no`` when neither holds.

A group defined outside the configuration (a rule's ``security_group_id``
is a variable, data source or module output) can only be ``yes`` or
``undecidable``: rules elsewhere may open it.

Questions: ``port=22/tcp`` (one port; protocol tcp or udp, default tcp) or
``port=any`` (some TCP or UDP port; ``any/tcp``, ``any/udp`` for one
protocol). ICMP and protocols without ports are not asked about.
Egress rules never matter: groups are stateful.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass

from generator.config.terraform import load_module
from generator.errors import InvalidArgument, Undecidable
from generator.oracle.sg_rules import Grant, Group, security_groups
from generator.records import Truth, Violation

__all__ = [
    "ANY",
    "Answer",
    "Finding",
    "Question",
    "answer",
    "covers_all",
    "parse_question",
    "truth",
]

logger = logging.getLogger(__name__)

_WORLD = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}
_QUESTION = re.compile(r"^(?:port=)?(?P<port>[0-9]+|any)(?:/(?P<proto>tcp|udp))?$")


@dataclass(frozen=True)
class Question:
    """One port (``port`` set) or any port of ``protocols``."""

    protocols: tuple[str, ...]
    port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            proto = "/".join(self.protocols)
            return "any" if len(self.protocols) == 2 else f"any/{proto}"
        return f"{self.port}/{self.protocols[0]}"


ANY = Question(("tcp", "udp"))


@dataclass(frozen=True)
class Finding:
    rule: str  # open | undecidable
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class Answer:
    value: str
    reason: str
    findings: tuple[Finding, ...] = ()


def parse_question(text: str) -> Question:
    """``port=22/tcp``, ``22``, ``53/udp``, ``any``, ``any/tcp``."""
    match = _QUESTION.match(text.strip().lower())
    if match is None:
        raise InvalidArgument(
            f"question {text!r}: write port=22/tcp, port=53/udp or port=any"
        )
    protocols = (match["proto"],) if match["proto"] else None
    if match["port"] == "any":
        return Question(protocols or ("tcp", "udp"))
    port = int(match["port"])
    if port > 65535:
        raise InvalidArgument(f"question {text!r}: port {port} is not 0..65535")
    return Question(protocols or ("tcp",), port)


def covers_all(networks, version: int) -> bool:
    """Whether the union of ``networks`` (of that version) is the whole space."""
    mine = [n for n in networks if n.version == version]
    return list(ipaddress.collapse_addresses(mine)) == [_WORLD[version]]


def answer(group: Group, question: Question, version: int) -> Answer:
    """Is ``question`` open to all of IPv``version`` on ``group``?"""
    cells = [(p, question.port) for p in question.protocols]
    if question.port is None:
        cells = [(p, port) for p in question.protocols for port in _cuts(group, p)]
    results = [_cell(group, p, port, version) for p, port in cells]
    opened = [r for r in results if r.value == "yes"]
    if opened:
        findings = tuple(f for r in opened for f in r.findings)
        reason = opened[0].reason
        if question.port is None:
            ranges = _ranges(cells, results)
            reason = f"{', '.join(ranges)} open to all of IPv{version}"
        return Answer("yes", reason, _unique(findings))
    unknown = [r for r in results if r.value == "undecidable"]
    if unknown:
        findings = _unique(tuple(f for r in unknown for f in r.findings))
        return Answer("undecidable", unknown[0].reason, findings)
    return Answer("no", f"no {question} grant set covers all of IPv{version}")


def _ranges(cells: list[tuple[str, int]], results: list[Answer]) -> list[str]:
    # Cells are cut points in order per protocol; a cell reaches the next one.
    shown, start = [], None
    for i, ((protocol, port), result) in enumerate(zip(cells, results, strict=True)):
        last = i + 1 == len(cells) or cells[i + 1][0] != protocol
        end = 65535 if last else cells[i + 1][1] - 1
        if result.value == "yes" and start is None:
            start = port
        if start is not None and (last or results[i + 1].value != "yes"):
            shown.append(
                f"{protocol} {start}" if start == end else f"{protocol} {start}-{end}"
            )
            start = None
    return shown


def _cuts(group: Group, protocol: str) -> list[int]:
    # One port per stretch where the applicable grants do not change.
    cuts = {0}
    for grant in _all_grants(group):
        if grant.protocol == protocol and grant.ports is not None:
            cuts.add(grant.ports[0])
            if grant.ports[1] < 65535:
                cuts.add(grant.ports[1] + 1)
    return sorted(cuts)


def _all_grants(group: Group) -> list[Grant]:
    return [*(group.inline or ()), *group.attached, *group.maybe]


@dataclass(frozen=True)
class _Open:
    covered: bool
    contributors: tuple[Grant, ...]
    unknown: tuple[Finding, ...]


def _cell(group: Group, protocol: str, port: int, version: int) -> Answer:
    where = f"{port}/{protocol}"
    problems = tuple(Finding("undecidable", group.address, p) for p in group.problems)
    maybe = tuple(
        Finding(
            "undecidable",
            g.path,
            f"{g.path} may target {group.address}; the file does not pin which group",
        )
        for g in group.maybe
        if g.applies(protocol, port) is not False and _may_open(g, version)
    )
    if group.inline is not None and group.attached:
        # Inline rules and separate rules fight: the deployed set is either
        # the inline rules alone (after the group's apply) or both.
        alone = _union(group.inline, protocol, port, version)
        both = _union(group.inline + group.attached, protocol, port, version)
        if alone.covered:
            return _yes(alone, where, version)
        if not both.covered and not both.unknown and not problems and not maybe:
            return _no(where, version)
        fight = Finding(
            "undecidable",
            group.address,
            f"{group.address} has inline ingress and separate rules "
            f"({', '.join(g.path for g in group.attached)}); each apply rewrites "
            "the other's rules, so what is deployed depends on the order",
        )
        found = (fight, *both.unknown, *problems, *maybe)
        return Answer("undecidable", found[0].message, found)
    rules = (group.inline or []) + group.attached
    result = _union(rules, protocol, port, version)
    if result.covered:
        return _yes(result, where, version)
    found = (*result.unknown, *problems, *maybe)
    if group.external:
        found += (
            Finding(
                "undecidable",
                group.address,
                f"the group {group.address} is not defined in this configuration; "
                "rules elsewhere may open it",
            ),
        )
    if found:
        return Answer("undecidable", found[0].message, found)
    return _no(where, version)


def _union(grants: list[Grant], protocol: str, port: int, version: int) -> _Open:
    known, contributors, unknown = [], [], []
    for grant in grants:
        applies = grant.applies(protocol, port)
        if applies is False:
            continue
        mine = [n for n in grant.networks if n.version == version]
        if applies is None:
            if _may_open(grant, version):
                unknown.append(Finding("undecidable", grant.path, grant.invalid))
            continue
        if mine:
            known.extend(mine)
            contributors.append(grant)
        for adds, reason in grant.unknown_sources:
            if adds in (0, version):
                unknown.append(Finding("undecidable", grant.path, reason))
    covered = covers_all(known, version)
    return _Open(covered, tuple(contributors), tuple(unknown))


def _may_open(grant: Grant, version: int) -> bool:
    return any(adds in (0, version) for adds, _ in grant.unknown_sources) or any(
        n.version == version for n in grant.networks
    )


def _yes(result: _Open, where: str, version: int) -> Answer:
    findings = tuple(
        Finding("open", g.path, f"{g.describe()} (line {g.line})")
        for g in result.contributors
    )
    reason = f"{where} is open to all of IPv{version}"
    if len(findings) > 1:
        reason += " (the grants together cover it)"
    return Answer("yes", reason, findings)


def _no(where: str, version: int) -> Answer:
    return Answer("no", f"{where} is not open to all of IPv{version}")


def _unique(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    return tuple(dict.fromkeys(findings))


def truth(config: str, question: str) -> Truth:
    """The case truth for ``sg:open_ipv4:22/tcp`` (or ``open_ipv6``, ``any``).

    The config must hold exactly one security group; ``unsafe`` means the
    port is open to the whole address space.
    """
    domain, _, rest = question.partition(":")
    which, _, cell = rest.partition(":")
    if domain != "sg" or which not in ("open_ipv4", "open_ipv6"):
        raise InvalidArgument(
            f"question={question!r}; ask sg:open_ipv4:22/tcp or sg:open_ipv6:any"
        )
    asked = parse_question(cell)
    groups = security_groups(load_module(config, source="<case>"))
    if len(groups) != 1:
        raise InvalidArgument(
            f"a case holds one security group, this has {len(groups)}"
        )
    result = answer(groups[0], asked, 4 if which == "open_ipv4" else 6)
    if result.value == "undecidable":
        raise Undecidable(result.reason)
    if result.value == "no":
        return Truth("safe")
    return Truth(
        "unsafe", tuple(Violation(which, f.path, f.message) for f in result.findings)
    )
