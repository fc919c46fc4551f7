"""Blocking one flow with NetworkPolicies while every other flow gets through.

The repair judge (``generator.repair_netpol``) lets a fix change policies
only, and wants every flow the original allows between the model's pods
(on the destination's declared ports and the asked one) to stay allowed.
NetworkPolicies only ever allow; a flow is cut by making an end isolated
for its direction and allowing all the rest. So, for the asked flow
``S -> D port P/PROTO``:

* D not selected by any ingress policy (it takes everything in): one
  NetworkPolicy is added in D's namespace that selects exactly D and
  allows ingress from every pod but S on any port, and from S on D's other
  declared ports (an external S: from every pod, and from every address but
  S's). "Every pod but S" is written as selectors: the other namespaces by
  ``kubernetes.io/metadata.name NotIn``, and S's neighbours by a label
  term each of them has and S has not.
* else, S a pod not selected by any egress policy: the mirror image, one
  NetworkPolicy in S's namespace for S's egress.
* else, one end an address outside the cluster: ``except: [address/32]``
  is added to each ipBlock of the pod end's rules (ingress for an
  external source, egress for an external destination) that matches it
  (a rule open to all peers is given every pod and every other address);
  an unisolated pod end gets the added policy above, allowing every pod
  and every address but that one.

The original text is kept as it is; a policy is appended as one more YAML
document. Refused, with the reason: both ends already isolated for a pod
source (cutting one pod out of an existing rule without losing its other
flows needs rewriting the rule's selectors), and pods that no label tells
apart from S or D (no selector can take one without the other).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from generator.config.k8s import load_documents
from generator.config.k8s_yaml import render
from generator.config.netpol import NAME_LABEL, Pod
from generator.errors import RemediationError
from generator.records import Case
from generator.remediate_yaml import Append, Set, apply, get, rewrite, unshared

__all__ = ["remediate_netpol"]

logger = logging.getLogger(__name__)

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def remediate_netpol(case: Case) -> str:
    """The fixed YAML stream of a netpol case (see the module docstring)."""
    from generator.oracle.netpol import isolation, load, parse_question
    from generator.repair_netpol import judge

    policies, cluster = load(case.config, source=case.id)
    traffic, _ = parse_question(case.question.partition(":")[2], cluster)
    src, dst = traffic.src, traffic.dst
    tries: list[Callable[[], str]] = []
    if dst.pod is not None and not isolation(policies, dst.pod)["Ingress"]:
        tries.append(lambda: _append(case.config, _ingress_policy(cluster, traffic)))
    if src.pod is not None and not isolation(policies, src.pod)["Egress"]:
        tries.append(lambda: _append(case.config, _egress_policy(cluster, traffic)))
    if src.pod is None or dst.pod is None:
        tries.append(lambda: _except_address(case.config, policies, traffic))
    reasons = []
    for attempt in tries:
        try:
            text = attempt()
        except RemediationError as exc:
            reasons.append(str(exc))
            continue
        try:
            failure, detail = judge(case, text)
        except Exception as exc:  # noqa: BLE001 - a judge bug is a refusal here
            reasons.append(f"the repair judge cannot judge: {exc!r}")
            continue
        if failure is None:
            return text
        reasons.append(f"{failure}: {detail}")
    if not tries:
        reasons.append(
            "both ends are already isolated; cutting one pod out of an existing "
            "rule is not done here"
        )
    raise RemediationError(f"{case.id}: no fix kept the intent ({'; '.join(reasons)})")


def _append(config: str, policy: dict[str, Any]) -> str:
    return config.rstrip("\n") + "\n---\n" + render([policy])


# --- the added policy ---------------------------------------------------------------


def _everything_but(address) -> list[dict[str, Any]]:
    """Peers for every pod, and every address of the family but ``address``."""
    peers: list[dict[str, Any]] = [{"namespaceSelector": {}}]
    for world in ("0.0.0.0/0", "::/0"):
        block: dict[str, Any] = {"cidr": world}
        if ipaddress.ip_network(world).version == address.version:
            block["except"] = [f"{address}/{address.max_prefixlen}"]
        peers.append({"ipBlock": block})
    return peers


def _ingress_policy(cluster, traffic) -> dict[str, Any]:
    dst = traffic.dst.pod
    if traffic.src.pod is None:
        rules = [{"from": _everything_but(traffic.src.ip)}]
        name = f"deny-{traffic.src.ip}-to-{dst.name}".replace(":", "-")
    else:
        rules = _rules(cluster, traffic.src.pod, dst, traffic, "from")
        name = f"deny-{traffic.src.pod.name}-to-{dst.name}"
    return _policy(name, dst, cluster, "Ingress", rules)


def _egress_policy(cluster, traffic) -> dict[str, Any]:
    src, dst = traffic.src.pod, traffic.dst.pod
    if dst is None:
        rules = [{"to": _everything_but(traffic.dst.ip)}]
        name = f"deny-{src.name}-to-{traffic.dst.ip}".replace(":", "-")
        return _policy(name, src, cluster, "Egress", rules)
    rules = _rules(cluster, dst, dst, traffic, "to", home=src)
    return _policy(f"deny-{src.name}-to-{dst.name}", src, cluster, "Egress", rules)


def _rules(
    cluster, cut: Pod, dst: Pod, traffic, field: str, *, home: Pod | None = None
) -> list[dict[str, Any]]:
    """Everyone but ``cut`` on any port; ``cut`` on ``dst``'s other ports."""
    home = home or dst
    rules = [{field: _all_but(cluster, cut, home.namespace)}]
    others = sorted(
        {(p.number, p.protocol) for p in dst.ports} - {(traffic.port, traffic.protocol)}
    )
    if others:
        ports = [{"port": n, "protocol": proto} for n, proto in others]
        rules.append({field: [_peer(cut, home.namespace)], "ports": ports})
    return rules


def _policy(name: str, pod: Pod, cluster, direction: str, rules) -> dict[str, Any]:
    key = "ingress" if direction == "Ingress" else "egress"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": pod.namespace},
        "spec": {
            "podSelector": _exactly(cluster, pod),
            "policyTypes": [direction],
            key: rules,
        },
    }


def _selector(requirements: list[Requirement], labels: dict[str, str]) -> dict:
    selector: dict[str, Any] = {}
    if labels:
        selector["matchLabels"] = dict(labels)
    if requirements:
        selector["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(v)} if v else {})}
            for k, op, v in requirements
        ]
    return selector


def _neighbours(cluster, pod: Pod) -> list[Pod]:
    return [
        p
        for p in cluster.pods.values()
        if p.namespace == pod.namespace and p.key != pod.key
    ]


def _exactly(cluster, pod: Pod) -> dict:
    """A podSelector for ``pod`` alone among its namespace's pods."""
    shadowing = [
        q
        for q in _neighbours(cluster, pod)
        if all(q.labels.get(k) == v for k, v in pod.labels.items())
    ]
    terms = _cover(shadowing, pod, lambda q: _absent_keys(q, pod))
    return _selector(terms, pod.labels)


def _absent_keys(q: Pod, pod: Pod) -> list[Requirement]:
    return [(k, "DoesNotExist", ()) for k in sorted(set(q.labels) - set(pod.labels))]


def _terms_against(q: Pod, cut: Pod) -> list[Requirement]:
    """Label terms ``q`` satisfies and ``cut`` does not."""
    terms: list[Requirement] = []
    for key, value in sorted(q.labels.items()):
        if key not in cut.labels:
            terms.append((key, "Exists", ()))
        elif cut.labels[key] != value:
            terms.append((key, "NotIn", (cut.labels[key],)))
    for key in sorted(set(cut.labels) - set(q.labels)):
        terms.append((key, "DoesNotExist", ()))
    return terms


def _cover(pods: list[Pod], cut: Pod, terms_of) -> list[Requirement]:
    """Terms, greedily few, such that each of ``pods`` satisfies one."""
    chosen: list[Requirement] = []
    left = list(pods)
    while left:
        counts: dict[Requirement, int] = {}
        for q in left:
            for term in terms_of(q):
                counts[term] = counts.get(term, 0) + 1
        if not counts:
            names = ", ".join(q.key for q in left)
            raise RemediationError(f"no label tells {names} apart from {cut.key}")
        best = max(counts, key=lambda t: (counts[t], t))
        chosen.append(best)
        left = [q for q in left if best not in terms_of(q)]
    return chosen


def _all_but(cluster, cut: Pod, home: str) -> list[dict[str, Any]]:
    """Peers for every pod of every namespace except ``cut``."""
    peers: list[dict[str, Any]] = [
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": NAME_LABEL, "operator": "NotIn", "values": [cut.namespace]}
                ]
            }
        }
    ]
    neighbours = _neighbours(cluster, cut)
    for term in _cover(neighbours, cut, lambda q: _terms_against(q, cut)):
        peer = {"podSelector": _selector([term], {})}
        if cut.namespace != home:
            peer = {"namespaceSelector": _name_is(cut.namespace), **peer}
        peers.append(peer)
    return peers


def _peer(pod: Pod, home: str) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": _selector([], pod.labels)}
    if pod.namespace != home:
        peer = {"namespaceSelector": _name_is(pod.namespace), **peer}
    return peer


def _name_is(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {NAME_LABEL: namespace}}


# --- an external end: except its address from the ipBlocks that match it --------


def _except_address(config: str, policies, traffic) -> str:
    """``except: [address/32]`` in each ipBlock of the pod end's rules (of
    the flow's direction) that contains the external end's address; a rule
    open to everyone gets peers for everyone but that address."""
    inbound = traffic.src.pod is None
    pod = traffic.dst.pod if inbound else traffic.src.pod
    address = traffic.src.ip if inbound else traffic.dst.ip
    direction, key, peers = (
        ("Ingress", "ingress", "from") if inbound else ("Egress", "egress", "to")
    )
    documents = [unshared(d) for d in load_documents(config)]
    edits = []
    for policy in policies:
        if policy.namespace != pod.namespace or direction not in policy.policy_types:
            continue
        if not policy.pod_selector.matches(pod.labels):
            continue
        base: tuple = ("items", int(policy.path[6:-1])) if policy.path else ()
        for r, rule in enumerate(getattr(policy, key)):
            if not rule.peers:
                # "from: []" or none: everyone; now everyone but the address.
                edit = Set(
                    policy.index,
                    (*base, "spec", key, r, peers),
                    _everything_but(address),
                )
                apply(documents, edit)
                edits.append(edit)
            for p, peer in enumerate(rule.peers):
                block = peer.ip_block
                if block is None or not block.contains(address):
                    continue
                path = (*base, "spec", key, r, peers, p, "ipBlock", "except")
                hole = f"{address}/{address.max_prefixlen}"
                found = get(documents[policy.index], path)
                edit = (
                    Append(policy.index, path, hole)
                    if isinstance(found, list)
                    else Set(policy.index, path, [hole])
                )
                apply(documents, edit)
                edits.append(edit)
    if not edits:
        raise RemediationError(f"no ipBlock of {pod.key}'s {key} matches {address}")
    return rewrite(config, edits, documents)
