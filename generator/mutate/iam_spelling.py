"""IAM respellings: the same policy, other text. None may move a verdict.

JSON layout, key order, statement order, a statement split in two or two
merged, a lone value bare or in a list, a lone statement bare or in a
list, action-name case, principal spellings of "anyone" and of an
account. Each is a meaning-keeping edit under iam.md section 2.2; the
contract tests hold every one to the oracle, and a sibling whose truth
moves is dropped with a warning.
"""

from __future__ import annotations

import random
from typing import Any

from generator.grammar.iam_json import LAYOUTS
from generator.mutate.iam_base import Policy, as_list, set_statements

__all__ = [
    "merge_statements",
    "name_statements",
    "relayout_json",
    "reorder_statements",
    "respell_account_principal",
    "respell_action_case",
    "respell_public_principal",
    "shuffle_statement_keys",
    "split_statement",
    "toggle_statement_list",
    "toggle_value_lists",
]

_ELEMENTS = ("Action", "NotAction", "Resource", "NotResource")


def relayout_json(p: Policy, rnd: random.Random) -> Policy | None:
    """The policy as another person writes it: two-space instead of four,
    tabs, one line, minified, lists of actions inline."""
    layouts = [name for name in LAYOUTS if name != p.style.layout]
    rnd.shuffle(layouts)
    # Without a list, hand-4 and pretty-4 write the same text: skip those.
    text = p.text()
    return next(
        (p.restyled(name) for name in layouts if p.restyled(name).text() != text),
        None,
    )


def reorder_statements(p: Policy, rnd: random.Random) -> Policy | None:
    """Statement order never matters: the Deny moves above the Allow, the
    escalation grant from first to last."""
    twin, statements = p.edit()
    if len(statements) < 2:
        return None
    order = list(range(len(statements)))
    while order == sorted(order):
        rnd.shuffle(order)
    set_statements(twin.document, [statements[i] for i in order])
    return twin


def shuffle_statement_keys(p: Policy, rnd: random.Random) -> Policy | None:
    """Key order never matters: Resource before Action, Effect last,
    Statement before Version."""
    twin, statements = p.edit()
    changed = False
    for statement in statements:
        keys = list(statement)
        rnd.shuffle(keys)
        if keys != list(statement):
            changed = True
        items = [(k, statement[k]) for k in keys]
        statement.clear()
        statement.update(items)
    top = list(twin.document)
    if len(top) > 1 and rnd.random() < 0.3:
        top.reverse()
        items = [(k, twin.document[k]) for k in top]
        twin.document.clear()
        twin.document.update(items)
        changed = True
    return twin if changed else None


def split_statement(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 15's other face: one statement with several actions written as
    two statements that share Effect, Resource and Condition."""
    twin, statements = p.edit()
    choices = [
        i
        for i, s in enumerate(statements)
        if isinstance(s.get("Action"), list) and len(s["Action"]) >= 2
    ]
    if not choices:
        return None
    index = rnd.choice(choices)
    statement = statements[index]
    actions = statement["Action"]
    cut = rnd.randint(1, len(actions) - 1)
    first, second = dict(statement), dict(statement)
    first["Action"], second["Action"] = actions[:cut], actions[cut:]
    if "Sid" in second:
        second["Sid"] = f"{second['Sid']}2"
    statements[index : index + 1] = [first, second]
    set_statements(twin.document, statements)
    return twin


def merge_statements(p: Policy, rnd: random.Random) -> Policy | None:
    """Two statements that differ only in their actions become one, the way
    a reviewer tidies a policy."""
    twin, statements = p.edit()
    for i, first in enumerate(statements):
        for j in range(i + 1, len(statements)):
            second = statements[j]
            same = {k: v for k, v in first.items() if k not in ("Action", "Sid")}
            other = {k: v for k, v in second.items() if k not in ("Action", "Sid")}
            if "Action" in first and "Action" in second and same == other:
                actions = as_list(first["Action"]) + as_list(second["Action"])
                first["Action"] = list(dict.fromkeys(actions))
                del statements[j]
                set_statements(twin.document, statements)
                return twin
    return None


def toggle_value_lists(p: Policy, rnd: random.Random) -> Policy | None:
    """A lone value written bare or as a one-item list: ``"Action": "s3:*"``
    and ``"Action": ["s3:*"]`` say the same (trap 16)."""
    twin, statements = p.edit()
    spots = [
        (s, key)
        for s in statements
        for key in _ELEMENTS
        if key in s and len(as_list(s[key])) == 1
    ]
    if not spots:
        return None
    statement, key = rnd.choice(spots)
    value = statement[key]
    statement[key] = value[0] if isinstance(value, list) else [value]
    return twin


def toggle_statement_list(p: Policy, rnd: random.Random) -> Policy | None:
    """A lone statement written as an object or as a one-item list (trap 16:
    a peer tool rejects the object form, IAM accepts both)."""
    twin, statements = p.edit()
    if len(statements) != 1:
        return None
    value = twin.document["Statement"]
    twin.document["Statement"] = value[0] if isinstance(value, list) else [value]
    return twin


def name_statements(p: Policy, rnd: random.Random) -> Policy | None:
    """Statements gain Sids (Stmt1, Stmt2, ...), which mean nothing to the
    evaluation but make a policy look reviewed."""
    twin, statements = p.edit()
    if all("Sid" in s for s in statements):
        return None
    taken = {s.get("Sid") for s in statements}
    for n, statement in enumerate(statements, start=1):
        if "Sid" not in statement:
            sid = f"Stmt{n}"
            while sid in taken:
                sid += "x"
            taken.add(sid)
            items = [("Sid", sid), *statement.items()]
            statement.clear()
            statement.update(items)
    return twin


def respell_action_case(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 7: action names are case-insensitive, so iam:PutUserPolicy,
    IAM:putuserpolicy and iam:PUTUSERPOLICY are one action."""
    twin, statements = p.edit()
    spots = [
        (s, key, a)
        for s in statements
        for key in ("Action", "NotAction")
        for a in as_list(s.get(key))
        if isinstance(a, str) and ":" in a
    ]
    if not spots:
        return None
    statement, key, action = rnd.choice(spots)
    service, name = action.split(":", 1)
    new = rnd.choice(
        (action.lower(), f"{service.upper()}:{name}", f"{service}:{name.swapcase()}")
    )
    if new == action:
        return None
    values = [new if a == action else a for a in as_list(statement[key])]
    statement[key] = values if isinstance(statement[key], list) else values[0]
    return twin


def _principals(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if "Principal" in s]


def respell_public_principal(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 22: ``"*"``, ``{"AWS": "*"}`` and ``{"AWS": ["*"]}`` all name
    anyone; a public principal is written in another of the three forms."""
    twin, statements = p.edit()
    forms: tuple[Any, ...] = ("*", {"AWS": "*"}, {"AWS": ["*"]})
    spots = [s for s in _principals(statements) if s["Principal"] in forms]
    if not spots:
        return None
    statement = rnd.choice(spots)
    statement["Principal"] = rnd.choice(
        [f for f in forms if f != statement["Principal"]]
    )
    return twin


def respell_account_principal(p: Policy, rnd: random.Random) -> Policy | None:
    """An account named by its 12-digit id or by its root ARN: the same
    principal (every identity of that account its own policies allow)."""
    twin, statements = p.edit()
    for statement in _principals(statements):
        principal = statement["Principal"]
        if not isinstance(principal, dict) or not isinstance(principal.get("AWS"), str):
            continue
        aws = principal["AWS"]
        if aws.isdigit() and len(aws) == 12:
            principal["AWS"] = f"arn:aws:iam::{aws}:root"
            return twin
        if aws.startswith("arn:aws:iam::") and aws.endswith(":root"):
            principal["AWS"] = aws.split(":")[4]
            return twin
    return None
