"""The NetworkPolicy mutators, as one explicit list (``MUTATORS``).

Every mutator takes a ``Scenario`` and a ``random.Random`` and returns a new
``Scenario``, or None when it does not apply; it never touches its input.
``keeps_meaning`` ones respell (YAML style, document order, rule order,
``matchLabels`` as ``In`` expressions, defaulted fields written out, a
policy split in two): the oracle must give the same answer on every flow,
and the tests hold them to it. The others move the space: ``REPAIRS`` are
the fixes a reviewer would make to an allowed flow (opposite siblings of
unsafe cases and the first step of chains on unsafe seeds); the rest widen
or narrow along one gotcha of shared/research/netpol.md §4, named by the
family they belong to.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from generator.config.netpol import NAME_LABEL
from generator.grammar.netpol import STYLES, Scenario, policy_doc
from generator.mutate.base import Mutator

__all__ = ["MUTATORS", "REPAIRS", "mutator_named"]

Docs = list[dict[str, Any]]


def _docs(s: Scenario) -> Docs:
    return copy.deepcopy(list(s.documents))


def _policies(docs: Docs) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == "NetworkPolicy"]


def _rules(policy: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = policy["spec"]
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(direction) or []:
            if isinstance(rule, dict):
                yield peers, rule


def _pick(rnd: random.Random, items: list[Any]) -> Any:
    return items[rnd.randrange(len(items))] if items else None


def _pod(s: Scenario, end: str) -> dict[str, Any] | None:
    """The Pod document of an end of the asked flow (None for an IP)."""
    namespace, _, name = end.rpartition("/")
    for d in s.documents:
        meta = d.get("metadata", {})
        if d.get("kind") == "Pod" and (meta.get("namespace"), meta.get("name")) == (
            namespace,
            name,
        ):
            return d
    return None


def _asked_number(s: Scenario) -> int:
    return int(s.port.split("/")[0])


# --- respellings --------------------------------------------------------------


def restyle_yaml(s: Scenario, rnd: random.Random) -> Scenario | None:
    """The same documents in another YAML spelling (flow, JSON, quoted keys)."""
    others = [style for style in STYLES.values() if style != s.style]
    return replace(s, style=rnd.choice(others))


def reorder_documents(s: Scenario, rnd: random.Random) -> Scenario | None:
    """Policies before pods, namespaces last: order never matters to the API."""
    docs = list(s.documents)
    if len(docs) < 2:
        return None
    docs.reverse() if rnd.random() < 0.5 else rnd.shuffle(docs)
    if tuple(docs) == s.documents:
        return None
    return replace(s, documents=tuple(docs))


def reverse_rules(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A policy's rules (or a rule's peers) in reverse order: a union is unordered."""
    docs = _docs(s)
    lists = []
    for policy in _policies(docs):
        for key in ("ingress", "egress"):
            if len(policy["spec"].get(key) or []) > 1:
                lists.append(policy["spec"][key])
        for peers, rule in _rules(policy):
            if len(rule.get(peers) or []) > 1:
                lists.append(rule[peers])
    chosen = _pick(rnd, lists)
    if chosen is None:
        return None
    chosen.reverse()
    return s.with_documents(docs)


def labels_to_expressions(s: Scenario, rnd: random.Random) -> Scenario | None:
    """``matchLabels: {app: web}`` written as ``matchExpressions`` key In [web]."""
    docs = _docs(s)
    found = [sel for p in _policies(docs) for sel in _selectors(p)
             if sel.get("matchLabels")]  # fmt: skip
    chosen = _pick(rnd, found)
    if chosen is None:
        return None
    labels = chosen.pop("matchLabels")
    chosen["matchExpressions"] = [
        {"key": k, "operator": "In", "values": [v]} for k, v in labels.items()
    ] + list(chosen.get("matchExpressions", []))
    return s.with_documents(docs)


def _selectors(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = policy["spec"]
    if isinstance(spec.get("podSelector"), dict):
        yield spec["podSelector"]
    for peers, rule in _rules(policy):
        for peer in rule.get(peers) or []:
            for key in ("podSelector", "namespaceSelector"):
                if isinstance(peer.get(key), dict):
                    yield peer[key]


def _defaulted_types(spec: dict[str, Any]) -> list[str]:
    types = list(spec.get("policyTypes") or [])
    if types:
        return types
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def write_default_policy_types(s: Scenario, rnd: random.Random) -> Scenario | None:
    """Write the policyTypes the API server would fill in (or drop the ones it would)."""
    docs = _docs(s)
    policy = _pick(rnd, _policies(docs))
    if policy is None:
        return None
    spec = policy["spec"]
    if "policyTypes" in spec:
        written = spec.pop("policyTypes")
        if _defaulted_types(spec) != list(written or []):
            return None  # dropping it would change the meaning
    else:
        spec["policyTypes"] = _defaulted_types(spec)
    return s.with_documents(docs)


def write_default_protocol(s: Scenario, rnd: random.Random) -> Scenario | None:
    """``protocol: TCP`` written out where it was left to defaulting, or the reverse."""
    docs = _docs(s)
    entries = [
        e
        for p in _policies(docs)
        for _, r in _rules(p)
        for e in r.get("ports") or []
        if e.get("protocol", "TCP") == "TCP"
    ]
    entry = _pick(rnd, entries)
    if entry is None:
        return None
    if "protocol" in entry:
        del entry["protocol"]
    else:
        entry["protocol"] = "TCP"
    return s.with_documents(docs)


def split_policy(s: Scenario, rnd: random.Random) -> Scenario | None:
    """An ingress-only policy written as two: its rules, or one rule's peers,
    shared between them (policies add up, so the union is the same)."""
    docs = _docs(s)
    fits = [p for p in _policies(docs)
            if "egress" not in p["spec"]
            and p["spec"].get("policyTypes") in (None, ["Ingress"])
            and (len(p["spec"].get("ingress") or []) > 1
                 or any(len(r.get("from") or []) > 1 for r in p["spec"].get("ingress") or []))]  # fmt: skip
    policy = _pick(rnd, fits)
    if policy is None:
        return None
    rules = policy["spec"]["ingress"]
    if len(rules) > 1:
        mine, theirs = rules[:1], rules[1:]
    else:
        peers = rules[0]["from"]
        mine = [{**rules[0], "from": peers[:1]}]
        theirs = [{**copy.deepcopy(rules[0]), "from": peers[1:]}]
    policy["spec"]["ingress"] = mine
    meta = policy["metadata"]
    twin = policy_doc(meta["namespace"], meta["name"] + "-2",
                      {**copy.deepcopy(policy["spec"]), "ingress": theirs})  # fmt: skip
    docs.insert(docs.index(policy) + 1, twin)
    return s.with_documents(docs)


def rename_policy(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A policy's name says nothing about what it allows."""
    docs = _docs(s)
    policy = _pick(rnd, _policies(docs))
    if policy is None:
        return None
    names = {p["metadata"]["name"] for p in _policies(docs)}
    new = rnd.choice(["deny-all", "allow-all", "lockdown", "allow-monitoring"])
    if new in names:
        return None
    policy["metadata"]["name"] = new
    return s.with_documents(docs)


# --- fixes ----------------------------------------------------------------------


def _deny(s: Scenario, end: str, direction: str) -> Scenario | None:
    pod = _pod(s, end)
    if pod is None:
        return None
    docs = _docs(s)
    meta = pod["metadata"]
    spec = {"podSelector": {"matchLabels": dict(meta["labels"])},
            "policyTypes": [direction]}  # fmt: skip
    name = f"deny-{direction.lower()}-{meta['name']}"
    if any(p["metadata"]["name"] == name for p in _policies(docs)):
        return None
    docs.append(policy_doc(meta["namespace"], name, spec))
    return s.with_documents(docs)


def deny_ingress_to_destination(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A deny-all ingress policy selecting the destination pod (isolates it)."""
    return _deny(s, s.dst, "Ingress")


def deny_egress_from_source(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A deny-all egress policy selecting the source pod (isolates it)."""
    return _deny(s, s.src, "Egress")


def clear_policy_rules(s: Scenario, rnd: random.Random) -> Scenario | None:
    """One policy's rules of one direction emptied: still isolating, allowing nothing."""
    docs = _docs(s)
    fits = [(p, key) for p in _policies(docs) for key in ("ingress", "egress")
            if p["spec"].get(key)]  # fmt: skip
    chosen = _pick(rnd, fits)
    if chosen is None:
        return None
    policy, key = chosen
    spec = policy["spec"]
    spec["policyTypes"] = _defaulted_types(spec)
    spec[key] = []
    return s.with_documents(docs)


def narrow_rule_ports(s: Scenario, rnd: random.Random) -> Scenario | None:
    """Rules without ports limited to one port other than the asked one."""
    docs = _docs(s)
    other = 8443 if _asked_number(s) != 8443 else 9443
    changed = False
    for policy in _policies(docs):
        for _, rule in _rules(policy):
            if not rule.get("ports"):
                rule["ports"] = [{"port": other}]
                changed = True
    return s.with_documents(docs) if changed else None


def join_peers(s: Scenario, rnd: random.Random) -> Scenario | None:
    """``- namespaceSelector`` and ``- podSelector`` (OR) joined into one item (AND)."""
    docs = _docs(s)
    fits = []
    for policy in _policies(docs):
        for peers, rule in _rules(policy):
            items = rule.get(peers) or []
            ns = [p for p in items if set(p) == {"namespaceSelector"}]
            pods = [p for p in items if set(p) == {"podSelector"}]
            if ns and pods:
                fits.append((rule[peers], ns[0], pods[0]))
    chosen = _pick(rnd, fits)
    if chosen is None:
        return None
    items, ns, pod = chosen
    ns["podSelector"] = pod["podSelector"]
    items.remove(pod)
    return s.with_documents(docs)


# --- widening and narrowing along one gotcha ------------------------------------


def split_peers(s: Scenario, rnd: random.Random) -> Scenario | None:
    """One peer with both selectors (AND) split into two items (OR): one dash more."""
    docs = _docs(s)
    fits = [(rule[peers], peer) for p in _policies(docs) for peers, rule in _rules(p)
            for peer in rule.get(peers) or []
            if {"namespaceSelector", "podSelector"} <= set(peer)]  # fmt: skip
    chosen = _pick(rnd, fits)
    if chosen is None:
        return None
    items, peer = chosen
    pod = peer.pop("podSelector")
    items.insert(items.index(peer) + 1, {"podSelector": pod})
    return s.with_documents(docs)


def empty_peer_list(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A rule's ``from``/``to`` list emptied: ``[]`` means everyone, not no one."""
    docs = _docs(s)
    fits = [
        (peers, r) for p in _policies(docs) for peers, r in _rules(p) if r.get(peers)
    ]
    chosen = _pick(rnd, fits)
    if chosen is None:
        return None
    peers, rule = chosen
    rule[peers] = []
    return s.with_documents(docs)


def add_allow_all_rule(s: Scenario, rnd: random.Random) -> Scenario | None:
    """``- {}`` appended to a policy's rules: one empty rule allows everything."""
    docs = _docs(s)
    policy = _pick(rnd, _policies(docs))
    if policy is None:
        return None
    spec = policy["spec"]
    key = "ingress" if "Ingress" in _defaulted_types(spec) else "egress"
    spec[key] = [*(spec.get(key) or []), {}]
    return s.with_documents(docs)


def drop_policy_types(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A written policyTypes removed, leaving the direction set to defaulting."""
    docs = _docs(s)
    policy = _pick(rnd, [p for p in _policies(docs) if "policyTypes" in p["spec"]])
    if policy is None:
        return None
    del policy["spec"]["policyTypes"]
    return s.with_documents(docs)


def swap_protocol(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A port entry's protocol TCP (or unwritten) to UDP, or UDP back to the default."""
    docs = _docs(s)
    entries = [
        e for p in _policies(docs) for _, r in _rules(p) for e in r.get("ports") or []
    ]
    entry = _pick(rnd, entries)
    if entry is None:
        return None
    if entry.get("protocol", "TCP") == "TCP":
        entry["protocol"] = "UDP"
    else:
        entry.pop("protocol")
    return s.with_documents(docs)


def select_all_namespaces(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A peer's namespaceSelector (or its absence) made ``{}``: every namespace."""
    docs = _docs(s)
    peers = [
        peer
        for p in _policies(docs)
        for key, r in _rules(p)
        for peer in r.get(key) or []
        if "ipBlock" not in peer and peer.get("namespaceSelector") != {}
    ]
    peer = _pick(rnd, peers)
    if peer is None:
        return None
    peer["namespaceSelector"] = {}
    return s.with_documents(docs)


def move_policy_namespace(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A policy moved to another namespace, where it cannot isolate these pods."""
    docs = _docs(s)
    namespaces = sorted(
        {d["metadata"]["name"] for d in docs if d.get("kind") == "Namespace"}
    )
    policy = _pick(rnd, _policies(docs))
    if policy is None:
        return None
    others = [n for n in namespaces if n != policy["metadata"]["namespace"]]
    if not others:
        return None
    policy["metadata"]["namespace"] = rnd.choice(others)
    keys = {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in _policies(docs)
    }
    if len(keys) != len(_policies(docs)):
        return None
    return s.with_documents(docs)


def negate_requirement(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A selector's ``In`` (or label pair) turned into ``NotIn``: missing keys match."""
    docs = _docs(s)
    found = [sel for p in _policies(docs) for sel in _selectors(p)
             if sel.get("matchLabels") or sel.get("matchExpressions")]  # fmt: skip
    chosen = _pick(rnd, found)
    if chosen is None:
        return None
    if chosen.get("matchLabels"):
        key = sorted(chosen["matchLabels"])[0]
        if key == NAME_LABEL:
            return None
        value = chosen["matchLabels"].pop(key)
        if not chosen["matchLabels"]:
            del chosen["matchLabels"]
        chosen.setdefault("matchExpressions", []).append(
            {"key": key, "operator": "NotIn", "values": [value]}
        )
    else:
        term = chosen["matchExpressions"][0]
        flip = {"In": "NotIn", "NotIn": "In", "Exists": "DoesNotExist",
                "DoesNotExist": "Exists"}  # fmt: skip
        term["operator"] = flip[term["operator"]]
    return s.with_documents(docs)


def widen_end_port(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A numbered port entry given ``endPort`` 100 higher: a range, inclusive."""
    docs = _docs(s)
    entries = [e for p in _policies(docs) for _, r in _rules(p) for e in r.get("ports") or []
               if isinstance(e.get("port"), int) and "endPort" not in e]  # fmt: skip
    entry = _pick(rnd, entries)
    if entry is None:
        return None
    entry["endPort"] = min(65535, entry["port"] + 100)
    if entry["endPort"] == entry["port"]:
        return None
    return s.with_documents(docs)


def name_the_port(s: Scenario, rnd: random.Random) -> Scenario | None:
    """A numbered port entry replaced by the destination's name for that number.

    Not a respelling: the name is resolved on each destination pod, so in an
    egress rule it may mean other numbers, and the protocol must agree.
    """
    pod = _pod(s, s.dst)
    if pod is None:
        return None
    declared = {
        p.get("containerPort"): p.get("name")
        for c in pod["spec"]["containers"]
        for p in c.get("ports", [])
    }
    docs = _docs(s)
    entries = [e for p in _policies(docs) for _, r in _rules(p) for e in r.get("ports") or []
               if declared.get(e.get("port")) and "endPort" not in e]  # fmt: skip
    entry = _pick(rnd, entries)
    if entry is None:
        return None
    entry["port"] = declared[entry["port"]]
    return s.with_documents(docs)


def _m(fn, family: str, *, keeps_meaning: bool = False) -> Mutator:
    return Mutator(fn.__name__, family, fn, keeps_meaning)  # type: ignore[arg-type]


MUTATORS: tuple[Mutator, ...] = (
    # respellings
    _m(restyle_yaml, "spelling", keeps_meaning=True),
    _m(reorder_documents, "spelling", keeps_meaning=True),
    _m(reverse_rules, "spelling", keeps_meaning=True),
    _m(labels_to_expressions, "selector-expressions", keeps_meaning=True),
    _m(write_default_policy_types, "policy-types", keeps_meaning=True),
    _m(write_default_protocol, "protocol-default", keeps_meaning=True),
    _m(split_policy, "both-directions", keeps_meaning=True),
    _m(rename_policy, "spelling", keeps_meaning=True),
    # fixes
    _m(deny_ingress_to_destination, "both-directions"),
    _m(deny_egress_from_source, "both-directions"),
    _m(clear_policy_rules, "empty-lists"),
    _m(narrow_rule_ports, "protocol-default"),
    _m(join_peers, "peer-and-or"),
    # one gotcha each
    _m(split_peers, "peer-and-or"),
    _m(empty_peer_list, "empty-lists"),
    _m(add_allow_all_rule, "empty-lists"),
    _m(drop_policy_types, "policy-types"),
    _m(swap_protocol, "protocol-default"),
    _m(select_all_namespaces, "namespace-scope"),
    _m(move_policy_namespace, "namespace-scope"),
    _m(negate_requirement, "selector-expressions"),
    _m(widen_end_port, "end-port"),
    _m(name_the_port, "named-ports"),
)

REPAIRS = (
    "deny_ingress_to_destination",
    "deny_egress_from_source",
    "clear_policy_rules",
    "narrow_rule_ports",
    "join_peers",
)


def mutator_named(name: str) -> Mutator:
    for mutator in MUTATORS:
        if mutator.name == name:
            return mutator
    raise KeyError(f"no netpol mutator {name!r}")
