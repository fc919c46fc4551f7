"""The NetworkPolicy grammar: worlds (namespaces, pods) and the documents of a case.

A netpol case is one multi-document YAML stream, in this order:

1. ``Namespace`` objects, with their labels (the API server adds
   ``kubernetes.io/metadata.name``, so it is not written);
2. ``Pod`` objects (and sometimes a ``Service`` in front of one), with
   labels and named container ports;
3. the ``NetworkPolicy`` objects.

The question names one flow: ``netpol:from=NS/POD,to=NS/POD,port=N/PROTO``
(an end may be an external IP). A ``Scenario`` is that meaning as plain
data plus the YAML ``Style`` it is spelled in; ``render`` writes the text
and ``question`` the question, both read back by the oracle
(``generator.oracle.netpol.truth``) before a case is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from generator.config.k8s_yaml import Style, render
from generator.config.netpol import NAME_LABEL

__all__ = [
    "GRAMMAR_PATH",
    "PodModel",
    "Scenario",
    "World",
    "grammar",
    "namespace_doc",
    "ns_selector",
    "pair",
    "port_entry",
    "port_text",
    "selector",
    "pod_doc",
    "policy_doc",
    "styles",
    "worlds",
]

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammars" / "netpol.yaml"

STYLES = {
    "block": Style(),
    "json": Style(flow_keys=frozenset({"*"})),
    "flow": Style(flow_keys=frozenset({"matchLabels", "labels", "policyTypes"})),
    "quoted-keys": Style(quote_keys=True),
    "kubectl-indent": Style(indent_sequences=False),
}


@cache
def grammar() -> dict[str, Any]:
    """The pools of ``grammars/netpol.yaml``, checked for the keys used here."""
    data = yaml.safe_load(GRAMMAR_PATH.read_text(encoding="utf-8"))
    needed = ("namespaces", "namespace_labels", "apps", "pod_labels", "ports")
    missing = [k for k in needed + ("external_ips", "styles") if k not in data]
    if missing:
        raise ValueError(f"{GRAMMAR_PATH}: missing keys {', '.join(missing)}")
    unknown = sorted(set(data["styles"]) - set(STYLES))
    if unknown:
        raise ValueError(
            f"{GRAMMAR_PATH}: unknown styles {unknown}; known: {sorted(STYLES)}"
        )
    return data


@dataclass(frozen=True)
class Scenario:
    """The documents of a case, the asked flow, and the YAML spelling."""

    documents: tuple[dict[str, Any], ...]
    src: str
    dst: str
    port: str  # "8080/tcp", "53/udp"
    style: Style = field(default_factory=Style)

    def text(self) -> str:
        return render(self.documents, self.style)

    def question(self) -> str:
        return f"netpol:from={self.src},to={self.dst},port={self.port}"

    def edit(self) -> tuple[Scenario, list[dict[str, Any]]]:
        """A copy with a live, deep-copied document list to change."""
        docs = copy.deepcopy(list(self.documents))
        return self, docs

    def with_documents(self, documents: list[dict[str, Any]]) -> Scenario:
        return replace(self, documents=tuple(documents))

    def policies(self) -> list[dict[str, Any]]:
        return [d for d in self.documents if d.get("kind") == "NetworkPolicy"]


@dataclass(frozen=True)
class PodModel:
    namespace: str
    name: str
    labels: dict[str, str]
    ports: tuple[tuple[str, int, str], ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class World:
    """Namespaces (name, labels) and pods; documents in the case's order."""

    namespaces: tuple[tuple[str, dict[str, str]], ...]
    pods: tuple[PodModel, ...]

    def labels_of(self, namespace: str) -> dict[str, str]:
        return dict(self.namespaces)[namespace]

    def documents(self) -> list[dict[str, Any]]:
        docs = [namespace_doc(n, labels) for n, labels in self.namespaces]
        docs += [pod_doc(p) for p in self.pods]
        return docs


def namespace_doc(name: str, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def pod_doc(pod: PodModel) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": pod.name.split("-")[0],
        "image": f"registry.example.com/{pod.name}:1.4.2",
    }
    if pod.ports:
        container["ports"] = [
            {"name": name, "containerPort": number}
            | ({"protocol": proto} if proto != "TCP" else {})
            for name, number, proto in pod.ports
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "labels": dict(pod.labels),
        },
        "spec": {"containers": [container]},
    }


def policy_doc(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def selector(labels: dict[str, str], form: str = "labels") -> dict[str, Any]:
    """``matchLabels`` or the same requirement as ``matchExpressions`` In."""
    if form == "labels" or not labels:
        return {"matchLabels": dict(labels)} if labels else {}
    return {
        "matchExpressions": [
            {"key": k, "operator": "In", "values": [v]} for k, v in labels.items()
        ]
    }


def port_text(number: int, protocol: str) -> str:
    return f"{number}/{protocol.lower()}"


def pair(draw, world: World) -> tuple[PodModel, PodModel]:
    """(source, destination): two pods of different namespaces, either way."""
    a, b = world.pods[0], world.pods[1]
    return (b, a) if draw(st.booleans()) else (a, b)


def ns_selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAME_LABEL: name}}


def port_entry(number: int, proto: str) -> dict[str, Any]:
    """A ``ports`` entry; TCP is left to defaulting, as people write it."""
    return {"port": number} | ({"protocol": proto} if proto != "TCP" else {})


def styles() -> st.SearchStrategy[Style]:
    """A YAML spelling, weighted as the grammar file says."""
    weights = grammar()["styles"]
    names = [n for n in STYLES if weights.get(n)]
    pool = [n for n in names for _ in range(int(weights[n]))]
    return st.sampled_from(pool).map(STYLES.__getitem__)


@st.composite
def worlds(draw, *, min_pods: int = 3, max_pods: int = 5) -> World:
    """2–3 labelled namespaces and ``min_pods``..``max_pods`` pods over them.

    Namespace labels are drawn per key and may be missing (a ``NotIn`` or
    ``DoesNotExist`` selector reads a missing key); pod labels always hold
    ``app`` and maybe ``tier`` / ``role``; every pod declares 1–2 ports.
    """
    g = grammar()
    names = draw(st.lists(st.sampled_from(g["namespaces"]), min_size=2, max_size=3,
                          unique=True))  # fmt: skip
    namespaces = []
    for name in names:
        labels = {}
        for key, values in g["namespace_labels"].items():
            value = draw(st.none() | st.sampled_from(values))
            if value is not None:
                labels[key] = value
        if draw(st.booleans()):
            labels["name"] = name  # the user convention of gotcha 21
        namespaces.append((name, labels))
    count = draw(st.integers(min_pods, max_pods))
    apps = draw(st.lists(st.sampled_from(g["apps"]), min_size=count, max_size=count,
                         unique=True))  # fmt: skip
    ports = [tuple(p) for p in g["ports"]]
    pods = []
    for i, app in enumerate(apps):
        # The first two pods live in different namespaces, so families can
        # ask across namespaces; the rest anywhere.
        ns = names[i] if i < 2 else draw(st.sampled_from(names))
        labels = {"app": app}
        for key, values in g["pod_labels"].items():
            value = draw(st.none() | st.sampled_from(values))
            if value is not None:
                labels[key] = value
        declared = draw(st.lists(st.sampled_from(ports), min_size=1, max_size=2,
                                 unique_by=lambda p: p[0]))  # fmt: skip
        pods.append(PodModel(ns, app, labels, tuple(declared)))
    return World(tuple(namespaces), tuple(pods))


def scenario(
    world: World,
    policies: list[dict[str, Any]],
    *,
    src: str,
    dst: str,
    port: str,
    style: Style,
    extra: list[dict[str, Any]] | None = None,
) -> Scenario:
    """The case's documents in order: namespaces, pods, extras, policies."""
    documents = world.documents() + list(extra or []) + policies
    return Scenario(tuple(documents), src, dst, port, style)
