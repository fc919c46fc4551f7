"""A small cluster model for NetworkPolicy tests, in cyclonus' shape.

Namespaces x, y, z (label ns=<name>, plus the kubernetes.io/metadata.name
label the API server adds); pods a, b, c in each (label pod=<name>), each
declaring serve-80-tcp (80/TCP), serve-81-udp (81/UDP), and in namespace z
the same name serve-80-tcp on port 8080 (a name resolves per pod).
"""

from __future__ import annotations

import json
from typing import Any

from generator.oracle.netpol import answer, load, parse_question

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")


def world(*, pod_ips: dict[str, str] | None = None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        docs.append(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, "labels": {"ns": ns}}}
        )  # fmt: skip
        for pod in PODS:
            http = 8080 if ns == "z" else 80
            doc = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [
                    {"name": "serve-80-tcp", "containerPort": http},
                    {"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"},
                ]}]},
            }  # fmt: skip
            key = f"{ns}/{pod}"
            if pod_ips and key in pod_ips:
                doc["status"] = {"podIP": pod_ips[key]}
            docs.append(doc)
    return docs


def policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def text(docs: list[dict[str, Any]]) -> str:
    # JSON documents: YAML reads them, and no scalar is left to the resolver.
    return "\n---\n".join(json.dumps(d) for d in docs)


def ask(policies: list[dict[str, Any]], question: str, **world_args) -> str:
    """yes / no / undecidable for one question over world() + policies."""
    found, cluster = load(text(world(**world_args) + policies))
    traffic, _ = parse_question(question, cluster)
    return answer(found, cluster, traffic).value
