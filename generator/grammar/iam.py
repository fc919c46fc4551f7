"""Hypothesis strategies for IAM policy documents, drawn from ``grammars/iam.yaml``.

Strategies are plural nouns of what they yield: ``identity_policies``,
``resource_policies``, ``trust_policies`` (each a ``Policy``), and the parts
``statements`` and ``principals``. Arguments are keyword-only and checked
when the strategy is built.

Every builder below takes a *chooser* rather than a Hypothesis ``draw``, so
the grammar strategies and the mutators (which hold a ``random.Random``)
build statements with the same code: ``DrawChooser`` wraps a draw,
``RandomChooser`` a ``random.Random``. The shapes come from iam.md
section 2.2: Statement as one object or a list, string or list values,
Action or NotAction, Resource or NotResource, conditions, principals in
every spelling, Version 2012-10-17, 2008-10-17 or none.

The file itself is read and checked by ``generator.grammar.iam_load``.
Nothing here decides a verdict; the oracle judges every case. The local
``action_matches`` is only used to spell an action differently while still
covering it, and is tested against the semantics of iam.md 2.2.
"""

from __future__ import annotations

import copy
import random
import re
from functools import lru_cache
from typing import Any, Protocol

from hypothesis import strategies as st

from generator.errors import InvalidArgument
from generator.grammar.iam_json import JsonStyle
from generator.grammar.iam_load import (
    GRAMMAR_PATH,
    VOCABULARIES,
    IamGrammar,
    Method,
    Pool,
    check_grammar,
    default_grammar,
    load_iam_grammar,
)
from generator.grammar.pools import weighted
from generator.mutate.iam_base import Policy

__all__ = [
    "GRAMMAR_PATH",
    "DrawChooser",
    "IamGrammar",
    "Method",
    "RandomChooser",
    "action_matches",
    "benign_statement",
    "default_grammar",
    "escalation_statements",
    "identity_policies",
    "load_iam_grammar",
    "principal",
    "principals",
    "public_condition",
    "resource_policies",
    "spell_action",
    "statements",
    "target_resource",
    "trust_policies",
]


# --- choosers -------------------------------------------------------------------


class Chooser(Protocol):
    def pick(self, pool: Pool) -> Any: ...
    def chance(self, percent: int) -> bool: ...
    def integer(self, low: int, high: int) -> int: ...


class DrawChooser:
    """Choices drawn through Hypothesis (shrinkable, seeded by ``draw_examples``)."""

    def __init__(self, draw: Any):
        self.draw = draw

    def pick(self, pool: Pool) -> Any:
        # By index: values may be unhashable (a condition block), and the
        # cached strategy then serves every pool with the same weights.
        index = self.draw(weighted(tuple((i, w) for i, (_, w) in enumerate(pool))))
        return pool[index][0]

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


class RandomChooser:
    """Choices from a ``random.Random`` (the mutators' source of randomness)."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd

    def pick(self, pool: Pool) -> Any:
        values = [v for v, _ in pool]
        return self.rnd.choices(values, weights=[w for _, w in pool])[0]

    def chance(self, percent: int) -> bool:
        return self.rnd.random() * 100 < percent

    def integer(self, low: int, high: int) -> int:
        return self.rnd.randint(low, high)


def _even(values: Any) -> Pool:
    return tuple((v, 1) for v in values)


# --- actions --------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _action_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action pattern covers ``action`` (case-insensitive, * and ?)."""
    return _action_regex(pattern).fullmatch(action) is not None


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name)


def spell_action(action: str, spelling: str) -> str:
    """``action`` written another way that still covers it (iam.md 2.2).

    Case never matters for actions; ``*`` and ``?`` are wildcards. No
    wildcard is ever put in the service prefix (its meaning is unclear).
    """
    service, name = action.split(":", 1)
    words = _words(name)
    if spelling == "lower":
        return action.lower()
    if spelling == "upper-service":
        return f"{service.upper()}:{name}"
    if spelling == "mixed-case":
        return f"{service}:{name.swapcase()}"
    if spelling == "suffix-star" and len(words) > 1:
        return f"{service}:{words[0]}*"
    if spelling == "infix-star" and len(words) > 2:
        return f"{service}:{words[0]}*{words[-1]}"
    if spelling == "question" and len(name) > 2:
        return f"{service}:{name[0]}?{name[2:]}"
    if spelling == "service-star":
        return f"{service}:*"
    if spelling == "star":
        return "*"
    return action


# --- resources ------------------------------------------------------------------

_OTHER_TYPE = {"user": "role", "role": "user", "policy": "user", "group": "role"}
_NAME_POOL = {"user": "users", "role": "roles", "policy": "policies", "group": "groups"}


def target_resource(c: Chooser, g: IamGrammar, target: str, spelling: str) -> str:
    """The Resource an action reaching a ``target`` object is written on."""
    account = c.pick(g.pools["accounts"])
    if target == "any":
        return "*"
    name = c.pick(g.pools[_NAME_POOL[target]])
    arn = f"arn:aws:iam::{account}"
    table = {
        "star": "*",
        "account-wildcard": f"{arn}:{target}/*",
        "any-account": f"arn:aws:iam::*:{target}/*",
        "iam-star": f"{arn}:*",
        "named": f"{arn}:{target}/{name}",
        "pathed": f"{arn}:{target}/dev/*",
        "other-account": (
            f"arn:aws:iam::{c.pick(g.pools['other_accounts'])}:{target}/*"
        ),
        "wrong-type": f"{arn}:{_OTHER_TYPE[target]}/*",
        "not-iam": f"arn:aws:s3:::{c.pick(g.pools['buckets'])}/*",
    }
    if spelling == "self-variable":
        if target == "user":
            return f"{arn}:user/${{aws:username}}"
        return table["named"]
    return table.get(spelling, "*")


# --- statements -----------------------------------------------------------------


def _fill(text: str, c: Chooser, g: IamGrammar) -> str:
    return (
        text.replace("{account}", c.pick(g.pools["accounts"]))
        .replace("{bucket}", c.pick(g.pools["buckets"]))
        .replace("{region}", c.pick(g.pools["regions"]))
    )


def _one_or_list(c: Chooser, values: list[str]) -> str | list[str]:
    # A lone value is written bare or as a one-item list: the same meaning.
    if len(values) == 1 and c.chance(50):
        return values[0]
    return list(values)


def _sid(c: Chooser, g: IamGrammar, statement: dict[str, Any]) -> dict[str, Any]:
    sid = c.pick(g.pools["sids"])
    return {"Sid": sid, **statement} if sid else statement


def benign_statement(c: Chooser, g: IamGrammar) -> dict[str, Any]:
    """An ordinary least-privilege Allow (read a bucket, write logs, ...)."""
    actions, resources, _ = c.pick(tuple((b, b[2]) for b in g.benign))
    filled = [_fill(r, c, g) for r in resources]
    return _sid(
        c,
        g,
        {
            "Effect": "Allow",
            "Action": _one_or_list(c, list(actions)),
            "Resource": _one_or_list(c, filled),
        },
    )


def escalation_statements(
    c: Chooser, g: IamGrammar, method: Method, *, spelled: bool = True
) -> list[dict[str, Any]]:
    """Allow statements granting every action of ``method``.

    Actions sharing a Resource go in one statement; with ``spelled`` each
    action may be respelled and each IAM target drawn from the target pool.
    """
    by_resource: dict[str, list[str]] = {}
    for action, target in method.actions:
        spelling = c.pick(g.pools["action_spellings"]) if spelled else "exact"
        where = c.pick(g.pools["target_spellings"]) if spelled else "star"
        resource = target_resource(c, g, target, where)
        by_resource.setdefault(resource, []).append(spell_action(action, spelling))
    return [
        _sid(
            c,
            g,
            {
                "Effect": "Allow",
                "Action": _one_or_list(c, list(dict.fromkeys(actions))),
                "Resource": _one_or_list(c, [resource]),
            },
        )
        for resource, actions in by_resource.items()
    ]


def _loose_statement(c: Chooser, g: IamGrammar) -> dict[str, Any]:
    """Any shape at all: effect, Action or NotAction, Resource or NotResource."""
    pool = g.escalation_actions() + tuple(a for b in g.benign for a in b[0])
    actions = [
        spell_action(c.pick(_even(pool)), c.pick(g.pools["action_spellings"]))
        for _ in range(c.integer(1, 3))
    ]
    target = c.pick(_even(("user", "role", "any", "any")))
    resource = target_resource(c, g, target, c.pick(g.pools["target_spellings"]))
    statement: dict[str, Any] = {
        "Effect": "Deny" if c.chance(25) else "Allow",
        ("NotAction" if c.chance(15) else "Action"): _one_or_list(
            c, list(dict.fromkeys(actions))
        ),
        ("NotResource" if c.chance(10) else "Resource"): _one_or_list(c, [resource]),
    }
    if c.chance(20):
        statement["Condition"] = copy.deepcopy(c.pick(_even(_IDENTITY_CONDITIONS)))
    return _sid(c, g, statement)


# Conditions an identity policy carries (iam.md 2.3): MFA (the IfExists
# Deny pattern), a source IP, an attacker-chosen region, a tag.
_IDENTITY_CONDITIONS: tuple[dict[str, Any], ...] = (
    {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
    {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
    {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
)


def _version(c: Chooser, g: IamGrammar) -> dict[str, Any]:
    version = c.pick(g.pools["versions"])
    return {} if version == "none" else {"Version": version}


def _document(c: Chooser, g: IamGrammar, body: list[dict[str, Any]]) -> dict:
    statement: Any = body
    if len(body) == 1 and c.chance(25):
        statement = body[0]
    return {**_version(c, g), "Statement": statement}


def _style(c: Chooser, g: IamGrammar) -> JsonStyle:
    return JsonStyle(c.pick(g.pools["layouts"]))


# --- principals and conditions -------------------------------------------------


def principal(c: Chooser, g: IamGrammar, form: str) -> Any:
    """A Principal element of ``form`` (iam.md 2.2, trap 22)."""
    account = c.pick(g.pools["accounts"])
    other = c.pick(g.pools["other_accounts"])
    role = c.pick(g.pools["roles"])
    return {
        "star": "*",
        "aws-star": {"AWS": "*"},
        "aws-star-list": {"AWS": ["*"]},
        "mixed-star": {"AWS": [f"arn:aws:iam::{account}:root", "*"]},
        "account-id": {"AWS": account},
        "account-root": {"AWS": f"arn:aws:iam::{account}:root"},
        "other-role": {"AWS": f"arn:aws:iam::{other}:role/{role}"},
        "service": {"Service": "cloudtrail.amazonaws.com"},
    }[form]


def public_condition(c: Chooser, g: IamGrammar, form: str) -> dict[str, Any] | None:
    """A Condition block of ``form``; restrictive or only restrictive-looking."""
    org = c.pick(g.pools["org_ids"])
    account = c.pick(g.pools["accounts"])
    table: dict[str, dict[str, Any] | None] = {
        "none": None,
        "org-id": {"StringEquals": {"aws:PrincipalOrgID": org}},
        "principal-account": {"StringEquals": {"aws:PrincipalAccount": account}},
        "source-vpce": {
            "StringEquals": {"aws:SourceVpce": c.pick(g.pools["vpce_ids"])}
        },
        "source-ip": {"IpAddress": {"aws:SourceIp": c.pick(g.pools["cidrs"])}},
        "source-ip-any": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        "org-id-like-any": {"StringLike": {"aws:PrincipalOrgID": "o-*"}},
        "org-id-negated": {"StringNotEquals": {"aws:PrincipalOrgID": org}},
        "secure-transport": {"Bool": {"aws:SecureTransport": "true"}},
        "referer": {"StringLike": {"aws:Referer": "https://www.example.com/*"}},
        "org-and-transport": {
            "StringEquals": {"aws:PrincipalOrgID": org},
            "Bool": {"aws:SecureTransport": "true"},
        },
    }
    return table[form]


def federated_statement(c: Chooser, g: IamGrammar, form: str) -> dict[str, Any]:
    """A trust statement for a web-identity or SAML provider (trap 25)."""
    account = c.pick(g.pools["accounts"])
    github = "token.actions.githubusercontent.com"
    oidc = f"arn:aws:iam::{account}:oidc-provider/{github}"
    aud = {f"{github}:aud": "sts.amazonaws.com"}
    repo = "repo:acme/deploy"
    forms: dict[str, tuple[str, str, dict[str, Any]]] = {
        "github-sub": (
            oidc,
            "sts:AssumeRoleWithWebIdentity",
            {
                "StringEquals": {**aud, f"{github}:sub": f"{repo}:ref:refs/heads/main"},
            },
        ),
        "github-sub-wildcard-repo": (
            oidc,
            "sts:AssumeRoleWithWebIdentity",
            {"StringEquals": aud, "StringLike": {f"{github}:sub": f"{repo}:*"}},
        ),
        "github-aud-only": (
            oidc,
            "sts:AssumeRoleWithWebIdentity",
            {"StringEquals": aud},
        ),
        "github-sub-star": (
            oidc,
            "sts:AssumeRoleWithWebIdentity",
            {"StringEquals": aud, "StringLike": {f"{github}:sub": "*"}},
        ),
        "cognito-amr": (
            "cognito-identity.amazonaws.com",
            "sts:AssumeRoleWithWebIdentity",
            {
                "StringEquals": {
                    "cognito-identity.amazonaws.com:aud": (
                        "us-east-1:12345678-abcd-1234-abcd-123456789012"
                    )
                },
                "ForAnyValue:StringLike": {
                    "cognito-identity.amazonaws.com:amr": "authenticated"
                },
            },
        ),
        "cognito-none": (
            "cognito-identity.amazonaws.com",
            "sts:AssumeRoleWithWebIdentity",
            {},
        ),
        "saml-aud": (
            f"arn:aws:iam::{account}:saml-provider/Okta",
            "sts:AssumeRoleWithSAML",
            {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        ),
    }
    provider, action, condition = forms[form]
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": action,
    }
    if condition:
        statement["Condition"] = condition
    return _sid(c, g, statement)


# --- whole documents --------------------------------------------------------------


def build_identity(
    c: Chooser,
    g: IamGrammar,
    *,
    escalation: str,
    loose: bool = False,
    methods: tuple[str, ...] = (),
) -> Policy:
    """An identity policy: benign statements, maybe one escalation method.

    ``escalation`` is ``"none"``, ``"exact"`` (every action as written, on
    ``*``) or ``"spelled"`` (spellings and targets drawn from the pools);
    ``methods`` limits which methods may be drawn (all when empty).
    """
    body = [benign_statement(c, g) for _ in range(c.integer(1, 3))]
    if escalation != "none":
        pool = [m for m in g.methods if not methods or m.name in methods]
        method = c.pick(tuple((m, m.weight) for m in pool))
        grant = escalation_statements(c, g, method, spelled=escalation == "spelled")
        body[c.integer(0, len(body)) : 0] = grant
    if loose:
        for _ in range(c.integer(1, 3)):
            body.insert(c.integer(0, len(body)), _loose_statement(c, g))
    return Policy(_document(c, g, body), _style(c, g), "identity")


def build_resource(c: Chooser, g: IamGrammar, *, form: str | None = None) -> Policy:
    """A resource policy (bucket, queue, topic, key, secret) with one grant."""
    name, actions, resource, _ = c.pick(tuple((s, s[3]) for s in g.services))
    form = form or c.pick(g.pools["principals"])
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal(c, g, form),
        "Action": _one_or_list(c, [c.pick(_even(actions))]),
        "Resource": _one_or_list(c, [_fill(resource, c, g)]),
    }
    condition = public_condition(c, g, c.pick(g.pools["public_conditions"]))
    if condition:
        statement["Condition"] = condition
    body = [_sid(c, g, statement)]
    if c.chance(30):
        # A second, narrow grant to a named account: ordinary sharing.
        body.append(
            {
                "Effect": "Allow",
                "Principal": principal(c, g, "account-root"),
                "Action": _one_or_list(c, [actions[0]]),
                "Resource": _one_or_list(c, [_fill(resource, c, g)]),
            }
        )
    document = {**_version(c, g), "Id": f"{name}-policy", "Statement": body}
    if c.chance(40):
        del document["Id"]
    return Policy(document, _style(c, g), "resource")


def build_trust(c: Chooser, g: IamGrammar, *, federated: bool | None = None) -> Policy:
    """A role trust policy: an AWS, service or federated principal may assume it."""
    if federated is None:
        federated = c.chance(50)
    if federated:
        statement = federated_statement(c, g, c.pick(g.pools["federations"]))
    else:
        form = c.pick(g.pools["principals"])
        if form == "service":
            who: Any = {"Service": c.pick(g.pools["services_passed"])}
        else:
            who = principal(c, g, form)
        statement = _sid(
            c, g, {"Effect": "Allow", "Principal": who, "Action": "sts:AssumeRole"}
        )
        condition = public_condition(c, g, c.pick(g.pools["public_conditions"]))
        if condition:
            statement["Condition"] = condition
    document = {**_version(c, g), "Statement": [statement]}
    if c.chance(25):
        document["Statement"] = statement
    return Policy(document, _style(c, g), "trust")


# --- strategies ---------------------------------------------------------------------

_ESCALATION = ("none", "exact", "spelled")


def identity_policies(
    *,
    escalation: str = "spelled",
    loose: bool = False,
    methods: tuple[str, ...] = (),
    grammar: IamGrammar | None = None,
) -> st.SearchStrategy[Policy]:
    """Identity policies; ``escalation`` says whether and how a method is
    granted, ``methods`` which methods may be (every one when empty)."""
    if escalation not in _ESCALATION:
        raise InvalidArgument(f"escalation={escalation!r} must be one of {_ESCALATION}")
    if not isinstance(loose, bool):
        raise InvalidArgument(f"loose={loose!r} must be True or False")
    g = check_grammar(grammar)
    if not isinstance(methods, tuple):
        raise InvalidArgument(f"methods={methods!r} must be a tuple of method names")
    unknown = [m for m in methods if m not in {x.name for x in g.methods}]
    if unknown:
        raise InvalidArgument(
            f"methods={methods!r}: unknown {unknown}; known: "
            f"{', '.join(m.name for m in g.methods)}"
        )
    return _built(
        lambda c: build_identity(
            c, g, escalation=escalation, loose=loose, methods=methods
        )
    )


def resource_policies(
    *, principal_form: str | None = None, grammar: IamGrammar | None = None
) -> st.SearchStrategy[Policy]:
    """Resource policies; ``principal_form`` pins the principal's shape."""
    if principal_form is not None and principal_form not in VOCABULARIES["principals"]:
        raise InvalidArgument(
            f"principal_form={principal_form!r} must be one of "
            f"{VOCABULARIES['principals']} or None"
        )
    g = check_grammar(grammar)
    return _built(lambda c: build_resource(c, g, form=principal_form))


def trust_policies(
    *, federated: bool | None = None, grammar: IamGrammar | None = None
) -> st.SearchStrategy[Policy]:
    """Role trust policies; ``federated`` pins web-identity/SAML or not."""
    if federated is not None and not isinstance(federated, bool):
        raise InvalidArgument(f"federated={federated!r} must be True, False or None")
    g = check_grammar(grammar)
    return _built(lambda c: build_trust(c, g, federated=federated))


def statements(*, grammar: IamGrammar | None = None) -> st.SearchStrategy[dict]:
    """Single statements of any shape (the loose grammar)."""
    g = check_grammar(grammar)
    return _built(lambda c: _loose_statement(c, g))


def principals(*, grammar: IamGrammar | None = None) -> st.SearchStrategy[Any]:
    """Principal elements in every spelling of iam.md trap 22."""
    g = check_grammar(grammar)
    return _built(lambda c: principal(c, g, c.pick(g.pools["principals"])))


@st.composite
def _built(draw, builder) -> Any:
    # One composite for every builder: the chooser lives only inside it.
    return builder(DrawChooser(draw))
