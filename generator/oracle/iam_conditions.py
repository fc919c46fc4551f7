"""Condition blocks, evaluated three-valued in a context that models the caller.

A condition entry (one operator on one key) comes out ``TRUE``, ``FALSE`` or
``MAYBE`` (the policy alone cannot tell). How a key is read depends on who is
asking (research/iam.md §2.3):

* **fixed** keys have one known value in the context, possibly "absent":
  ``iam:PassedToService`` is absent for every action but iam:PassRole.
* **free** keys are chosen by the caller for each request: MFA
  (``aws:MultiFactorAuthPresent``: absent with long-term keys, "true" or
  "false" with a session), ``aws:SecureTransport``, ``aws:UserAgent``,
  ``aws:Referer``, request tags where the action takes tags, and, for an
  escalation method, which service a role is passed to and which AWS-managed
  admin policy is attached. ``assignments`` enumerates the candidate values
  that can make a difference: the values the conditions name, one value they
  do not name, and absence where that is possible.
* **unknown** keys (anything else: source IP, principal tags, times, ...)
  give ``MAYBE``.

The operator semantics are AWS's (reference_policies_elements_condition_
operators.html): a missing key makes positive operators false, negated ones
true and ``...IfExists`` true; ``ForAllValues`` is true on a missing or empty
key, ``ForAnyValue`` false; several values for one key are ORed (NORed for a
negated operator); keys are case-insensitive.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from generator.config.iam import Condition

__all__ = [
    "FALSE",
    "MAYBE",
    "TRUE",
    "Context",
    "KeyModel",
    "assignments",
    "both",
    "evaluate",
    "negated",
]

logger = logging.getLogger(__name__)

TRUE, FALSE, MAYBE = "true", "false", "maybe"

# A key's value: None when absent, else its values (one for single-valued).
Value = tuple[str, ...] | None

FRESH = "spotcheck-unnamed-value"
MAX_ASSIGNMENTS = 512


@dataclass(frozen=True)
class KeyModel:
    """How one key behaves: ``fixed`` (one value), ``free`` or ``unknown``."""

    kind: str
    values: tuple[Value, ...] = ()


UNKNOWN_KEY = KeyModel("unknown")


@dataclass
class Context:
    """Key models by lower-cased key; keys not listed are unknown."""

    keys: dict[str, KeyModel] = field(default_factory=dict)
    prefixes: dict[str, KeyModel] = field(default_factory=dict)

    def model(self, key: str) -> KeyModel:
        lowered = key.lower()
        if lowered in self.keys:
            return self.keys[lowered]
        for prefix, model in self.prefixes.items():
            if lowered.startswith(prefix):
                return model
        return UNKNOWN_KEY


def both(values: Iterable[str]) -> str:
    """Kleene AND of three-valued results."""
    result = TRUE
    for value in values:
        if value == FALSE:
            return FALSE
        if value == MAYBE:
            result = MAYBE
    return result


def negated(condition: Condition) -> bool:
    return "Not" in condition.base


def evaluate(
    conditions: Sequence[Condition],
    context: Context,
    assignment: dict[str, Value] | None,
) -> str:
    """The block's value; ``assignment`` gives free keys (None: unknown)."""
    results = []
    for condition in conditions:
        model = context.model(condition.key)
        if model.kind == "fixed":
            results.append(entry(condition, model.values[0]))
        elif model.kind == "free" and assignment is not None:
            results.append(entry(condition, assignment[condition.key.lower()]))
        else:
            results.append(MAYBE)
        if results[-1] == FALSE:
            return FALSE
    return both(results)


def entry(condition: Condition, value: Value) -> str:
    """One operator on one key whose value is known (None: absent)."""
    base = condition.base
    if base == "Null":
        wanted = {v.lower() for v in condition.values}
        if not wanted <= {"true", "false"}:
            return MAYBE
        absent = value is None
        return (
            TRUE
            if ("true" in wanted and absent) or ("false" in wanted and not absent)
            else FALSE
        )
    prefix = condition.set_prefix
    if value is None or (prefix and not value):
        if prefix == "ForAllValues":
            return TRUE  # vacuous truth (trap 20)
        if condition.if_exists:
            return TRUE
        if prefix == "ForAnyValue":
            return FALSE
        return TRUE if negated(condition) else FALSE
    if prefix == "ForAllValues":
        return both(_single(condition, v) for v in value)
    if prefix == "ForAnyValue":
        results = [_single(condition, v) for v in value]
        if TRUE in results:
            return TRUE
        return MAYBE if MAYBE in results else FALSE
    if len(value) != 1:
        return MAYBE  # a multi-valued key without a set operator
    return _single(condition, value[0])


def _single(condition: Condition, text: str) -> str:
    """One value against the condition's values (OR, NOR when negated)."""
    base = condition.base
    hits = [_compare(base, text, v) for v in condition.values]
    if MAYBE in hits:
        return MAYBE
    hit = TRUE in hits
    return (FALSE if hit else TRUE) if negated(condition) else (TRUE if hit else FALSE)


def _compare(base: str, text: str, wanted: str) -> str:
    plain = base.replace("Not", "")
    if "${" in wanted:
        return MAYBE  # a policy variable in a value: depends on the caller
    if plain == "StringEquals":
        return TRUE if text == wanted else FALSE
    if plain == "StringEqualsIgnoreCase":
        return TRUE if text.lower() == wanted.lower() else FALSE
    if plain in ("StringLike", "ArnLike", "ArnEquals"):
        return TRUE if _like(wanted).fullmatch(text) else FALSE
    if plain == "Bool":
        return TRUE if text.lower() == wanted.lower() else FALSE
    return MAYBE  # numbers, dates, IPs, binary: not used for known keys


def _like(pattern: str) -> re.Pattern[str]:
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.compile(body, re.DOTALL)


def instances(pattern: str) -> list[str]:
    """Strings a Like pattern matches: wildcards filled two ways."""
    if "*" not in pattern and "?" not in pattern:
        return [pattern]
    short = pattern.replace("*", "").replace("?", "x")
    long_ = pattern.replace("*", FRESH).replace("?", "x")
    return [short, long_]


def assignments(
    blocks: Iterable[Sequence[Condition]], context: Context
) -> Iterator[dict[str, Value] | None]:
    """Every combination of candidate values for the free keys in ``blocks``.

    Yields ``None`` alone (free keys read as unknown) when there are too
    many combinations to try: the verdict then errs to MAYBE, never wrong.
    """
    named: dict[str, set[str]] = {}
    for block in blocks:
        for condition in block:
            key = condition.key.lower()
            if context.model(key).kind == "free":
                values = named.setdefault(key, set())
                for value in condition.values:
                    values.update(instances(value))
    if not named:
        yield {}
        return
    options = {key: _candidates(context.model(key), named[key]) for key in named}
    total = 1
    for values in options.values():
        total *= len(values)
    if total > MAX_ASSIGNMENTS:
        logger.debug("%d condition assignments; reading free keys as unknown", total)
        yield None
        return
    keys = sorted(options)
    for combo in itertools.product(*(options[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def _candidates(model: KeyModel, named: set[str]) -> list[Value]:
    """A model's own candidates, or named values plus one unnamed value."""
    if model.values:
        return list(model.values)
    values: list[Value] = [None, (FRESH,)]
    values.extend((v,) for v in sorted(named))
    return values


# --- outsiders ----------------------------------------------------------------


def ip_prefix(value: str) -> int | None:
    """The prefix length of a CIDR condition value, or None if unreadable."""
    try:
        return ipaddress.ip_network(value, strict=False).prefixlen
    except ValueError:
        return None
