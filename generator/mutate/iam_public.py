"""Resource- and trust-policy mutators: who may come in, and on what condition.

Traps 22-25 of shared/research/iam.md section 2.4: the spellings of "anyone"
as a principal, conditions that restrict (organisation, account, VPC
endpoint, a narrow source IP) next to ones that only look like they do
(TLS only, a Referer, ``o-*``, 0.0.0.0/0, a negated operator), a Deny that
cancels a public Allow, and federated trust without a subject condition.
"""

from __future__ import annotations

import random
from typing import Any

from generator.grammar.iam import RandomChooser, default_grammar, public_condition
from generator.mutate.iam_base import Policy, set_statements

__all__ = [
    "add_org_deny",
    "add_public_condition",
    "drop_condition",
    "drop_federated_subject",
    "make_principal_public",
    "restrict_principal_to_account",
    "scope_federated_subject",
    "weaken_public_condition",
]

_ACCOUNT = "111122223333"
_GITHUB = "token.actions.githubusercontent.com"
_COGNITO = "cognito-identity.amazonaws.com"
_PUBLIC = ("*", {"AWS": "*"}, {"AWS": ["*"]})
_RESTRICTIVE = ("org-id", "principal-account", "source-vpce", "source-ip")
# A restrictive condition's look-alike that restricts nothing (trap 23).
_WEAKER = {
    "aws:PrincipalOrgID": ("org-id-like-any", "org-id-negated", "secure-transport"),
    "aws:PrincipalAccount": ("secure-transport", "referer"),
    "aws:SourceVpce": ("secure-transport", "referer"),
    "aws:SourceIp": ("source-ip-any", "referer"),
}


def _aws_allows(statements: list[dict[str, Any]]) -> list[int]:
    """Allow statements whose principal is not a federated provider."""
    return [
        i
        for i, s in enumerate(statements)
        if s.get("Effect") == "Allow"
        and "Principal" in s
        and not (isinstance(s["Principal"], dict) and "Federated" in s["Principal"])
    ]


def _is_public(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        values = aws if isinstance(aws, list) else [aws]
        return "*" in values
    return False


def make_principal_public(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 22: a bucket or role shared with one account is opened to
    ``"*"``, ``{"AWS": "*"}`` or ``{"AWS": ["*"]}``: anyone at all."""
    if p.kind == "identity":
        return None
    twin, statements = p.edit()
    choices = [
        i for i in _aws_allows(statements) if not _is_public(statements[i]["Principal"])
    ]
    if not choices:
        return None
    statements[rnd.choice(choices)]["Principal"] = rnd.choice(_PUBLIC)
    return twin


def restrict_principal_to_account(p: Policy, rnd: random.Random) -> Policy | None:
    """The fix for a public grant: the principal becomes one account, by id
    or by its root ARN (both mean every principal in that account)."""
    if p.kind == "identity":
        return None
    twin, statements = p.edit()
    choices = [
        i for i in _aws_allows(statements) if _is_public(statements[i]["Principal"])
    ]
    if not choices:
        return None
    who = rnd.choice((_ACCOUNT, f"arn:aws:iam::{_ACCOUNT}:root"))
    for index in choices:
        statements[index]["Principal"] = {"AWS": who}
    return twin


def add_public_condition(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 23: a public grant gains a condition; org id, account, VPC
    endpoint or a narrow source IP restrict it, TLS-only or a Referer do not."""
    if p.kind == "identity":
        return None
    twin, statements = p.edit()
    choices = [i for i in _aws_allows(statements) if "Condition" not in statements[i]]
    if not choices:
        return None
    g, c = default_grammar(), RandomChooser(rnd)
    form = c.pick(tuple((f, w) for f, w in g.pools["public_conditions"] if f != "none"))
    statements[rnd.choice(choices)]["Condition"] = public_condition(c, g, form)
    return twin


def weaken_public_condition(p: Policy, rnd: random.Random) -> Policy | None:
    """A restrictive condition is swapped for its look-alike: StringEquals
    o-a1b2c3d4e5 becomes StringLike o-*, a /24 becomes 0.0.0.0/0."""
    if p.kind == "identity":
        return None
    twin, statements = p.edit()
    for index in _aws_allows(statements):
        condition = statements[index].get("Condition")
        if not isinstance(condition, dict):
            continue
        keys = [
            k for block in condition.values() if isinstance(block, dict) for k in block
        ]
        weak = [k for k in keys if k in _WEAKER]
        if not weak:
            continue
        g, c = default_grammar(), RandomChooser(rnd)
        form = rnd.choice(_WEAKER[rnd.choice(weak)])
        statements[index]["Condition"] = public_condition(c, g, form)
        return twin
    return None


def drop_condition(p: Policy, rnd: random.Random) -> Policy | None:
    """A condition is deleted in a clean-up: a grant that was limited to the
    organisation (or to one repository's tokens) now applies to anyone named."""
    if p.kind == "identity":
        return None
    twin, statements = p.edit()
    choices = [
        i
        for i, s in enumerate(statements)
        if s.get("Effect") == "Allow" and "Condition" in s
    ]
    if not choices:
        return None
    del statements[rnd.choice(choices)]["Condition"]
    return twin


def add_org_deny(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 24: a Deny for every principal outside the organisation cancels
    the public Allow above it (peer tools ignore resource-policy Denies)."""
    if p.kind != "resource":
        return None
    twin, statements = p.edit()
    allows = _aws_allows(statements)
    if not allows:
        return None
    grant = statements[allows[0]]
    action = grant.get("Action", "*")
    first = action if isinstance(action, str) else action[0]
    service = first.split(":")[0] if ":" in first else "*"
    deny: dict[str, Any] = {
        "Sid": "DenyOutsideOrg",
        "Effect": "Deny",
        "Principal": "*",
        "Action": f"{service}:*" if service != "*" else "*",
        "Resource": grant.get("Resource", "*"),
        "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
    }
    if rnd.random() < 0.3:
        del deny["Sid"]
    statements.append(deny)
    set_statements(twin.document, statements)
    return twin


def _federated(statements: list[dict[str, Any]]) -> list[int]:
    return [
        i
        for i, s in enumerate(statements)
        if isinstance(s.get("Principal"), dict) and "Federated" in s["Principal"]
    ]


def scope_federated_subject(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 25, fixed: a GitHub OIDC trust gains a ``sub`` condition naming
    one repository and branch; a Cognito trust gains ``aud`` and ``amr``."""
    if p.kind != "trust":
        return None
    twin, statements = p.edit()
    for index in _federated(statements):
        statement = statements[index]
        provider = str(statement["Principal"]["Federated"])
        condition = statement.setdefault("Condition", {})
        if provider.endswith(_GITHUB):
            equals = condition.setdefault("StringEquals", {})
            subject = f"{_GITHUB}:sub"
            if equals.get(subject) or (condition.get("StringLike") or {}).get(subject):
                return None
            equals[subject] = rnd.choice(
                (
                    "repo:acme/deploy:ref:refs/heads/main",
                    "repo:acme/deploy:environment:prod",
                )
            )
            equals.setdefault(f"{_GITHUB}:aud", "sts.amazonaws.com")
            return twin
        if provider == _COGNITO:
            if condition:
                return None
            condition["StringEquals"] = {
                f"{_COGNITO}:aud": "us-east-1:12345678-abcd-1234-abcd-123456789012"
            }
            condition["ForAnyValue:StringLike"] = {f"{_COGNITO}:amr": "authenticated"}
            return twin
    return None


def drop_federated_subject(p: Policy, rnd: random.Random) -> Policy | None:
    """Trap 25: the ``sub`` (or Cognito ``amr``) check is removed and only
    the audience is checked, so any repository's workflow can assume it."""
    if p.kind != "trust":
        return None
    twin, statements = p.edit()
    for index in _federated(statements):
        condition = statements[index].get("Condition")
        if not isinstance(condition, dict):
            continue
        removed = False
        for operator in list(condition):
            block = condition[operator]
            if not isinstance(block, dict):
                continue
            for key in [k for k in block if k.endswith((":sub", ":amr"))]:
                del block[key]
                removed = True
            if not block:
                del condition[operator]
        if removed:
            if not condition:
                del statements[index]["Condition"]
            return twin
    return None
