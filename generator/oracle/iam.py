"""The IAM oracle: privilege escalation, admin-equivalence and public access.

Ground truth for every IAM case. One policy document is judged on its own:
permission boundaries, SCPs, session policies and other attached policies
are out of scope (research/iam.md §2.1). Three questions:

* ``privesc`` (identity policies): is some escalation method of
  ``iam_methods.yaml`` open, in a worst-case account where privileged roles,
  users, groups, functions and instances exist? See iam_privesc and
  iam_access for how targets and resource types are matched.
* ``admin`` (identity policies): tier A (literal admin) or tier B
  (admin-equivalent in one self-contained step), as iam_privesc defines.
* ``public`` (resource and trust policies): can an outsider get in? See
  iam_public.

Each answer is ``yes``, ``no`` or ``depends``, from two views of the policy
(§2.3): ``yes`` when the question holds on the *definite* view, ``no`` when it
fails even on the *possible* view, ``depends`` otherwise. Conditions:

* An Allow counts as definite when the caller can make its condition true
  for a request it is free to make: MFA (the caller may sign in with MFA),
  ``aws:SecureTransport``, ``aws:UserAgent``, ``aws:Referer``, request tags on
  actions that take them, the service a role is passed to (only among the
  services the method passes roles to, trap 5 / conformance T24) and the
  AWS-managed admin policy attached (``iam:PolicyARN``).
* A Deny is set aside in the definite view only when the caller can make its
  condition false the same way: a Deny that fires without MFA does not stop
  a caller who signs in with MFA (conformance T06, "yes"). Allow and Deny are
  judged together for each candidate request, so a caller cannot satisfy an
  Allow and dodge a Deny with contradicting choices.
* Every other key (source IP, principal tags, times, ...) is unknown: a
  conditional Allow is only possible, a conditional Deny only definite.
* For ``public`` the caller is an outsider; keys naming who and where it is
  restrict when pinned, as iam_public describes.

Conventions the policy alone cannot settle, fixed here:

* The caller is an IAM user or a role with the default path ``/``; the
  policy may be attached to either and the worse case counts.
* An account id named in an ARN is the caller's own account. When several
  are named, each is tried as the caller's account and the answers must
  agree, else ``depends``; ``answer(..., account=...)`` fixes it, and then
  IAM ARNs of other accounts grant nothing (trap 29).
* Version 2008-10-17 or no Version: ``${...}`` is literal text (trap 12).
* A policy larger than any AWS policy type accepts is refused
  (ConfigError), not judged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from generator.config.iam import Policy, kind, load_policy
from generator.errors import ConfigError, InvalidArgument, Undecidable
from generator.oracle.iam_access import OPEN, PINNED, Access, Caller
from generator.oracle.iam_privesc import MethodResult, admin_level, open_methods
from generator.oracle.iam_public import public_grants
from generator.records import Truth, Violation

__all__ = [
    "Answer",
    "Finding",
    "MAX_SIZE",
    "QUESTIONS",
    "Undecidable",
    "answer",
    "answers",
    "truth",
]

logger = logging.getLogger(__name__)

QUESTIONS = ("privesc", "admin", "public")

# Characters of element text. AWS's largest policy limits are tens of KB
# (S3 bucket policies 20 KB, identity policies 6,144 or 10,240 characters);
# ten times that is refused rather than judged slowly.
MAX_SIZE = 200_000

_ACCOUNT = re.compile(r"\d{12}")


@dataclass(frozen=True)
class Finding:
    """Why a question came out as it did: a method, an admin tier, a grant."""

    statement: int | None
    rule: str
    path: str
    message: str


@dataclass(frozen=True)
class Answer:
    """``yes``, ``no`` or ``depends``, with findings and a one-line reason."""

    value: str
    findings: tuple[Finding, ...]
    reason: str


def answer(policy: Policy, question: str, *, account: str | None = None) -> Answer:
    """Answer one of ``QUESTIONS`` for ``policy``."""
    if question not in QUESTIONS:
        raise InvalidArgument(f"question={question!r}; ask one of {QUESTIONS}")
    if policy.size > MAX_SIZE:
        raise ConfigError(
            f"policy text is {policy.size:,} characters; no AWS policy type "
            f"accepts more than about 20,000, so it is not judged",
            source=policy.source,
        )
    found = kind(policy)
    if question == "public":
        if found == "identity":
            raise ConfigError(
                "public applies to resource and trust policies; this identity "
                "policy names no Principal",
                source=policy.source,
            )
        return _public(policy)
    if found != "identity":
        raise ConfigError(
            f"{question} applies to identity policies; this is a {found} policy "
            "(it names a Principal)",
            source=policy.source,
        )
    results = [
        (_privesc if question == "privesc" else _admin)(policy, caller_kinds)
        for caller_kinds in _callers(policy, account)
    ]
    values = {r.value for r in results}
    if len(values) == 1:
        return results[0]
    return Answer(
        "depends",
        results[0].findings,
        "the answer changes with which named account is the caller's own",
    )


def answers(policy: Policy) -> dict[str, Answer]:
    """privesc and admin for identity policies; public for the others."""
    if kind(policy) == "identity":
        return {q: answer(policy, q) for q in ("privesc", "admin")}
    return {"public": answer(policy, "public")}


def truth(config: str, question: str) -> Truth:
    """The case truth for ``iam:privesc``, ``iam:admin`` or ``iam:public``."""
    domain, _, name = question.partition(":")
    if domain != "iam" or name not in QUESTIONS:
        raise InvalidArgument(
            f"question={question!r}; ask iam:privesc, iam:admin or iam:public"
        )
    result = answer(load_policy(config), name)
    if result.value == "depends":
        raise Undecidable(result.reason)
    if result.value == "no":
        return Truth("safe")
    rule = {"privesc": None, "admin": "admin", "public": "public"}[name]
    violations = tuple(
        Violation(rule or f.rule, f.path, f.message) for f in result.findings
    )
    return Truth("unsafe", violations)


# --- accounts and callers -----------------------------------------------------


def _callers(policy: Policy, account: str | None) -> list[dict[str, Access]]:
    """One {user, role} pair of Access per candidate own account."""
    partitions, accounts = set(), set()
    for statement in policy.statements:
        for arn in (*(statement.resources or ()), *(statement.not_resources or ())):
            parts = arn.split(":", 5)
            if len(parts) < 6 or parts[0] != "arn":
                continue
            if parts[1] and not set(parts[1]) & set("*?$"):
                partitions.add(parts[1])
            if _ACCOUNT.fullmatch(parts[4]):
                accounts.add(parts[4])
    owned = [account] if account else sorted(accounts) or ["000000000000"]
    partition = sorted(partitions)[0] if len(partitions) == 1 else "aws"
    return [
        {
            kind_: _access(policy, Caller(kind_, partition, own))
            for kind_ in ("user", "role")
        }
        for own in owned
    ]


@lru_cache(maxsize=64)
def _access(policy: Policy, caller: Caller) -> Access:
    """One Access per policy and caller, so privesc and admin share its work."""
    return Access(policy, caller)


# --- the three questions ------------------------------------------------------


def _privesc(policy: Policy, accesses: dict[str, Access]) -> Answer:
    definite = [r for r in open_methods(accesses, "definite") if r.level == OPEN]
    if definite:
        return Answer(
            "yes",
            tuple(_method_finding(r) for r in definite),
            f"{len(definite)} escalation method(s) open, e.g. {definite[0].method.id}",
        )
    possible = open_methods(accesses, "possible")
    if not possible:
        return Answer("no", (), "no escalation method is open, even with conditions")
    pinned = [r for r in possible if r.level >= PINNED]
    return Answer(
        "depends",
        tuple(_method_finding(r) for r in pinned),
        f"{pinned[0].method.id} is open only for named resources or under "
        "conditions the policy alone does not settle",
    )


def _method_finding(result: MethodResult) -> Finding:
    first = result.statements[0] if result.statements else None
    where = ", ".join(f"Statement[{i}]" for i in result.statements)
    level = "open" if result.level == OPEN else "open only for named resources"
    return Finding(
        first,
        result.method.id,
        f"Statement[{first}]" if first is not None else "Statement",
        f"{result.method.description} ({level} to a {result.caller} via {where})",
    )


def _admin(policy: Policy, accesses: dict[str, Access]) -> Answer:
    literal, statements = admin_level(policy, "definite")
    if literal:
        return Answer(
            "yes",
            tuple(
                Finding(i, "literal-admin", f"Statement[{i}]", _LITERAL)
                for i in statements
            ),
            "every action is allowed on every resource",
        )
    steps = [
        r
        for r in open_methods(accesses, "definite", definite_only=True)
        if r.level == OPEN
    ]
    if steps:
        return Answer(
            "yes",
            tuple(_admin_finding(r) for r in steps),
            f"admin-equivalent through {steps[0].method.id}",
        )
    possible, _ = admin_level(policy, "possible")
    later = open_methods(accesses, "possible", definite_only=True)
    if not possible and not later:
        return Answer("no", (), "neither literal admin nor one step from it")
    findings = tuple(_admin_finding(r) for r in later)
    return Answer(
        "depends",
        findings,
        "admin only under conditions or on resources the policy does not settle",
    )


_LITERAL = "allows every action on every resource (literal administrator)"


def _admin_finding(result: MethodResult) -> Finding:
    finding = _method_finding(result)
    return Finding(
        finding.statement,
        "admin-equivalent",
        finding.path,
        f"one step from admin by {result.method.id}: {finding.message}",
    )


def _public(policy: Policy) -> Answer:
    grants = public_grants(policy, "definite")
    if grants:
        return Answer(
            "yes",
            tuple(
                Finding(
                    g.statement,
                    g.principal,
                    f"Statement[{g.statement}]",
                    f"allows {g.principal} with no condition that keeps outsiders out",
                )
                for g in grants
            ),
            "an outsider gets in",
        )
    maybe = public_grants(policy, "possible")
    if not maybe:
        return Answer("no", (), "no statement lets an outsider in")
    return Answer(
        "depends",
        tuple(
            Finding(
                g.statement,
                g.principal,
                f"Statement[{g.statement}]",
                f"allows {g.principal} under conditions the policy alone does "
                "not settle",
            )
            for g in maybe
        ),
        "public only under conditions the policy alone does not settle",
    )
