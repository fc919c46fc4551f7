"""The sg domain for the shared builder: seeds, tags, and its ``DomainSpec``.

Seeds are ``seeds/sg/<name>-SAFE.tf`` or ``-UNSAFE.tf``: one security group
written as people write it, whose first line is ``# question: PORT/PROTO``;
the verdict in the name answers ``sg:open_ipv4:PORT/PROTO`` (a test holds
every claim to the oracle). A seed is read into an ``SgModel`` (python-hcl2
keeps every value as expression text, which is what the model holds) and
re-rendered, so its comments never reach a case. Seeds use inline blocks
or ``aws_security_group_rule`` resources with literal values, variables
and locals.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from generator import tags as T
from generator.families.netpol_sg_build import DomainSpec, Seed
from generator.families.sg import FAMILIES, KINDS
from generator.grammar.sg import SgGrant, SgModel, render
from generator.mutate.sg import MUTATORS, REPAIRS
from generator.records import Truth

__all__ = ["SG", "SG_SEEDS_DIR", "load_sg_seeds", "read_seed", "sg_tags"]

SG_SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "sg"
_NAME = re.compile(r"(?P<stem>[a-z0-9][a-z0-9-]*)-(?P<verdict>SAFE|UNSAFE)\.tf")
_QUESTION = re.compile(r"^# question: (?P<port>\d+)/(?P<proto>tcp|udp)$", re.MULTILINE)


@cache
def load_sg_seeds(directory: Path = SG_SEEDS_DIR) -> tuple[Seed, ...]:
    """Every seed of ``directory``, in name order."""
    seeds = []
    for path in sorted(directory.glob("*.tf")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"{path}: an sg seed is NAME-SAFE.tf or NAME-UNSAFE.tf")
        model = read_seed(path.read_text(encoding="utf-8"), source=str(path))
        seeds.append(Seed(match["stem"], match["verdict"].lower(), model, KINDS[0]))
    return tuple(seeds)


def _expr(value: Any) -> Any:
    """python-hcl2 8.x value as HCL expression text (its strings keep quotes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return tuple(_expr(v) for v in value)
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


def _grant(body: dict[str, Any]) -> SgGrant:
    def get(key: str) -> Any:
        return _expr(body[key]) if key in body else None

    return SgGrant(
        protocol=get("protocol"),
        from_port=get("from_port"),
        to_port=get("to_port"),
        cidrs=get("cidr_blocks") or (),
        ipv6=get("ipv6_cidr_blocks") or (),
        self_=body.get("self") is True,
        groups=bool(
            body.get("security_groups") or body.get("source_security_group_id")
        ),
        prefix=bool(body.get("prefix_list_ids")),
        description=str(get("description") or "").strip('"'),
        count_zero=body.get("count") == 0,
    )


def read_seed(text: str, *, source: str) -> SgModel:
    """The ``SgModel`` of a seed's text."""
    asked = _QUESTION.search(text)
    if asked is None:
        raise ValueError(f"{source}: first line must be '# question: PORT/PROTO'")
    data = hcl2.loads(text)
    variables = tuple(
        (name.strip('"'), _list_text(_expr(body["default"])))
        for block in data.get("variable", []) for name, body in block.items()
    )  # fmt: skip
    local = tuple(
        (name, _list_text(_expr(value)))
        for block in data.get("locals", []) for name, value in block.items()
        if not name.startswith("__")
    )  # fmt: skip
    name, grants, style = "web", [], "inline"
    for block in data.get("resource", []):
        for kind, named in block.items():
            for label, body in named.items():
                if kind == '"aws_security_group"':
                    name = label.strip('"')
                    grants += [_grant(b) for b in body.get("ingress", [])]
                elif (
                    kind == '"aws_security_group_rule"' and '"ingress"' == body["type"]
                ):
                    style = "rule"
                    grants.append(_grant(body))
    return SgModel(tuple(grants), int(asked["port"]), asked["proto"], style, name,
                   variables, local)  # fmt: skip


def _list_text(value: Any) -> str:
    return "[" + ", ".join(value) + "]" if isinstance(value, tuple) else value


def _truth(text: str, question: str) -> Truth:
    from generator.oracle.sg import truth

    return truth(text, question)


def _cidr_form(m: SgModel) -> str:
    forms = set()
    for g in m.grants:
        for value in (g.cidrs, g.ipv6):
            if isinstance(value, str):
                forms.add(
                    "variable"
                    if value.startswith("var.")
                    else "local"
                    if value.startswith("local.")
                    else "function"
                )
            elif any("(" in v for v in value):
                forms.add("function")
            elif value:
                forms.add("literal")
    return forms.pop() if len(forms) == 1 else "mixed" if forms else "none"


def sg_tags(
    m: SgModel,
    *,
    question: str,
    family: str,
    method: str,
    operators: tuple[str, ...],
    seed_file: str,
    relation: str,
    text: str,
) -> dict[str, Any]:
    """The flat features of an sg case (keys in ``tags.SG_KEYS``)."""
    protocols = {g.protocol.strip('"') for g in m.grants}
    spelled = {"all" if p in ("-1", "all") else "number" if p.isdigit() else "name"
               for p in protocols}  # fmt: skip
    ports = [p for g in m.grants for p in (g.from_port, g.to_port) if p]
    port_forms = {"string" if p.startswith('"') else "float" if "." in p else "number"
                  for p in ports}  # fmt: skip
    literal = [v for g in m.grants for value in (g.cidrs, g.ipv6)
               if isinstance(value, tuple) for v in value]  # fmt: skip
    lines = text.count("\n")
    return {
        T.FAMILY: family,
        T.METHOD: method,
        T.OPERATORS: ",".join(operators),
        T.OPERATOR_COUNT: len(operators),
        T.SEED_FILE: seed_file,
        T.SIZE: "short" if lines < 30 else "medium" if lines < 60 else "long",
        T.RELATION: relation,
        T.QUESTION: question.rpartition(":")[0],
        T.RULE_STYLE: m.style,
        T.GRANTS: len(m.grants),
        T.PORT: m.port,
        T.IP_VERSION: 6 if "ipv6" in question else 4,
        T.PROTOCOL_SPELLING: spelled.pop() if len(spelled) == 1 else "mixed",
        T.PORT_SPELLING: (port_forms.pop() if len(port_forms) == 1
                          else "mixed" if port_forms else "none"),
        T.CIDR_FORM: _cidr_form(m),
        T.WORLD_LITERAL: any(v in ('"0.0.0.0/0"', '"::/0"') for v in literal),
        T.SPLIT_CIDRS: any(v.endswith(('/1"', '/2"')) for v in literal),
        T.MIXED_SOURCES: any(g.self_ or g.groups or g.prefix for g in m.grants),
        T.DYNAMIC: any(g.for_each for g in m.grants),
        T.COUNT_ZERO: any(g.count_zero for g in m.grants),
        T.EGRESS_WORLD: m.egress_world,
    }  # fmt: skip


SG = DomainSpec(
    domain="sg",
    format="hcl",
    kinds=KINDS,
    families=FAMILIES,
    mutators=MUTATORS,
    repairs=REPAIRS,
    seeds=load_sg_seeds,
    render=render,
    canonical=lambda m: render(
        SgModel(
            m.grants,
            m.port,
            m.protocol,
            "inline" if m.style == "attribute" else m.style,
            m.name,
            m.variables,
            m.locals,
            m.egress_world,
        )
    ),  # fmt: skip
    question=lambda m, kind: f"{kind}:{m.port}/{m.protocol}",
    truth=_truth,
    tags=sg_tags,
)
