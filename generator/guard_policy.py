"""The guard's policy: which findings block an output, which go to a human.

A policy maps each *event* the guard can find in a model's output to an
action, ``pass``, ``review`` or ``block``; an output's decision is the
strongest action among its findings (block > review > pass). The defaults
below are what ``spotcheck guard`` uses without ``--policy``; a policy file
is YAML with the same keys, and any key it leaves out keeps its default::

    # guard.yaml
    pss_version: v1.30        # Pod Security Standards version to judge at
    sg_question: port=22/tcp  # what "open to the internet" asks (default: any)
    actions:
      k8s_restricted: review  # a restricted-only failure goes to a human
      weakened: block         # any weakening against the input blocks

``unparseable`` and ``partial`` may be ``review`` or ``block`` but never
``pass``: a security-relevant block that no reader accepts, or a fragment
no oracle can judge alone, was not shown safe by anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import InvalidArgument
from generator.oracle.k8s_policy import Version, parse_version
from generator.oracle.sg import ANY, Question, parse_question

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "EVENTS",
    "GuardPolicy",
    "load_guard_policy",
    "strongest",
]

ACTIONS = ("pass", "review", "block")

# Every event, its default action, and what it means (the README table and
# ``spotcheck guard --help`` are written from this).
EVENTS: dict[str, tuple[str, str]] = {
    "k8s_restricted": (
        "block", "a workload fails Pod Security restricted at pss_version",
    ),
    "k8s_baseline": ("block", "a workload fails Pod Security baseline"),
    "k8s_escalation": (
        "block", "a check of the escalation set fails (privileged, hostPath, "
        "host namespaces, added capabilities, allowPrivilegeEscalation, ...)",
    ),
    "iam_privesc": ("block", "an identity policy has an open escalation path"),
    "iam_admin": ("block", "an identity policy is admin or one step from it"),
    "iam_public": ("block", "a resource or trust policy lets outsiders in"),
    "iam_depends": (
        "review", "an IAM answer is \"depends\" (named resources, conditions, "
        "something Terraform cannot resolve)",
    ),
    "sg_open": (
        "block", "a security group lets sg_question in from all of IPv4 or IPv6",
    ),
    "sg_undecidable": ("review", "whether a group is open cannot be decided"),
    "netpol_allow_all": (
        "review", "a NetworkPolicy rule admits every source or destination "
        "(no peers, or an ipBlock of the whole internet)",
    ),
    "weakened": (
        "review", "a setting is weaker in the output than in the input",
    ),
    "unparseable": (
        "review", "a security-relevant block that no reader accepts (bad "
        "syntax, cut off, invalid fields, too large)",
    ),
    "partial": (
        "review", "a security-relevant fragment (a securityContext, a "
        "statement) that no oracle can judge on its own",
    ),
}  # fmt: skip

DEFAULT_ACTIONS: dict[str, str] = {name: spec[0] for name, spec in EVENTS.items()}
_NEVER_PASS = frozenset({"unparseable", "partial"})
_TOP_KEYS = ("version", "pss_version", "sg_question", "actions")


def strongest(actions: list[str] | tuple[str, ...]) -> str:
    """The strongest of ``actions`` (block > review > pass); pass when none."""
    return max(actions, key=ACTIONS.index, default="pass")


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard does with each event; immutable, so threads may share it."""

    pss_version: Version = parse_version("latest")
    sg_question: Question = ANY
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    source: str = "<defaults>"

    def action(self, event: str) -> str:
        return self.actions[event]

    def to_dict(self) -> dict[str, Any]:
        major, minor = self.pss_version
        return {
            "version": 1,
            "pss_version": f"v{major}.{minor}",
            "sg_question": f"port={self.sg_question}",
            "actions": dict(self.actions),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<policy>") -> GuardPolicy:
        """A policy from a decoded mapping; InvalidArgument names file, key, fix."""

        def fail(key: str, message: str) -> InvalidArgument:
            return InvalidArgument(f"guard policy {source}: {key}: {message}")

        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise fail("(top)", f"must be a mapping of {', '.join(_TOP_KEYS)}")
        for key in data:
            if key not in _TOP_KEYS:
                raise fail(str(key), f"unknown key{_hint(str(key), _TOP_KEYS)}")
        if data.get("version", 1) != 1:
            raise fail("version", f"{data['version']!r} is not 1; write version: 1")

        version = data.get("pss_version", "latest")
        try:
            pss = parse_version(str(version))
        except InvalidArgument:
            raise fail(
                "pss_version", f"{version!r} is not 'latest' or v1.<minor> (v1.30)"
            ) from None
        asked = data.get("sg_question", "any")
        try:
            question = parse_question(str(asked))
        except InvalidArgument:
            raise fail(
                "sg_question", f"{asked!r}: write port=22/tcp, port=53/udp or any"
            ) from None

        actions = dict(DEFAULT_ACTIONS)
        given = data.get("actions") or {}
        if not isinstance(given, dict):
            raise fail("actions", "must be a mapping of event: pass|review|block")
        for event, action in given.items():
            where = f"actions.{event}"
            if event not in EVENTS:
                raise fail(where, f"unknown event{_hint(str(event), tuple(EVENTS))}")
            if action not in ACTIONS:
                raise fail(where, f"{action!r} is not one of pass, review, block")
            if event in _NEVER_PASS and action == "pass":
                raise fail(
                    where,
                    "cannot be pass: nothing showed such a block safe; use "
                    "review or block",
                )
            actions[event] = action
        return cls(pss, question, actions, source)


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; known: {', '.join(known)}"


def load_guard_policy(path: str | Path) -> GuardPolicy:
    """Read a policy YAML file; InvalidArgument with one line on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"guard policy {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"guard policy {path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "(top)"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidArgument(
            f"guard policy {path}: {line}: {problem}; fix the YAML syntax"
        ) from None
    return GuardPolicy.from_dict(data, source=str(path))
