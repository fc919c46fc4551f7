"""Writing a policy document as JSON text, in one of several layouts.

People write the same policy many ways: four-space or two-space indents,
tabs, lists of actions on one line or one item a line, minified, everything
on one line. The layout never changes what a policy means, so it is a style
of its own, kept apart from the document (a plain dict whose key order, and
string-versus-list values, are part of the meaning as written). Only valid
JSON is ever written: no duplicate keys (a dict cannot hold them), no
trailing commas, no comments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from generator.errors import InvalidArgument

__all__ = ["LAYOUTS", "JsonStyle", "render_policy"]

# name -> (indent unit or None for one line, lists of scalars on one line,
#          minified separators)
LAYOUTS: dict[str, tuple[str | None, bool, bool]] = {
    "pretty-4": ("    ", False, False),
    "pretty-2": ("  ", False, False),
    "hand-4": ("    ", True, False),
    "hand-2": ("  ", True, False),
    "one-line": (None, True, False),
    "compact": (None, True, True),
    "tab": ("\t", False, False),
}


@dataclass(frozen=True)
class JsonStyle:
    """How a document is laid out; ``layout`` is one of ``LAYOUTS``."""

    layout: str = "pretty-4"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidArgument(
                f"layout={self.layout!r} is not a layout; known: {', '.join(LAYOUTS)}"
            )

    def label(self) -> str:
        return self.layout


def render_policy(document: dict[str, Any], style: JsonStyle = JsonStyle()) -> str:
    """The JSON text of ``document`` in ``style``, ending in one newline."""
    indent, inline_lists, minified = LAYOUTS[style.layout]
    if indent is None:
        separators = (",", ":") if minified else (", ", ": ")
        return json.dumps(document, separators=separators, ensure_ascii=False) + "\n"
    return _block(document, indent, inline_lists, 0) + "\n"


def _block(value: Any, unit: str, inline_lists: bool, depth: int) -> str:
    pad, inner = unit * depth, unit * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{_scalar(str(k))}: {_block(v, unit, inline_lists, depth + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if inline_lists and not any(isinstance(v, dict | list) for v in value):
            return "[" + ", ".join(_scalar(v) for v in value) + "]"
        items = [inner + _block(v, unit, inline_lists, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
