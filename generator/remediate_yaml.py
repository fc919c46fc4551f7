"""Edits to a YAML stream, made on its objects and, where it can, on its text.

A remediation is a short list of edits (``Set``, ``Delete``, ``Append``,
``Rename``) to the documents of a stream. ``apply`` makes them on the
objects; ``rewrite`` makes the same edits on the original text, so the fix
keeps every comment, key order, quoting and blank line it does not touch
(a training answer that rewrites the whole manifest teaches the model to
reformat). The text edit is trusted only if the oracle's own loader reads
it back as exactly the edited objects; otherwise, and for spellings the
text editor does not handle (anchors, aliases, merge keys, block scalars
or empty values at an edit point), the documents are written afresh by
``generator.config.k8s_yaml.render``.
Deleting the last entry of a collection writes it as ``{}`` or ``[]``.

Paths are tuples of mapping keys (str) and list indexes (int), from the
document's root.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from generator.config.k8s import load_documents
from generator.config.k8s_yaml import Style, render

__all__ = [
    "Append",
    "Delete",
    "Edit",
    "MISSING",
    "Rename",
    "Set",
    "apply",
    "get",
    "rewrite",
    "unshared",
]

logger = logging.getLogger(__name__)

Path = tuple[str | int, ...]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Set:
    """``path`` holds ``value``; missing mappings on the way are created."""

    doc: int
    path: Path
    value: Any


@dataclass(frozen=True)
class Delete:
    """The mapping key or list entry at ``path`` is removed."""

    doc: int
    path: Path


@dataclass(frozen=True)
class Append:
    """``value`` is added at the end of the list at ``path``."""

    doc: int
    path: Path
    value: Any


@dataclass(frozen=True)
class Rename:
    """The key at ``path`` becomes ``key`` with ``value``, in the same place."""

    doc: int
    path: Path
    key: str
    value: Any


Edit = Set | Delete | Append | Rename


def unshared(value: Any) -> Any:
    """A deep copy in which no two places share an object.

    A document read with aliases holds one object wherever the alias
    appears; an edit made through one place must not show up in the other.
    """
    if isinstance(value, dict):
        return {key: unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unshared(item) for item in value]
    return value


def get(document: Any, path: Path) -> Any:
    """The value at ``path``, or ``MISSING``."""
    value = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or not 0 <= step < len(value):
                return MISSING
        elif not isinstance(value, dict) or step not in value:
            return MISSING
        value = value[step]
    return value


# --- edits on objects -------------------------------------------------------------


def apply(documents: list[Any], edit: Edit) -> None:
    """Make ``edit`` on ``documents`` in place."""
    if isinstance(edit, Set):
        parent = documents[edit.doc]
        for step in edit.path[:-1]:
            if isinstance(step, str) and parent.get(step) is None:
                parent[step] = {}
            parent = parent[step]
        parent[edit.path[-1]] = unshared(edit.value)
        return
    parent = get(documents[edit.doc], edit.path[:-1])
    last = edit.path[-1]
    if isinstance(edit, Delete):
        del parent[last]
    elif isinstance(edit, Append):
        parent[last].append(unshared(edit.value))
    else:
        # Rebuilt so the new key takes the old one's place in the order.
        entries = [
            (edit.key, unshared(edit.value)) if key == last else (key, value)
            for key, value in parent.items()
        ]
        parent.clear()
        parent.update(entries)


# --- edits on text ----------------------------------------------------------------


def rewrite(text: str, edits: Sequence[Edit], documents: list[Any]) -> str:
    """``text`` with ``edits`` made, reading back as ``documents``."""
    if not edits:
        return text
    patched = _patch(text, edits)
    if patched is not None:
        try:
            if load_documents(patched) == documents:
                return patched
        except Exception:  # noqa: BLE001 - a failed patch only means: render
            pass
        logger.debug("text edits did not read back as intended; rendering")
    return _render(text, documents)


def _render(text: str, documents: list[Any]) -> str:
    # JSON in, JSON out: the one other spelling a whole file is written in.
    style = Style(flow_keys=frozenset({"*"})) if text.lstrip()[:1] == "{" else Style()
    parts = ["" if doc is None else render([doc], style) for doc in documents]
    return "---\n".join(parts)


def _tied(text: str) -> bool:
    """Whether anchors, aliases or merge keys tie places of ``text`` together;
    edits there go through rendering, which writes each place on its own."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return True
        if isinstance(event, yaml.ScalarEvent) and event.value == "<<":
            return True
    return False


def _patch(text: str, edits: Sequence[Edit]) -> str | None:
    try:
        if _tied(text):
            return None
    except yaml.YAMLError:
        return None
    for edit in edits:
        try:
            nodes = _compose(text)
        except yaml.YAMLError:
            return None
        if edit.doc >= len(nodes) or nodes[edit.doc] is None:
            return None
        change = _text_edit(text, nodes[edit.doc], edit)
        if change is None:
            return None
        start, end, new = change
        text = text[:start] + new + text[end:]
    return text


def _compose(text: str) -> list[yaml.Node | None]:
    # The pure-Python composer: its marks count characters, as str indexes do.
    loader = yaml.SafeLoader(text)
    nodes = []
    try:
        while loader.check_node():
            nodes.append(loader.get_node())
    finally:
        loader.dispose()
    return nodes


def _child(node: yaml.Node, step: str | int) -> tuple[int, yaml.Node] | None:
    """(position, node) of ``step`` in a collection node, or None."""
    if isinstance(node, yaml.MappingNode) and isinstance(step, str):
        for position, (key, _) in enumerate(node.value):
            if isinstance(key, yaml.ScalarNode) and key.value == step:
                return position, node.value[position][1]
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        if 0 <= step < len(node.value):
            return step, node.value[step]
    return None


def _text_edit(text: str, root: yaml.Node, edit: Edit):
    """(start, end, replacement) for one edit, or None if it cannot be made."""
    node, depth = root, 0
    parents: list[yaml.Node] = []
    for step in edit.path:
        found = _child(node, step)
        if found is None:
            break
        parents.append(node)
        node = found[1]
        depth += 1
    whole = depth == len(edit.path)
    if isinstance(edit, Set):
        if whole:
            flow = bool(parents) and bool(parents[-1].flow_style)
            return _replace_value(node, edit.value, flow)
        value: Any = edit.value
        for step in reversed(edit.path[depth + 1 :]):
            value = {step: value}
        return _insert_key(text, node, edit.path[depth], value)
    if not whole:
        return None
    parent = parents[-1]
    if isinstance(edit, Delete):
        position = _child(parent, edit.path[-1])[0]
        if len(parent.value) == 1:
            return _empty(text, parents, edit.path)
        return _delete(text, parent, position)
    if isinstance(edit, Append):
        return _append(text, node, edit.value)
    position = _child(parent, edit.path[-1])[0]
    key, value_node = parent.value[position]
    end = _last_end(key, value_node)
    if end is None:
        return None
    quoted = key.style in ("'", '"')
    name = json.dumps(edit.key) if quoted else edit.key
    return key.start_mark.index, end, f"{name}: {_flow(edit.value)}"


def _replace_value(node: yaml.Node, value: Any, flow: bool):
    if isinstance(node, yaml.ScalarNode):
        if node.style in ("|", ">") or (node.value == "" and node.style is None):
            return None
    elif not node.flow_style:
        return None
    flow = flow or isinstance(value, dict | list)
    new = _flow(value) if flow else _scalar(value)
    return node.start_mark.index, node.end_mark.index, new


def _insert_key(text: str, mapping: yaml.Node, key: str | int, value: Any):
    if not isinstance(mapping, yaml.MappingNode) or not isinstance(key, str):
        return None
    if mapping.flow_style:
        return _flow_insert(text, mapping, f"{json.dumps(key)}: {_flow(value)}")
    last_key, last_value = mapping.value[-1]
    end = _last_end(last_key, last_value)
    if end is None:
        return None
    column = mapping.value[0][0].start_mark.column
    return _insert_lines(text, end, _block({key: value}, column, text))


def _append(text: str, sequence: yaml.Node, value: Any):
    if not isinstance(sequence, yaml.SequenceNode) or isinstance(value, dict | list):
        return None
    if sequence.flow_style:
        return _flow_insert(text, sequence, _flow(value))
    last = sequence.value[-1]
    end = _last_end(None, last)
    line_start = text.rfind("\n", 0, last.start_mark.index) + 1
    dash = text.find("-", line_start, last.start_mark.index)
    if end is None or dash < 0:
        return None
    return _insert_lines(text, end, [" " * (dash - line_start) + "- " + _scalar(value)])


def _flow_insert(text: str, collection: yaml.Node, entry: str):
    """A new last entry of a flow collection, on its own line if the others
    are (indented JSON), else after a comma on the same line."""
    if not collection.value:
        close = collection.end_mark.index - 1
        return (close, close, entry) if text[close] in "]}" else None
    last = collection.value[-1]
    first = last[0] if isinstance(last, tuple) else last
    end = _last_end(*last) if isinstance(last, tuple) else _last_end(None, last)
    if end is None:
        return None
    if first.start_mark.line != collection.start_mark.line:
        return end, end, ",\n" + " " * first.start_mark.column + entry
    return end, end, ", " + entry


def _empty(text: str, parents: list[yaml.Node], path: Path):
    """Deleting the last entry: the collection is written ``{}`` or ``[]``."""
    parent = parents[-1]
    empty = "{}" if isinstance(parent, yaml.MappingNode) else "[]"
    if parent.flow_style:
        return parent.start_mark.index, parent.end_mark.index, empty
    entry = parent.value[0]
    end = _last_end(*entry) if isinstance(entry, tuple) else _last_end(None, entry)
    if end is None or len(parents) < 2:
        return None
    holder = parents[-2]
    if isinstance(holder, yaml.SequenceNode):
        return parent.start_mark.index, end, empty
    key = holder.value[_child(holder, path[-2])[0]][0]
    colon = text.find(":", key.end_mark.index)
    return colon + 1, end, " " + empty


def _delete(text: str, parent: yaml.Node, position: int):
    entries = parent.value
    if isinstance(parent, yaml.MappingNode):
        starts = [key.start_mark.index for key, _ in entries]
        ends = [_last_end(key, value) for key, value in entries]
    else:
        starts = [item.start_mark.index for item in entries]
        ends = [_last_end(None, item) for item in entries]
    if None in ends:
        return None
    start, end = starts[position], ends[position]
    if parent.flow_style:
        if position > 0:
            return ends[position - 1], end, ""
        return start, starts[position + 1], ""
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start]
    whole_line = lead.strip() == "" or (
        isinstance(parent, yaml.SequenceNode) and lead.strip() == "-"
    )
    if whole_line:
        line_end = text.find("\n", end)
        return line_start, len(text) if line_end < 0 else line_end + 1, ""
    if position + 1 < len(entries):
        # The first key of a list item ("- name: x"): the next key moves up.
        return start, starts[position + 1], ""
    return None


def _last_end(key: yaml.Node | None, value: yaml.Node) -> int | None:
    """Where the last character of an entry's written content ends."""
    if isinstance(value, yaml.ScalarNode):
        if value.style in ("|", ">"):
            return None
        if value.value == "" and value.style is None:
            return key.end_mark.index if key is not None else None
        return value.end_mark.index
    if value.flow_style:
        return value.end_mark.index
    if isinstance(value, yaml.MappingNode):
        last_key, last_value = value.value[-1]
        return _last_end(last_key, last_value)
    return _last_end(None, value.value[-1])


def _insert_lines(text: str, end: int, lines: list[str]):
    line_end = text.find("\n", end)
    if line_end < 0:
        return len(text), len(text), "\n" + "\n".join(lines) + "\n"
    return line_end, line_end, "\n" + "\n".join(lines)


def _block(value: dict[str, Any], column: int, text: str) -> list[str]:
    # Sequences are indented the way the file indents them (kubectl writes
    # "- " under the key, most people two spaces in).
    indented = re.search(r"^( *)[^\s#-][^\n]*:\n\1- ", text, re.MULTILINE) is None
    body = render([value], Style(indent_sequences=indented))
    return [" " * column + line for line in body.rstrip("\n").split("\n")]


def _scalar(value: Any) -> str:
    return render([{"k": value}]).rstrip("\n")[len("k: ") :]


def _flow(value: Any) -> str:
    return json.dumps(value)
