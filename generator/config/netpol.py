"""NetworkPolicy config types, and the cluster model they are judged against.

Documents are read with ``k8s.load_documents`` (the API server's YAML), then
turned into typed, validated objects here. What the API server would refuse
(``networking/validation``) is a one-line ``ConfigError`` naming the file,
the document and the field; what it would fill in (``SetDefaults_*``) is
filled in here, because a policy means what the server stores, not what was
written (research/netpol.md §2.7, gotcha 25):

- ``policyTypes`` omitted or empty: ``Ingress`` always, ``Egress`` only when
  ``spec.egress`` holds at least one rule;
- a port's ``protocol`` omitted: ``TCP``; a container port's too;
- ``metadata.namespace`` omitted: ``default`` (what ``kubectl apply`` uses
  without ``-n``; the real namespace depends on the context, so write it).

The cluster model is what reachability depends on besides the policies:
namespaces with their labels and pods with their labels, named container
ports, IP (``status.podIP``, optional) and ``hostNetwork``. A Namespace
object always carries ``kubernetes.io/metadata.name=<name>`` (set by the API
server since 1.22, whatever the file says). A namespace that pods or
policies use but that no Namespace object declares has that label only and
its other labels are *unknown*: a selector that needs them cannot be decided
(``Selector.matches`` returns None).

Pod-template holders (Deployment, StatefulSet, ...) stand for their pods:
one pod model named after the holder, with the template's labels and ports.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from generator.config.k8s import TEMPLATE_PATHS
from generator.errors import ConfigError

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAME_LABEL",
    "PROTOCOLS",
    "Cluster",
    "ContainerPort",
    "IPBlock",
    "Namespace",
    "NetpolObjects",
    "NetworkPolicy",
    "Peer",
    "Pod",
    "PolicyPort",
    "Requirement",
    "Rule",
    "Selector",
    "read_objects",
]

DEFAULT_NAMESPACE = "default"
NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# IANA_SVC_NAME, as validation.IsValidPortName checks a named port.
_PORT_NAME = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# Selectors -----------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One ``key OPERATOR values`` term; ``matchLabels`` entries become In."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str], complete: bool = True) -> bool | None:
        """Whether ``labels`` satisfy this term; None when the key's presence
        is unknown (``complete`` false and the key not among ``labels``)."""
        # k8s.io/apimachinery/pkg/labels/selector.go, Requirement.Matches.
        if self.key not in labels:
            if not complete:
                return None
            return self.operator in ("NotIn", "DoesNotExist")
        value = labels[self.key]
        if self.operator == "In":
            return value in self.values
        if self.operator == "NotIn":
            return value not in self.values
        return self.operator == "Exists"


@dataclass(frozen=True)
class Selector:
    """A label selector: every requirement must hold; none means everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str], complete: bool = True) -> bool | None:
        """True, False, or None when an unknown label decides it."""
        unknown = False
        for requirement in self.requirements:
            result = requirement.matches(labels, complete)
            if result is False:
                return False
            unknown = unknown or result is None
        return None if unknown else True

    @property
    def empty(self) -> bool:
        return not self.requirements


# Policies ------------------------------------------------------------------


@dataclass(frozen=True)
class IPBlock:
    """``cidr`` minus every ``except`` entry."""

    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if address.version != self.cidr.version or address not in self.cidr:
            return False
        return not any(address in hole for hole in self.excepts)


@dataclass(frozen=True)
class Peer:
    """One ``from``/``to`` entry: an ipBlock, or pod and namespace selectors.

    ``None`` selectors are absent fields, which is not the same as ``{}``:
    an absent namespaceSelector means the policy's own namespace, an absent
    podSelector (with a namespaceSelector) every pod there.
    """

    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """One ``ports`` entry; ``port`` is a number, a name, or None (all)."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule; an empty tuple means "all" (missing or [])."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    """A NetworkPolicy as the API server stores it (defaults filled in).

    ``policy_types`` is the defaulted set; ``types_written`` says whether the
    file listed them (rules of a direction left out of a written list are
    ignored by the spec, and some CNIs enforce them anyway).
    """

    name: str
    namespace: str
    pod_selector: Selector
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    policy_types: frozenset[str]
    types_written: bool
    source: str = ""
    index: int = 0
    path: str = ""  # "items[2]" inside a List, else ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# The cluster ----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ContainerPort:
    name: str
    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """A pod as reachability sees it."""

    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ContainerPort, ...] = ()
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    host_network: bool = False
    kind: str = "Pod"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Namespace:
    """A namespace; ``complete`` is false for one no Namespace object declares."""

    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    complete: bool = True


@dataclass(frozen=True)
class Cluster:
    """Namespaces and pods by name; ``namespace`` invents undeclared ones."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)

    def namespace(self, name: str) -> Namespace:
        found = self.namespaces.get(name)
        if found is not None:
            return found
        return Namespace(name, {NAME_LABEL: name}, complete=False)


@dataclass
class NetpolObjects:
    """What a set of documents holds for the netpol oracle."""

    policies: list[NetworkPolicy] = field(default_factory=list)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # key -> "file: document i"

    def cluster(self) -> Cluster:
        return Cluster(dict(self.namespaces), dict(self.pods))


def read_objects(
    documents: Iterable[Any], *, source: str, into: NetpolObjects | None = None
) -> NetpolObjects:
    """Policies, namespaces and pods of one file's documents, added to ``into``.

    Other kinds are ignored (the Pod Security path judges or refuses them);
    a repeated object (same kind, namespace and name) is an error, as the API
    server would keep only one of them.
    """
    found = into if into is not None else NetpolObjects()
    for index, document in enumerate(documents):
        for path, item in _items(document, source, index):
            _read_object(item, found, _Where(source, index, path))
    return found


# Reading --------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    source: str
    index: int
    path: str

    def error(self, field_path: str, message: str) -> ConfigError:
        dotted = ".".join(p for p in (self.path, field_path) if p)
        at = f"{dotted}: " if dotted else ""
        return ConfigError(f"{at}{message}", source=self.source, index=self.index)

    def __str__(self) -> str:
        return f"{self.source}: document {self.index}"


def _items(document: Any, source: str, index: int) -> Iterator[tuple[str, Any]]:
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in document:
        items = document.get("items") or []
        if not isinstance(items, list):
            raise ConfigError("items must be a list", source=source, index=index)
        for i, item in enumerate(items):
            yield f"items[{i}]", item
    else:
        yield "", document


def _read_object(doc: Any, found: NetpolObjects, where: _Where) -> None:
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind")
    if kind == "NetworkPolicy":
        policy = _policy(doc, where)
        _add(found.where, f"NetworkPolicy {policy.key}", where)
        found.policies.append(policy)
    elif kind == "Namespace":
        namespace = _namespace(doc, where)
        _add(found.where, f"Namespace {namespace.name}", where)
        found.namespaces[namespace.name] = namespace
    elif kind == "Pod" or kind in TEMPLATE_PATHS:
        pod = _pod(doc, str(kind), where)
        if pod is not None:
            _add(found.where, f"pod {pod.key}", where)
            found.pods[pod.key] = pod


def _add(seen: dict[str, str], key: str, where: _Where) -> None:
    if key in seen:
        raise where.error("", f"{key} is defined twice (first in {seen[key]})")
    seen[key] = str(where)


def _mapping(value: Any, where: _Where, path: str, *, required=False) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        what = "missing" if value is None else f"a {type(value).__name__}"
        raise where.error(path, f"must be a mapping, is {what}")
    return value


def _list(value: Any, where: _Where, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(path, f"must be a list, is a {type(value).__name__}")
    return value


def _string(value: Any, where: _Where, path: str) -> str:
    if not isinstance(value, str):
        # The API server decodes JSON into Go strings: 80, true, null fail.
        raise where.error(path, f"must be a string, is {value!r}")
    return value


def _metadata(doc: dict, where: _Where) -> tuple[str, str, dict[str, str]]:
    meta = _mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise where.error(
            "metadata.name", f"must be a non-empty string, is {name!r} (quote it)"
        )
    namespace = meta.get("namespace", DEFAULT_NAMESPACE)
    namespace = _string(namespace, where, "metadata.namespace") or DEFAULT_NAMESPACE
    return name, namespace, _labels(meta.get("labels"), where, "metadata.labels")


def _labels(value: Any, where: _Where, path: str) -> dict[str, str]:
    labels = _mapping(value, where, path)
    return {
        _string(k, where, path): _string(v, where, f"{path}.{k}")
        for k, v in labels.items()
    }


def _selector(value: Any, where: _Where, path: str) -> Selector:
    data = _mapping(value, where, path, required=True)
    unknown = sorted(set(data) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise where.error(path, f"unknown field {unknown[0]!r}")
    requirements = [
        Requirement(k, "In", frozenset([v]))
        for k, v in _labels(data.get("matchLabels"), where, f"{path}.matchLabels").items()
    ]  # fmt: skip
    expressions = _list(data.get("matchExpressions"), where, f"{path}.matchExpressions")
    for i, expression in enumerate(expressions):
        requirements.append(
            _requirement(expression, where, f"{path}.matchExpressions[{i}]")
        )
    return Selector(tuple(requirements))


def _requirement(value: Any, where: _Where, path: str) -> Requirement:
    # metav1validation.ValidateLabelSelectorRequirement
    data = _mapping(value, where, path, required=True)
    key = _string(data.get("key"), where, f"{path}.key")
    operator = data.get("operator")
    if operator not in _OPERATORS:
        raise where.error(
            f"{path}.operator", f"is {operator!r}; use one of {', '.join(_OPERATORS)}"
        )
    values = [
        _string(v, where, f"{path}.values[{i}]")
        for i, v in enumerate(_list(data.get("values"), where, f"{path}.values"))
    ]
    if operator in ("In", "NotIn") and not values:
        raise where.error(f"{path}.values", f"must be non-empty with {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise where.error(f"{path}.values", f"must be empty with {operator}")
    return Requirement(key, operator, frozenset(values))


def _policy(doc: dict, where: _Where) -> NetworkPolicy:
    name, namespace, _ = _metadata(doc, where)
    spec = _mapping(doc.get("spec"), where, "spec", required=True)
    if "podSelector" not in spec:
        raise where.error("spec.podSelector", "is required ({} selects every pod)")
    pod_selector = _selector(spec["podSelector"], where, "spec.podSelector")
    ingress = tuple(
        _rule(r, where, f"spec.ingress[{i}]", "from")
        for i, r in enumerate(_list(spec.get("ingress"), where, "spec.ingress"))
    )
    egress = tuple(
        _rule(r, where, f"spec.egress[{i}]", "to")
        for i, r in enumerate(_list(spec.get("egress"), where, "spec.egress"))
    )
    written = _list(spec.get("policyTypes"), where, "spec.policyTypes")
    for i, value in enumerate(written):
        if value not in ("Ingress", "Egress"):
            raise where.error(
                f"spec.policyTypes[{i}]", f"is {value!r}; use Ingress or Egress"
            )
    if written:
        types = frozenset(written)
    else:
        # SetDefaults_NetworkPolicy: Ingress always, Egress iff egress rules.
        types = frozenset(["Ingress", "Egress"] if egress else ["Ingress"])
    return NetworkPolicy(
        name, namespace, pod_selector, ingress, egress, types, bool(written),
        where.source, where.index, where.path,
    )  # fmt: skip


def _rule(value: Any, where: _Where, path: str, peers_field: str) -> Rule:
    data = _mapping(value, where, path, required=True)
    peers = tuple(
        _peer(p, where, f"{path}.{peers_field}[{i}]")
        for i, p in enumerate(_list(data.get(peers_field), where, f"{path}.{peers_field}"))
    )  # fmt: skip
    ports = tuple(
        _port(p, where, f"{path}.ports[{i}]")
        for i, p in enumerate(_list(data.get("ports"), where, f"{path}.ports"))
    )
    return Rule(peers, ports)


def _peer(value: Any, where: _Where, path: str) -> Peer:
    data = _mapping(value, where, path, required=True)
    has = {k for k in ("podSelector", "namespaceSelector", "ipBlock") if k in data}
    if not has:
        # "must specify a peer": {} is not "everyone" (gotcha 4).
        raise where.error(path, "an empty peer is invalid; must specify a peer")
    if "ipBlock" in has and len(has) > 1:
        raise where.error(path, "ipBlock cannot be combined with a selector")
    if "ipBlock" in has:
        return Peer(ip_block=_ip_block(data["ipBlock"], where, f"{path}.ipBlock"))
    pods = data.get("podSelector")
    namespaces = data.get("namespaceSelector")
    return Peer(
        None if pods is None else _selector(pods, where, f"{path}.podSelector"),
        None
        if namespaces is None
        else _selector(namespaces, where, f"{path}.namespaceSelector"),
    )


def _network(value: Any, where: _Where, path: str) -> IPNetwork:
    text = _string(value, where, path)
    try:
        # Host bits are accepted and masked (10.1.2.3/8 is 10.0.0.0/8).
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise where.error(path, f"{text!r} is not a CIDR") from None


def _ip_block(value: Any, where: _Where, path: str) -> IPBlock:
    data = _mapping(value, where, path, required=True)
    cidr = _network(data.get("cidr"), where, f"{path}.cidr")
    holes = []
    for i, item in enumerate(_list(data.get("except"), where, f"{path}.except")):
        hole = _network(item, where, f"{path}.except[{i}]")
        # ValidateIPBlock: each except must be a strict subset of cidr.
        strict = hole.version == cidr.version and hole.subnet_of(cidr)
        if not strict or hole.prefixlen <= cidr.prefixlen:
            raise where.error(
                f"{path}.except[{i}]", f"{hole} must be strictly inside {cidr}"
            )
        holes.append(hole)
    return IPBlock(cidr, tuple(holes))


def _port(value: Any, where: _Where, path: str) -> PolicyPort:
    data = _mapping(value, where, path, required=True)
    protocol = data.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        raise where.error(
            f"{path}.protocol", f"is {protocol!r}; use one of {', '.join(PROTOCOLS)}"
        )
    port = data.get("port")
    if port is not None:
        port = _port_value(port, where, f"{path}.port")
    end = data.get("endPort")
    if end is not None:
        if not isinstance(port, int):
            raise where.error(f"{path}.endPort", "needs a numeric port")
        if (
            isinstance(end, bool)
            or not isinstance(end, int)
            or not port <= end <= 65535
        ):
            raise where.error(f"{path}.endPort", f"is {end!r}; must be {port}..65535")
    return PolicyPort(protocol, port, end)


def _port_value(value: Any, where: _Where, path: str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            raise where.error(path, f"is {value}; must be 1..65535")
        return value
    if isinstance(value, str) and _PORT_NAME.match(value):
        return value
    raise where.error(path, f"{value!r} is neither a port number nor a port name")


def _namespace(doc: dict, where: _Where) -> Namespace:
    meta = _mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise where.error(
            "metadata.name", f"must be a non-empty string, is {name!r} (quote it)"
        )
    labels = _labels(meta.get("labels"), where, "metadata.labels")
    # The API server sets this label to the name, whatever was written.
    return Namespace(name, {**labels, NAME_LABEL: name})


def _pod(doc: dict, kind: str, where: _Where) -> Pod | None:
    name, namespace, labels = _metadata(doc, where)
    holder, prefix = doc, ""
    if kind != "Pod":
        holder = doc
        for key in TEMPLATE_PATHS[kind]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            return None
        prefix = ".".join(TEMPLATE_PATHS[kind]) + "."
        meta = _mapping(holder.get("metadata"), where, f"{prefix}metadata")
        labels = _labels(meta.get("labels"), where, f"{prefix}metadata.labels")
    spec = _mapping(holder.get("spec"), where, f"{prefix}spec")
    ports = []
    containers = _list(spec.get("containers"), where, f"{prefix}spec.containers")
    for c, container in enumerate(containers):
        at = f"{prefix}spec.containers[{c}]"
        container = _mapping(container, where, at, required=True)
        for p, item in enumerate(_list(container.get("ports"), where, f"{at}.ports")):
            ports.append(_container_port(item, where, f"{at}.ports[{p}]"))
    ip = None
    status = doc.get("status") if kind == "Pod" else None
    if isinstance(status, dict) and status.get("podIP") is not None:
        text = _string(status["podIP"], where, "status.podIP")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise where.error("status.podIP", f"{text!r} is not an IP") from None
    host = spec.get("hostNetwork", False)
    if not isinstance(host, bool):
        raise where.error(f"{prefix}spec.hostNetwork", f"must be a bool, is {host!r}")
    return Pod(namespace, name, labels, tuple(ports), ip, host, kind)


def _container_port(value: Any, where: _Where, path: str) -> ContainerPort:
    data = _mapping(value, where, path, required=True)
    number = data.get("containerPort")
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not 0 < number < 65536
    ):
        raise where.error(f"{path}.containerPort", f"is {number!r}; must be 1..65535")
    protocol = data.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        raise where.error(f"{path}.protocol", f"is {protocol!r}")
    name = data.get("name", "")
    name = _string(name, where, f"{path}.name") if name else ""
    return ContainerPort(name, number, protocol)
