"""Security groups and their ingress grants, read from a Terraform module.

Three ways to write an ingress rule (research/sg-terraform.md §2.3):

* ``aws_security_group`` inline ``ingress { ... }`` blocks (and ``dynamic
  "ingress"``, and the attribute form ``ingress = [{...}]``);
* ``aws_security_group_rule`` with ``type = "ingress"``;
* ``aws_vpc_security_group_ingress_rule`` (``ip_protocol``, one source).

Each becomes a ``Grant``: a protocol, a port range and the CIDRs it opens,
plus the reasons more sources *may* be open (a prefix list, an unresolved
CIDR list) and the reason its protocol or ports are unknown or invalid.
Sources that are never "the internet" (another security group, ``self``)
are left out. Values come from ``terraform_eval`` (variable defaults,
locals, conditionals, ``concat``, ``flatten``, ``cidrsubnet``, dynamic
blocks with a known ``for_each``, ``count``/``for_each`` instances);
whatever it cannot resolve stays a reason, never a guess.

Protocol and ports, as the provider and AWS read them (§2.2):

* ``-1`` / ``all``: every protocol and port. A separate rule ignores its
  ports (``-1`` with 8080..8080 opens everything); an inline block with
  ports other than 0/0 fails at apply and a VPC rule takes no ports at all:
  both are reported as invalid, which makes the verdict undecidable.
* ``tcp``/``6``, ``udp``/``17``: the inclusive range from_port..to_port, so
  tcp 0..0 is port 0 only; ports may be strings (``"22"``) or integral
  floats (``22.0``).
* ``icmp``/``1``, ``icmpv6``/``58``: type and code, never a TCP/UDP port.
* another protocol number: all traffic of that protocol, no ports.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from generator.config.terraform import (
    Module,
    Resolved,
    Resource,
    Unresolved,
    policy_evaluator,
    resource_instances,
)

__all__ = ["GROUP_TYPE", "RULE_TYPES", "Grant", "Group", "security_groups"]

logger = logging.getLogger(__name__)

GROUP_TYPE = "aws_security_group"
RULE_TYPES = ("aws_security_group_rule", "aws_vpc_security_group_ingress_rule")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAMES = {
    "-1": "all",
    "all": "all",
    "6": "tcp",
    "17": "udp",
    "1": "icmp",
    "58": "icmpv6",
}
_NAMES.update({n: n for n in ("tcp", "udp", "icmp", "icmpv6")})
_TARGET = re.compile(
    r"^aws_security_group\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)(?P<index>\[[^\]]*\])?\.id$"
)


@dataclass(frozen=True)
class Grant:
    """One rule as the internet question needs it.

    ``protocol`` is all/tcp/udp/icmp/icmpv6 or a protocol number, None when
    unknown; ``ports`` the inclusive range for tcp/udp, else None.
    ``invalid`` says why it is unknown whether the grant applies at all;
    ``unknown_sources`` why it may open more addresses than ``networks``,
    each with the IP version it may add (0: either, a prefix list).
    """

    path: str
    line: int
    protocol: str | None
    ports: tuple[int, int] | None
    networks: tuple[IPNetwork, ...] = ()
    unknown_sources: tuple[tuple[int, str], ...] = ()
    invalid: str = ""

    def applies(self, protocol: str, port: int) -> bool | None:
        """Whether this grant lets ``protocol``/``port`` in; None if unknown."""
        if self.invalid or self.protocol is None:
            return None
        if self.protocol == "all":
            return True
        if self.protocol != protocol or self.ports is None:
            return False
        return self.ports[0] <= port <= self.ports[1]

    def describe(self) -> str:
        what = self.protocol or "?"
        if self.ports is not None:
            low, high = self.ports
            what += f" {low}" if low == high else f" {low}-{high}"
        elif self.protocol == "all":
            what = "all traffic"
        nets = ", ".join(map(str, self.networks)) or "no CIDR"
        return f"{what} from {nets}"


@dataclass
class Group:
    """One security group instance and the grants that reach it.

    ``inline`` is None when the group leaves ingress to separate rules;
    ``attached`` holds separate rules that surely target it, ``maybe`` those
    that might (an index the file does not pin down), ``problems`` what makes
    its rule set unknown (an unexpandable dynamic block, unknown count).
    """

    address: str
    resource: str
    line: int
    inline: list[Grant] | None = None
    attached: list[Grant] = field(default_factory=list)
    maybe: list[Grant] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    external: bool = False


def security_groups(module: Module) -> list[Group]:
    """Every security group instance of ``module`` with its ingress grants,
    in file order, then groups only referenced (defined elsewhere)."""
    evaluator = policy_evaluator(module)
    groups: dict[str, Group] = {}
    by_resource: dict[str, list[Group]] = {}
    for resource in module.resources.values():
        if resource.type != GROUP_TYPE:
            continue
        found = _group_instances(evaluator, resource)
        by_resource[resource.address] = found
        for group in found:
            groups[group.address] = group
    external: dict[str, Group] = {}
    for resource in module.resources.values():
        if resource.type in RULE_TYPES:
            _attach(evaluator, resource, by_resource, external)
    ordered = sorted(groups.values(), key=lambda g: g.line)
    return ordered + sorted(external.values(), key=lambda g: g.line)


# Groups ----------------------------------------------------------------------


def _group_instances(evaluator, resource: Resource) -> list[Group]:
    instances = resource_instances(evaluator, resource)
    if isinstance(instances, Unresolved):
        group = Group(resource.address, resource.address, resource.line)
        group.problems.append(
            f"{resource.address}: how many groups exist is unknown "
            f"({instances.reason}: {instances.expression})"
        )
        return [group]
    groups = []
    for suffix, scope in instances:
        address = resource.address + suffix
        group = Group(address, resource.address, resource.line)
        resolved = evaluator.resolve(resource.body, scope)
        group.inline = _inline(address, resource, resolved, group.problems)
        groups.append(group)
    return groups


def _inline(
    address: str, resource: Resource, resolved: Resolved, problems: list[str]
) -> list[Grant] | None:
    written = resource.body.attributes.get("ingress")
    if written is not None:
        # Attribute form: ingress = [{...}] (ingress = [] manages "no rules").
        value = resolved.attributes["ingress"]
        if isinstance(value, Unresolved):
            problems.append(f"{address}.ingress: {value.reason} ({value.expression})")
            return []
        if not isinstance(value, list):
            problems.append(f"{address}.ingress: must be a list of rule objects")
            return []
        grants = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                problems.append(f"{address}.ingress[{i}]: must be an object")
                continue
            grants.append(
                _grant(f"{address}.ingress[{i}]", written.line, item, "inline")
            )
        return grants
    blocks = [
        b
        for b in resource.body.blocks
        if b.type == "ingress" or (b.type == "dynamic" and b.labels == ("ingress",))
    ]
    if not blocks:
        return None  # ingress not managed here: separate rules stand
    grants = []
    for i, block in enumerate(resolved.nested("ingress")):
        path = f"{address}.ingress[{i}]"
        if isinstance(block, Unresolved):
            problems.append(f"{path}: {block.reason} ({block.expression})")
        else:
            grants.append(_grant(path, block.line, block.attributes, "inline"))
    return grants


# Separate rules --------------------------------------------------------------


def _attach(evaluator, resource: Resource, groups: dict[str, list[Group]], external):
    target = resource.body.attributes.get("security_group_id")
    text = "".join(target.expression.text.split()) if target else ""
    instances = resource_instances(evaluator, resource)
    if isinstance(instances, Unresolved):
        reason = f"how many rules exist is unknown ({instances.reason})"
        # Unknown copies of an unknown rule: any source, any port.
        why = f"{resource.address}: {reason}"
        unknown = ((0, why),)
        rules = [Grant(resource.address, resource.line, None, None, (), unknown, why)]
    else:
        rules = []
        for suffix, scope in instances:
            resolved = evaluator.resolve(resource.body, scope)
            rules.append(_rule(resource, suffix, resolved))
    rules = [r for r in rules if r is not None]  # egress rules drop out
    if not rules:
        return
    match = _TARGET.match(text)
    candidates = groups.get(f"{GROUP_TYPE}.{match['name']}") if match else None
    if not candidates:
        # A group this configuration does not define (var, data, module).
        shown = text or "(no security_group_id)"
        group = external.setdefault(
            shown, Group(shown, resource.address, resource.line, external=True)
        )
        group.attached.extend(rules)
        return
    index = match["index"] or ""
    exact = [g for g in candidates if g.address == f"{g.resource}{_index(index)}"]
    if len(exact) == 1 and isinstance(instances, list) and not _uses_iteration(index):
        exact[0].attached.extend(rules)
    else:
        for group in candidates:
            group.maybe.extend(rules)


def _index(index: str) -> str:
    # [0] and ["k"] as resource_instances writes instance suffixes.
    inner = index[1:-1] if index else ""
    if not inner:
        return ""
    try:
        return f"[{json.dumps(json.loads(inner))}]"
    except ValueError:
        return index


def _uses_iteration(index: str) -> bool:
    return any(word in index for word in ("count.", "each.", "var.", "local."))


def _rule(resource: Resource, suffix: str, resolved: Resolved) -> Grant | None:
    path = resource.address + suffix
    attributes = resolved.attributes
    if resource.type == "aws_vpc_security_group_ingress_rule":
        return _grant(path, resource.line, attributes, "vpc")
    kind = attributes.get("type")
    if isinstance(kind, Unresolved):
        why = f"type is unknown ({kind.reason}); it may be an ingress rule"
        grant = _grant(path, resource.line, attributes, "rule")
        return Grant(path, resource.line, None, None, grant.networks,
                     grant.unknown_sources, why)  # fmt: skip
    if kind != "ingress":
        return None
    return _grant(path, resource.line, attributes, "rule")


# One grant -------------------------------------------------------------------


def _grant(path: str, line: int, attributes: dict[str, Any], style: str) -> Grant:
    networks: list[IPNetwork] = []
    unknown: list[str] = []
    problems: list[str] = []
    if style == "vpc":
        single = (("cidr_ipv4", 4), ("cidr_ipv6", 6))
        for name, version in single:
            value = attributes.get(name)
            if value is not None:
                listed = [value] if isinstance(value, str) else value
                _cidrs(path, name, listed, version, networks, unknown, problems)
        lists = (("prefix_list_id", None),)
    else:
        for name, version in (("cidr_blocks", 4), ("ipv6_cidr_blocks", 6)):
            value = attributes.get(name)
            if value is not None:
                _cidrs(path, name, value, version, networks, unknown, problems)
        lists = (("prefix_list_ids", None),)
    for name, _ in lists:
        value = attributes.get(name)
        if isinstance(value, Unresolved):
            unknown.append((0, f"{path}.{name} is unknown ({value.reason})"))
        elif value:
            shown = value if isinstance(value, str) else ", ".join(map(str, value))
            unknown.append(
                (0, f"{path}.{name}: prefix list {shown} is not defined by its "
                 "CIDRs in this file")
            )  # fmt: skip
    protocol, ports, why = _protocol_ports(attributes, style)
    if why:
        problems.append(why)
    return Grant(
        path, line, protocol, ports, tuple(networks), tuple(unknown),
        f"{path}: {'; '.join(problems)}" if problems else "",
    )  # fmt: skip


def _cidrs(path, name, value, version, networks, unknown, problems) -> None:
    if isinstance(value, Unresolved):
        why = f"{path}.{name} is unknown ({value.reason}: {value.expression})"
        unknown.append((version, why))
        return
    if not isinstance(value, list):
        problems.append(f"{name} must be a list of CIDRs")
        return
    for item in value:
        if isinstance(item, Unresolved):
            why = f"{path}.{name} has an unknown entry ({item.reason})"
            unknown.append((version, why))
            continue
        try:
            # strict: the provider refuses host bits ("1.2.3.4/0").
            network = ipaddress.ip_network(str(item), strict=True)
        except ValueError as exc:
            # The provider refuses it: there is no deployed state to judge.
            why = f"{path}.{name}: {item!r} is not a valid network ({exc})"
            unknown.append((version, why))
            problems.append(why)
            continue
        if network.version != version:
            why = f"{path}.{name}: {item!r} is not IPv{version}"
            unknown.append((version, why))
            problems.append(why)
            continue
        networks.append(network)


def _protocol_ports(attributes, style) -> tuple[str | None, tuple | None, str]:
    key = "ip_protocol" if style == "vpc" else "protocol"
    raw = attributes.get(key)
    if raw is None:
        return None, None, f"{key} is missing"
    if isinstance(raw, Unresolved):
        return None, None, f"{key} is unknown ({raw.reason})"
    protocol = _protocol(raw)
    if protocol is None:
        return None, None, f"{key} {raw!r} is not a protocol AWS knows by that name"
    low, high = attributes.get("from_port"), attributes.get("to_port")
    if protocol == "all":
        if style == "vpc" and (low is not None or high is not None):
            return "all", None, f"{key} -1 takes no from_port/to_port"
        if style == "inline":
            if any(isinstance(v, Unresolved) for v in (low, high)):
                return "all", None, "ports of an inline -1 rule are unknown"
            if _port(low) != 0 or _port(high) != 0:
                return "all", None, f"{key} -1 needs from_port = to_port = 0 inline"
        return "all", None, ""
    if protocol not in ("tcp", "udp"):
        return protocol, None, ""  # ICMP type/code, or a protocol without ports
    for name, value in (("from_port", low), ("to_port", high)):
        if isinstance(value, Unresolved):
            return protocol, None, f"{name} is unknown ({value.reason})"
        if _port(value) is None:
            return protocol, None, f"{name} {value!r} is not a port 0..65535"
    if _port(low) > _port(high):
        return protocol, None, f"from_port {low} is above to_port {high}"
    return protocol, (_port(low), _port(high)), ""


def _protocol(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value == int(value):
        value = str(int(value))
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in _NAMES:
        return _NAMES[text]
    if text.isdigit() and 0 <= int(text) <= 255:
        return str(int(text))
    return None


def _port(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and value == int(value) and 0 <= value <= 65535:
        return int(value)
    return None
