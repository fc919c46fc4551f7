"""The netpol domain for the shared builder: seeds, tags, and its ``DomainSpec``.

Seeds are ``seeds/netpol/<name>-SAFE.yaml`` or ``-UNSAFE.yaml``: a YAML
stream of Namespaces, Pods and NetworkPolicies whose first line is
``# question: from=NS/POD,to=NS/POD,port=N/PROTO``; the verdict in the name
answers that question (a test holds every claim to the oracle). Seeds are
re-rendered from their documents, so the comments never reach a case.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from generator import tags as T
from generator.families.netpol import FAMILIES, KIND
from generator.families.netpol_sg_build import DomainSpec, Seed
from generator.grammar.netpol import STYLES, Scenario
from generator.mutate.netpol import MUTATORS, REPAIRS
from generator.records import Truth

__all__ = ["NETPOL", "NETPOL_SEEDS_DIR", "load_netpol_seeds", "netpol_tags"]

NETPOL_SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "netpol"
_NAME = re.compile(r"(?P<stem>[a-z0-9][a-z0-9-]*)-(?P<verdict>SAFE|UNSAFE)\.yaml")
_QUESTION = re.compile(r"^# question: from=(\S+),to=(\S+),port=(\S+)$", re.MULTILINE)


@cache
def load_netpol_seeds(directory: Path = NETPOL_SEEDS_DIR) -> tuple[Seed, ...]:
    """Every seed of ``directory``, in name order."""
    seeds = []
    for path in sorted(directory.glob("*.yaml")):
        match = _NAME.fullmatch(path.name)
        text = path.read_text(encoding="utf-8")
        asked = _QUESTION.search(text)
        if match is None or asked is None:
            raise ValueError(
                f"{path}: a netpol seed is NAME-SAFE.yaml or NAME-UNSAFE.yaml and "
                "starts with '# question: from=..,to=..,port=..'"
            )
        docs = tuple(d for d in yaml.safe_load_all(text) if d)
        model = Scenario(docs, asked[1], asked[2], asked[3])
        seeds.append(Seed(match["stem"], match["verdict"].lower(), model, KIND))
    return tuple(seeds)


def _truth(text: str, question: str) -> Truth:
    from generator.oracle.netpol import truth

    return truth(text, question)


def _style_name(s: Scenario) -> str:
    return next((n for n, style in STYLES.items() if style == s.style), s.style.label())


def netpol_tags(
    s: Scenario,
    *,
    question: str,
    family: str,
    method: str,
    operators: tuple[str, ...],
    seed_file: str,
    relation: str,
    text: str,
) -> dict[str, Any]:
    """The flat features of a netpol case (keys in ``tags.NETPOL_KEYS``)."""
    policies = s.policies()
    specs = [p.get("spec") or {} for p in policies]
    rules = [r for spec in specs for key in ("ingress", "egress")
             for r in spec.get(key) or [] if isinstance(r, dict)]  # fmt: skip
    peers = [p for r in rules for key in ("from", "to") for p in r.get(key) or []]
    entries = [e for r in rules for e in r.get("ports") or []]
    src_ns = s.src.rpartition("/")[0] if "/" in s.src else "external"
    dst_ns = s.dst.rpartition("/")[0] if "/" in s.dst else "external"
    lines = text.count("\n")
    return {
        T.FAMILY: family,
        T.METHOD: method,
        T.OPERATORS: ",".join(operators),
        T.OPERATOR_COUNT: len(operators),
        T.SEED_FILE: seed_file,
        T.SIZE: "short" if lines < 60 else "medium" if lines < 120 else "long",
        T.RELATION: relation,
        T.QUESTION: KIND,
        T.YAML_STYLE: _style_name(s),
        T.DOCUMENTS: len(s.documents),
        T.POLICIES: len(policies),
        T.FLOW: "pod-pod" if "external" not in (src_ns, dst_ns)
        else "pod-external" if dst_ns == "external" else "external-pod",
        T.SAME_NAMESPACE: src_ns == dst_ns,
        T.PROTOCOL: s.port.split("/")[1] if "/" in s.port else "tcp",
        T.POLICY_TYPES_WRITTEN: any("policyTypes" in spec for spec in specs),
        T.EMPTY_RULE: any(not r for r in rules),
        T.EMPTY_PEERS: any(key in r and not r[key] for r in rules for key in ("from", "to")),
        T.PEER_AND: any({"podSelector", "namespaceSelector"} <= set(p) for p in peers),
        T.IP_BLOCK: any("ipBlock" in p for p in peers),
        T.EXPRESSIONS: "matchExpressions" in text or '"matchExpressions"' in text,
        T.NOT_IN: "NotIn" in text,
        T.NAMED_PORT: any(isinstance(e.get("port"), str) for e in entries),
        T.END_PORT: any("endPort" in e for e in entries),
        T.PROTOCOL_WRITTEN: any("protocol" in e for e in entries),
    }  # fmt: skip


NETPOL = DomainSpec(
    domain="netpol",
    format="yaml",
    kinds=(KIND,),
    families=FAMILIES,
    mutators=MUTATORS,
    repairs=REPAIRS,
    seeds=load_netpol_seeds,
    render=Scenario.text,
    canonical=lambda s: Scenario(s.documents, s.src, s.dst, s.port).text(),
    question=lambda s, kind: s.question(),
    truth=_truth,
    tags=netpol_tags,
)
