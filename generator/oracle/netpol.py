"""The NetworkPolicy oracle: can this endpoint reach that one on PORT/PROTO?

Ground truth for every netpol case, by the algorithm of research/netpol.md
§1 (the shape of cyclonus' engine, without its NotIn bug):

    allowed = egress_ok(src) AND ingress_ok(dst)
    X_ok(pod) = no policy in pod's namespace selects it for direction X,
                or some rule of some selecting policy matches the traffic
    rule matches = its ports match AND its peers match (empty list = all)

A peer matches a pod through its selectors (an absent namespaceSelector is
the policy's own namespace; ``{}`` is every namespace) and an external IP
through its ipBlock (``cidr`` minus ``except``). A numbered port entry
matches that destination port (``endPort``: the inclusive range), a named
one matches when the *destination pod* declares a container port with that
name, that protocol and the asked number; a named port never matches an
external destination.

Three-valued: every match is True, False or None ("unknown"), and an answer
that hangs on an unknown is ``undecidable`` with the reason, never guessed.
Unknowns come from:

* an ipBlock against a *pod* endpoint whose IP is inside the block or not
  given: whether ipBlock matches pod IPs is implementation-defined (Cilium
  no, iptables CNIs yes; §2.5). A pod IP outside the block is a sure miss.
* a namespace that no Namespace object declares, when a namespaceSelector
  needs a label other than ``kubernetes.io/metadata.name``.

Out of the model, answered ``undecidable`` (the spec promises nothing,
§2.9): a ``hostNetwork`` pod at either end, and a pod talking to itself.
Ingress from the pod's own node (kubelet probes) is not a question here.
Where the spec and some CNIs disagree (rules of a direction missing from a
written ``policyTypes``: ignored by the spec) the spec is followed and the
finding says so.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from generator.config.netpol import (
    DEFAULT_NAMESPACE,
    PROTOCOLS,
    Cluster,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
)
from generator.errors import InvalidArgument, Undecidable
from generator.records import Truth, Violation

__all__ = [
    "Answer",
    "Endpoint",
    "Finding",
    "Traffic",
    "answer",
    "isolation",
    "load",
    "parse_question",
    "truth",
    "truth_table",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Endpoint:
    """A pod of the cluster model, or an address outside it."""

    pod: Pod | None = None
    ip: IPAddress | None = None

    def __str__(self) -> str:
        return self.pod.key if self.pod is not None else str(self.ip)


@dataclass(frozen=True)
class Traffic:
    """A connection attempt: source, destination, protocol, destination port."""

    src: Endpoint
    dst: Endpoint
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} {self.port}/{self.protocol}"


@dataclass(frozen=True)
class Finding:
    """One step of the explanation: which policy, rule or fact decided."""

    rule: str  # allowed-by | isolated | not-isolated | unknown | out-of-model
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class Answer:
    """``yes``, ``no`` or ``undecidable``, with the reason and the findings."""

    value: str
    reason: str
    findings: tuple[Finding, ...] = ()


# Questions -------------------------------------------------------------------

_QUESTION_KEYS = ("from", "to", "port", "expect")


def parse_question(text: str, cluster: Cluster) -> tuple[Traffic, str | None]:
    """``from=ns/pod,to=ns/pod,port=80/tcp[,expect=yes|no]`` as Traffic.

    An end is ``ns/pod``, ``pod`` (namespace ``default``) or an IP address;
    the port is ``N``, ``N/proto`` or ``name/proto`` (a named port is looked
    up on the destination pod). The protocol defaults to TCP, as in policies.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _QUESTION_KEYS or key in fields:
            raise InvalidArgument(
                f"question {text!r}: {part!r} is not one of "
                f"{', '.join(k + '=' for k in _QUESTION_KEYS)} (each once)"
            )
        fields[key] = value.strip()
    missing = [k for k in ("from", "to", "port") if k not in fields]
    if missing:
        raise InvalidArgument(f"question {text!r}: give {', '.join(missing)}=")
    expect = fields.get("expect")
    if expect not in (None, "yes", "no"):
        raise InvalidArgument(f"question {text!r}: expect= takes yes or no")
    src = _endpoint(fields["from"], cluster, text)
    dst = _endpoint(fields["to"], cluster, text)
    if src.pod is None and dst.pod is None:
        raise InvalidArgument(f"question {text!r}: one end must be a pod")
    protocol, port = _port(fields["port"], dst, text)
    return Traffic(src, dst, protocol, port), expect


def _endpoint(text: str, cluster: Cluster, question: str) -> Endpoint:
    try:
        return Endpoint(ip=ipaddress.ip_address(text))
    except ValueError:
        pass
    namespace, _, name = text.rpartition("/")
    key = f"{namespace or DEFAULT_NAMESPACE}/{name}"
    pod = cluster.pods.get(key)
    if pod is None:
        known = ", ".join(sorted(cluster.pods)[:8]) or "none"
        raise InvalidArgument(
            f"question {question!r}: no pod {key} in the cluster model "
            f"(pods: {known}); add its Pod or Deployment, or give an IP"
        )
    return Endpoint(pod=pod)


_PORT = re.compile(r"^(?P<port>[0-9]+|[a-z0-9-]+)(?:/(?P<proto>[A-Za-z]+))?$")


def _port(text: str, dst: Endpoint, question: str) -> tuple[str, int]:
    match = _PORT.match(text)
    protocol = ((match and match["proto"]) or "TCP").upper()
    if match is None or protocol not in PROTOCOLS:
        raise InvalidArgument(
            f"question {question!r}: port={text!r}; write 80, 80/tcp, 53/udp, "
            "http/tcp (TCP, UDP or SCTP)"
        )
    port = match["port"]
    if port.isdigit():
        number = int(port)
        if not 1 <= number <= 65535:
            raise InvalidArgument(f"question {question!r}: port {number} not 1..65535")
        return protocol, number
    # A named port: the number the destination pod declares for it.
    numbers = sorted(
        {
            p.number
            for p in (dst.pod.ports if dst.pod else ())
            if p.name == port and p.protocol == protocol
        }
    )
    if len(numbers) != 1:
        raise InvalidArgument(
            f"question {question!r}: {dst} declares no single {protocol} port "
            f"named {port!r}; ask by number"
        )
    return protocol, numbers[0]


# The verdict -----------------------------------------------------------------


def answer(
    policies: Iterable[NetworkPolicy], cluster: Cluster, traffic: Traffic
) -> Answer:
    """The exact verdict on ``traffic``, or ``undecidable`` with the reason."""
    policies = list(policies)
    for end in (traffic.src, traffic.dst):
        if end.pod is not None and end.pod.host_network:
            return _out_of_model(
                end, "hostNetwork pods are outside NetworkPolicy's guarantees"
            )
    if traffic.src.pod is not None and traffic.src.pod == traffic.dst.pod:
        return _out_of_model(
            traffic.src, "a pod reaching itself is not covered by the spec"
        )
    egress = _direction(policies, cluster, traffic, "Egress")
    ingress = _direction(policies, cluster, traffic, "Ingress")
    findings = egress.findings + ingress.findings
    if egress.result is False or ingress.result is False:
        side = (
            "egress of the source"
            if egress.result is False
            else "ingress of the destination"
        )
        return Answer("no", f"{side} does not allow it", findings)
    if egress.result is None or ingress.result is None:
        unknown = [f.message for f in findings if f.rule == "unknown"]
        return Answer("undecidable", "; ".join(dict.fromkeys(unknown)), findings)
    return Answer("yes", "both egress and ingress allow it", findings)


def isolation(
    policies: Iterable[NetworkPolicy], pod: Pod
) -> dict[str, list[NetworkPolicy]]:
    """The policies that select ``pod``, per direction (Ingress, Egress)."""
    found: dict[str, list[NetworkPolicy]] = {"Ingress": [], "Egress": []}
    for policy in policies:
        if policy.namespace != pod.namespace:
            continue  # gotcha 16: only the pod's own namespace isolates it
        if not policy.pod_selector.matches(pod.labels):
            continue
        for direction in ("Ingress", "Egress"):
            if direction in policy.policy_types:
                found[direction].append(policy)
    return found


def truth_table(
    policies: Iterable[NetworkPolicy],
    cluster: Cluster,
    ports: Iterable[tuple[int, str]],
) -> dict[tuple[str, str, int, str], str]:
    """Every (src pod, dst pod, port, protocol) cell: yes, no or undecidable."""
    policies = list(policies)
    ports = list(ports)
    table = {}
    for src in cluster.pods.values():
        for dst in cluster.pods.values():
            for port, protocol in ports:
                traffic = Traffic(Endpoint(pod=src), Endpoint(pod=dst), protocol, port)
                cell = (src.key, dst.key, port, protocol)
                table[cell] = answer(policies, cluster, traffic).value
    return table


@dataclass(frozen=True)
class _Side:
    result: bool | None
    findings: tuple[Finding, ...]


def _direction(
    policies: list[NetworkPolicy], cluster: Cluster, traffic: Traffic, direction: str
) -> _Side:
    # The isolated end is the source for egress, the destination for ingress.
    pod = traffic.src.pod if direction == "Egress" else traffic.dst.pod
    other = traffic.dst if direction == "Egress" else traffic.src
    word = direction.lower()
    if pod is None:
        return _Side(True, ())  # an external end is never isolated
    selecting = isolation(policies, pod)[direction]
    if not selecting:
        return _Side(
            True,
            (
                Finding(
                    "not-isolated", pod.key, f"no policy selects {pod.key} for {word}"
                ),
            ),
        )
    findings = [
        Finding(
            "isolated",
            _path(p),
            f"{p.key} selects {pod.key} for {word}",
        )
        for p in selecting
    ]
    unknown = False
    for policy in selecting:
        rules = policy.egress if direction == "Egress" else policy.ingress
        for i, rule in enumerate(rules):
            where = f"{_path(policy)}.spec.{word}[{i}]"
            result, why = _rule_matches(rule, policy, cluster, traffic, other)
            if result:
                findings.append(
                    Finding("allowed-by", where, f"{word} rule allows {traffic}")
                )
                return _Side(True, tuple(findings))
            if result is None:
                unknown = True
                findings.append(Finding("unknown", where, why))
    for policy in selecting:
        ignored = policy.ingress if direction == "Egress" else policy.egress
        if (
            policy.types_written
            and ignored
            and _other(direction) not in policy.policy_types
        ):
            findings.append(
                Finding(
                    "implementation-divergent",
                    _path(policy),
                    f"{policy.key} has {_other(direction).lower()} rules outside its "
                    "policyTypes: ignored by the spec, enforced by some CNIs",
                )
            )
    if unknown:
        return _Side(None, tuple(findings))
    findings.append(
        Finding(
            "denied", pod.key, f"no {word} rule of a selecting policy allows {traffic}"
        )
    )
    return _Side(False, tuple(findings))


def _other(direction: str) -> str:
    return "Ingress" if direction == "Egress" else "Egress"


def _path(policy: NetworkPolicy) -> str:
    base = f"{policy.source}[{policy.index}]"
    return f"{base}.{policy.path}" if policy.path else base


def _rule_matches(
    rule: Rule,
    policy: NetworkPolicy,
    cluster: Cluster,
    traffic: Traffic,
    other: Endpoint,
) -> tuple[bool | None, str]:
    if not _ports_match(rule.ports, traffic):
        return False, ""
    if not rule.peers:
        return True, ""  # from/to missing or []: every source (gotcha 2)
    reasons = []
    for peer in rule.peers:
        result, why = _peer_matches(peer, policy, cluster, other)
        if result:
            return True, ""
        if result is None:
            reasons.append(why)
    if reasons:
        return None, "; ".join(reasons)
    return False, ""


def _ports_match(ports: tuple[PolicyPort, ...], traffic: Traffic) -> bool:
    if not ports:
        return True  # no ports: every port and protocol
    return any(_port_matches(p, traffic) for p in ports)


def _port_matches(entry: PolicyPort, traffic: Traffic) -> bool:
    if entry.protocol != traffic.protocol:
        return False  # protocol defaults to TCP (gotcha 8, 9)
    if entry.port is None:
        return True
    if isinstance(entry.port, int):
        last = entry.end_port if entry.end_port is not None else entry.port
        return entry.port <= traffic.port <= last
    # Named: resolved on the destination pod, name and protocol (gotcha 10).
    dst = traffic.dst.pod
    if dst is None:
        return False
    return any(
        p.name == entry.port
        and p.protocol == entry.protocol
        and p.number == traffic.port
        for p in dst.ports
    )


def _peer_matches(
    peer: Peer, policy: NetworkPolicy, cluster: Cluster, other: Endpoint
) -> tuple[bool | None, str]:
    if peer.ip_block is not None:
        block = peer.ip_block
        if other.pod is None:
            return block.contains(other.ip), ""
        if other.pod.ip is not None and not block.contains(other.pod.ip):
            return False, ""
        shown = f"ipBlock {block.cidr}" + (
            f" except {', '.join(map(str, block.excepts))}" if block.excepts else ""
        )
        if other.pod.ip is None:
            why = f"{other.pod.key} has no IP in the model and {shown} may cover it"
        else:
            why = f"{shown} covers the IP of {other.pod.key}"
        return None, f"{why}; whether ipBlock matches pod IPs depends on the CNI"
    if other.pod is None:
        return False, ""  # selectors never match addresses outside the cluster
    pod = other.pod
    if peer.namespace_selector is None:
        in_namespace: bool | None = pod.namespace == policy.namespace  # gotcha 13
    else:
        namespace = cluster.namespace(pod.namespace)
        in_namespace = peer.namespace_selector.matches(
            namespace.labels, namespace.complete
        )
    if in_namespace is False:
        return False, ""
    selected = (
        True if peer.pod_selector is None else peer.pod_selector.matches(pod.labels)
    )
    if not selected:
        return False, ""
    if in_namespace is None:
        return None, (
            f"namespace {pod.namespace} is not declared, so its labels are unknown; "
            "add its Namespace object"
        )
    return True, ""


def _out_of_model(end: Endpoint, why: str) -> Answer:
    return Answer("undecidable", why, (Finding("out-of-model", str(end), why),))


# Cases -----------------------------------------------------------------------


def load(config: str, *, source: str = "<case>") -> tuple[list[NetworkPolicy], Cluster]:
    """The policies and the cluster model held by one YAML text."""
    from generator.config.k8s import load_documents
    from generator.config.netpol import read_objects

    found = read_objects(load_documents(config, source=source), source=source)
    return found.policies, found.cluster()


def truth(config: str, question: str) -> Truth:
    """The case truth for ``netpol:from=NS/POD,to=NS/POD,port=P/PROTO``.

    The question asked is "does this flow get through?": ``unsafe`` means it
    does (the violation names the rules that let it through), ``safe`` that
    it does not. An undecidable flow raises ``Undecidable``; it is no truth.
    """
    domain, _, cell = question.partition(":")
    if domain != "netpol":
        raise InvalidArgument(
            f"question={question!r}; ask netpol:from=..,to=..,port=.."
        )
    policies, cluster = load(config)
    traffic, _ = parse_question(cell, cluster)
    result = answer(policies, cluster, traffic)
    if result.value == "undecidable":
        raise Undecidable(result.reason)
    if result.value == "no":
        return Truth("safe")
    allowing = [f for f in result.findings if f.rule in ("allowed-by", "not-isolated")]
    return Truth(
        "unsafe",
        tuple(Violation("netpol:allowed", f.path, f.message) for f in allowing),
    )
