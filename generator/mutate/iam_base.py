"""What the IAM mutators work on: a policy document and the layout it is written in.

A ``Policy`` is the document as written (a plain dict: key order, a single
statement object or a list, a string or a one-item list are all kept), its
JSON layout, and its kind (identity, resource or trust). Mutators return a
new Policy and never touch their input; the text the model sees is
``policy.text()``. The words mutator, flip and keeps_meaning mean what
``generator.mutate.base`` says; ``Mutator`` and ``Profile`` are shared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from generator.grammar.iam_json import JsonStyle, render_policy

__all__ = [
    "KINDS",
    "Policy",
    "as_list",
    "set_statements",
    "statements_of",
]

KINDS = ("identity", "resource", "trust")


@dataclass(frozen=True)
class Policy:
    """A policy document (the meaning as written), its layout and its kind."""

    document: dict[str, Any]
    style: JsonStyle = JsonStyle()
    kind: str = "identity"

    def text(self) -> str:
        return render_policy(self.document, self.style)

    def edit(self) -> tuple[Policy, list[dict[str, Any]]]:
        """A deep copy and live references to its statements."""
        twin = Policy(copy.deepcopy(self.document), self.style, self.kind)
        return twin, statements_of(twin.document)

    def restyled(self, layout: str) -> Policy:
        return replace(self, style=JsonStyle(layout))

    def statements(self) -> list[dict[str, Any]]:
        """The statements, read-only by convention (use ``edit`` to change)."""
        return statements_of(self.document)


def statements_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statement dicts of ``document``, whether Statement is one or a list."""
    found = document.get("Statement")
    if isinstance(found, dict):
        return [found]
    if isinstance(found, list):
        return [s for s in found if isinstance(s, dict)]
    return []


def set_statements(document: dict[str, Any], statements: list[dict[str, Any]]) -> None:
    """Write ``statements`` back as a list (a lone object stays an object)."""
    if isinstance(document.get("Statement"), dict) and len(statements) == 1:
        document["Statement"] = statements[0]
    else:
        document["Statement"] = list(statements)


def as_list(value: Any) -> list[Any]:
    """A policy element's values: a string is a one-item list; absent is []."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
