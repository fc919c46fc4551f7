"""NetworkPolicy families about ports and protocols (and DNS egress).

As in ``generator.families.netpol``: each family is a strategy of
``Scenario``s, opens with a comment listing the space it covers, and
numbers gotchas as shared/research/netpol.md section 4 does.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from generator.families.netpol_sg_build import Family
from generator.grammar.netpol import (
    PodModel,
    Scenario,
    World,
    ns_selector,
    pair,
    policy_doc,
    port_entry,
    port_text,
    scenario,
    selector,
    styles,
    worlds,
)

__all__ = ["KIND", "PORT_FAMILIES"]

KIND = "netpol:reach"


# Protocol defaults to TCP (8, 9): an ingress rule on port 53 with no
# protocol, with UDP, with TCP, or a protocol with no port (every port of
# it); asked 53/udp, 53/tcp or another UDP port.
@st.composite
def protocol_default(draw, kind: str) -> Scenario:
    world = draw(worlds())
    src, dst = pair(draw, world)
    entry = draw(
        st.sampled_from(
            [
                {"port": 53},
                {"port": 53, "protocol": "UDP"},
                {"port": 53, "protocol": "TCP"},
                {"protocol": "UDP"},
                {"port": 53},
                [{"port": 53, "protocol": "UDP"}, {"port": 53}],
            ]
        )
    )
    ports = entry if isinstance(entry, list) else [entry]
    spec = {
        "podSelector": selector({"app": dst.name}),
        "ingress": [{"from": [{"namespaceSelector": {}}], "ports": ports}],
    }
    asked = draw(st.sampled_from(["53/udp", "53/udp", "53/tcp", "5353/udp"]))
    return scenario(
        world,
        [policy_doc(dst.namespace, "allow-dns", spec)],
        src=src.key,
        dst=dst.key,
        port=asked,
        style=draw(styles()),
    )


def _with_name(pod: PodModel, name: str, number: int, proto: str) -> PodModel:
    ports = tuple(p for p in pod.ports if p[0] != name)
    return PodModel(
        pod.namespace, pod.name, pod.labels, ((name, number, proto), *ports)
    )


def _replace(world: World, *pods: PodModel) -> World:
    by_key = {p.key: p for p in pods}
    return World(world.namespaces, tuple(by_key.get(p.key, p) for p in world.pods))


# Named ports (10) and ports after DNAT (12): an ingress rule naming a port
# the destination declares with that protocol, with another protocol, or
# not at all; the same name on another pod with another number (egress to
# both); a Service in front of the pod whose port differs from its
# targetPort, with the policy written for one or the other.
@st.composite
def named_ports(draw, kind: str) -> Scenario:
    world = draw(worlds())
    src, dst = pair(draw, world)
    number = draw(st.sampled_from([8080, 8443, 9000]))
    declared = draw(st.sampled_from(["TCP", "TCP", "UDP", None]))
    if declared is not None:
        dst = _with_name(dst, "web", number, declared)
    # A name resolves per destination pod: elsewhere it means another number.
    src = _with_name(src, "web", 80, "TCP")
    world = _replace(world, src, dst)
    shape = draw(st.sampled_from(["ingress-name", "egress-name", "service-port",
                                  "target-port"]))  # fmt: skip
    extra: list[dict[str, Any]] = []
    if shape == "ingress-name":
        spec = {"podSelector": selector({"app": dst.name}),
                "ingress": [{"ports": [{"port": "web"}]}]}  # fmt: skip
        home = dst.namespace
    elif shape == "egress-name":
        spec = {"podSelector": selector({"app": src.name}), "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {}}],
                            "ports": [{"port": "web"}]}]}  # fmt: skip
        home = src.namespace
    else:
        extra = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": dst.name, "namespace": dst.namespace},
                "spec": {
                    "selector": {"app": dst.name},
                    "ports": [{"port": 80, "targetPort": number}],
                },
            }
        ]
        allowed = 80 if shape == "service-port" else number
        spec = {"podSelector": selector({"app": dst.name}),
                "ingress": [{"ports": [{"port": allowed}]}]}  # fmt: skip
        home = dst.namespace
    asked = draw(st.sampled_from([number, number, 80]))
    proto = draw(st.sampled_from(["tcp", "tcp", "udp"]))
    return scenario(world, [policy_doc(home, "named-port", spec)], src=src.key,
                    dst=dst.key, port=f"{asked}/{proto}", style=draw(styles()),
                    extra=extra)  # fmt: skip


# endPort ranges (11): port..endPort inclusive, asked at both edges, just
# outside them and inside; the protocol of the range or another one.
@st.composite
def end_port(draw, kind: str) -> Scenario:
    world = draw(worlds())
    src, dst = pair(draw, world)
    low = draw(st.sampled_from([8000, 30000, 5432]))
    high = low + draw(st.sampled_from([0, 1, 10, 100]))
    proto = draw(st.sampled_from(["TCP", "TCP", "UDP"]))
    entry = {"port": low, "endPort": high} | (
        {"protocol": proto} if proto != "TCP" else {}
    )
    direction = draw(st.sampled_from(["ingress", "egress"]))
    if direction == "ingress":
        spec = {
            "podSelector": selector({"app": dst.name}),
            "ingress": [{"ports": [entry]}],
        }
        home = dst.namespace
    else:
        spec = {
            "podSelector": selector({"app": src.name}),
            "policyTypes": ["Egress"],
            "egress": [{"ports": [entry]}],
        }
        home = src.namespace
    asked = draw(st.sampled_from([low - 1, low, high, high + 1, (low + high) // 2]))
    asked_proto = draw(st.sampled_from([proto, proto, "TCP", "UDP"]))
    return scenario(world, [policy_doc(home, "port-range", spec)], src=src.key,
                    dst=dst.key, port=port_text(asked, asked_proto),
                    style=draw(styles()))  # fmt: skip


# DNS egress (8, 22): an app's egress allow list with a DNS rule to the
# cluster resolver written as one peer (kube-system AND k8s-app=kube-dns)
# or two (kube-system OR kube-dns pods of the app's own namespace), on
# 53/UDP and 53/TCP or on bare 53 (TCP only); asked to the resolver, to
# another kube-system pod, or on UDP vs TCP.
@st.composite
def dns_egress(draw, kind: str) -> Scenario:
    world = draw(worlds(min_pods=2, max_pods=3))
    app = world.pods[0]
    dns = PodModel(
        "kube-system",
        "coredns",
        {"k8s-app": "kube-dns"},
        (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
    )
    agent = PodModel("kube-system", "metrics-agent", {"app": "metrics-agent"},
                     (("agent", 53, "UDP"),))  # fmt: skip
    namespaces = (*world.namespaces, ("kube-system", {}))
    world = World(namespaces, (*world.pods, dns, agent))
    peer_ns = ns_selector("kube-system")
    peer_pod = {"matchLabels": {"k8s-app": "kube-dns"}}
    if draw(st.booleans()):
        peers = [{"namespaceSelector": peer_ns, "podSelector": peer_pod}]
    else:
        peers = [{"namespaceSelector": peer_ns}, {"podSelector": peer_pod}]
    ports = draw(st.sampled_from([
        [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        [{"port": 53}], [{"port": 53, "protocol": "UDP"}]]))  # fmt: skip
    other = world.pods[1]
    rules = [
        {"to": peers, "ports": ports},
        {
            "to": [{"namespaceSelector": ns_selector(other.namespace)}],
            "ports": [port_entry(other.ports[0][1], other.ports[0][2])],
        },
    ]
    spec = {"podSelector": selector({"app": app.name}), "policyTypes": ["Egress"],
            "egress": rules}  # fmt: skip
    target = draw(st.sampled_from([dns, dns, agent]))
    asked = draw(st.sampled_from(["53/udp", "53/tcp"]))
    return scenario(
        world,
        [policy_doc(app.namespace, "egress-allow-list", spec)],
        src=app.key,
        dst=target.key,
        port=asked,
        style=draw(styles()),
    )


PORT_FAMILIES: tuple[Family, ...] = (
    Family("protocol-default", protocol_default, {KIND: 3}, "gotchas 8, 9"),
    Family("named-ports", named_ports, {KIND: 3}, "gotchas 10, 12"),
    Family("end-port", end_port, {KIND: 2}, "gotcha 11"),
    Family("dns-egress", dns_egress, {KIND: 2}, "gotchas 8, 22"),
)
