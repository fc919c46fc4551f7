"""The security-group grammar: one group's ingress grants, rendered as Terraform.

An ``SgModel`` is the meaning of an sg case: one ``aws_security_group``,
the ingress grants written for it, the asked port, and how the rules are
written (``style``): inline ``ingress`` blocks, the attribute form
``ingress = [{...}]``, separate ``aws_security_group_rule`` resources, or
``aws_vpc_security_group_ingress_rule`` resources (one CIDR each). Values
are HCL *expression text* (``"\\"tcp\\""``, ``var.admin_cidrs``,
``cidrsubnet("0.0.0.0/0", 1, 0)``), so the grammar reaches what the
research notes list: variables, locals, functions, dynamic blocks.

``render`` writes the HCL with our own code, never python-hcl2's writer
(which silently writes invalid HCL for unquoted strings), and parses every
text it writes back with ``generator.config.terraform.load_module``: a
rendering bug is an exception here, not a wrong case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from generator.config.terraform import load_module

__all__ = ["GRAMMAR_PATH", "SgGrant", "SgModel", "grammar", "quote", "render"]

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammars" / "sg.yaml"
STYLES = ("inline", "attribute", "rule", "vpc")


@cache
def grammar() -> dict[str, Any]:
    """The pools of ``grammars/sg.yaml``, checked for the keys used here."""
    data = yaml.safe_load(GRAMMAR_PATH.read_text(encoding="utf-8"))
    needed = ("names", "ports", "private_ipv4", "private_ipv6", "styles")
    missing = [k for k in needed if k not in data]
    if missing:
        raise ValueError(f"{GRAMMAR_PATH}: missing keys {', '.join(missing)}")
    unknown = sorted(set(data["styles"]) - set(STYLES))
    if unknown:
        raise ValueError(f"{GRAMMAR_PATH}: unknown styles {unknown}; known: {STYLES}")
    return data


def quote(text: str) -> str:
    """``text`` as an HCL string literal (``${`` and ``%{`` escaped too)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + body.replace("${", "$${").replace("%{", "%%{") + '"'


def cidr_list(*cidrs: str) -> tuple[str, ...]:
    """Literal CIDR list items, quoted."""
    return tuple(quote(c) for c in cidrs)


@dataclass(frozen=True)
class SgGrant:
    """One ingress statement as written; every value is HCL expression text.

    ``cidrs``/``ipv6`` are list items (a tuple) or one whole-list expression
    (a str). ``for_each`` makes it a ``dynamic "ingress"`` block whose ports
    are ``ingress.value`` (inline style only).
    """

    protocol: str = '"tcp"'
    from_port: str | None = "22"
    to_port: str | None = "22"
    cidrs: tuple[str, ...] | str = ()
    ipv6: tuple[str, ...] | str = ()
    self_: bool = False
    groups: bool = False
    prefix: bool = False
    description: str = ""
    for_each: str = ""
    count_zero: bool = False  # separate rule resources only


@dataclass(frozen=True)
class SgModel:
    """One security group, its ingress grants, and the asked port."""

    grants: tuple[SgGrant, ...]
    port: int
    protocol: str = "tcp"
    style: str = "inline"
    name: str = "web"
    variables: tuple[tuple[str, str], ...] = ()
    locals: tuple[tuple[str, str], ...] = ()
    egress_world: bool = False
    align: bool = True
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    def text(self) -> str:
        return render(self)


def render(model: SgModel) -> str:
    """The Terraform text of ``model``, checked by parsing it back."""
    text = _Writer(model).module()
    load_module(text, source="<rendered>")
    return text


class _Writer:
    def __init__(self, model: SgModel) -> None:
        self.m = model
        self.lines: list[str] = []

    def module(self) -> str:
        m = self.m
        for name, default in m.variables:
            self.block(f'variable "{name}"', [("default", default)])
        if m.locals:
            self.block("locals", list(m.locals))
        group: list[Any] = [
            ("name", quote(f"{m.name}-sg")),
            ("description", quote(f"{m.name} tier")),
            ("vpc_id", quote("vpc-0a1b2c3d4e5f60718")),
        ]
        if m.style == "inline":
            group += [self.inline(g) for g in m.grants]
        elif m.style == "attribute":
            group.append(("ingress", self.attribute_list()))
        if m.egress_world and m.style in ("inline", "attribute"):
            group.append(("egress", [
                ("from_port", "0"), ("to_port", "0"), ("protocol", quote("-1")),
                ("cidr_blocks", _list(cidr_list("0.0.0.0/0")))]))  # fmt: skip
        self.block(f'resource "aws_security_group" "{m.name}"', group)
        if m.style == "rule":
            for i, grant in enumerate(m.grants):
                for suffix, body in self.rules(grant):
                    self.block(
                        f'resource "aws_security_group_rule" "{m.name}_{i}{suffix}"',
                        body,
                    )
            if m.egress_world:
                self.block(f'resource "aws_security_group_rule" "{m.name}_egress"', [
                    ("type", quote("egress")), *self.target(), ("from_port", "0"),
                    ("to_port", "0"), ("protocol", quote("-1")),
                    ("cidr_blocks", _list(cidr_list("0.0.0.0/0")))])  # fmt: skip
        elif m.style == "vpc":
            for i, grant in enumerate(m.grants):
                for j, body in enumerate(self.vpc_rules(grant)):
                    label = f"{m.name}_{i}_{j}"
                    self.block(
                        f'resource "aws_vpc_security_group_ingress_rule" "{label}"',
                        body,
                    )
        return "\n".join(self.lines).rstrip("\n") + "\n"

    # --- pieces ----------------------------------------------------------------

    def ports(self, grant: SgGrant, value: str = "") -> list[tuple[str, str]]:
        if value:
            return [("from_port", value), ("to_port", value)]
        out = []
        if grant.from_port is not None:
            out.append(("from_port", grant.from_port))
        if grant.to_port is not None:
            out.append(("to_port", grant.to_port))
        return out

    def sources(self, grant: SgGrant) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if grant.cidrs:
            out.append(("cidr_blocks", _list(grant.cidrs)))
        if grant.ipv6:
            out.append(("ipv6_cidr_blocks", _list(grant.ipv6)))
        if grant.prefix:
            out.append(("prefix_list_ids", _list(cidr_list("pl-0123456789abcdef0"))))
        if grant.groups:
            out.append(("security_groups", _list(cidr_list("sg-0fedcba9876543210"))))
        if grant.self_:
            out.append(("self", "true"))
        return out

    def inline(self, grant: SgGrant) -> tuple[str, Any]:
        body: list[tuple[str, Any]] = []
        if grant.description:
            body.append(("description", quote(grant.description)))
        if grant.for_each:
            content = [
                *self.ports(grant, "ingress.value"),
                ("protocol", grant.protocol),
                *self.sources(grant),
            ]
            return ('dynamic "ingress"', [("for_each", grant.for_each),
                                          ("content", content)])  # fmt: skip
        body += [*self.ports(grant), ("protocol", grant.protocol), *self.sources(grant)]
        return ("ingress", body)

    def attribute_list(self) -> str:
        items = []
        for g in self.m.grants:
            fields = [
                ("description", quote(g.description)),
                ("from_port", g.from_port or "0"),
                ("to_port", g.to_port or "0"),
                ("protocol", g.protocol),
                ("cidr_blocks", _list(g.cidrs)),
                ("ipv6_cidr_blocks", _list(g.ipv6)),
                ("prefix_list_ids", _list(cidr_list("pl-0123456789abcdef0")
                                          if g.prefix else ())),
                ("security_groups", _list(cidr_list("sg-0fedcba9876543210")
                                          if g.groups else ())),
                ("self", "true" if g.self_ else "false"),
            ]  # fmt: skip
            inner = ",\n".join(f"      {k} = {v}" for k, v in fields)
            items.append("    {\n" + inner + "\n    }")
        return "[\n" + ",\n".join(items) + "\n  ]"

    def target(self) -> list[tuple[str, str]]:
        return [("security_group_id", f"aws_security_group.{self.m.name}.id")]

    def rules(self, grant: SgGrant) -> list[tuple[str, list[tuple[str, Any]]]]:
        head = [("type", quote("ingress")), *self.target(), *self.ports(grant),
                ("protocol", grant.protocol)]  # fmt: skip
        if grant.count_zero:
            head.insert(0, ("count", "0"))
        if grant.description:
            head.append(("description", quote(grant.description)))
        out = []
        cidr: list[tuple[str, Any]] = []
        if grant.cidrs:
            cidr.append(("cidr_blocks", _list(grant.cidrs)))
        if grant.ipv6:
            cidr.append(("ipv6_cidr_blocks", _list(grant.ipv6)))
        if grant.prefix:
            cidr.append(("prefix_list_ids", _list(cidr_list("pl-0123456789abcdef0"))))
        if cidr:
            out.append(("", head + cidr))
        # The provider refuses cidr_blocks beside self or a source group.
        if grant.self_:
            out.append(("_self", [*head, ("self", "true")]))
        if grant.groups:
            source = quote("sg-0fedcba9876543210")
            out.append(("_sg", [*head, ("source_security_group_id", source)]))
        return out

    def vpc_rules(self, grant: SgGrant) -> list[list[tuple[str, Any]]]:
        head = [("security_group_id", f"aws_security_group.{self.m.name}.id"),
                ("ip_protocol", grant.protocol)]  # fmt: skip
        if grant.protocol.strip('"') not in ("-1", "all"):
            head += self.ports(grant)
        out = []
        for key, values in (("cidr_ipv4", grant.cidrs), ("cidr_ipv6", grant.ipv6)):
            if isinstance(values, str):
                out.append([("for_each", f"toset({values})"), *head,
                            (key, "each.value")])  # fmt: skip
            else:
                out += [[*head, (key, v)] for v in values]
        if grant.self_ or grant.groups:
            source = (
                f"aws_security_group.{self.m.name}.id"
                if grant.self_
                else quote("sg-0fedcba9876543210")
            )
            out.append([*head, ("referenced_security_group_id", source)])
        if grant.prefix:
            out.append([*head, ("prefix_list_id", quote("pl-0123456789abcdef0"))])
        return out

    # --- layout ----------------------------------------------------------------

    def block(self, header: str, body: list[tuple[str, Any]], indent: int = 0) -> None:
        pad = "  " * indent
        self.lines.append(f"{pad}{header} {{")
        self.body(body, indent + 1)
        self.lines.append(f"{pad}}}")
        if indent == 0:
            self.lines.append("")

    def body(self, body: list[tuple[str, Any]], indent: int) -> None:
        pad = "  " * indent
        width = max((len(k) for k, v in body if isinstance(v, str)), default=0)
        for key, value in body:
            if isinstance(value, list):
                self.block(key, value, indent)
            else:
                name = key.ljust(width) if self.m.align else key
                self.lines.append(f"{pad}{name} = {value}")


def _list(value: tuple[str, ...] | str) -> str:
    if isinstance(value, str):
        return value
    return "[" + ", ".join(value) + "]"
