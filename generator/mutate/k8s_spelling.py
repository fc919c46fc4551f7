"""Mutators over how a manifest is spelled, not what it says (with two traps).

A reviewer, human or model, reads text. These mutators change only the
text: key order, flow style, quoted keys, anchors and merge keys, YAML 1.1
boolean words, sequence indentation, comments. The API server reads them
all the same (sigs.k8s.io/yaml, a go-yaml v2 fork, then JSON), so the
verdict must not move, and the tests hold each of them to that.

Two mutators here do change the meaning, on purpose, because they are
spelling traps: ``comment_out_field`` leaves a guard visible only as a
comment, and ``quote_boolean`` writes ``"false"``, a string the API server
refuses where a boolean belongs.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from generator.mutate.base import Manifest

__all__ = [
    "RESTYLING",
    "add_misleading_comment",
    "comment_out_field",
    "indent_like_kubectl",
    "quote_boolean",
    "quote_keys",
    "share_context_by_anchor",
    "shuffle_keys",
    "spell_booleans",
    "write_flow_style",
]

# The mutators whose edit is all or partly in the Style (a comment, flow
# style, quoting, anchors, boolean words, indentation): a manifest parsed
# and written back, as the minimizer writes its candidates, loses it.
RESTYLING = frozenset(
    {
        "add_misleading_comment",
        "comment_out_field",
        "indent_like_kubectl",
        "quote_keys",
        "share_context_by_anchor",
        "spell_booleans",
        "write_flow_style",
    }
)


def _shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: _shuffled(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


def shuffle_keys(m: Manifest, rnd: random.Random) -> Manifest | None:
    """Keys come in another order (``spec`` before ``metadata``, ``securityContext``
    first); JSON objects are unordered, so nothing changes."""
    return Manifest(tuple(_shuffled(d, rnd) for d in m.documents), m.style)


_FLOW_CHOICES = (
    frozenset({"drop", "add"}),
    frozenset({"securityContext"}),
    frozenset({"capabilities", "seccompProfile", "volumeMounts"}),
    frozenset({"*"}),
)


def write_flow_style(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``securityContext: {allowPrivilegeEscalation: false, ...}`` on one line,
    or the whole manifest as JSON, which is YAML too."""
    return m.restyled(flow_keys=rnd.choice(_FLOW_CHOICES))


def quote_keys(m: Manifest, rnd: random.Random) -> Manifest | None:
    """Every key is double-quoted (``"runAsNonRoot": true``), as JSON-minded
    tools write YAML."""
    if m.style.quote_keys:
        return None
    return m.restyled(quote_keys=True)


def share_context_by_anchor(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The first container's securityContext gets ``&restricted`` and the others
    say ``*restricted`` or ``<<: *restricted`` plus their own overrides."""
    text_before = m.text()
    styled = m.restyled(anchors=rnd.choice(("alias", "merge")))
    if styled.text() == text_before:
        return None
    return styled


_BOOLEAN_WORDS = (("yes", "no"), ("True", "False"), ("on", "off"), ("y", "n"))


def spell_booleans(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``allowPrivilegeEscalation: no``: go-yaml v2, which the API server's YAML
    reader forks, takes yes/no, on/off and y/n as YAML 1.1 booleans."""
    true_word, false_word = rnd.choice(_BOOLEAN_WORDS)
    return m.restyled(true_word=true_word, false_word=false_word)


def indent_like_kubectl(m: Manifest, rnd: random.Random) -> Manifest | None:
    """Sequence items sit at their key's indentation (``containers:\\n- name``),
    as ``kubectl get -o yaml`` prints them."""
    if not m.style.indent_sequences:
        return None
    return m.restyled(indent_sequences=False)


_CLAIMS = (
    "Hardened: passes the restricted Pod Security Standard.",
    "Reviewed by platform-security; no privileged access needed.",
    "allowPrivilegeEscalation is disabled cluster-wide by policy.",
)


def add_misleading_comment(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A header comment claims the workload is hardened; comments change
    nothing the API server reads, true or not."""
    comment = ("", rnd.choice(_CLAIMS))
    return m.restyled(comments=(*m.style.comments, comment))


# --- the two traps ----------------------------------------------------------


def _fields(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any], str]]:
    """(dotted path, parent mapping, key) for every mapping entry, depth first."""
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, value, key
            yield from _fields(child, here)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _fields(child, f"{path}[{i}]")


_GUARDS = {"allowPrivilegeEscalation": False, "runAsNonRoot": True}


def comment_out_field(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``# allowPrivilegeEscalation: false`` stays in the file as a comment:
    a skimming reader sees the guard, the API server sees it unset."""
    documents = copy.deepcopy(m.documents)
    sites = [
        (path, parent, key)
        for doc in documents
        for path, parent, key in _fields(doc)
        if key in _GUARDS and parent[key] is _GUARDS[key] and len(parent) > 1
    ]
    if not sites:
        return None
    path, parent, key = rnd.choice(sites)
    word = "false" if parent.pop(key) is False else "true"
    comments = (*m.style.comments, (path, f"{key}: {word}"))
    return Manifest(documents, m.style).restyled(comments=comments)


_QUOTABLE = (
    "allowPrivilegeEscalation",
    "runAsNonRoot",
    "privileged",
    "readOnlyRootFilesystem",
)


def quote_boolean(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``allowPrivilegeEscalation: "false"``: a string where the API wants a
    boolean; the API server refuses the object, so it can never pass."""
    documents = copy.deepcopy(m.documents)
    sites = [
        (parent, key)
        for doc in documents
        for _, parent, key in _fields(doc)
        if key in _QUOTABLE and isinstance(parent[key], bool)
    ]
    if not sites:
        return None
    parent, key = rnd.choice(sites)
    parent[key] = "true" if parent[key] else "false"
    return Manifest(documents, m.style)
