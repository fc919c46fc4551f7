"""Weakenings: settings the output makes weaker than the input had them.

A repair can pass the standard and still give something away: drop a Deny
that kept a bucket private, add ``NET_BIND_SERVICE`` (allowed by restricted),
open a CIDR from ``10.0.0.0/8`` to ``0.0.0.0/0`` on a port nobody asked
about. ``weakenings`` compares the objects read from the input with those of
the output, matched by name (a workload by kind and name, a policy by its
Terraform address or position, a group by address, a NetworkPolicy by
namespace and name; one object on each side is matched whatever its name),
and names each weaker setting by its field path in the output.

What counts, per domain:

* Kubernetes: a host namespace turned on, ``hostUsers: false`` dropped, a
  hostPath volume or a hostPort added, per container (matched by name) and
  at pod level ``privileged`` on, ``allowPrivilegeEscalation`` no longer
  false, ``runAsNonRoot`` no longer true, ``runAsUser: 0``,
  ``readOnlyRootFilesystem`` no longer true, a capability added or no
  longer dropped, seccomp or AppArmor no longer confined, SELinux options
  changed, ``procMount: Unmasked``, a Windows host process, a sysctl
  added; and any Pod Security check that fails now and did not before.
* IAM: a Deny statement gone or covering less; an Allow that no input
  Allow covers (more actions, resources or principals, fewer conditions,
  NotAction/NotResource introduced); coverage is wildcard matching of the
  written patterns.
* Security groups: an ingress grant that no input grant of the group
  covers (a CIDR widened, a port range widened, all protocols, a new rule).
* NetworkPolicies: a policy removed, a direction no longer isolated, the
  pod selector changed, a rule that no input rule covers (peers or ports).

Only domains the input holds are compared, and removals count only when the
output holds objects of that domain: an answer that shows just the fixed pod
has not deleted the NetworkPolicy beside it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from generator.config.iam import Policy, Principal, Statement
from generator.config.k8s import Workload
from generator.config.netpol import IPBlock, NetworkPolicy, Peer, PolicyPort, Rule
from generator.guard_judge import Contents
from generator.oracle.k8s import evaluate
from generator.oracle.k8s_policy import Version
from generator.oracle.sg_rules import Grant, Group

__all__ = ["Weakening", "allow_all_rules", "weakenings"]

# (domain, rule, path, message)
Weakening = tuple[str, str, str, str]

_WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def weakenings(before: Contents, after: Contents, version: Version) -> list[Weakening]:
    """Every setting of ``after`` weaker than in ``before`` (see module doc)."""
    found: list[Weakening] = []
    if before.workloads and after.workloads:
        for (_, old), (prefix, new) in _match(
            before.workloads, after.workloads, lambda w: (w[1].kind, w[1].name)
        ):
            found += _workload(old, new, prefix, version)
    if before.policies and after.policies:
        for (_, old), (name, new) in _match(
            before.policies, after.policies, lambda p: p[0]
        ):
            found += _policy(old, new, name)
    if before.groups and after.groups:
        for old, new in _match(before.groups, after.groups, lambda g: g.address):
            found += _group(old, new)
    if before.netpols and after.netpols:
        found += _netpols(before.netpols, after.netpols)
    return found


def _match(old: list[Any], new: list[Any], key) -> Iterator[tuple[Any, Any]]:
    """Pairs of (before, after) with the same key; one and one always pair."""
    if len(old) == 1 and len(new) == 1:
        yield old[0], new[0]
        return
    by_key = {key(item): item for item in old}
    for item in new:
        if key(item) in by_key:
            yield by_key[key(item)], item


# --- Kubernetes ---------------------------------------------------------------


def _workload(old: Workload, new: Workload, prefix: str, version: Version):
    base = prefix + new.spec_path
    name = f"{new.kind}/{new.name}"
    found: list[Weakening] = []

    def add(path: str, message: str, rule: str = "weakened") -> None:
        found.append(("k8s", rule, path, f"{name}: {message}"))

    before, after = old.spec, new.spec
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if after.get(key) is True and before.get(key) is not True:
            add(f"{base}.{key}", f"{key} turned on (the host's namespace)")
    if before.get("hostUsers") is False and after.get("hostUsers") is not False:
        add(f"{base}.hostUsers", "hostUsers: false dropped (host user namespace)")
    _context(
        _dict(before.get("securityContext")), _dict(after.get("securityContext")),
        f"{base}.securityContext", add,
    )  # fmt: skip

    old_volumes = {_name(v): v for v in _list(before.get("volumes"))}
    for i, volume in enumerate(_list(after.get("volumes"))):
        host = volume.get("hostPath")
        if host is None:
            continue
        was = _dict(old_volumes.get(_name(volume), {})).get("hostPath")
        if was != host:
            path = _dict(host).get("path")
            add(f"{base}.volumes[{i}].hostPath", f"hostPath volume added ({path})")

    for key in _CONTAINER_LISTS:
        old_containers = {_name(c): c for c in _list(before.get(key))}
        for i, container in enumerate(_list(after.get(key))):
            here = f"{base}.{key}[{i}]"
            was = _dict(old_containers.get(_name(container), {}))
            _context(
                _dict(was.get("securityContext")),
                _dict(container.get("securityContext")),
                f"{here}.securityContext", add,
            )  # fmt: skip
            old_ports = {_dict(p).get("hostPort") for p in _list(was.get("ports"))}
            for j, port in enumerate(_list(container.get("ports"))):
                host_port = port.get("hostPort")
                if host_port not in (None, 0) and host_port not in old_ports:
                    add(f"{here}.ports[{j}].hostPort", f"hostPort {host_port} added")

    # Whatever the field rules above miss, the oracle does not: a check that
    # fails now and did not fail on the input is a weakening too.
    failed_before = {f.rule for f in evaluate(old, version).findings}
    named = {path for _, _, path, _ in found}
    for finding in evaluate(new, version).findings:
        path = prefix + finding.path
        if finding.rule not in failed_before and path not in named:
            named.add(path)
            add(path, f"now fails {finding.rule}: {finding.message}", finding.rule)
    return found


def _context(before: dict, after: dict, path: str, add) -> None:
    """The securityContext rules, for a container or the pod."""
    if after.get("privileged") is True and before.get("privileged") is not True:
        add(f"{path}.privileged", "privileged turned on")
    if before.get("allowPrivilegeEscalation") is False:
        value = after.get("allowPrivilegeEscalation", "unset")
        if value is not False:
            add(
                f"{path}.allowPrivilegeEscalation",
                f"allowPrivilegeEscalation was false, now {_show(value)}",
            )
    elif after.get("allowPrivilegeEscalation") is True:
        add(f"{path}.allowPrivilegeEscalation", "allowPrivilegeEscalation set true")
    for key in ("runAsNonRoot", "readOnlyRootFilesystem"):
        if before.get(key) is True and after.get(key) is not True:
            add(
                f"{path}.{key}", f"{key} was true, now {_show(after.get(key, 'unset'))}"
            )
    if after.get("runAsUser") == 0 and before.get("runAsUser") != 0:
        add(f"{path}.runAsUser", "runAsUser set to 0 (root)")
    old_caps, new_caps = (
        _dict(before.get("capabilities")),
        _dict(after.get("capabilities")),
    )
    added = _strings(new_caps.get("add")) - _strings(old_caps.get("add"))
    if added:
        add(
            f"{path}.capabilities.add",
            f"capabilities added: {', '.join(sorted(added))}",
        )
    kept = _strings(old_caps.get("drop")) - _strings(new_caps.get("drop"))
    if kept:
        add(
            f"{path}.capabilities.drop",
            f"capabilities no longer dropped: {', '.join(sorted(kept))}",
        )
    for key in ("seccompProfile", "appArmorProfile"):
        old_type = _dict(before.get(key)).get("type")
        new_type = _dict(after.get(key)).get("type")
        confined = old_type not in (None, "Unconfined")
        if new_type != old_type and (new_type == "Unconfined" or confined):
            if new_type in (None, "Unconfined"):
                add(f"{path}.{key}.type", f"{key} {old_type} -> {_show(new_type)}")
    old_se, new_se = (
        _dict(before.get("seLinuxOptions")),
        _dict(after.get("seLinuxOptions")),
    )
    for key in ("type", "user", "role"):
        if new_se.get(key) not in (None, old_se.get(key)):
            add(
                f"{path}.seLinuxOptions.{key}",
                f"seLinuxOptions.{key} set to {new_se[key]}",
            )
    if after.get("procMount") == "Unmasked" and before.get("procMount") != "Unmasked":
        add(f"{path}.procMount", "procMount set to Unmasked")
    host = _dict(after.get("windowsOptions")).get("hostProcess")
    if (
        host is True
        and _dict(before.get("windowsOptions")).get("hostProcess") is not True
    ):
        add(f"{path}.windowsOptions.hostProcess", "Windows hostProcess turned on")
    old_sysctls = {_name(s) for s in _list(before.get("sysctls"))}
    for i, sysctl in enumerate(_list(after.get("sysctls"))):
        if _name(sysctl) not in old_sysctls:
            add(f"{path}.sysctls[{i}]", f"sysctl {_name(sysctl)} added")


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _name(value: Any) -> str:
    return str(_dict(value).get("name"))


def _strings(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def _show(value: Any) -> str:
    return {True: "true", False: "false", None: "unset"}.get(value, str(value))


# --- IAM ----------------------------------------------------------------------


def _policy(old: Policy, new: Policy, name: str) -> list[Weakening]:
    found: list[Weakening] = []

    def add(path: str, message: str, rule: str) -> None:
        found.append(("iam", rule, f"{name}.{path}", f"{name}: {message}"))

    for deny in (s for s in old.statements if not s.allows):
        if any(_covers(s, deny) for s in new.statements if not s.allows):
            continue
        label = f"Deny {deny.path}" + (f" (Sid {deny.sid})" if deny.sid else "")
        same = [s for s in new.statements if not s.allows and s.sid == deny.sid]
        if same and deny.sid:
            add(same[0].path, f"{label} covers less than in the input", "deny-narrowed")
        else:
            add(deny.path, f"{label} of the input is gone", "deny-removed")

    old_allows = [s for s in old.statements if s.allows]
    for allow in (s for s in new.statements if s.allows):
        if any(_covers(s, allow) for s in old_allows):
            continue
        was = _counterpart(allow, old_allows)
        if was is None:
            add(allow.path, f"Allow added: {_describe(allow)}", "allow-added")
            continue
        for element, message in _wider(was, allow):
            add(f"{allow.path}.{element}", message, "allow-widened")
    return found


def _counterpart(statement: Statement, others: list[Statement]) -> Statement | None:
    for other in others:
        if statement.sid and other.sid == statement.sid:
            return other
    same_index = [o for o in others if o.index == statement.index]
    return same_index[0] if same_index else None


def _covers(outer: Statement, inner: Statement) -> bool:
    """Whether ``outer`` applies to every request ``inner`` applies to."""
    return (
        _elements(
            outer.actions, outer.not_actions, inner.actions, inner.not_actions, True
        )
        and _elements(
            outer.resources, outer.not_resources, inner.resources, inner.not_resources,
            False,
        )
        and _principals(outer.principal, inner.principal)
        and outer.not_principal == inner.not_principal
        and set(outer.conditions) <= set(inner.conditions)
    )  # fmt: skip


def _elements(outer, outer_not, inner, inner_not, fold: bool) -> bool:
    """Whether an Action/NotAction (or Resource) pair covers another one."""
    if outer is None and outer_not is None:
        return True  # not written: every resource (trust policies)
    if inner is None and inner_not is None:
        return outer is not None and "*" in outer
    if outer is not None and inner is not None:
        return all(any(_glob(o, fold).fullmatch(i) for o in outer) for i in inner)
    if outer is not None:
        return "*" in outer  # inner is "all but a few"
    if inner is not None:
        # Outer is "all but N": inner must stay clear of N, both ways round
        # since either side may hold wildcards.
        return not any(
            _glob(n, fold).fullmatch(i) or _glob(i, fold).fullmatch(n)
            for n in outer_not
            for i in inner
        )
    # All but N covers all but M when every exclusion of N is one of M.
    return all(any(_glob(m, fold).fullmatch(n) for m in inner_not) for n in outer_not)


def _principals(outer: Principal | None, inner: Principal | None) -> bool:
    if outer is None or inner is None:
        return outer is None and inner is None
    if ("*", "*") in outer.entries or ("AWS", "*") in outer.entries:
        return True
    return set(inner.entries) <= set(outer.entries)


@lru_cache(maxsize=4096)
def _glob(pattern: str, fold: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.compile(body, re.IGNORECASE if fold else 0)


def _wider(old: Statement, new: Statement) -> list[tuple[str, str]]:
    out = []
    if not _elements(old.actions, old.not_actions, new.actions, new.not_actions, True):
        out.append(
            (
                "Action",
                f"actions widened to {_list_text(new.actions, new.not_actions)} "
                f"(was {_list_text(old.actions, old.not_actions)})",
            )
        )
    if not _elements(
        old.resources, old.not_resources, new.resources, new.not_resources, False
    ):
        out.append(
            (
                "Resource",
                f"resources widened to {_list_text(new.resources, new.not_resources)} "
                f"(was {_list_text(old.resources, old.not_resources)})",
            )
        )
    if (
        not _principals(old.principal, new.principal)
        or old.not_principal != new.not_principal
    ):
        out.append(
            (
                "Principal",
                f"principal widened to {_principal_text(new)} "
                f"(was {_principal_text(old)})",
            )
        )
    lost = set(old.conditions) - set(new.conditions)
    if lost:
        keys = ", ".join(sorted(f"{c.operator} {c.key}" for c in lost))
        out.append(("Condition", f"conditions removed: {keys}"))
    return out or [("", "applies to more requests than the input's statement")]


def _list_text(values, not_values) -> str:
    if not_values is not None:
        return "NotAction/NotResource " + ", ".join(not_values)
    return ", ".join(values or ()) or "(none)"


def _principal_text(statement: Statement) -> str:
    principal = statement.principal or statement.not_principal
    if principal is None:
        return "(none)"
    prefix = "NotPrincipal " if statement.not_principal else ""
    return prefix + ", ".join(f"{k}:{v}" for k, v in principal.entries)


def _describe(statement: Statement) -> str:
    text = _list_text(statement.actions, statement.not_actions)
    where = _list_text(statement.resources, statement.not_resources)
    return f"{text} on {where}"


# --- security groups ----------------------------------------------------------


def _grants(group: Group) -> list[Grant]:
    return [*(group.inline or ()), *group.attached, *group.maybe]


def _group(old: Group, new: Group) -> list[Weakening]:
    found: list[Weakening] = []
    before = _grants(old)
    for grant in _grants(new):
        if any(_grant_covers(b, grant) for b in before):
            continue
        same = [b for b in before if b.path == grant.path]
        if not same:
            message = f"ingress rule added: {grant.describe()}"
            found.append(("sg", "rule-added", grant.path, f"{new.address}: {message}"))
            continue
        was = same[0]
        if not _networks_cover(was, grant):
            found.append(
                (
                    "sg",
                    "cidr-widened",
                    grant.path,
                    f"{new.address}: sources widened: {grant.describe()} "
                    f"(was {was.describe()})",
                )
            )
        else:
            found.append(
                (
                    "sg",
                    "ports-widened",
                    grant.path,
                    f"{new.address}: ports or protocol widened: "
                    f"{grant.describe()} (was {was.describe()})",
                )
            )
    return found


def _grant_covers(outer: Grant, inner: Grant) -> bool:
    if outer.invalid or inner.invalid or outer.protocol is None:
        return outer == inner
    if outer.protocol != "all":
        if inner.protocol != outer.protocol:
            return False
        if outer.ports is not None:
            if inner.ports is None:
                return False
            if not (
                outer.ports[0] <= inner.ports[0] and inner.ports[1] <= outer.ports[1]
            ):
                return False
    return _networks_cover(outer, inner)


def _networks_cover(outer: Grant, inner: Grant) -> bool:
    if not set(inner.unknown_sources) <= set(outer.unknown_sources):
        return False
    return all(
        any(n.version == o.version and n.subnet_of(o) for o in outer.networks)
        for n in inner.networks
    )


# --- NetworkPolicies ----------------------------------------------------------


def allow_all_rules(policy: NetworkPolicy) -> list[tuple[str, str]]:
    """(path, message) for each rule that admits all traffic of its direction."""
    found = []
    base = f"{policy.path}." if policy.path else ""
    for direction, rules in (("Ingress", policy.ingress), ("Egress", policy.egress)):
        if direction not in policy.policy_types:
            continue
        side = "source" if direction == "Ingress" else "destination"
        for i, rule in enumerate(rules):
            world = any(
                p.ip_block is not None
                and not p.ip_block.excepts
                and p.ip_block.cidr in _WORLD
                for p in rule.peers
            )
            if (not rule.peers or world) and not rule.ports:
                found.append((
                    f"{base}spec.{direction.lower()}[{i}]",
                    f"NetworkPolicy {policy.key}: {direction.lower()} rule {i} "
                    f"admits every {side} on every port",
                ))  # fmt: skip
    return found


def _netpols(old: list[NetworkPolicy], new: list[NetworkPolicy]) -> list[Weakening]:
    found: list[Weakening] = []
    after = {p.key: p for p in new}
    pairs = list(_match(old, new, lambda p: p.key))
    paired = {id(o) for o, _ in pairs}
    for policy in old:
        if id(policy) not in paired and policy.key not in after:
            found.append(("netpol", "policy-removed", f"NetworkPolicy/{policy.key}",
                          f"NetworkPolicy {policy.key} of the input is gone; its pods "
                          "lose that isolation"))  # fmt: skip
    for was, now in pairs:
        base = f"{now.path}." if now.path else ""
        where = f"NetworkPolicy {now.key}"
        for direction in sorted(was.policy_types - now.policy_types):
            found.append(("netpol", "isolation-dropped", f"{base}spec.policyTypes",
                          f"{where}: no longer isolates {direction.lower()}"))  # fmt: skip
        if was.pod_selector != now.pod_selector:
            found.append(("netpol", "selector-changed", f"{base}spec.podSelector",
                          f"{where}: podSelector changed; other pods are isolated"))  # fmt: skip
        for direction, rules, old_rules in (
            ("ingress", now.ingress, was.ingress),
            ("egress", now.egress, was.egress),
        ):
            for i, rule in enumerate(rules):
                if not any(_rule_covers(o, rule) for o in old_rules):
                    found.append(("netpol", "rule-widened", f"{base}spec.{direction}[{i}]",
                                  f"{where}: {direction} rule {i} admits traffic no "
                                  "rule of the input admitted"))  # fmt: skip
    return found


def _rule_covers(outer: Rule, inner: Rule) -> bool:
    peers = not outer.peers or (
        bool(inner.peers)
        and all(any(_peer_covers(o, p) for o in outer.peers) for p in inner.peers)
    )
    ports = not outer.ports or (
        bool(inner.ports)
        and all(any(_port_covers(o, p) for o in outer.ports) for p in inner.ports)
    )
    return peers and ports


def _peer_covers(outer: Peer, inner: Peer) -> bool:
    if outer == inner:
        return True
    if outer.ip_block is None or inner.ip_block is None:
        return False
    return _block_covers(outer.ip_block, inner.ip_block)


def _block_covers(outer: IPBlock, inner: IPBlock) -> bool:
    if inner.cidr.version != outer.cidr.version or not inner.cidr.subnet_of(outer.cidr):
        return False
    # Every hole of the outer block that reaches into the inner one must be
    # a hole of the inner block too.
    return all(
        not hole.overlaps(inner.cidr)
        or any(hole.version == h.version and hole.subnet_of(h) for h in inner.excepts)
        for hole in outer.excepts
    )


def _port_covers(outer: PolicyPort, inner: PolicyPort) -> bool:
    if outer.protocol != inner.protocol:
        return False
    if outer.port is None:
        return True
    if isinstance(outer.port, str) or isinstance(inner.port, str) or inner.port is None:
        return outer.port == inner.port
    low, high = outer.port, outer.end_port or outer.port
    return low <= inner.port and (inner.end_port or inner.port) <= high
