"""Finding the configs inside a model's free-text answer, for the guard.

A model writes configs in fenced blocks (with or without a language tag,
sometimes never closed because it ran out of tokens) or bare between
sentences. ``find_blocks`` returns each candidate in order:

* every fenced block (```` ``` ```` or ``~~~``); an unclosed fence runs to
  the end of the text and is marked ``cut``;
* outside fences, bare configs that start on a line of their own: YAML from
  an ``apiVersion:``/``kind:``/``---`` line, running while lines can be
  YAML (the repair task reads model answers the same way); a JSON object
  from a line starting with ``{``; Terraform from a ``resource``/``data``/
  ``variable``/``locals`` block opening, until its braces close; and a
  YAML fragment (``securityContext:`` with indented lines under it) when
  it names a security-relevant field.

Prose is never a block: "this pod is safe" means nothing to the guard.
``security_relevant`` says whether a text names a field that one of the
oracles judges, which is what turns an unreadable block into ``review``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Block", "MAX_BLOCKS", "MAX_BLOCK_CHARS", "find_blocks", "security_relevant"]

# More blocks than this in one answer is not a config, it is an attack on
# the guard's time; the rest is judged "unparseable" in one finding.
MAX_BLOCKS = 64
# A block longer than this is not judged (real manifests and policies are a
# few KB; the Terraform parser reads about 200 KB/s): "unparseable".
MAX_BLOCK_CHARS = 256 * 1024

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\n`]*)$", re.MULTILINE)
# Where a bare config may start, each written for the start of a line.
_STARTS = {
    "yaml": r"(?:apiVersion|kind)[ \t]*:|---[ \t]*$",
    "json": r"[ \t]*(?:\{|\[[ \t]*(?:\{|$))",
    "hcl": r'(?:resource|data)[ \t]+"[^"\n]+"[ \t]+"[^"\n]+"[ \t]*\{'
    r'|(?:variable|output|module)[ \t]+"[^"\n]+"[ \t]*\{'
    r"|(?:locals|terraform|provider)\b[^\n{]*\{",
    "fragment": r"[\w.-]+[ \t]*:[ \t]*(?:#[^\n]*)?$",
}
# (at a line start, searching) pairs. The search form begins with a literal
# newline, which the regex engine scans for quickly; "^" with MULTILINE is
# tried at every character (8 ms per MB of prose, per pattern).
_START_PATTERNS = {
    shape: (re.compile(body, re.MULTILINE), re.compile(rf"\n(?:{body})", re.MULTILINE))
    for shape, body in _STARTS.items()
}
_YAML_LINE = re.compile(
    r"^(?:\s*$|\s+\S|- |-$|---|\.\.\.|#|[\"']?[\w./-]+[\"']?\s*:(?:\s|$))"
)

# Field names (and values) the oracles judge, in lower case. Deliberately
# broad: a false match only sends an unreadable block to review instead of
# ignoring it. Plain substring tests on the lowered text: a regex alternation
# of these runs at under 2 MB/s, which a 10 MB answer would feel.
_RELEVANT = (
    "securitycontext", "privileged", "allowprivilegeescalation", "capabilities",
    "hostpath", "hostnetwork", "hostpid", "hostipc", "hostusers", "hostport",
    "hostprocess", "runasuser", "runasnonroot", "runasgroup", "seccompprofile",
    "selinuxoptions", "apparmorprofile", "procmount", "sysctls", "volumes",
    "containers", "apiversion", "networkpolicy", "podselector", "ipblock",
    "policytypes", "statement", '"effect"', "principal", "notaction",
    "notresource", "sts:assume", "aws_security_group", "aws_vpc_security_group",
    "aws_iam", "iam_policy", "cidr_blocks", "cidr_ipv4", "cidr_ipv6",
    "from_port", "to_port", "ingress", "egress", "0.0.0.0/0", "::/0",
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    """One candidate config: its text, fence language, first line, and shape.

    ``lang`` is the fence's tag in lower case ("" when bare or untagged);
    ``line`` the 1-based line of the text's first line; ``cut`` is true for
    a fence the answer never closed; ``shape`` is ``fenced``, ``yaml``,
    ``json``, ``hcl`` or ``fragment``.
    """

    text: str
    lang: str
    line: int
    shape: str
    cut: bool = False


def security_relevant(text: str) -> bool:
    """Whether ``text`` names a field or value some oracle judges."""
    lowered = text.lower()
    return any(word in lowered for word in _RELEVANT)


def find_blocks(text: str, *, limit: int = MAX_BLOCKS + 1) -> list[Block]:
    """The candidate configs of ``text``, in order (see the module docstring),
    at most ``limit`` of them."""
    blocks: list[Block] = []
    fences = list(_FENCE.finditer(text))
    position, i = 0, 0
    while i < len(fences) and len(blocks) < limit:
        opening = fences[i]
        blocks += _bare(text, position, opening.start(), limit - len(blocks))
        marker = opening[1]
        # The closing fence is the next one made of the same character, at
        # least as long, with no tag (CommonMark).
        closing = next(
            (
                j
                for j in range(i + 1, len(fences))
                if fences[j][1][0] == marker[0]
                and len(fences[j][1]) >= len(marker)
                and not fences[j][2].strip()
            ),
            None,
        )
        body_start = min(opening.end() + 1, len(text))
        end = fences[closing].start() if closing is not None else len(text)
        lang = opening[2].strip().split(maxsplit=1)[0].lower() if opening[2] else ""
        blocks.append(
            Block(
                text[body_start:end],
                lang,
                text.count("\n", 0, body_start) + 1,
                "fenced",
                cut=closing is None,
            )
        )
        if closing is None:
            return blocks[:limit]
        position = fences[closing].end()
        i = closing + 1
    if len(blocks) < limit:
        blocks += _bare(text, position, len(text), limit - len(blocks))
    return blocks[:limit]


def _bare(text: str, start: int, end: int, limit: int) -> list[Block]:
    """Bare configs in ``text[start:end]``, which holds no fence."""
    found: list[Block] = []
    position = start
    while position < end and len(found) < limit:
        hit = _first_start(text, position, end)
        if hit is None:
            break
        shape, begin = hit
        stop = _extent(text, shape, begin, end)
        if shape == "fragment":
            # "Here:" above a manifest: the manifest starts at apiVersion.
            inner = _START_PATTERNS["yaml"][1].search(text, begin, stop)
            if inner is not None:
                shape, begin = "yaml", inner.start() + 1
                stop = _extent(text, shape, begin, end)
        body = text[begin:stop]
        if shape != "fragment" or security_relevant(body):
            line = text.count("\n", 0, begin) + 1
            found.append(Block(body, "", line, shape))
        position = max(stop, begin + 1)
    return found


def _first_start(text: str, start: int, end: int) -> tuple[str, int] | None:
    """The earliest line in the range where a bare config of some shape begins."""
    best: tuple[str, int] | None = None
    at_line_start = start == 0 or text[start - 1] == "\n"
    for shape, (at_line, search) in _START_PATTERNS.items():
        if at_line_start and at_line.match(text, start, end):
            return shape, start
        match = search.search(text, start, end)
        if match is not None and (best is None or match.start() + 1 < best[1]):
            best = (shape, match.start() + 1)
    return best


def _extent(text: str, shape: str, begin: int, end: int) -> int:
    """Where a bare config that starts at ``begin`` ends (exclusive)."""
    end = min(end, begin + MAX_BLOCK_CHARS + 1)
    if shape == "hcl":
        return _brackets_end(text, begin, end)
    if shape == "json":
        return _brackets_end(text, begin, end)
    # YAML and fragments run while lines can be YAML.
    first_end = text.find("\n", begin, end)
    position = end if first_end < 0 else first_end + 1
    nested = False
    while position < end:
        newline = text.find("\n", position, end)
        line_end = end if newline < 0 else newline
        line = text[position:line_end]
        if not _YAML_LINE.match(line):
            break
        nested = nested or line[:1] in (" ", "\t", "-")
        position = line_end + 1
    if shape == "fragment" and not nested:
        # "Note:" followed by prose: not a config.
        return end if first_end < 0 else first_end + 1
    return min(position, end)


_BRACKET = re.compile(r'["\\{}\[\]]')


def _brackets_end(text: str, begin: int, end: int) -> int:
    """The end of the bracketed span at ``begin``; ``end`` when never closed."""
    depth = 0
    in_string = False
    escaped_at = -2
    for match in _BRACKET.finditer(text, begin, end):
        char, position = match[0], match.start()
        if in_string:
            if char == "\\":
                escaped_at = position if escaped_at != position - 1 else -2
            elif char == '"' and escaped_at != position - 1:
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                return position + 1
    return end
