"""The security-group mutators, as one explicit list (``MUTATORS``).

Every mutator takes an ``SgModel`` and a ``random.Random`` and returns a new
model, or None when it does not apply. ``keeps_meaning`` ones respell (rule
style, layout, order, a CIDR list split over two grants, ``"6"`` for
``"tcp"``, ``"22"`` for ``22``, a literal list moved into a variable,
``::0/0`` for ``::/0``); the others move the verdict along one blind spot of
shared/research/sg-terraform.md 3.5. ``REPAIRS`` are the fixes a reviewer
would make to an open port (opposite siblings of unsafe cases).
"""

from __future__ import annotations

import random
from dataclasses import replace

from generator.grammar.sg import SgGrant, SgModel, cidr_list, quote
from generator.mutate.base import Mutator

__all__ = ["MUTATORS", "REPAIRS", "mutator_named"]

_WORLD = {'"0.0.0.0/0"', '"::/0"', '"::0/0"'}
_PRIVATE4 = cidr_list("10.0.0.0/8")
_PRIVATE6 = cidr_list("fd00::/8")


def _number(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text.strip('"')))
    except ValueError:
        return None


def _all(grant: SgGrant) -> bool:
    return grant.protocol.strip('"') in ("-1", "all")


def _covers(grant: SgGrant, port: int) -> bool:
    """Whether ``grant`` is written to let ``port`` in (literal ports only)."""
    if _all(grant):
        return True
    if grant.for_each:
        return str(port) in grant.for_each
    low, high = _number(grant.from_port), _number(grant.to_port)
    return low is not None and high is not None and low <= port <= high


def _with(model: SgModel, i: int, grant: SgGrant | None) -> SgModel:
    grants = list(model.grants)
    if grant is None:
        del grants[i]
    else:
        grants[i] = grant
    return replace(model, grants=tuple(grants))


def _pick(rnd: random.Random, items: list) -> object:
    return items[rnd.randrange(len(items))] if items else None


# --- respellings --------------------------------------------------------------


def restyle_rules(m: SgModel, rnd: random.Random) -> SgModel | None:
    """The same grants as inline blocks, separate rules or VPC rule resources."""
    if any(g.for_each or g.count_zero for g in m.grants):
        return None
    if any(g.protocol == '"all"' for g in m.grants):
        return None
    choices = [s for s in ("inline", "rule", "vpc", "attribute") if s != m.style]
    style = rnd.choice(choices)
    if style == "attribute" and any(isinstance(g.cidrs, str) or isinstance(g.ipv6, str)
                                    for g in m.grants):  # fmt: skip
        return None
    grants = []
    for g in m.grants:
        if _all(g):
            ports = (None, None) if style == "vpc" else ("0", "0")
            if m.style != "vpc" and (_number(g.from_port), _number(g.to_port)) != (
                0,
                0,
            ):
                return None  # -1 with ports: only a separate rule accepts it
            g = replace(g, from_port=ports[0], to_port=ports[1])
        grants.append(g)
    return replace(m, style=style, grants=tuple(grants))


def toggle_alignment(m: SgModel, rnd: random.Random) -> SgModel | None:
    """``=`` signs aligned as terraform fmt writes them, or not."""
    return replace(m, align=not m.align)


def reverse_grants(m: SgModel, rnd: random.Random) -> SgModel | None:
    """The grants in reverse order: rules are a set, order never matters."""
    if len(m.grants) < 2:
        return None
    return replace(m, grants=tuple(reversed(m.grants)))


def split_cidr_list(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A grant with several literal CIDRs written as two grants, same ports."""
    fits = [i for i, g in enumerate(m.grants) for key in ("cidrs", "ipv6")
            if not isinstance(getattr(g, key), str) and len(getattr(g, key)) > 1
            and not g.self_ and not g.groups and not g.prefix]  # fmt: skip
    i = _pick(rnd, fits)
    if i is None:
        return None
    g = m.grants[i]
    key = "cidrs" if not isinstance(g.cidrs, str) and len(g.cidrs) > 1 else "ipv6"
    values = getattr(g, key)
    first = replace(g, **{key: values[: len(values) // 2]})
    second = replace(g, **{key: values[len(values) // 2 :]},
                     **{("ipv6" if key == "cidrs" else "cidrs"): ()})  # fmt: skip
    grants = list(m.grants)
    grants[i : i + 1] = [first, second]
    return replace(m, grants=tuple(grants))


_PROTOCOLS = {'"tcp"': '"6"', '"6"': '"tcp"', '"udp"': '"17"', '"17"': '"udp"'}


def respell_protocol(m: SgModel, rnd: random.Random) -> SgModel | None:
    """``"tcp"`` as protocol number ``"6"`` (``"udp"`` as ``"17"``), or back."""
    fits = [i for i, g in enumerate(m.grants) if g.protocol in _PROTOCOLS]
    i = _pick(rnd, fits)
    if i is None:
        return None
    g = m.grants[i]
    return _with(m, i, replace(g, protocol=_PROTOCOLS[g.protocol]))


def respell_ports(m: SgModel, rnd: random.Random) -> SgModel | None:
    """Ports written as strings (``"22"``, Terraform converts) or as numbers."""
    fits = [i for i, g in enumerate(m.grants) if g.from_port and g.to_port
            and _number(g.from_port) is not None]  # fmt: skip
    i = _pick(rnd, fits)
    if i is None:
        return None
    g = m.grants[i]

    def flip(text: str) -> str:
        value = _number(text)
        return str(value) if text.startswith('"') else quote(str(value))

    return _with(m, i, replace(g, from_port=flip(g.from_port), to_port=flip(g.to_port)))


def hoist_cidrs_to_variable(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A literal CIDR list moved into a variable's default, referenced by name."""
    if any(name == "source_cidrs" for name, _ in m.variables):
        return None
    fits = [(i, key) for i, g in enumerate(m.grants) for key in ("cidrs", "ipv6")
            if isinstance(getattr(g, key), tuple) and getattr(g, key)]  # fmt: skip
    chosen = _pick(rnd, fits)
    if chosen is None:
        return None
    i, key = chosen
    values = getattr(m.grants[i], key)
    variables = (*m.variables, ("source_cidrs", "[" + ", ".join(values) + "]"))
    hoisted = _with(m, i, replace(m.grants[i], **{key: "var.source_cidrs"}))
    return replace(hoisted, variables=variables)


_ZEROS = {'"::/0"': '"::0/0"', '"::0/0"': '"0:0:0:0:0:0:0:0/0"',
          '"0:0:0:0:0:0:0:0/0"': '"::/0"'}  # fmt: skip


def respell_ipv6_zero(m: SgModel, rnd: random.Random) -> SgModel | None:
    """``::/0`` written ``::0/0`` or ``0:0:0:0:0:0:0:0/0``: one network."""
    for i, g in enumerate(m.grants):
        if isinstance(g.ipv6, tuple) and any(v in _ZEROS for v in g.ipv6):
            ipv6 = tuple(_ZEROS.get(v, v) for v in g.ipv6)
            return _with(m, i, replace(g, ipv6=ipv6))
    return None


# --- fixes ----------------------------------------------------------------------


def restrict_to_private(m: SgModel, rnd: random.Random) -> SgModel | None:
    """Every CIDR source of the grants letting the port in narrowed to private space."""
    grants, changed = [], False
    for g in m.grants:
        if _covers(g, m.port) and (g.cidrs or g.ipv6):
            g = replace(g, cidrs=_PRIVATE4 if g.cidrs else (),
                        ipv6=_PRIVATE6 if g.ipv6 else ())  # fmt: skip
            changed = True
        grants.append(g)
    if not changed:
        return None
    return replace(m, grants=tuple(grants), variables=(), locals=())


def drop_open_grant(m: SgModel, rnd: random.Random) -> SgModel | None:
    """The first grant letting the port in removed (the group keeps the rest)."""
    fits = [i for i, g in enumerate(m.grants) if _covers(g, m.port)]
    if not fits or len(m.grants) < 2:
        return None
    return _with(m, fits[0], None)


def move_port_off(m: SgModel, rnd: random.Random) -> SgModel | None:
    """Grants letting the port in moved to a port next to it (the range shrinks)."""
    grants, changed = [], False
    other = str(m.port + 1000 if m.port < 60000 else m.port - 1000)
    for g in m.grants:
        if _covers(g, m.port) and not _all(g) and not g.for_each:
            g = replace(g, from_port=other, to_port=other)
            changed = True
        grants.append(g)
    return replace(m, grants=tuple(grants)) if changed else None


# --- one blind spot each --------------------------------------------------------


def open_to_world(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A grant on the port given 0.0.0.0/0 and ::/0 beside its other sources."""
    fits = [i for i, g in enumerate(m.grants) if _covers(g, m.port)
            and not g.count_zero and isinstance(g.cidrs, tuple)
            and isinstance(g.ipv6, tuple)]  # fmt: skip
    i = _pick(rnd, fits)
    if i is None:
        return None
    g = m.grants[i]
    cidrs = g.cidrs if '"0.0.0.0/0"' in g.cidrs else (*g.cidrs, '"0.0.0.0/0"')
    ipv6 = g.ipv6 if '"::/0"' in g.ipv6 else (*g.ipv6, '"::/0"')
    return _with(m, i, replace(g, cidrs=cidrs, ipv6=ipv6))


def widen_port_range(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A tcp grant's range widened to 0..65535 (every port)."""
    fits = [i for i, g in enumerate(m.grants) if not _all(g) and not g.for_each
            and g.protocol in ('"tcp"', '"6"') and g.from_port != "0"]  # fmt: skip
    i = _pick(rnd, fits)
    if i is None:
        return None
    return _with(m, i, replace(m.grants[i], from_port="0", to_port="65535"))


def protocol_to_all(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A separate rule's protocol set to ``-1``, ports kept: AWS ignores them."""
    if m.style != "rule":
        return None
    fits = [i for i, g in enumerate(m.grants) if not _all(g)]
    i = _pick(rnd, fits)
    if i is None:
        return None
    return _with(m, i, replace(m.grants[i], protocol=quote("-1")))


_HALVES = {'"128.0.0.0/1"': '"0.0.0.0/1"', '"0.0.0.0/1"': '"128.0.0.0/1"',
           '"8000::/1"': '"::/1"', '"::/1"': '"8000::/1"'}  # fmt: skip


def add_missing_half(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A grant holding one /1 half given the other: together the whole space."""
    for i, g in enumerate(m.grants):
        for key in ("cidrs", "ipv6"):
            values = getattr(g, key)
            if isinstance(values, tuple):
                missing = [_HALVES[v] for v in values if v in _HALVES
                           and _HALVES[v] not in values]  # fmt: skip
                if missing:
                    return _with(m, i, replace(g, **{key: (*values, missing[0])}))
    return None


def drop_count_zero(m: SgModel, rnd: random.Random) -> SgModel | None:
    """``count = 0`` removed from a rule resource: now it is created."""
    for i, g in enumerate(m.grants):
        if g.count_zero:
            return _with(m, i, replace(g, count_zero=False))
    return None


def protocol_to_udp(m: SgModel, rnd: random.Random) -> SgModel | None:
    """A tcp grant switched to udp: the same port number, another protocol."""
    fits = [i for i, g in enumerate(m.grants) if g.protocol in ('"tcp"', '"6"')]
    i = _pick(rnd, fits)
    if i is None:
        return None
    return _with(m, i, replace(m.grants[i], protocol=quote("udp")))


def _m(fn, family: str, *, keeps_meaning: bool = False) -> Mutator:
    return Mutator(fn.__name__, family, fn, keeps_meaning)  # type: ignore[arg-type]


MUTATORS: tuple[Mutator, ...] = (
    # respellings
    _m(restyle_rules, "spelling", keeps_meaning=True),
    _m(toggle_alignment, "spelling", keeps_meaning=True),
    _m(reverse_grants, "spelling", keeps_meaning=True),
    _m(split_cidr_list, "cidr-splits", keeps_meaning=True),
    _m(respell_protocol, "protocol-all", keeps_meaning=True),
    _m(respell_ports, "port-ranges", keeps_meaning=True),
    _m(hoist_cidrs_to_variable, "computed-cidrs", keeps_meaning=True),
    _m(respell_ipv6_zero, "ipv6-spellings", keeps_meaning=True),
    # fixes
    _m(restrict_to_private, "cidr-splits"),
    _m(drop_open_grant, "mixed-sources"),
    _m(move_port_off, "port-ranges"),
    # one blind spot each
    _m(open_to_world, "cidr-splits"),
    _m(widen_port_range, "port-ranges"),
    _m(protocol_to_all, "protocol-all"),
    _m(add_missing_half, "cidr-splits"),
    _m(drop_count_zero, "decoys"),
    _m(protocol_to_udp, "protocol-all"),
)

REPAIRS = ("restrict_to_private", "drop_open_grant", "move_port_off")


def mutator_named(name: str) -> Mutator:
    for mutator in MUTATORS:
        if mutator.name == name:
            return mutator
    raise KeyError(f"no sg mutator {name!r}")
