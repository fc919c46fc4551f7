"""The flat feature map of an IAM case, computed from the document as written.

Tags describe the input, never the verdict: a tag that restated the truth
would let clustering find the answer key instead of the model's blind
spots. Keys come from ``generator.tags`` (``IAM_KEYS``).
"""

from __future__ import annotations

import re
from typing import Any

from generator import tags as T
from generator.grammar.iam_json import JsonStyle, render_policy
from generator.mutate.iam_base import Policy, as_list, statements_of
from generator.records import TagValue

__all__ = ["iam_tags"]

_WILDCARD_ORDER = ("star", "service", "infix", "suffix", "question", T.NONE)
_RESOURCE_ORDER = (
    "star",
    "arn-wildcard",
    "variable",
    "other-account",
    "scoped",
    T.NONE,
)
_OTHER_ACCOUNTS = ("999988887777",)


def iam_tags(
    policy: Policy,
    *,
    question: str,
    family: str,
    method: str,
    operators: tuple[str, ...],
    seed_file: str = "",
    relation: str = "base",
) -> dict[str, TagValue]:
    """Every key of ``generator.tags.IAM_KEYS`` for one case."""
    document = policy.document
    statements = statements_of(document)
    pretty = render_policy(document, JsonStyle("pretty-4"))
    lines = pretty.count("\n")
    effects = {str(s.get("Effect")).lower() for s in statements}
    statement_form = "object" if isinstance(document.get("Statement"), dict) else "list"
    actions = [
        a
        for s in statements
        for key in ("Action", "NotAction")
        for a in as_list(s.get(key))
        if isinstance(a, str)
    ]
    conditions = sorted(
        {
            str(key).lower()
            for s in statements
            if isinstance(s.get("Condition"), dict)
            for block in s["Condition"].values()
            if isinstance(block, dict)
            for key in block
        }
    )
    return {
        T.FAMILY: family,
        T.METHOD: method,
        T.OPERATORS: ",".join(operators),
        T.OPERATOR_COUNT: len(operators),
        T.SEED_FILE: seed_file,
        T.SIZE: "short" if lines < 30 else "medium" if lines < 60 else "long",
        T.RELATION: relation,
        T.QUESTION: question,
        T.POLICY_KIND: policy.kind,
        T.JSON_LAYOUT: policy.style.label(),
        T.POLICY_VERSION: str(document.get("Version", T.NONE)),
        T.STATEMENTS: len(statements),
        T.STATEMENT_FORM: statement_form,
        T.EFFECTS: "both" if len(effects) > 1 else next(iter(effects), T.NONE),
        T.NOT_ACTION: any("NotAction" in s for s in statements),
        T.NOT_RESOURCE: any("NotResource" in s for s in statements),
        T.ACTION_WILDCARD: _widest([_wildcard(a) for a in actions], _WILDCARD_ORDER),
        T.ACTION_CASE: _case(actions),
        T.RESOURCE_FORM: _widest(
            [
                _resource(r)
                for s in statements
                for key in ("Resource", "NotResource")
                for r in as_list(s.get(key))
                if isinstance(r, str)
            ],
            _RESOURCE_ORDER,
        ),
        T.POLICY_VARIABLES: "${" in pretty,
        T.CONDITION_KEYS: ",".join(conditions) or T.NONE,
        T.PRINCIPAL_FORM: _principal_form(statements),
        T.VALUE_SHAPES: _shapes(statements),
    }  # fmt: skip


def _widest(classes: list[str], order: tuple[str, ...]) -> str:
    for candidate in order:
        if candidate in classes:
            return candidate
    return T.NONE


def _wildcard(pattern: str) -> str:
    if pattern == "*":
        return "star"
    name = pattern.split(":", 1)[-1]
    if name == "*":
        return "service"
    if "*" in name:
        return "suffix" if name.endswith("*") and name.count("*") == 1 else "infix"
    return "question" if "?" in name else T.NONE


def _case(actions: list[str]) -> str:
    classes = set()
    for action in actions:
        if ":" not in action:
            continue
        service, name = action.split(":", 1)
        letters = re.sub(r"[^A-Za-z]", "", name)
        if service != service.lower():
            classes.add("upper-service")
        elif letters and letters == letters.lower() and letters != letters.upper():
            classes.add("lower")
        elif letters and (letters[0].islower() or letters == letters.upper()):
            classes.add("mixed")
        else:
            classes.add("canonical")
    if not classes:
        return T.NONE
    return classes.pop() if len(classes) == 1 else "mixed"


def _resource(resource: str) -> str:
    if resource == "*":
        return "star"
    if "${" in resource:
        return "variable"
    if any(account in resource for account in _OTHER_ACCOUNTS):
        return "other-account"
    parts = resource.split(":", 5)
    if len(parts) == 6 and (
        parts[4] == "*" or parts[5] in ("*",) or parts[5].endswith("/*")
    ):
        return "arn-wildcard"
    return "scoped"


def _principal_form(statements: list[dict[str, Any]]) -> str:
    forms = []
    for s in statements:
        principal = s.get("Principal")
        if principal is None:
            continue
        if principal == "*":
            forms.append("star")
        elif isinstance(principal, dict):
            if "Federated" in principal:
                forms.append("federated")
            elif "Service" in principal:
                forms.append("service")
            aws = principal.get("AWS")
            if isinstance(aws, list):
                forms.append("aws-list")
            elif aws == "*":
                forms.append("aws-star")
            elif isinstance(aws, str):
                forms.append("account" if aws.isdigit() else "arn")
    order = ("star", "aws-star", "aws-list", "federated", "arn", "account", "service")
    return _widest(forms, order)


def _shapes(statements: list[dict[str, Any]]) -> str:
    kinds = {
        "list" if isinstance(s[key], list) else "string"
        for s in statements
        for key in ("Action", "NotAction", "Resource", "NotResource")
        if key in s
    }
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed" if kinds else T.NONE
