"""Fixing an IAM policy so the oracle answers "no" and the intent is kept.

What may change follows ``generator.run.iam_intent``, which the repair
judge applies: grants whose action pattern reaches an escalation action
(``iam:*``, ``lambda:*``, ``iam:PassRole``) may be narrowed or removed;
every other grant must stay; conditions may be added to public grants.

* ``iam:privesc`` and ``iam:admin``: the candidate edits are (a) removing
  one escalating pattern from an Allow statement's ``Action`` and (b)
  excluding one service (``iam:*``) in the ``NotAction`` of an Allow
  statement, where an ``Action: "*"`` statement is first read as
  ``NotAction: []``. All candidates together close every escalation method
  (no escalation action is left allowed). The fix is then made
  1-minimal, the way a shrinker works: each candidate is undone in turn,
  broadest grant first, and stays undone if the oracle still answers "no".
  Each kept service exclusion is then narrowed to at most three of the
  service's own escalation actions where that suffices. A statement left with no action
  is removed; a policy left with no statement is refused (the judge would
  have nothing to read, and nothing of the intent was in it).
* ``iam:public``: each statement the oracle names gets the smallest fence
  that pins the caller: a negated condition on an identity key
  (``StringNotEquals aws:PrincipalOrgID``) is read as the typo it usually
  is and turned positive; otherwise a ``StringEquals`` condition is added:
  ``aws:PrincipalAccount`` equal to an account the policy already names
  (or the documentation account 111122223333), or, for web-identity trust
  in a provider anyone can sign up to, the provider's ``sub`` claim (or
  Cognito's ``aud``) pinned to a placeholder the owner must replace.

The JSON is written back in the spelling of the input (indent, tabs,
inline lists) when one of the known spellings reproduces it exactly.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Any

from generator.config.iam import load_policy
from generator.errors import RemediationError, Undecidable
from generator.oracle.iam import answer
from generator.oracle.iam_catalogue import all_actions, expand
from generator.oracle.iam_public import IDENTITY_KEYS, OPEN_PROVIDERS
from generator.records import Case
from generator.run.iam_intent import escalation_actions

__all__ = ["PLACEHOLDER_ACCOUNT", "remediate_iam"]

logger = logging.getLogger(__name__)

# Most escalation actions of one service a fix names one by one.
MAX_NAMED = 3
# AWS's documentation account: used only when the policy names none.
PLACEHOLDER_ACCOUNT = "111122223333"
_ACCOUNT = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
_POSITIVE = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
# Claims that pin a web identity to one subject, per open provider.
_CLAIMS = {
    "token.actions.githubusercontent.com": (
        "sub",
        "repo:example-org/example-repo:ref:refs/heads/main",
    ),
    "cognito-identity.amazonaws.com": (
        "aud",
        "us-east-1:00000000-0000-0000-0000-000000000000",
    ),
}


def remediate_iam(case: Case) -> str:
    """The fixed policy JSON of an IAM case (see the module docstring)."""
    question = case.question.partition(":")[2]
    document = json.loads(case.config)
    if question == "public":
        fixed = _fence_public(document, case.id)
    else:
        fixed = _drop_escalation(document, question, case.id)
    return _dumps_like(case.config, document, fixed)


def _answer(document: dict, question: str) -> str:
    try:
        return answer(load_policy(json.dumps(document)), question).value
    except Undecidable:
        return "depends"


def _statements(document: dict) -> list[dict]:
    found = document.get("Statement")
    return found if isinstance(found, list) else [found]


def _values(value: Any) -> list[str]:
    return [] if value is None else value if isinstance(value, list) else [value]


# --- privesc and admin --------------------------------------------------------------


@lru_cache(maxsize=1)
def _escalating_actions() -> dict[str, tuple[str, ...]]:
    """Escalation actions in catalogue spelling, by service."""
    wanted = escalation_actions()
    by_service: dict[str, list[str]] = {}
    for action in sorted(all_actions()):
        if action.lower() in wanted:
            by_service.setdefault(action.split(":")[0].lower(), []).append(action)
    return {service: tuple(names) for service, names in by_service.items()}


def _escalating(pattern: str) -> bool:
    if pattern == "*":
        return True
    regex = re.compile(
        "".join(
            ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
        ),
        re.IGNORECASE,
    )
    return any(regex.fullmatch(a) for a in escalation_actions())


def _candidates(document: dict) -> list[tuple[int, str, str]]:
    """(statement, "remove" | "exclude", pattern) edits, broadest first."""
    found = []
    for index, statement in enumerate(_statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        actions = _values(statement.get("Action"))
        if "NotAction" in statement or "*" in actions:
            for service in _escalating_actions():
                found.append((index, "exclude", f"{service}:*"))
        else:
            found += [(index, "remove", p) for p in actions if _escalating(p)]
    return sorted(found, key=lambda c: -len(expand(c[2]) if c[2] != "*" else ()))


def _edited(document: dict, chosen: list[tuple[int, str, str]]) -> dict:
    """``document`` with the chosen edits made (a new object)."""
    statements = []
    for index, statement in enumerate(_statements(document)):
        removed = {p for i, kind, p in chosen if i == index and kind == "remove"}
        excluded = [p for i, kind, p in chosen if i == index and kind == "exclude"]
        statement = dict(statement)
        if removed:
            kept = [p for p in _values(statement["Action"]) if p not in removed]
            if not kept:
                continue
            statement["Action"] = (
                kept if isinstance(statement["Action"], list) else kept[0]
            )
        if excluded:
            statement = _excluding(statement, excluded)
        statements.append(statement)
    if not statements:
        return {}
    result = dict(document)
    single = not isinstance(document.get("Statement"), list) and len(statements) == 1
    result["Statement"] = statements[0] if single else statements
    return result


def _excluding(statement: dict, excluded: list[str]) -> dict:
    if "NotAction" in statement:
        return {**statement, "NotAction": _values(statement["NotAction"]) + excluded}
    # Action "*": the same place in the statement, read as NotAction.
    return {
        ("NotAction" if key == "Action" else key): (
            excluded if key == "Action" else value
        )
        for key, value in statement.items()
    }


def _drop_escalation(document: dict, question: str, case_id: str) -> dict:
    candidates = _candidates(document)
    chosen = list(candidates)
    if (
        not _edited(document, chosen)
        or _answer(_edited(document, chosen), question) != "no"
    ):
        raise RemediationError(
            f"{case_id}: removing every escalating grant does not make {question} "
            "answer no, or leaves no statement"
        )
    for candidate in candidates:
        trial = [c for c in chosen if c != candidate]
        fixed = _edited(document, trial)
        if fixed and _answer(fixed, question) == "no":
            chosen = trial
    chosen = _narrow_exclusions(document, chosen, question)
    return _edited(document, chosen)


def _narrow_exclusions(document: dict, chosen: list, question: str) -> list:
    """Replace each kept ``service:*`` exclusion by as few of the service's
    escalation actions as still answer "no", when that is a short list
    (``MAX_NAMED``): a reviewer reads three names; thirty are a worse
    answer than ``iam:*``."""
    for candidate in [c for c in chosen if c[1] == "exclude"]:
        index, _, pattern = candidate
        service = pattern.split(":")[0]
        names = [(index, "exclude", a) for a in _escalating_actions()[service]]
        trial = [c for c in chosen if c != candidate] + names
        if _answer(_edited(document, trial), question) != "no":
            continue
        for name in names:
            smaller = [c for c in trial if c != name]
            if _answer(_edited(document, smaller), question) == "no":
                trial = smaller
        if len(trial) - len(chosen) + 1 <= MAX_NAMED:
            chosen = trial
    return chosen


# --- public -------------------------------------------------------------------------


def _fence_public(document: dict, case_id: str) -> dict:
    fixed = json.loads(json.dumps(document))
    fenced: set[int] = set()
    account = _account(document)
    for _ in range(len(_statements(fixed)) + 1):
        result = answer(load_policy(json.dumps(fixed)), "public")
        if result.value == "no":
            return fixed
        named = {f.statement for f in result.findings if f.statement is not None}
        todo = sorted(named - fenced)
        if not todo:
            break
        for index in todo:
            statement = _statements(fixed)[index]
            if not _flip_negated(statement):
                _pin(statement, account)
            fenced.add(index)
    raise RemediationError(f"{case_id}: fencing the public statements did not help")


def _account(document: dict) -> str:
    """An account id the policy names (its owner's, in practice)."""
    found = _ACCOUNT.findall(json.dumps(document))
    return found[0] if found else PLACEHOLDER_ACCOUNT


def _flip_negated(statement: dict) -> bool:
    """Turn ``StringNotEquals {identity key: concrete value}`` positive."""
    conditions = statement.get("Condition")
    if not isinstance(conditions, dict):
        return False
    for operator, block in list(conditions.items()):
        positive = _POSITIVE.get(operator)
        if positive is None or positive in conditions or not isinstance(block, dict):
            continue
        keys = [k.lower() for k in block]
        values = [v for value in block.values() for v in _values(value)]
        concrete = all(isinstance(v, str) and not set(v) & set("*?$") for v in values)
        if keys and all(k in IDENTITY_KEYS for k in keys) and concrete:
            statement["Condition"] = {
                (positive if op == operator else op): body
                for op, body in conditions.items()
            }
            return True
    return False


def _pin(statement: dict, account: str) -> None:
    key, value = "aws:PrincipalAccount", account
    principal = statement.get("Principal")
    federated = principal.get("Federated") if isinstance(principal, dict) else None
    for provider in _values(federated):
        host = provider.split(":oidc-provider/", 1)[-1]
        if host in OPEN_PROVIDERS:
            claim, example = _CLAIMS.get(host, ("sub", "example-subject"))
            key, value = f"{host}:{claim}", example
    conditions = statement.setdefault("Condition", {})
    block = conditions.setdefault("StringEquals", {})
    block[key] = value


# --- writing the JSON back ----------------------------------------------------------


def _dumps_like(original: str, before: dict, after: dict) -> str:
    """``after`` in the spelling that reproduces ``original`` from ``before``."""
    trailing = "\n" if original.endswith("\n") else ""
    for indent in (4, 2, "\t", None):
        for inline in (False, True):
            if _dumps(before, indent, inline) + trailing == original:
                return _dumps(after, indent, inline) + trailing
    return json.dumps(after, indent=2) + "\n"


def _dumps(value: Any, indent: int | str | None, inline: bool, depth: int = 0) -> str:
    """JSON text; ``inline`` writes lists of scalars on one line."""
    if indent is None:
        return json.dumps(value)
    unit = indent if isinstance(indent, str) else " " * indent
    pad, inner = unit * depth, unit * (depth + 1)
    if isinstance(value, dict) and value:
        items = [
            f"{inner}{json.dumps(k)}: {_dumps(v, indent, inline, depth + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value:
        if inline and not any(isinstance(v, dict | list) for v in value):
            return json.dumps(value)
        items = [f"{inner}{_dumps(v, indent, inline, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)
