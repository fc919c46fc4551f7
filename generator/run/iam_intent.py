"""Judging a model's repair of an IAM policy: re-checked, and intent kept.

A repair is judged like a Kubernetes one (``generator.run.repair``):
``unparseable`` if no policy can be read from the answer,
``repair_broke_intent`` if it takes away access the policy was meant to
give, ``repair_still_unsafe`` if the oracle still answers "yes" to the
case's question, or cannot decide ("depends" is not "no").

**Intended access**, precisely. The intent is a set of *probes*, concrete
requests taken from the original policy, and a repair keeps the intent
when it still allows every probe:

* identity policies (``iam:privesc``, ``iam:admin``): for every Allow
  statement without a Condition that uses ``Action`` and ``Resource``
  (not the Not- forms), every pair of one of its action patterns and one of
  its resource patterns, where the action pattern is not ``*`` and covers
  no action of any escalation method of the oracle's catalogue
  (``generator/oracle/iam_methods.yaml``). A pattern becomes a concrete
  name by writing ``Probe`` for each ``*`` and ``x`` for each ``?``
  (``s3:Get*`` → ``s3:GetProbe``); ``${aws:username}`` becomes
  ``probe-user`` under Version 2012-10-17. A probe counts only if the
  original itself allows it for certain (an unconditional Allow matches
  and no Deny does); the repair must allow it the same way. So ordinary
  grants must survive, while grants that reach an escalation action
  (``iam:*``, ``lambda:*``, ``iam:PassRole``) may be narrowed or removed.
* resource and trust policies (``iam:public``): for every Allow statement
  (conditions ignored: adding one is how a public grant is fenced), every
  action pattern with every resource (or none, for a trust policy), asked
  by each principal it names that is not public (an account, a role, a
  service, a federated provider; an account id and its root ARN are one
  principal), or by "someone" when it names anyone. The repair must have
  an Allow covering the action and resource for that principal (for
  "someone", for any principal), not cancelled by an unconditional Deny.

This matcher is deliberately small (``*`` runs over anything, ``?`` one
character, actions case-insensitive, resources case-sensitive); it only
ever compares a policy with its own repair on probes drawn from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from generator.errors import SpotcheckError

__all__ = ["Probe", "escalation_actions", "extract_json", "intent_lost", "probes"]

_METHODS = Path(__file__).resolve().parents[1] / "oracle" / "iam_methods.yaml"
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*$", re.MULTILINE)
_USERNAME = "probe-user"


@lru_cache(maxsize=1)
def _escalation_actions() -> frozenset[str]:
    data = yaml.safe_load(_METHODS.read_text(encoding="utf-8"))
    names: set[str] = set()
    for method in data.get("methods", ()):
        names.update(method.get("required_actions") or ())
        for group in method.get("any_of") or ():
            names.update(group)
    return frozenset(n.lower() for n in names)


def escalation_actions() -> frozenset[str]:
    """Every action any escalation method needs, lower-cased."""
    return _escalation_actions()


def extract_json(output: str) -> str | None:
    """The policy text in a model answer, or None if there is none.

    A fenced block (```json, ``` or ```JSON) whose body is a JSON object
    wins; else the first JSON object in the answer that has a Statement.
    """
    fences = list(_FENCE.finditer(output))
    for i in range(0, len(fences), 2):
        opening = fences[i]
        end = fences[i + 1].start() if i + 1 < len(fences) else len(output)
        body = output[opening.end() + 1 : end].strip()
        if opening[1].lower() in ("", "json") and body.startswith("{"):
            return body + "\n"
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", output):
        try:
            value, stop = decoder.raw_decode(output, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "Statement" in value:
            return output[match.start() : stop] + "\n"
    return None


# --- matching ---------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.compile(body, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items]


def _resolve(pattern: str, version: str | None) -> str:
    if version != "2012-10-17":
        return pattern
    return re.sub(r"\$\{aws:username\}", _USERNAME, pattern, flags=re.IGNORECASE)


def _covers(statement: dict, action: str, resource: str | None, version) -> bool:
    if "Action" in statement:
        if not any(
            _glob(p, True).fullmatch(action) for p in _values(statement["Action"])
        ):
            return False
    elif any(
        _glob(p, True).fullmatch(action) for p in _values(statement.get("NotAction"))
    ):
        return False
    if resource is None:
        return True
    if "Resource" in statement:
        patterns = [_resolve(p, version) for p in _values(statement["Resource"])]
        return any(_glob(p, False).fullmatch(resource) for p in patterns)
    if "NotResource" in statement:
        patterns = [_resolve(p, version) for p in _values(statement["NotResource"])]
        return not any(_glob(p, False).fullmatch(resource) for p in patterns)
    return True


def _statements(document: Any) -> list[dict]:
    if not isinstance(document, dict):
        raise SpotcheckError("the repaired policy is not a JSON object")
    found = document.get("Statement")
    items = found if isinstance(found, list) else [found]
    return [s for s in items if isinstance(s, dict)]


# --- probes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A concrete request the original policy was meant to allow."""

    action: str
    resource: str | None
    principal: str | None = None  # public policies: who asks; None = someone

    def __str__(self) -> str:
        who = f" by {self.principal}" if self.principal else ""
        where = f" on {self.resource}" if self.resource else ""
        return f"{self.action}{where}{who}"


def _concrete(pattern: str, *, name: str) -> str:
    return pattern.replace("*", name).replace("?", "x")


def _escalating(pattern: str) -> bool:
    if pattern == "*":
        return True
    regex = _glob(pattern, True)
    return any(regex.fullmatch(a) for a in _escalation_actions())


def _principal_names(principal: Any) -> list[str | None]:
    """The principals a Principal element names; None stands for anyone."""
    if principal == "*":
        return [None]
    names: list[str | None] = []
    if isinstance(principal, dict):
        for kind, value in principal.items():
            for item in _values(value):
                if kind == "AWS" and item == "*":
                    names.append(None)
                else:
                    names.append(f"{kind}:{_account_root(item)}")
    return names


def _account_root(value: str) -> str:
    if value.isdigit() and len(value) == 12:
        return f"arn:aws:iam::{value}:root"
    return value


def probes(document: dict, question: str) -> list[Probe]:
    """The intended access of ``document`` for ``question`` (module docstring)."""
    version = document.get("Version")
    found: list[Probe] = []
    for statement in _statements(document):
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue
        if question == "iam:public":
            resources = _values(statement.get("Resource")) or [None]
            for action in _values(statement["Action"]):
                for resource in resources:
                    for who in _principal_names(statement.get("Principal")):
                        found.append(
                            Probe(
                                _concrete(action, name="Probe"),
                                None
                                if resource is None
                                else _concrete(resource, name="probe"),
                                who,
                            )
                        )
            continue
        if "Condition" in statement or "Resource" not in statement:
            continue
        for action in _values(statement["Action"]):
            if _escalating(action):
                continue
            for resource in _values(statement["Resource"]):
                concrete = _concrete(_resolve(resource, version), name="probe")
                found.append(Probe(_concrete(action, name="Probe"), concrete))
    kept = [p for p in dict.fromkeys(found) if _allowed(document, p, question)]
    return kept


def _allowed(document: dict, probe: Probe, question: str) -> bool:
    version = document.get("Version")
    statements = _statements(document)
    public = question == "iam:public"
    for statement in statements:
        if statement.get("Effect") == "Deny" and (
            "Condition" not in statement or not public
        ):
            if _covers(statement, probe.action, probe.resource, version):
                return False
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        if not public and "Condition" in statement:
            continue
        if not _covers(statement, probe.action, probe.resource, version):
            continue
        if not public or probe.principal is None:
            return True
        names = _principal_names(statement.get("Principal"))
        if probe.principal in names or None in names:
            return True
    return False


def intent_lost(original: str, repaired: str, question: str) -> list[str]:
    """The probes of ``original`` that ``repaired`` no longer allows, in words."""
    before = json.loads(original)
    try:
        after = json.loads(repaired)
    except ValueError as exc:
        raise SpotcheckError(f"the repair is not JSON: {exc}") from None
    lost = [p for p in probes(before, question) if not _allowed(after, p, question)]
    return [f"no longer allows {p}" for p in lost]
