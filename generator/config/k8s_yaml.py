"""Writing Kubernetes manifests the way people write them, in several spellings.

The model under test sees config text, not objects, so how a manifest is
spelled is part of the input space: block or flow style, quoted keys,
``yes``/``no`` booleans, a security context shared through an anchor and a
merge key, comments. ``render`` writes one meaning in any of those
spellings; the suite re-reads every rendered text with the oracle's own
loader, so a spelling can never change a verdict unnoticed.

Why not ``yaml.dump``: it cannot place comments, choose booleans per style,
or write merge keys, and its quoting follows PyYAML's YAML 1.1 rules, not the
API server's (``n`` is a boolean there, ``1:20`` is not a number).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from generator.config.k8s import load_documents

__all__ = ["Style", "render"]


@dataclass(frozen=True)
class Style:
    """How to spell a manifest. The default is plain block YAML.

    ``flow_keys`` names keys whose values are written in flow style
    (``drop: [ALL]``); ``"*"`` writes every document as indented JSON.
    ``anchors`` is ``"none"``, ``"alias"`` (a repeated container security
    context becomes ``*name``) or ``"merge"`` (``<<: *name`` plus the keys
    that differ). ``comments`` holds ``(path, text)`` pairs: a comment line
    written just above the key at that dotted path (``""`` = document top).
    """

    indent_sequences: bool = True
    flow_keys: frozenset[str] = frozenset()
    quote_keys: bool = False
    true_word: str = "true"
    false_word: str = "false"
    anchors: str = "none"
    comments: tuple[tuple[str, str], ...] = ()

    def label(self) -> str:
        """A short class name for tags: which spelling features are in use."""
        parts = []
        if "*" in self.flow_keys:
            parts.append("json")
        elif self.flow_keys:
            parts.append("flow")
        if self.quote_keys:
            parts.append("quoted-keys")
        if (self.true_word, self.false_word) != ("true", "false"):
            parts.append(f"bool-{self.false_word}")
        if self.anchors != "none":
            parts.append(f"anchors-{self.anchors}")
        if self.comments:
            parts.append("comments")
        if not self.indent_sequences:
            parts.append("kubectl-indent")
        return "+".join(parts) or "block"


def render(documents: Sequence[dict[str, Any]], style: Style = Style()) -> str:
    """The YAML stream for ``documents``, separated by ``---`` lines."""
    parts = [_Writer(style).document(doc) for doc in documents]
    return "---\n".join(parts)


# --- scalars ----------------------------------------------------------------

_PLAIN = re.compile(r"(?:[A-Za-z0-9_./~]|--?[A-Za-z])[A-Za-z0-9_./~:+=@-]*")


@lru_cache(maxsize=4096)
def _plain_is_string(text: str) -> bool:
    # Both the API server's reading and PyYAML's must see a string: "n" is a
    # boolean only to the former, "1:20" an integer only to the latter.
    if not _PLAIN.fullmatch(text) or text.endswith(":"):
        return False
    try:
        server = load_documents(f"k: {text}\n")[0]["k"]
        pyyaml = yaml.safe_load(f"k: {text}\n")["k"]
    except Exception:
        return False
    return server == text and pyyaml == text


def _scalar(value: Any, style: Style, *, flow: bool = False) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return style.true_word if value else style.false_word
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _plain_is_string(text) and not (flow and ":" in text):
        return text
    return json.dumps(text)


# --- documents --------------------------------------------------------------


class _Writer:
    """Writes one document; holds the anchor plan while it does."""

    def __init__(self, style: Style):
        self.style = style
        self.comments: dict[str, list[str]] = {}
        for path, text in style.comments:
            self.comments.setdefault(path, []).append(text)
        self.plan: dict[str, tuple[str, str, dict[str, Any]]] = {}

    def document(self, doc: dict[str, Any]) -> str:
        if "*" in self.style.flow_keys:
            return json.dumps(doc, indent=2) + "\n"
        if self.style.anchors != "none":
            self._plan_anchors(doc)
        lines = [f"# {text}" for text in self.comments.get("", [])]
        lines += self._mapping(doc, 0, "")
        return "\n".join(lines) + "\n"

    def _key(self, key: str) -> str:
        if self.style.quote_keys:
            return json.dumps(str(key))
        return _scalar(str(key), self.style)

    def _mapping(self, mapping: dict[str, Any], indent: int, path: str) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        for key, value in mapping.items():
            here = f"{path}.{key}" if path else str(key)
            lines += [f"{pad}# {text}" for text in self.comments.get(here, [])]
            head = f"{pad}{self._key(key)}:"
            planned = self.plan.get(here)
            if planned is not None:
                lines += self._planned(head, planned, indent, here)
            elif not isinstance(value, dict | list) or not value:
                lines.append(f"{head} {self._inline(value)}")
            elif key in self.style.flow_keys:
                lines.append(f"{head} {self._flow(value)}")
            elif isinstance(value, dict):
                lines.append(head)
                lines += self._mapping(value, indent + 2, here)
            else:
                lines.append(head)
                step = 2 if self.style.indent_sequences else 0
                lines += self._sequence(value, indent + step, here)
        # A comment for a key this mapping lacks (a commented-out field)
        # goes after the keys that are there.
        for target, texts in self.comments.items():
            parent, _, key = target.rpartition(".")
            if parent == path and path and key not in mapping and "[" not in key:
                lines += [f"{pad}# {text}" for text in texts]
        return lines

    def _sequence(self, items: list[Any], indent: int, path: str) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        for i, item in enumerate(items):
            lines += [
                f"{pad}# {text}" for text in self.comments.get(f"{path}[{i}]", [])
            ]
            if isinstance(item, dict) and item:
                body = self._mapping(item, indent + 2, f"{path}[{i}]")
                # Comments stay above the "- " line; the first key joins it.
                first = next(j for j, line in enumerate(body) if not _is_comment(line))
                lines += [f"{pad}{line.lstrip()}" for line in body[:first]]
                lines.append(f"{pad}- {body[first].lstrip()}")
                lines += body[first + 1 :]
            elif isinstance(item, dict | list) and item:
                lines.append(f"{pad}- {self._flow(item)}")
            else:
                lines.append(f"{pad}- {self._inline(item)}")
        return lines

    def _inline(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{}"
        if isinstance(value, list):
            return "[]"
        return _scalar(value, self.style)

    def _flow(self, value: Any) -> str:
        if isinstance(value, dict):
            body = ", ".join(
                f"{self._key(k)}: {self._flow(v)}" for k, v in value.items()
            )
            return "{" + body + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self._flow(v) for v in value) + "]"
        return _scalar(value, self.style, flow=True)

    # --- anchors: one container security context shared by the others -----

    def _plan_anchors(self, doc: dict[str, Any]) -> None:
        contexts = list(_container_contexts(doc, ""))
        if len(contexts) < 2:
            return
        first_path, first = contexts[0]
        name = (
            "restricted" if first.get("allowPrivilegeEscalation") is False else "base"
        )
        used = False
        for path, context in contexts[1:]:
            if context == first:
                self.plan[path] = ("alias", name, {})
                used = True
            elif self.style.anchors == "merge" and set(first) <= set(context):
                # Keys written after the merge override merged ones (YAML
                # merge-key spec); only the differing keys are spelled out.
                extra = {k: v for k, v in context.items() if first.get(k, _NO) != v}
                self.plan[path] = ("merge", name, extra)
                used = True
        if used:
            self.plan[first_path] = ("anchor", name, first)

    def _planned(self, head: str, planned: tuple, indent: int, path: str) -> list[str]:
        what, name, body = planned
        if what == "alias":
            return [f"{head} *{name}"]
        if what == "anchor":
            return [f"{head} &{name}", *self._mapping(body, indent + 2, path)]
        pad = " " * (indent + 2)
        return [head, f"{pad}<<: *{name}", *self._mapping(body, indent + 2, path)]


_NO = object()


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _container_contexts(value: Any, path: str):
    """(path, securityContext) of every container entry, in document order."""
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{path}.{key}" if path else str(key)
            if key in _CONTAINER_LISTS and isinstance(child, list):
                for i, entry in enumerate(child):
                    context = (
                        entry.get("securityContext")
                        if isinstance(entry, dict)
                        else None
                    )
                    if isinstance(context, dict) and context:
                        yield f"{here}[{i}].securityContext", context
            else:
                yield from _container_contexts(child, here)


_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
