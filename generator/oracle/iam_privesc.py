"""Privilege escalation and admin-equivalence of one identity policy.

Escalation methods come from ``iam_methods.yaml`` (the 97 of
research/iam-privesc-methods.yaml, plus the fields the evaluator reads). A
method is open when every required action, and one full group of its
``any_of``, is allowed on its target (iam_access): the caller's own user or
role for the actions listed in ``self_actions``, otherwise a resource of the
action's types with a name the policy does not mention, which a worst-case
account holds and which is privileged. The same unnamed target stands in for
every action of a method, so "both actions on the same role" holds.

The caller may be an IAM user or a role; a method that needs one kind
(``caller``) is tried with that kind only, the others with both, and the
best outcome counts: the policy can be attached to either.

Admin-equivalent (research/iam.md §1.4):

* ``literal-admin`` (tier A): unconditional Allows on ``Resource: "*"`` cover
  every action of the catalogue, and the policy has no Deny statement the
  caller cannot avoid.
* ``admin-equivalent`` (tier B): one step from tier A with nothing needed
  from the account: a ``definite`` method of the catalogue is open on the
  caller itself (put or attach a policy on its own user or role, or create
  a role and put or attach a policy on it). Denies elsewhere in this
  document are not considered to outlive that step (PMapper's convention).

PassRole methods, existing-resource methods, access to other principals and
guardrail removal are escalation (tier C) but not admin-equivalence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from generator.config.iam import Policy, Statement
from generator.oracle import iam_conditions as cond
from generator.oracle.iam_access import (
    CLOSED,
    OPEN,
    PINNED,
    Access,
    Caller,
    Request,
)
from generator.oracle.iam_catalogue import all_actions, expand
from generator.oracle.iam_match import action_matches

__all__ = ["Method", "MethodResult", "admin_level", "methods", "open_methods"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    """One escalation method as the evaluator reads it."""

    id: str
    category: str
    definite: bool
    required: tuple[str, ...]
    any_of: tuple[tuple[str, ...], ...]
    passed_to: tuple[str, ...]
    passed_to_all: bool
    caller: str | None
    self_actions: frozenset[str]
    description: str

    def request(self, action: str) -> Request:
        target = "self" if action in self.self_actions else "other"
        passes = action.lower() == "iam:passrole"
        return Request(
            action,
            target,
            self.passed_to if passes else (),
            self.passed_to_all and passes,
        )


@dataclass(frozen=True)
class MethodResult:
    method: Method
    level: int
    statements: tuple[int, ...]
    caller: str


@lru_cache(maxsize=1)
def methods() -> tuple[Method, ...]:
    text = resources.files("generator.oracle").joinpath("iam_methods.yaml").read_text()
    data = yaml.safe_load(text)
    return tuple(_method(m) for m in data["methods"])


def _method(data: dict[str, Any]) -> Method:
    return Method(
        id=data["id"],
        category=data["category"],
        definite=data["policy_only_verdict"] == "definite",
        required=tuple(data["required_actions"]),
        any_of=tuple(tuple(group) for group in data.get("any_of") or ()),
        passed_to=tuple(data.get("passed_to") or ()),
        passed_to_all=bool(data.get("passed_to_all")),
        caller=data.get("caller"),
        self_actions=frozenset(data.get("self_actions") or ()),
        description=data["description"],
    )


def open_methods(
    accesses: dict[str, Access], view: str, *, definite_only: bool = False
) -> list[MethodResult]:
    """Every method not CLOSED in ``view``, best caller kind each.

    Each method's level is worked out once per Access and view (privesc and
    admin share it, see ``_cached_level``).
    """
    found = []
    for number, method in enumerate(methods()):
        if definite_only and not method.definite:
            continue
        kinds = [method.caller] if method.caller else list(accesses)
        best: MethodResult | None = None
        for kind in kinds:
            result = _cached_level(number, method, accesses[kind], view)
            if result is None:
                continue  # CLOSED
            if result.level > CLOSED and (best is None or result.level > best.level):
                best = result
        if best is not None:
            found.append(best)
    return found


def _cached_level(
    number: int, method: Method, access: Access, view: str
) -> MethodResult | None:
    """``_method_level`` once per access, method and view; None when CLOSED.

    A method one of whose required actions, or an action of each any_of
    group, no Allow even names is CLOSED without looking further.
    """
    key = ("method", number, view)
    if key in access.memo:
        return access.memo[key]  # type: ignore[return-value]
    result: MethodResult | None = None
    possible = all(access.may_allow(a) for a in method.required) and (
        not method.any_of
        or any(all(access.may_allow(a) for a in g) for g in method.any_of)
    )
    if possible:
        result = _method_level(method, access, view)
        if result.level == CLOSED:
            result = None
    access.memo[key] = result
    return result


def _method_level(method: Method, access: Access, view: str) -> MethodResult:
    caller = access.caller.kind
    level, statements = OPEN, set()
    for action in method.required:
        grant = access.grant(_request(method, action), view)
        level = min(level, grant.level)
        statements.update(grant.statements)
        if level == CLOSED:
            return MethodResult(method, CLOSED, (), caller)
    if method.any_of:
        best, best_statements = CLOSED, set()
        for group in method.any_of:
            group_level, group_statements = OPEN, set()
            for action in group:
                grant = access.grant(_request(method, action), view)
                group_level = min(group_level, grant.level)
                group_statements.update(grant.statements)
            if group_level > best:
                best, best_statements = group_level, group_statements
        level = min(level, best)
        statements.update(best_statements)
    return MethodResult(method, level, tuple(sorted(statements)), caller)


_REQUESTS: dict[tuple[str, str], Request] = {}


def _request(method: Method, action: str) -> Request:
    key = (method.id, action)
    found = _REQUESTS.get(key)
    if found is None:
        found = _REQUESTS[key] = method.request(action)
    return found


# --- literal admin ------------------------------------------------------------


def admin_level(policy: Policy, view: str) -> tuple[bool, tuple[int, ...]]:
    """Tier A: every catalogue action on ``*``; with the statements that do it."""
    empty = cond.Context()
    covering: list[Statement] = []
    for s in policy.statements:
        value = cond.evaluate(s.conditions, empty, None)
        if s.allows:
            counts = value == cond.TRUE if view == "definite" else value != cond.FALSE
            if (
                counts
                and s.resources is not None
                and any(not p.strip("*") for p in s.resources)
            ):
                covering.append(s)
        else:
            applies = value != cond.FALSE if view == "definite" else value == cond.TRUE
            if applies:
                return False, ()
    if not covering:
        return False, ()
    if any(s.actions is not None and "*" in s.actions for s in covering):
        index = next(s.index for s in covering if s.actions and "*" in s.actions)
        return True, (index,)
    # The catalogue actions left uncovered are those every NotAction names
    # and no Action does; none left means literal admin.
    granted: set[str] = set()
    left: frozenset[str] | set[str] = all_actions()
    for s in covering:
        if s.actions is not None:
            for pattern in s.actions:
                granted |= expand(pattern)
        else:
            named: set[str] = set()
            for pattern in s.not_actions or ():
                named |= expand(pattern)
            left = named & left
    if left <= granted:
        return True, tuple(c.index for c in covering)
    return False, ()


def names_action(statement: Statement, action: str) -> bool:
    if statement.actions is not None:
        return any(action_matches(p, action) for p in statement.actions)
    return not any(action_matches(p, action) for p in statement.not_actions or ())


__all__ += ["OPEN", "PINNED", "CLOSED", "Caller", "names_action"]
