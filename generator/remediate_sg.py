"""Closing a security group's port to the internet, keeping every named range.

The repair judge (``generator.repair_sg``) lets a fix take away only the
*wide* networks (shorter than /8 for IPv4, /16 for IPv6) of grants that
open the asked port; every narrower range, every other grant, every source
group and ``self`` must stay. So the fix is exactly that, in the asked
address family only (``sg:open_ipv4`` is about IPv4; an IPv6 ``::/0``
beside it is another question):

* in each grant the oracle reads as opening the asked port and protocol,
  the wide CIDRs of the family are removed from its ``cidr_blocks`` /
  ``ipv6_cidr_blocks`` list, element by element where the list is written
  out, or the expression (a variable, a local, ``concat(...)``) is replaced
  by the list of the narrow networks it evaluated to, so a variable other
  grants share is left alone;
* a single-source attribute (``cidr_ipv4`` of a VPC rule) that is wide is
  removed, and a grant left with no source at all (an ``ingress`` block or
  a rule resource) is removed whole.

The grants are found by the line the oracle reports for them. A grant
whose CIDRs come from a ``dynamic`` block's iterator or a ``count`` or
``for_each`` instance is refused: the one text that writes it writes the
other instances too, and the judge would see their ranges go.
"""

from __future__ import annotations

import ipaddress
import logging
import re

from generator.config.terraform import load_module
from generator.errors import RemediationError
from generator.oracle.sg import parse_question
from generator.oracle.sg_rules import security_groups
from generator.records import Case

__all__ = ["remediate_sg"]

logger = logging.getLogger(__name__)

# The judge's line between a named range and "the internet" (repair_sg).
NARROW = {4: 8, 6: 16}
_LISTS = {4: ("cidr_blocks", "cidr_ipv4"), 6: ("ipv6_cidr_blocks", "cidr_ipv6")}
_SOURCES = (
    "cidr_blocks", "ipv6_cidr_blocks", "prefix_list_ids", "security_groups",
    "self", "source_security_group_id", "cidr_ipv4", "cidr_ipv6",
    "referenced_security_group_id", "prefix_list_id",
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def remediate_sg(case: Case) -> str:
    """The fixed Terraform of an sg case (see the module docstring)."""
    which, _, cell = case.question.partition(":")[2].partition(":")
    version = 4 if which == "open_ipv4" else 6
    asked = parse_question(cell)
    if asked.port is None:
        raise RemediationError(f"{case.id}: only a port question has a fix here")
    groups = security_groups(load_module(case.config, source=case.id))
    if len(groups) != 1:
        raise RemediationError(f"{case.id}: {len(groups)} security groups, not one")
    group = groups[0]

    # Lines of the grants to narrow, last first so earlier offsets hold.
    lines: dict[int, list] = {}
    for grant in (group.inline or []) + group.attached:
        opens = any(grant.applies(p, asked.port) for p in asked.protocols)
        wide = [n for n in grant.networks if _wide(n, version)]
        if opens and wide:
            lines.setdefault(grant.line, []).append(grant)
    if not lines:
        raise RemediationError(f"{case.id}: no grant opens the port to a wide range")
    text = case.config
    for line in sorted(lines, reverse=True):
        if len(lines[line]) > 1:
            raise RemediationError(
                f"{case.id}: line {line} writes {len(lines[line])} grants "
                "(count, for_each or dynamic); narrowing one narrows them all"
            )
        text = _narrow(text, line, lines[line][0], version, case.id)
    return text


def _wide(network, version: int) -> bool:
    return network.version == version and network.prefixlen < NARROW[version]


def _narrow(text: str, line: int, grant, version: int, case_id: str) -> str:
    """``text`` with the grant written at ``line`` narrowed."""
    start, end = _block(text, line)
    block = text[start:end]
    if re.search(r"^\s*(?:dynamic|content)\b", block, re.MULTILINE):
        raise RemediationError(f"{case_id}: line {line} is a dynamic block")
    for name in _LISTS[version]:
        found = _attribute(block, name)
        if found is None:
            continue
        a_start, a_end, value = found
        kept = _kept(value, grant, version)
        if kept is None:
            block = block[:a_start] + _line_end(block, a_end)
        else:
            head = block[a_start:a_end].split("=")[0]
            block = f"{block[:a_start]}{head}= {kept}{block[a_end:]}"
    if _has_source(block):
        return text[:start] + block + text[end:]
    if text[start:end].lstrip().startswith("ingress") and block.rstrip().endswith("]"):
        # The attribute form "ingress = [{...}]" with its one grant gone.
        opening = text.index("[", start)
        return text[:opening] + "[]" + text[end:]
    tail = end + (1 if text[end : end + 1] == "\n" else 0)
    if text[tail : tail + 1] == "\n" and (start == 0 or text[start - 2] == "\n"):
        tail += 1  # the blank line after a removed resource goes with it
    return text[:start] + text[tail:]


def _line_end(block: str, a_end: int) -> str:
    """The block after an attribute that is removed with its line."""
    newline = block.find("\n", a_end)
    return block[newline + 1 :] if newline >= 0 else ""


def _kept(value: str, grant, version: int) -> str | None:
    """The attribute's new value text, or None to remove the attribute."""
    literal = value.strip()
    if literal.startswith('"') and _STRING.fullmatch(literal):
        return None  # a single source, and it is wide
    if literal.startswith("[") and literal.endswith("]"):
        inner = literal[1:-1]
        items = _STRING.findall(inner)
        if _STRING.sub("", inner).replace(",", "").strip() == "":
            kept = [item for item in items if not _literal_wide(item, version)]
            return _list(kept) if kept else None
    # An expression: the narrow networks it evaluated to, written out.
    narrow = [f'"{n}"' for n in grant.networks if n.version == version]
    narrow = [n for n in narrow if not _literal_wide(n, version)]
    return _list(narrow) if narrow else None


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _literal_wide(item: str, version: int) -> bool:
    try:
        network = ipaddress.ip_network(item.strip('"'), strict=False)
    except ValueError:
        return False
    return _wide(network, version)


def _has_source(block: str) -> bool:
    for name in _SOURCES:
        found = _attribute(block, name)
        if found is None:
            continue
        value = found[2].strip()
        if value not in ("[]", "false", '""', "null"):
            return True
    return False


def _block(text: str, line: int) -> tuple[int, int]:
    """(start of ``line``, index after the bracket closing the block opened
    there: ``{`` of a block, or ``[`` of the attribute form ``ingress = [``)."""
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    brace, bracket = text.find("{", start), text.find("[", start)
    if 0 <= bracket < brace and "\n" not in text[start:bracket]:
        return start, _closing(text, bracket, "[", "]") + 1
    return start, _closing(text, brace, "{", "}") + 1


def _closing(text: str, opening: int, left: str, right: str) -> int:
    """The index of the bracket closing ``text[opening]``; strings and
    comments are skipped."""
    depth, i = 0, opening
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _STRING.match(text, i).end()
            continue
        if char == "#" or text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                if char != right:
                    raise RemediationError(f"unbalanced {left} at offset {opening}")
                return i
        i += 1
    raise RemediationError(f"no {right} closes the {left} at offset {opening}")


def _attribute(block: str, name: str) -> tuple[int, int, str] | None:
    """(start of its line, end of its value, value text) of ``name = ...``
    directly in ``block``."""
    match = re.search(rf"^[ \t]*{name}[ \t]*=[ \t]*", block, re.MULTILINE)
    if match is None:
        return None
    i = match.end()
    if block[i : i + 1] in ("[", "(", "{"):
        brackets = {"[": "]", "(": ")", "{": "}"}
        end = _closing(block, i, block[i], brackets[block[i]]) + 1
    else:
        # To the end of the line, or of a bracketed call that spans lines.
        newline = block.find("\n", i)
        end = len(block) if newline < 0 else newline
        paren = block.find("(", i, end)
        if paren >= 0:
            end = max(end, _closing(block, paren, "(", ")") + 1)
    return match.start(), end, block[i:end]
