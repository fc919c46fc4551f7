"""The IAM grammar file: ``grammars/iam.yaml`` read and checked against the code.

The strategies of ``generator.grammar.iam`` read nothing else for their
values. Every section is checked on load: unknown pool names, values
outside a closed vocabulary the code can write, a method target that is
not an IAM object type, or an action that does not read ``service:Name``
are refused with every offending name listed and the closest known one
suggested (``generator.grammar.pools``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from generator.errors import InvalidArgument
from generator.grammar.iam_json import LAYOUTS
from generator.grammar.pools import _known, _pool_of

__all__ = [
    "GRAMMAR_PATH",
    "TARGETS",
    "VOCABULARIES",
    "IamGrammar",
    "Method",
    "Pool",
    "check_grammar",
    "default_grammar",
    "load_iam_grammar",
]

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammars" / "iam.yaml"

# Closed vocabularies: the code below knows how to write each of these.
VOCABULARIES = {
    "action_spellings": (
        "exact", "lower", "upper-service", "mixed-case", "suffix-star",
        "infix-star", "question", "service-star", "star",
    ),
    "target_spellings": (
        "star", "account-wildcard", "any-account", "iam-star", "self-variable",
        "named", "pathed", "other-account", "wrong-type", "not-iam",
    ),
    "principals": (
        "star", "aws-star", "aws-star-list", "mixed-star", "account-id",
        "account-root", "other-role", "service",
    ),
    "public_conditions": (
        "none", "org-id", "principal-account", "source-vpce", "source-ip",
        "source-ip-any", "org-id-like-any", "org-id-negated", "secure-transport",
        "referer", "org-and-transport",
    ),
    "federations": (
        "github-sub", "github-sub-wildcard-repo", "github-aud-only",
        "github-sub-star", "cognito-amr", "cognito-none", "saml-aud",
    ),
    "layouts": tuple(LAYOUTS),
    "versions": ("2012-10-17", "2008-10-17", "none"),
}  # fmt: skip
_POOLS = (
    "accounts", "other_accounts", "users", "roles", "groups", "policies",
    "buckets", "regions", "versions", "sids", "org_ids", "vpce_ids", "cidrs",
    "services_passed", *VOCABULARIES,
)  # fmt: skip
_SECTIONS = ("version", "pools", "methods", "lookalikes", "benign", "services")
TARGETS = ("user", "role", "policy", "group", "any")

Pool = tuple[tuple[Any, int], ...]


@dataclass(frozen=True)
class Method:
    """One escalation method: its actions, each with the IAM object it needs."""

    name: str
    actions: tuple[tuple[str, str], ...]
    weight: int

    @property
    def service(self) -> str:
        """The service of the last action (the compute one for PassRole paths)."""
        return self.actions[-1][0].split(":")[0]


@dataclass(frozen=True, eq=False)
class IamGrammar:
    """A loaded, checked IAM grammar file. Compared and hashed by identity."""

    source: str
    pools: dict[str, Pool]
    methods: tuple[Method, ...]
    lookalikes: dict[str, tuple[str, ...]]
    benign: tuple[tuple[tuple[str, ...], tuple[str, ...], int], ...]
    services: tuple[tuple[str, tuple[str, ...], str, int], ...]

    def method(self, name: str) -> Method:
        for method in self.methods:
            if method.name == name:
                return method
        raise KeyError(f"no method {name!r} in {self.source}")

    def escalation_actions(self) -> tuple[str, ...]:
        """Every action some method of the grammar needs, in order, once."""
        return tuple(dict.fromkeys(a for m in self.methods for a, _ in m.actions))


def load_iam_grammar(path: str | Path = GRAMMAR_PATH) -> IamGrammar:
    """Read and check ``grammars/iam.yaml``; ``InvalidArgument`` names problems."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"grammar={source!r} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"grammar={source!r} must be a mapping of sections")
    _known(source, "section", raw, _SECTIONS)
    table = raw.get("pools")
    if not isinstance(table, dict):
        raise InvalidArgument(f"{source}: section 'pools' must be a mapping")
    _known(source, "pool", table, _POOLS)
    missing = sorted(set(_POOLS) - set(table))
    if missing:
        raise InvalidArgument(f"{source}: pools is missing {', '.join(missing)}")
    pools = {
        name: tuple((str(v), w) for v, w in _pool_of(source, f"pools.{name}", value))
        for name, value in table.items()
    }
    for name, allowed in VOCABULARIES.items():
        _known(source, f"value of pools.{name}", dict(pools[name]), allowed)
    return IamGrammar(
        source=source,
        pools=pools,
        methods=_methods(source, raw.get("methods")),
        lookalikes=_lookalikes(source, raw.get("lookalikes")),
        benign=_benign(source, raw.get("benign")),
        services=_services(source, raw.get("services")),
    )


def _methods(source: str, raw: Any) -> tuple[Method, ...]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidArgument(f"{source}: methods must be a non-empty mapping")
    out = []
    for name, entry in raw.items():
        where = f"{source}: methods.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("actions"), dict):
            raise InvalidArgument(f"{where} needs actions: {{action: target}}")
        _known(where, "key", entry, ("actions", "weight"))
        _known(where, "target", entry["actions"].values(), TARGETS)
        for action in entry["actions"]:
            _check_action(where, action)
        weight = entry.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise InvalidArgument(f"{where}: weight={weight!r} must be an int >= 1")
        out.append(Method(str(name), tuple(entry["actions"].items()), weight))
    return tuple(out)


def _check_action(where: str, action: Any) -> None:
    if not isinstance(action, str) or not re.fullmatch(
        r"[a-z0-9-]+:[A-Za-z*]+", action
    ):
        raise InvalidArgument(f"{where}: action {action!r} must read service:Name")


def _lookalikes(source: str, raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{source}: lookalikes must be a mapping")
    for service, actions in raw.items():
        if not isinstance(actions, list) or not actions:
            raise InvalidArgument(f"{source}: lookalikes.{service} must be a list")
        for action in actions:
            _check_action(f"{source}: lookalikes.{service}", action)
    return {str(k): tuple(v) for k, v in raw.items()}


def _benign(source: str, raw: Any):
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"{source}: benign must be a non-empty list")
    out = []
    for i, entry in enumerate(raw):
        where = f"{source}: benign[{i}]"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where} must be a mapping")
        _known(where, "key", entry, ("Action", "Resource", "weight"))
        actions, resources = entry.get("Action"), entry.get("Resource")
        if not isinstance(actions, list) or not isinstance(resources, list):
            raise InvalidArgument(f"{where}: Action and Resource must be lists")
        for action in actions:
            _check_action(where, action)
        out.append((tuple(actions), tuple(resources), int(entry.get("weight", 1))))
    return tuple(out)


def _services(source: str, raw: Any):
    if not isinstance(raw, dict) or not raw:
        raise InvalidArgument(f"{source}: services must be a non-empty mapping")
    out = []
    for name, entry in raw.items():
        where = f"{source}: services.{name}"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where} must be a mapping")
        _known(where, "key", entry, ("actions", "resource", "weight"))
        actions = entry.get("actions")
        if not isinstance(actions, list) or not actions:
            raise InvalidArgument(f"{where}: actions must be a non-empty list")
        for action in actions:
            _check_action(where, action)
        resource = str(entry.get("resource", "*"))
        out.append((str(name), tuple(actions), resource, int(entry.get("weight", 1))))
    return tuple(out)


@lru_cache(maxsize=1)
def default_grammar() -> IamGrammar:
    """``grammars/iam.yaml``, loaded once per process."""
    return load_iam_grammar(GRAMMAR_PATH)


def check_grammar(grammar: Any) -> IamGrammar:
    if grammar is None:
        return default_grammar()
    if not isinstance(grammar, IamGrammar):
        raise InvalidArgument(
            f"grammar={grammar!r} ({type(grammar).__name__}) must be an IamGrammar"
        )
    return grammar
