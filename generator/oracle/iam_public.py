"""Public access through a resource policy or a role trust policy.

"Public" means an outsider, anyone on the internet or any AWS account, can
get some action on some resource (research/iam.md §2.2 and traps 22-25):

* Principals: ``"*"``, ``{"AWS": "*"}`` are everyone. An account, user,
  role, service or canonical user is someone specific, not public.
  ``Allow`` with ``NotPrincipal`` is invalid in current AWS, and where it is
  accepted it means everyone but the listed ones: public. Federated trust
  in a provider anyone can get a token from (GitHub Actions, GitLab,
  Terraform Cloud, Cognito, Google, Facebook, Amazon) is public unless a
  condition pins the subject (or, for Cognito, the identity pool); other
  OIDC providers (an EKS cluster's) are "depends"; SAML providers belong to
  the account, so they are not public.
* Conditions are read for an outsider. Keys that say who or where the
  caller is (org, account, principal ARN, source account/ARN, VPC
  endpoint, source IP) restrict when a positive operator pins them to
  something an outsider cannot have: a concrete value, a CIDR smaller than
  the whole internet. A negated operator, ``StringLike "*"``/``"o-*"``, an
  ARN pattern with a wildcard account, ``0.0.0.0/0`` do not restrict.
  Several keys are ANDed: one restrictive key is enough (trap 23).
  ``aws:SecureTransport``, ``aws:Referer``, ``aws:UserAgent`` and MFA are
  chosen by the outsider. Anything else is "depends".
* A Deny in the same policy is respected per action and per resource: it
  removes public access where it reaches and when the outsider cannot
  avoid its condition (trap 24).

Views as in iam_access: public is "yes" when the definite view finds an
action and resource an outsider surely gets, "no" when even the possible
view finds none, "depends" otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from generator.config.iam import Condition, Policy, Statement
from generator.oracle import iam_conditions as cond
from generator.oracle.iam_catalogue import all_actions, expand
from generator.oracle.iam_match import UNKNOWN, Glob, arn_glob, satisfiable

__all__ = ["PublicGrant", "public_grants"]

logger = logging.getLogger(__name__)

# Outsider-facing classes of one condition entry or principal.
ALWAYS, NEVER, CHOOSE = "always", "never", "choose"

# OIDC providers that issue tokens to anyone who signs up.
OPEN_PROVIDERS = (
    "token.actions.githubusercontent.com",
    "gitlab.com",
    "app.terraform.io",
    "cognito-identity.amazonaws.com",
    "accounts.google.com",
    "graph.facebook.com",
    "www.amazon.com",
)

# Keys naming who or where the caller is, and whether an outsider can make
# them absent (no organization, not through a VPC endpoint, not a service
# request, anonymous).
IDENTITY_KEYS = {
    "aws:principalorgid": True,
    "aws:principalorgpaths": True,
    "aws:principalaccount": True,
    "aws:principalarn": True,
    "aws:sourceaccount": True,
    "aws:sourcearn": True,
    "aws:sourceowner": True,
    "aws:sourceorgid": True,
    "aws:sourceorgpaths": True,
    "aws:sourcevpce": True,
    "aws:sourcevpc": True,
    "aws:userid": True,
    "aws:username": True,
}
ARN_KEYS = ("aws:principalarn", "aws:sourcearn")
_ACCOUNT = re.compile(r"\d{12}")


@dataclass(frozen=True)
class PublicGrant:
    """An Allow statement through which an outsider gets in."""

    statement: int
    principal: str


def public_grants(policy: Policy, view: str) -> list[PublicGrant]:
    """The Allow statements that give an outsider access in ``view``."""
    context = _context()
    blocks = [s.conditions for s in policy.statements]
    for assignment in cond.assignments(blocks, context):
        allows, denies = [], []
        for s in policy.statements:
            value = _statement_value(s, context, assignment)
            if s.allows and (
                value == cond.TRUE if view == "definite" else value != cond.FALSE
            ):
                allows.append(s)
            if not s.allows and (
                value != cond.FALSE if view == "definite" else value == cond.TRUE
            ):
                denies.append(s)
        grants = [
            PublicGrant(s.index, _describe(s))
            for s in allows
            if _reaches(policy, s, denies, view)
        ]
        if grants:
            return grants
    return []


def _context() -> cond.Context:
    return cond.Context(
        {
            "aws:multifactorauthpresent": cond.KeyModel(
                "free", (None, ("true",), ("false",))
            ),
            "aws:securetransport": cond.KeyModel("free", (("true",), ("false",))),
            "aws:useragent": cond.KeyModel("free"),
            "aws:referer": cond.KeyModel("free"),
        }
    )


# --- principals and conditions ------------------------------------------------


def _statement_value(
    statement: Statement, context: cond.Context, assignment: dict | None
) -> str:
    """TRUE: applies to some outsider we can pick; FALSE: to none."""
    who = _principal(statement)
    if who == NEVER:
        return cond.FALSE
    results = [_who_value(who, statement.allows)]
    free = [c for c in statement.conditions if context.model(c.key).kind == "free"]
    results.append(cond.evaluate(free, context, assignment))
    seen_choice: set[str] = set()
    for condition in statement.conditions:
        if context.model(condition.key).kind == "free":
            continue
        kind = _outsider(condition, statement)
        if kind == CHOOSE:
            # One choice per key is safe to make; two could contradict.
            key = condition.key.lower()
            kind = CHOOSE if key not in seen_choice and statement.allows else "maybe"
            seen_choice.add(key)
        results.append(_who_value(kind, statement.allows))
    value = cond.both(results)
    if statement.allows and value == cond.FALSE and _cognito_guests(statement):
        return cond.MAYBE  # a pinned pool that admits unauthenticated guests
    return value


def _who_value(kind: str, allows: bool) -> str:
    if kind == ALWAYS:
        return cond.TRUE
    if kind == NEVER:
        return cond.FALSE
    if kind == CHOOSE:
        # An Allow: the outsider makes it true. A Deny: it might apply.
        return cond.TRUE if allows else cond.MAYBE
    return kind if kind in (cond.TRUE, cond.FALSE) else cond.MAYBE


def _principal(statement: Statement) -> str:
    if statement.not_principal is not None:
        if statement.allows:
            return ALWAYS  # invalid, and everyone but the listed: public
        listed = statement.not_principal.entries
        return NEVER if ("*", "*") in listed or ("AWS", "*") in listed else ALWAYS
    principal = statement.principal
    if principal is None:
        return NEVER
    kinds = []
    for kind, value in principal.entries:
        if value == "*" and kind in ("*", "AWS"):
            kinds.append(ALWAYS)
        elif kind == "Federated":
            kinds.append(_federated(value))
        else:
            kinds.append(NEVER)
    if ALWAYS in kinds:
        return ALWAYS
    return "maybe" if "maybe" in kinds else NEVER


def _federated(value: str) -> str:
    if ":saml-provider/" in value:
        return NEVER
    host = value.split(":oidc-provider/", 1)[-1]
    if host in OPEN_PROVIDERS or value == "*":
        return ALWAYS
    return "maybe"


def _outsider(condition: Condition, statement: Statement) -> str:
    """How an outsider fares against one entry on a non-free key."""
    key = condition.key.lower()
    if key in IDENTITY_KEYS or key == "aws:sourceip":
        return _identity(condition, key)
    host, _, claim = key.rpartition(":")
    if host in OPEN_PROVIDERS:
        return _claim(condition, host, claim)
    if host and claim == "sub" and _federated_statement(statement):
        return _pinned(condition, _star_only)
    return "maybe"


def _star_only(value: str) -> bool | None:
    return True if value == "*" else None


def _identity(condition: Condition, key: str) -> str:
    base = condition.base
    if base == "Null" or condition.set_prefix == "ForAllValues":
        return "maybe" if key != "aws:principalorgid" else CHOOSE
    if key == "aws:sourceip":
        if condition.if_exists or base not in ("IpAddress", "NotIpAddress"):
            return "maybe"
        prefixes = [cond.ip_prefix(v) for v in condition.values]
        if None in prefixes:
            return "maybe"
        if 0 in prefixes and any(v.startswith("0.0.0.0") for v in condition.values):
            positive = ALWAYS
        elif min(prefixes) < 8:
            positive = "maybe"  # a range too large to call pinned
        else:
            positive = NEVER
        return _negate(positive) if base == "NotIpAddress" else positive

    def wide(value: str) -> bool | None:
        if value == "*" or (key == "aws:principalorgid" and value == "o-*"):
            return True
        if key in ARN_KEYS and value.startswith("arn:"):
            parts = value.split(":")
            if len(parts) > 4 and _ACCOUNT.fullmatch(parts[4]):
                return False  # a concrete account an outsider is not in
            return True if len(parts) > 4 and "*" in parts[4] else None
        return None

    positive = _pinned(condition, wide)
    if condition.if_exists and IDENTITY_KEYS[key] and positive == NEVER:
        # The outsider can leave the key out (no org, no VPC endpoint);
        # whether a given service then admits it is not in the policy.
        return (
            CHOOSE
            if key in ("aws:principalorgid", "aws:sourcevpce", "aws:sourcevpc")
            else "maybe"
        )
    return positive


def _pinned(condition: Condition, wide) -> str:
    """Positive operator: NEVER if pinned, CHOOSE if wide; negation flips."""
    base = condition.base
    like = base.endswith("Like") or base.startswith("Arn")
    equals = base.startswith("String") or base.startswith("Arn")
    if not equals:
        return "maybe"
    values = condition.values
    if any("${" in v for v in values):
        return "maybe"
    # wide(v): True when an outsider can match the pattern, False when it
    # is pinned all the same, None when the policy cannot tell.
    wild = [wide(v) for v in values if like and ("*" in v or "?" in v)]
    if True in wild:
        positive = CHOOSE
    elif None in wild:
        positive = "maybe"
    else:
        positive = NEVER
    return _negate(positive) if cond.negated(condition) else positive


def _negate(kind: str) -> str:
    return {ALWAYS: NEVER, NEVER: ALWAYS}.get(
        kind, "maybe" if kind == "maybe" else CHOOSE
    )


def _claim(condition: Condition, host: str, claim: str) -> str:
    if host == "token.actions.githubusercontent.com":
        if claim == "aud":
            return CHOOSE  # the workflow asks for any audience it likes
        if claim == "sub":
            return _pinned(condition, _github_wide)
        return "maybe"
    if host == "cognito-identity.amazonaws.com":
        if claim == "aud":
            return _pinned(condition, _star_only)
        if claim == "amr":
            return CHOOSE  # any pool's identities, signed in or guests
        return "maybe"
    if claim in ("sub", "user_id", "id"):
        return _pinned(condition, _star_only)
    return "maybe"


def _github_wide(value: str) -> bool | None:
    """A sub pattern an outsider's repository can match: wildcard owner.

    GitHub subjects read ``repo:OWNER/REPO:...``; owners are first come,
    first served, so a wildcard in the owner lets anyone match, and a fixed
    owner pins the pattern to that owner's repositories.
    """
    if value.startswith(("*", "?")):
        return True
    if not value.startswith("repo:"):
        return None
    owner, slash, _ = value[len("repo:") :].partition("/")
    if "*" in owner or "?" in owner:
        return True
    return False if slash else None


def _federated_statement(statement: Statement) -> bool:
    principal = statement.principal
    return principal is not None and bool(principal.values("Federated"))


def _cognito_guests(statement: Statement) -> bool:
    for condition in statement.conditions:
        if condition.key.lower() == "cognito-identity.amazonaws.com:amr":
            return any("unauthenticated" in v for v in condition.values)
    return False


def _describe(statement: Statement) -> str:
    if statement.not_principal is not None:
        return "NotPrincipal (everyone but the listed)"
    assert statement.principal is not None
    for kind, value in statement.principal.entries:
        if value == "*" and kind in ("*", "AWS"):
            return "*" if kind == "*" else "AWS:*"
    federated = statement.principal.values("Federated")
    return f"Federated:{federated[0]}" if federated else "principal"


# --- actions and resources ----------------------------------------------------


def _reaches(
    policy: Policy, allow: Statement, denies: list[Statement], view: str
) -> bool:
    """Whether some action and resource of ``allow`` escape every Deny."""
    actions = _action_set(allow)
    # The actions fall into groups by which Denies name them (the Denies'
    # indexes, in order); each group is judged once on resources.
    blocks: list[tuple[tuple[int, ...], frozenset[str]]] = (
        [((), actions)] if actions else []
    )
    for deny in denies:
        names = _action_set(deny)
        split = []
        for signature, block in blocks:
            inside = block & names
            if inside:
                split.append(((*signature, deny.index), inside))
            if len(inside) < len(block):
                split.append((signature, block - inside))
        blocks = split
    groups: dict[tuple[int, ...], None] = dict.fromkeys(s for s, _ in blocks)
    if not actions and view == "possible" and allow.actions is not None:
        # Only names the catalogue lacks: real or not, they may be granted.
        groups[()] = None
    by_index = {d.index: d for d in denies}
    for signature in groups:
        blocking = [by_index[i] for i in signature]
        if _resource_escapes(policy, allow, blocking, view):
            return True
    return False


def _action_set(statement: Statement) -> frozenset[str]:
    return _action_names(statement.actions, statement.not_actions)


@lru_cache(maxsize=64)  # a NotAction's set holds most of the catalogue
def _action_names(
    actions: tuple[str, ...] | None, not_actions: tuple[str, ...] | None
) -> frozenset[str]:
    """The catalogue actions an Action (or every one a NotAction leaves)."""
    if actions is not None:
        names: set[str] = set()
        for pattern in actions:
            names |= expand(pattern)
        return frozenset(names)
    excluded: set[str] = set()
    for pattern in not_actions or ():
        excluded |= expand(pattern)
    return all_actions() - excluded


def _resource_escapes(
    policy: Policy, allow: Statement, denies: Sequence[Statement], view: str
) -> bool:
    globs: list[Glob] = []
    spans = []
    for s in (allow, *denies):
        start = len(globs)
        globs.extend(_globs(policy, s, view))
        spans.append((s, start, len(globs)))
    if not globs:
        globs.append(Glob(None))  # satisfiable needs at least one machine

    def accept(flags: Sequence[bool]) -> bool:
        hits = [_hit(s, flags[a:b]) for s, a, b in spans]
        return hits[0] and not any(hits[1:])

    found = satisfiable(globs, accept)
    return True if found is None else found


def _hit(statement: Statement, flags: Sequence[bool]) -> bool:
    if statement.resources is None and statement.not_resources is None:
        return True
    return any(flags) if statement.resources is not None else not any(flags)


def _globs(policy: Policy, statement: Statement, view: str) -> list[Glob]:
    grows = (view == "definite") != statement.allows
    negative = statement.not_resources is not None
    if negative:
        grows = not grows
    patterns = statement.resources or statement.not_resources or ()
    return [
        arn_glob(
            p,
            variables=policy.variables,
            resolve=_unknown,
            unknown_as_star=grows,
            nothing_as_star=negative and grows,
        )
        for p in patterns
    ]


def _unknown(key: str) -> object:
    # Variables in a resource policy describe the requester: not fixed here.
    return UNKNOWN
