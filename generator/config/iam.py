"""IAM policy documents: JSON read the way AWS's policy validator reads it.

Reading a policy correctly is part of the ground truth, so this module is
strict where AWS is strict and says where a document goes wrong
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html):

* ``Effect`` is exactly ``Allow`` or ``Deny``; ``"allow"`` is invalid, not an
  Allow (the value is case-sensitive).
* A statement has one of ``Action``/``NotAction`` and at most one of
  ``Resource``/``NotResource`` and of ``Principal``/``NotPrincipal``. A
  statement without a principal (an identity policy) needs a resource; trust
  policies may leave the resource out.
* Element values are strings or lists of strings; condition values may also
  be JSON booleans and numbers, which AWS compares as their text.
* Duplicate keys are rejected: JSON parsers disagree on which copy wins, so
  such a document has no single meaning (trap 19 of research/iam.md).
* An action is ``*`` or ``service:name``; a wildcard inside the service
  prefix is rejected because AWS does not document what it matches.
* A principal ARN may not hold a partial wildcard (``arn:aws:iam::*:root``);
  only ``*`` alone is accepted.
* Condition operators must be ones AWS knows, with the ``IfExists`` suffix
  and ``ForAllValues:``/``ForAnyValue:`` prefixes it documents.

Everything is read into frozen dataclasses; ``kind`` tells identity, resource
and trust policies apart and ``looks_like_policy`` recognises a policy among
other JSON documents for the ``check`` command.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from generator.errors import ConfigError

__all__ = [
    "ASSUME_ACTIONS",
    "Condition",
    "OPERATORS",
    "Policy",
    "Principal",
    "Statement",
    "VERSIONS",
    "kind",
    "load_policy",
    "looks_like_policy",
    "parse_policy",
]

logger = logging.getLogger(__name__)

# The two policy-language versions. Only 2012-10-17 has policy variables; a
# policy without Version is read as 2008-10-17.
VERSIONS = ("2012-10-17", "2008-10-17")

TOP_KEYS = frozenset({"Version", "Id", "Statement"})
STATEMENT_KEYS = frozenset(
    {
        "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
        "Principal", "NotPrincipal", "Condition",
    }
)  # fmt: skip
PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")

# Condition operators by base name, from the IAM condition-operator reference
# (reference_policies_elements_condition_operators.html). ``Null`` takes no
# IfExists suffix.
OPERATORS = frozenset(
    {
        "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike",
        "NumericEquals", "NumericNotEquals", "NumericLessThan",
        "NumericLessThanEquals", "NumericGreaterThan",
        "NumericGreaterThanEquals", "DateEquals", "DateNotEquals",
        "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
        "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
        "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike",
        "Null",
    }
)  # fmt: skip
SET_PREFIXES = ("ForAllValues:", "ForAnyValue:")

# Role trust policies grant these actions to principals; any other action in
# a statement with a principal makes the document a resource policy.
ASSUME_ACTIONS = (
    "sts:assumerole",
    "sts:assumerolewithwebidentity",
    "sts:assumerolewithsaml",
    "sts:tagsession",
    "sts:setsourceidentity",
    "sts:setcontext",
)

_SERVICE = re.compile(r"[a-z0-9-]+", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One operator applied to one key: ``{"StringEquals": {"k": [v, ...]}}``.

    ``operator`` keeps its spelling (``ForAnyValue:StringLikeIfExists``);
    ``values`` are text, JSON ``true`` read as ``"true"``.
    """

    operator: str
    key: str
    values: tuple[str, ...]

    @property
    def base(self) -> str:
        """The operator without set prefix or IfExists suffix."""
        name = self.operator.split(":", 1)[-1]
        return name.removesuffix("IfExists") if name != "Null" else name

    @property
    def set_prefix(self) -> str:
        """``ForAllValues``, ``ForAnyValue`` or ``""``."""
        head, _, tail = self.operator.partition(":")
        return head if tail else ""

    @property
    def if_exists(self) -> bool:
        return self.operator.endswith("IfExists")


@dataclass(frozen=True)
class Principal:
    """A Principal or NotPrincipal value as (type, value) pairs.

    ``"Principal": "*"`` is the single pair ``("*", "*")``.
    """

    entries: tuple[tuple[str, str], ...]

    def values(self, kind: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.entries if k == kind)


@dataclass(frozen=True)
class Statement:
    """One statement; absent elements are ``None``, never empty tuples."""

    index: int
    sid: str | None
    effect: str
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    principal: Principal | None
    not_principal: Principal | None
    conditions: tuple[Condition, ...]

    @property
    def path(self) -> str:
        return f"Statement[{self.index}]"

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"


@dataclass(frozen=True)
class Policy:
    """A parsed policy document. ``version`` is None when Version is absent."""

    version: str | None
    statements: tuple[Statement, ...]
    id: str | None = None
    source: str = "<policy>"
    size: int = 0  # characters in all element strings, for cost limits

    @property
    def variables(self) -> bool:
        """Whether ``${...}`` is a policy variable (only in 2012-10-17)."""
        return self.version == "2012-10-17"


# --- reading ------------------------------------------------------------------


def load_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse policy JSON text; duplicate keys and bad JSON are ConfigErrors."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise ConfigError(
            f'duplicate key "{exc.key}" in one JSON object; AWS parsers disagree '
            "on which copy wins, so write it once",
            source=source,
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            source=source,
        ) from None
    except RecursionError:
        raise ConfigError("JSON nested too deeply", source=source) from None
    return parse_policy(data, source=source)


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def parse_policy(data: object, *, source: str = "<policy>") -> Policy:
    """Read a decoded JSON policy; raise ConfigError naming the bad place."""
    reader = _Reader(source)
    return reader.policy(data)


class _Reader:
    """Reads one document, counting its size and naming places in errors."""

    def __init__(self, source: str):
        self.source = source
        self.size = 0

    def fail(self, message: str) -> ConfigError:
        return ConfigError(message, source=self.source)

    def policy(self, data: object) -> Policy:
        if not isinstance(data, dict):
            raise self.fail(f"a policy is a JSON object, not {_type(data)}")
        unknown = sorted(set(data) - TOP_KEYS)
        if unknown:
            raise self.fail(
                f"unknown top-level key {unknown[0]!r}; a policy has "
                "Version, Id and Statement"
            )
        version = data.get("Version")
        if version is not None and version not in VERSIONS:
            raise self.fail(
                f"Version: {json.dumps(version)} is not 2012-10-17 or 2008-10-17"
            )
        policy_id = data.get("Id")
        if policy_id is not None and not isinstance(policy_id, str):
            raise self.fail(f"Id: must be a string, not {_type(policy_id)}")
        if "Statement" not in data:
            raise self.fail("no Statement: a policy needs at least one statement")
        raw = data["Statement"]
        if isinstance(raw, dict):
            raw = [raw]  # a single statement object is valid (trap 16)
        if not isinstance(raw, list):
            raise self.fail(f"Statement: must be an object or a list, not {_type(raw)}")
        if not raw:
            raise self.fail("Statement: the list is empty; a policy needs a statement")
        statements = tuple(self.statement(i, s) for i, s in enumerate(raw))
        return Policy(version, statements, policy_id, self.source, self.size)

    def statement(self, index: int, data: object) -> Statement:
        where = f"Statement[{index}]"
        if not isinstance(data, dict):
            raise self.fail(f"{where}: must be an object, not {_type(data)}")
        unknown = sorted(set(data) - STATEMENT_KEYS)
        if unknown:
            raise self.fail(
                f"{where}: unknown key {unknown[0]!r}; statement keys are "
                + ", ".join(sorted(STATEMENT_KEYS))
            )
        sid = data.get("Sid")
        if sid is not None and not isinstance(sid, str):
            raise self.fail(f"{where}.Sid: must be a string, not {_type(sid)}")
        effect = self.effect(where, data)
        actions, not_actions = self.pair(where, data, "Action", "NotAction")
        if actions is None and not_actions is None:
            raise self.fail(f"{where}: needs Action or NotAction")
        for name, values in (("Action", actions), ("NotAction", not_actions)):
            for value in values or ():
                self.action(f"{where}.{name}", value)
        resources, not_resources = self.pair(where, data, "Resource", "NotResource")
        principal = self.principal(where, data, "Principal")
        not_principal = self.principal(where, data, "NotPrincipal")
        if principal is not None and not_principal is not None:
            raise self.fail(f"{where}: has both Principal and NotPrincipal; keep one")
        has_principal = principal is not None or not_principal is not None
        if resources is None and not_resources is None and not has_principal:
            raise self.fail(
                f"{where}: needs Resource or NotResource (only trust policies, "
                "which name a Principal, may leave it out)"
            )
        conditions = self.conditions(where, data.get("Condition"))
        return Statement(
            index, sid, effect, actions, not_actions, resources, not_resources,
            principal, not_principal, conditions,
        )  # fmt: skip

    def effect(self, where: str, data: dict[str, Any]) -> str:
        if "Effect" not in data:
            raise self.fail(f'{where}: no Effect; write "Allow" or "Deny"')
        effect = data["Effect"]
        if effect in ("Allow", "Deny"):
            return effect
        if isinstance(effect, str) and effect.lower() in ("allow", "deny"):
            fixed = effect.capitalize()
            raise self.fail(
                f"{where}.Effect: {json.dumps(effect)} is not Allow or Deny "
                f'(the value is case-sensitive); write "{fixed}"'
            )
        raise self.fail(
            f'{where}.Effect: {json.dumps(effect)} is not "Allow" or "Deny"'
        )

    def pair(
        self, where: str, data: dict[str, Any], name: str, negated: str
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        if name in data and negated in data:
            raise self.fail(f"{where}: has both {name} and {negated}; keep one")
        plain = self.strings(f"{where}.{name}", data[name]) if name in data else None
        other = data.get(negated)
        negative = (
            self.strings(f"{where}.{negated}", other) if other is not None else None
        )
        if negated in data and other is None:
            raise self.fail(f"{where}.{negated}: is null; give a string or a list")
        return plain, negative

    def strings(self, where: str, value: object) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(f"{where}: the list is empty")
        for item in items:
            if not isinstance(item, str):
                raise self.fail(f"{where}: {json.dumps(item)} is not a string")
            if not item:
                raise self.fail(f"{where}: an empty string names nothing")
            self.size += len(item)
        return tuple(items)

    def action(self, where: str, value: str) -> None:
        if value == "*":
            return
        service, colon, name = value.partition(":")
        if not colon or not name:
            raise self.fail(
                f"{where}: {json.dumps(value)} has no service prefix; write "
                'it as "service:Action", e.g. "iam:CreateAccessKey"'
            )
        if not _SERVICE.fullmatch(service):
            raise self.fail(
                f"{where}: {json.dumps(value)} has a wildcard or odd character "
                "in the service prefix; AWS does not define what that matches"
            )

    def principal(
        self, where: str, data: dict[str, Any], name: str
    ) -> Principal | None:
        if name not in data:
            return None
        value = data[name]
        here = f"{where}.{name}"
        if value == "*":
            return Principal((("*", "*"),))
        if not isinstance(value, dict) or not value:
            raise self.fail(
                f'{here}: must be "*" or an object such as {{"AWS": ...}}, '
                f"not {json.dumps(value)[:60]}"
            )
        entries = []
        for kind_, raw in value.items():
            if kind_ not in PRINCIPAL_TYPES:
                raise self.fail(
                    f"{here}: unknown principal type {kind_!r}; use one of "
                    + ", ".join(PRINCIPAL_TYPES)
                )
            for item in self.strings(f"{here}.{kind_}", raw):
                if item != "*" and ("*" in item or "?" in item):
                    raise self.fail(
                        f"{here}.{kind_}: {json.dumps(item)} has a wildcard inside "
                        'a principal; AWS accepts only "*" alone'
                    )
                entries.append((kind_, item))
        return Principal(tuple(entries))

    def conditions(self, where: str, value: object) -> tuple[Condition, ...]:
        if value is None:
            return ()
        here = f"{where}.Condition"
        if not isinstance(value, dict):
            raise self.fail(f"{here}: must be an object, not {_type(value)}")
        result = []
        for operator, block in value.items():
            self.operator(here, operator)
            if not isinstance(block, dict) or not block:
                raise self.fail(
                    f"{here}.{operator}: must be an object of key to values, "
                    f"not {json.dumps(block)[:60]}"
                )
            for key, raw in block.items():
                values = self.condition_values(f"{here}.{operator}.{key}", raw)
                result.append(Condition(operator, key, values))
        return tuple(result)

    def operator(self, here: str, operator: str) -> None:
        name = operator
        for prefix in SET_PREFIXES:
            name = name.removeprefix(prefix)
        base = name.removesuffix("IfExists") if name != "NullIfExists" else name
        if base not in OPERATORS:
            raise self.fail(
                f"{here}: unknown condition operator {operator!r}; see the IAM "
                "condition-operator reference for the names AWS accepts"
            )

    def condition_values(self, where: str, raw: object) -> tuple[str, ...]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.fail(f"{where}: the list is empty")
        values = []
        for item in items:
            if isinstance(item, bool):
                values.append("true" if item else "false")
            elif isinstance(item, int | float):
                values.append(json.dumps(item))
            elif isinstance(item, str):
                values.append(item)
            else:
                raise self.fail(f"{where}: {json.dumps(item)[:60]} is not a string")
            self.size += len(values[-1])
        return tuple(values)


def _type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "?")


# --- recognising --------------------------------------------------------------


def kind(policy: Policy) -> str:
    """``identity``, ``resource`` or ``trust``.

    No statement names a principal: identity. Every statement names one and
    only grants the sts:AssumeRole family: a role trust policy. Otherwise a
    resource policy.
    """
    with_principal = [s for s in policy.statements if s.principal or s.not_principal]
    if not with_principal:
        return "identity"
    if len(with_principal) == len(policy.statements) and all(
        _assume_only(s) for s in with_principal
    ):
        return "trust"
    return "resource"


def _assume_only(statement: Statement) -> bool:
    if statement.actions is None:
        return False
    for action in statement.actions:
        lowered = action.lower()
        if not any(a == lowered for a in ASSUME_ACTIONS) and not (
            lowered.startswith("sts:assumerole") and lowered.endswith("*")
        ):
            return False
    return True


def looks_like_policy(data: object) -> bool:
    """A JSON object with a Statement key: what ``check`` judges as IAM."""
    return isinstance(data, dict) and "Statement" in data
