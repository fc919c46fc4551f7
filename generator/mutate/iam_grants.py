"""Identity-policy mutators: edits that grant, deny, scope or condition escalation.

Each function is one named edit of a ``Policy`` with a ``random.Random``;
it returns None when it does not apply (no statement to edit). Which
actions count as escalation ingredients comes from the grammar's method
table (``grammars/iam.yaml``), and only decides *where* an edit lands: the
oracle decides every verdict. The traps these edits walk into are numbered
as in shared/research/iam.md section 2.4.
"""

from __future__ import annotations

import random
from typing import Any

from generator.grammar.iam import (
    RandomChooser,
    action_matches,
    benign_statement,
    default_grammar,
    escalation_statements,
    spell_action,
)
from generator.mutate.iam_base import Policy, as_list, set_statements

__all__ = [
    "add_attacker_condition",
    "add_broad_deny",
    "add_conditional_deny",
    "add_deny_notaction_guardrail",
    "add_narrow_deny",
    "add_passed_to_service",
    "change_version",
    "drop_method_action",
    "grant_escalation_method",
    "grant_lookalike_action",
    "grant_star_action",
    "harden_policy",
    "require_mfa_on_allow",
    "scope_multi_resource_action",
    "scope_resource_to_username",
    "scope_to_other_account",
    "scope_to_wrong_type",
    "spell_star_as_arn",
    "split_wildcard",
    "swap_action_for_notaction",
    "swap_resource_for_notresource",
    "widen_action_wildcard",
]

_ACCOUNT = "111122223333"


def _identity(policy: Policy) -> bool:
    return policy.kind == "identity"


def _escalation_hits(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """(pattern, escalation action) pairs an Action element covers."""
    g = default_grammar()
    return [
        (pattern, action)
        for pattern in as_list(statement.get("Action"))
        if isinstance(pattern, str)
        for action in g.escalation_actions()
        if action_matches(pattern, action)
    ]


def _granting(statements: list[dict[str, Any]]) -> list[int]:
    """Indexes of Allow statements whose Action covers an escalation action."""
    return [
        i
        for i, s in enumerate(statements)
        if s.get("Effect") == "Allow" and _escalation_hits(s)
    ]


def _target_of(action: str) -> str:
    for method in default_grammar().methods:
        for name, target in method.actions:
            if name == action:
                return target
    return "any"


def _renamed(statement: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``statement`` with key ``old`` renamed ``new`` in the same place."""
    return {new if k == old else k: v for k, v in statement.items()}


def _insert(statements: list[dict], rnd: random.Random, new: dict) -> None:
    statements.insert(rnd.randint(0, len(statements)), new)


# --- granting -------------------------------------------------------------------


def grant_escalation_method(p: Policy, rnd: random.Random) -> Policy | None:
    """A developer policy gains the statements of one escalation method, as
    written in the catalogue (say iam:PassRole plus lambda:CreateFunction and
    lambda:InvokeFunction on ``*``)."""
    if not _identity(p):
        return None
    g, c = default_grammar(), RandomChooser(rnd)
    twin, statements = p.edit()
    method = c.pick(tuple((m, m.weight) for m in g.methods))
    for statement in escalation_statements(c, g, method, spelled=False):
        _insert(statements, rnd, statement)
    set_statements(twin.document, statements)
    return twin


def grant_lookalike_action(p: Policy, rnd: random.Random) -> Policy | None:
    """The near miss of a grant: read-only neighbours of an escalation action
    (iam:GetUserPolicy beside iam:PutUserPolicy, lambda:GetFunction) on ``*``."""
    if not _identity(p):
        return None
    g = default_grammar()
    twin, statements = p.edit()
    service = rnd.choice(sorted(g.lookalikes))
    actions = rnd.sample(g.lookalikes[service], min(2, len(g.lookalikes[service])))
    if rnd.random() < 0.3:
        # The read-only wildcard of the service: iam:Get*, lambda:List*.
        actions[0] = f"{actions[0].split(':')[0]}:{rnd.choice(('Get*', 'List*'))}"
    new: dict[str, Any] = {
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": "*",
    }
    _insert(statements, rnd, new)
    set_statements(twin.document, statements)
    return twin


def grant_star_action(p: Policy, rnd: random.Random) -> Policy | None:
    """Admin shapes and their near misses (traps 1, 14): ``*`` on ``*``,
    ``*`` on one bucket, ``iam:*`` on ``*``, a PowerUser-style NotAction."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    shape = rnd.choice(("star", "bucket", "iam-star", "power-user", "read-star"))
    new: dict[str, Any] = {
        "star": {"Effect": "Allow", "Action": "*", "Resource": "*"},
        "bucket": {
            "Effect": "Allow",
            "Action": "*",
            "Resource": ["arn:aws:s3:::acme-reports", "arn:aws:s3:::acme-reports/*"],
        },
        "iam-star": {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        "power-user": {
            "Effect": "Allow",
            "NotAction": ["iam:*", "organizations:*", "account:*"],
            "Resource": "*",
        },
        "read-star": {
            "Effect": "Allow",
            "Action": ["s3:*", "ec2:Describe*"],
            "Resource": "*",
        },
    }[shape]
    _insert(statements, rnd, new)
    set_statements(twin.document, statements)
    return twin


def drop_method_action(p: Policy, rnd: random.Random) -> Policy | None:
    """One ingredient of a method goes missing: PassRole stays but
    lambda:InvokeFunction is dropped, so the path may no longer close."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hits = _granting(statements)
    if not hits:
        return None
    index = rnd.choice(hits)
    statement = statements[index]
    patterns = as_list(statement["Action"])
    victim = rnd.choice([pattern for pattern, _ in _escalation_hits(statement)])
    kept = [a for a in patterns if a != victim]
    if kept:
        statement["Action"] = kept if isinstance(statement["Action"], list) else kept[0]
    elif len(statements) > 1:
        del statements[index]
    else:
        return None
    set_statements(twin.document, statements)
    return twin


def harden_policy(p: Policy, rnd: random.Random) -> Policy | None:
    """A reviewer's fix: drop every Allow that reaches an escalation action,
    and every NotAction or NotResource Allow; the ordinary grants stay."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    kept = [
        s
        for s in statements
        if s.get("Effect") != "Allow"
        or not (_escalation_hits(s) or "NotAction" in s or "NotResource" in s)
    ]
    if len(kept) == len(statements):
        return None
    if not any(s.get("Effect") == "Allow" for s in kept):
        kept.append(benign_statement(RandomChooser(rnd), default_grammar()))
    set_statements(twin.document, kept)
    return twin


# --- denying ----------------------------------------------------------------------


def _deny_for(statements, rnd: random.Random) -> tuple[str, str] | None:
    hits = [h for i in _granting(statements) for h in _escalation_hits(statements[i])]
    return rnd.choice(hits) if hits else None


def add_narrow_deny(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 3: a Deny of the escalation action on one named resource (the
    admin role, a prod function) leaves the action allowed everywhere else."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hit = _deny_for(statements, rnd)
    if hit is None:
        return None
    _, action = hit
    target = _target_of(action)
    resource = {
        "user": f"arn:aws:iam::{_ACCOUNT}:user/admin",
        "role": f"arn:aws:iam::{_ACCOUNT}:role/admin",
        "group": f"arn:aws:iam::{_ACCOUNT}:group/admins",
        "policy": f"arn:aws:iam::{_ACCOUNT}:policy/admin-*",
    }.get(target, f"arn:aws:lambda:us-east-1:{_ACCOUNT}:function:prod-*")
    deny = {"Effect": "Deny", "Action": action, "Resource": resource}
    statements.append(deny)
    set_statements(twin.document, statements)
    return twin


def add_broad_deny(p: Policy, rnd: random.Random) -> Policy | None:
    """The fix by Deny: every escalation action the policy allows is denied
    on ``*``, spelled in the catalogue's case (a Deny ignores case too)."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    actions = sorted(
        {a for i in _granting(statements) for _, a in _escalation_hits(statements[i])}
    )
    if not actions:
        return None
    statements.append({"Effect": "Deny", "Action": actions, "Resource": "*"})
    set_statements(twin.document, statements)
    return twin


def add_conditional_deny(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 4: a Deny of the escalation action that applies only without MFA
    or outside the office network, so the action is not removed for good."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hit = _deny_for(statements, rnd)
    if hit is None:
        return None
    condition = rnd.choice(
        (
            {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
            {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        )
    )
    statements.append(
        {"Effect": "Deny", "Action": hit[1], "Resource": "*", "Condition": condition}
    )
    set_statements(twin.document, statements)
    return twin


def add_deny_notaction_guardrail(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 2: "deny everything except s3, logs and cloudwatch" as a Deny with
    NotAction; sometimes the except-list also names iam:* (no guard at all)."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    allowed = ["s3:*", "logs:*", "cloudwatch:*", "dynamodb:*", "ec2:Describe*"]
    listed = sorted(rnd.sample(allowed, rnd.randint(2, 4)))
    if rnd.random() < 0.35:
        hit = _deny_for(statements, rnd)
        service = hit[1].split(":")[0] if hit else "iam"
        listed.append(f"{service}:*")
    statements.append({"Effect": "Deny", "NotAction": listed, "Resource": "*"})
    set_statements(twin.document, statements)
    return twin


# --- conditions -------------------------------------------------------------------


def add_attacker_condition(p: Policy, rnd: random.Random) -> Policy | None:
    """An escalation Allow gains a condition the caller satisfies at will
    (a requested region, a request tag): it restricts nothing (iam.md 2.3)."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hits = [i for i in _granting(statements) if "Condition" not in statements[i]]
    if not hits:
        return None
    statement = statements[rnd.choice(hits)]
    statement["Condition"] = rnd.choice(
        (
            {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
            {"StringEquals": {"aws:RequestTag/team": "platform"}},
            {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}},
        )
    )
    return twin


def require_mfa_on_allow(p: Policy, rnd: random.Random) -> Policy | None:
    """An escalation Allow only with MFA: possible, not certain, so the
    oracle may call it undecidable and the case never enters a suite."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hits = [i for i in _granting(statements) if "Condition" not in statements[i]]
    if not hits:
        return None
    statements[rnd.choice(hits)]["Condition"] = {
        "Bool": {"aws:MultiFactorAuthPresent": "true"}
    }
    return twin


def add_passed_to_service(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 5: iam:PassRole only to one service (iam:PassedToService), which
    keeps the Lambda path open and closes the EC2 one, or the reverse."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    for index in _granting(statements):
        statement = statements[index]
        passes = [
            a for a in as_list(statement["Action"]) if action_matches(a, "iam:PassRole")
        ]
        if not passes or "Condition" in statement:
            continue
        service = rnd.choice(
            (
                "lambda.amazonaws.com",
                "ec2.amazonaws.com",
                "glue.amazonaws.com",
                "cloudformation.amazonaws.com",
            )
        )
        condition = {"StringEquals": {"iam:PassedToService": service}}
        rest = [a for a in as_list(statement["Action"]) if a not in passes]
        if rest:
            # The condition must not land on the statement's other actions.
            statement["Action"] = rest if len(rest) > 1 else rest[0]
            single = {k: v for k, v in statement.items() if k != "Sid"}
            single["Action"] = passes[0] if len(passes) == 1 else passes
            single["Condition"] = condition
            statements.insert(index + 1, single)
        else:
            statement["Condition"] = condition
        set_statements(twin.document, statements)
        return twin
    return None


# --- actions ----------------------------------------------------------------------


def swap_action_for_notaction(p: Policy, rnd: random.Random) -> Policy | None:
    """Traps 1 and 2: ``Action`` becomes ``NotAction``, so an Allow of s3:Get*
    on ``*`` grants every other action of every service, iam:* included."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    choices = [i for i, s in enumerate(statements) if "Action" in s]
    if not choices:
        return None
    index = rnd.choice(choices)
    statements[index] = _renamed(statements[index], "Action", "NotAction")
    set_statements(twin.document, statements)
    return twin


def widen_action_wildcard(p: Policy, rnd: random.Random) -> Policy | None:
    """Traps 6, 7 and 26: an escalation action written as iam:Put*Policy,
    iam:P?tUserPolicy, iam:* or IAM:*; each still covers the action."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hits = [
        (i, h) for i in _granting(statements) for h in _escalation_hits(statements[i])
    ]
    if not hits:
        return None
    index, (pattern, action) = rnd.choice(hits)
    spelling = rnd.choice(("suffix-star", "infix-star", "question", "service-star"))
    new = spell_action(action, spelling)
    if rnd.random() < 0.3:
        service, name = new.split(":", 1)
        new = f"{service.upper()}:{name}"
    if new == pattern:
        return None
    statement = statements[index]
    statement["Action"] = _replaced(statement["Action"], pattern, new)
    return twin


def split_wildcard(p: Policy, rnd: random.Random) -> Policy | None:
    """A broad wildcard is split into narrower ones the way a reviewer
    scopes it down: iam:* into iam:Get* and iam:List* (plus, sometimes, a
    write prefix such as iam:Put* that keeps part of the danger)."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    found = [
        (i, a)
        for i, s in enumerate(statements)
        for a in as_list(s.get("Action"))
        if isinstance(a, str) and (a == "*" or a.endswith(":*"))
    ]
    if not found:
        return None
    index, pattern = rnd.choice(found)
    service = "iam" if pattern == "*" else pattern.split(":")[0]
    parts = [f"{service}:Get*", f"{service}:List*"]
    if rnd.random() < 0.5:
        write = rnd.choice(("Put*", "Create*", "Attach*", "Update*", "Pass*"))
        parts.append(f"{service}:{write}")
    statement = statements[index]
    statement["Action"] = _replaced(statement["Action"], pattern, parts)
    return twin


def _replaced(value: Any, old: str, new: str | list[str]) -> Any:
    items: list[Any] = []
    for item in as_list(value):
        if item == old:
            items.extend(new if isinstance(new, list) else [new])
        else:
            items.append(item)
    items = list(dict.fromkeys(items))
    if isinstance(value, str) and len(items) == 1:
        return items[0]
    return items


# --- resources --------------------------------------------------------------------


def swap_resource_for_notresource(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 10: ``Resource`` becomes ``NotResource``, so an Allow scoped to
    one bucket grants its actions on everything except that bucket."""
    twin, statements = p.edit()
    choices = [i for i, s in enumerate(statements) if "Resource" in s]
    if not choices or p.kind != "identity":
        return None
    index = rnd.choice(choices)
    statements[index] = _renamed(statements[index], "Resource", "NotResource")
    set_statements(twin.document, statements)
    return twin


def _set_resources(p: Policy, rnd: random.Random, make) -> Policy | None:
    """Rewrite the Resource of one escalation Allow with ``make(resource, action)``."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    hits = [i for i in _granting(statements) if "Resource" in statements[i]]
    if not hits:
        return None
    statement = statements[rnd.choice(hits)]
    action = _escalation_hits(statement)[0][1]
    old = as_list(statement["Resource"])
    new = [make(r, action) for r in old]
    if new == old:
        return None
    statement["Resource"] = new if isinstance(statement["Resource"], list) else new[0]
    return twin


def spell_star_as_arn(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 9: ``*`` written as an ARN that still covers every target:
    arn:aws:iam::*:user/*, arn:aws:iam::111122223333:*, arn:aws:iam::*:*."""

    def make(resource: str, action: str) -> str:
        target = _target_of(action)
        if resource != "*" or target == "any":
            return resource
        return rnd.choice(
            (
                f"arn:aws:iam::*:{target}/*",
                f"arn:aws:iam::{_ACCOUNT}:*",
                "arn:aws:iam::*:*",
                f"arn:aws:iam::{_ACCOUNT}:{target}/*",
            )
        )

    return _set_resources(p, rnd, make)


def scope_to_other_account(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 29: the IAM resources sit in another account (999988887777), so
    the grant reaches no user or role the caller could escalate through."""

    def make(resource: str, action: str) -> str:
        target = _target_of(action)
        if target == "any":
            return resource
        if resource == "*" or resource.startswith("arn:aws:iam::*:"):
            return f"arn:aws:iam::999988887777:{target}/*"
        return resource.replace(_ACCOUNT, "999988887777").replace(
            "444455556666", "999988887777"
        )

    return _set_resources(p, rnd, make)


def scope_to_wrong_type(p: Policy, rnd: random.Random) -> Policy | None:
    """iam:PutUserPolicy scoped to role/* (or PassRole to user/*): a Resource
    of the wrong type, which matches nothing the action acts on."""
    other = {"user": "role", "role": "user", "group": "role", "policy": "user"}

    def make(resource: str, action: str) -> str:
        target = _target_of(action)
        if target == "any":
            return resource
        return f"arn:aws:iam::{_ACCOUNT}:{other[target]}/*"

    return _set_resources(p, rnd, make)


def scope_resource_to_username(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 11: a user action scoped to ``user/${aws:username}``: escalation
    for PutUserPolicy on oneself, none for CreateAccessKey on oneself."""

    def make(resource: str, action: str) -> str:
        if _target_of(action) != "user":
            return resource
        account = rnd.choice((_ACCOUNT, "*"))
        return f"arn:aws:iam::{account}:user/${{aws:username}}"

    return _set_resources(p, rnd, make)


def change_version(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 12: Version 2012-10-17 becomes 2008-10-17 or goes missing, and
    ``${aws:username}`` turns into literal text that matches no user."""
    twin = p.edit()[0]
    document = twin.document
    current = document.get("Version", "none")
    new = rnd.choice([v for v in ("2012-10-17", "2008-10-17", "none") if v != current])
    rest = {k: v for k, v in document.items() if k != "Version"}
    document.clear()
    if new != "none":
        document["Version"] = new
    document.update(rest)
    return twin


def scope_multi_resource_action(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 13: ec2:RunInstances allowed only on instance/* cannot launch
    (it also needs the image, subnet, network interface ...)."""
    if not _identity(p):
        return None
    twin, statements = p.edit()
    for index in _granting(statements):
        statement = statements[index]
        runs = [
            a
            for a in as_list(statement["Action"])
            if action_matches(a, "ec2:RunInstances")
        ]
        if not runs or "NotResource" in statement:
            continue
        scoped = {
            "Effect": "Allow",
            "Action": runs[0],
            "Resource": f"arn:aws:ec2:us-east-1:{_ACCOUNT}:instance/*",
        }
        rest = [a for a in as_list(statement["Action"]) if a not in runs]
        if rest:
            statement["Action"] = rest if len(rest) > 1 else rest[0]
            statements.insert(index + 1, scoped)
        else:
            statements[index] = scoped
        set_statements(twin.document, statements)
        return twin
    return None
