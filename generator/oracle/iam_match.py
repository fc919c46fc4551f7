"""Wildcard matching for IAM actions and ARNs, policy variables included.

The rules, from the IAM JSON element reference (reference_policies_elements_
action.html, _resource.html, reference_policies_variables.html) and
research/iam.md §2.2:

* Actions match case-insensitively, prefix and name alike; ``*`` is any run
  of characters and ``?`` exactly one.
* ARNs match case-sensitively. ``*``/``?`` stay inside one colon-separated
  segment, except in the resource segment (the sixth, which may itself hold
  colons) and except a ``*`` that ends a pattern with fewer than six
  segments, which runs on past the colons (``arn:aws:lambda:*``).
* Under Version 2012-10-17 ``${key}`` is replaced by the key's value as
  literal text; ``${*}``, ``${?}`` and ``${$}`` are the literal characters and
  ``${key, 'default'}`` falls back to the default. Under 2008-10-17 (or no
  Version) ``${...}`` is ordinary text.

A pattern compiles to tokens, used both for plain matching (a regex) and for
``satisfiable``: whether some string lies in a boolean combination of
patterns, decided exactly on the product of their automata. The alphabet is
the characters the patterns name plus one symbol for "any other character",
which every wildcard treats alike, so the answer holds for all strings.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ANY",
    "NAMESEG",
    "NAMESTAR",
    "SEGANY",
    "SEGSTAR",
    "STAR",
    "Glob",
    "NOTHING",
    "UNKNOWN",
    "action_matches",
    "arn_glob",
    "literal_glob",
    "satisfiable",
]

logger = logging.getLogger(__name__)

# Token kinds. Literal characters are plain one-character strings.
STAR = "\0*"  # any run of characters
ANY = "\0?"  # any one character
SEGSTAR = "\0s*"  # any run without ":"
SEGANY = "\0s?"  # any one character but ":"
NAMESTAR = "\0n*"  # a resource name: one or more characters, none of "${}"
NAMESEG = "\0n:"  # the same inside one ARN segment: no ":" either
_WILD = frozenset({STAR, ANY, SEGSTAR, SEGANY, NAMESTAR, NAMESEG})
_NOT_IN_NAMES = frozenset("${}")
_OTHER = "\0other"  # the alphabet symbol for every character no pattern names
_GROWING = threading.Lock()  # guards adding states to a shared automaton


class _Unknown:
    """A variable whose value the policy alone does not fix."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
# What a variable resolver returns for a variable with no value at all (e.g.
# aws:username for a role session): the pattern then matches nothing.
NOTHING = None

Resolver = Callable[[str], "str | _Unknown | None"]


@dataclass(frozen=True)
class Glob:
    """A compiled pattern: tokens, or ``None`` when it can match nothing."""

    tokens: tuple[str, ...] | None

    def matches(self, text: str) -> bool:
        if self.tokens is None:
            return False
        return _regex(self.tokens).fullmatch(text) is not None


# --- actions ------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _action_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action pattern names ``action`` (case-insensitive)."""
    if pattern == "*":
        return True
    return _action_regex(pattern).fullmatch(action) is not None


# --- ARNs ---------------------------------------------------------------------


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"""\s*([^,\s]+)\s*,\s*'([^']*)'\s*""")


def arn_glob(
    pattern: str,
    *,
    variables: bool,
    resolve: Resolver,
    unknown_as_star: bool,
    nothing_as_star: bool = False,
) -> Glob:
    """Compile a Resource pattern, substituting policy variables.

    ``resolve`` gives a variable's value, ``UNKNOWN`` or ``NOTHING``. An
    unknown value becomes ``*`` when ``unknown_as_star`` (the pattern may match
    more) and otherwise makes the pattern match nothing (it may match less):
    callers pick the side that errs toward the view they compute. A variable
    with no value makes the pattern match nothing, or everything when
    ``nothing_as_star`` (for NotResource, where AWS's behaviour is not
    documented, so callers again take the side that errs safe).
    """
    pieces: list[tuple[str, bool]] = []  # (text, is_literal_substitution)
    position = 0
    if variables:
        for found in _VARIABLE.finditer(pattern):
            pieces.append((pattern[position : found.start()], False))
            value = _variable(found.group(1), resolve)
            if value is NOTHING:
                return Glob((STAR,)) if nothing_as_star else Glob(None)
            if value is UNKNOWN:
                if not unknown_as_star:
                    return Glob(None)
                pieces.append(("*", False))
            else:
                pieces.append((str(value), True))
            position = found.end()
    pieces.append((pattern[position:], False))
    return Glob(_tokens(tuple(pieces)))


def _variable(body: str, resolve: Resolver) -> str | _Unknown | None:
    if body in ("*", "?", "$"):
        return body
    default = _DEFAULT.fullmatch(body)
    key = default.group(1) if default else body.strip()
    value = resolve(key)
    if value is NOTHING and default:
        return default.group(2)
    return value


@lru_cache(maxsize=65536)
def _tokens(pieces: tuple[tuple[str, bool], ...]) -> tuple[str, ...]:
    text = "".join(t for t, _ in pieces)
    plain = not text.startswith("arn:")
    # Where each segment starts, counting colons in pattern text only.
    tokens: list[str] = []
    segment = 0
    for piece, literal in pieces:
        for char in piece:
            if literal or char not in "*?":
                tokens.append(char)
                if char == ":" and not literal and segment < 5:
                    segment += 1
                continue
            whole = plain or segment >= 5
            tokens.append((STAR if char == "*" else ANY) if whole else char)
            if not whole:
                tokens[-1] = SEGSTAR if char == "*" else SEGANY
    # A pattern of fewer than six segments ending in "*" runs past colons.
    if not plain and segment < 5 and tokens and tokens[-1] == SEGSTAR:
        tokens[-1] = STAR
    return tuple(tokens)


def literal_glob(text: str) -> Glob:
    """A pattern matching exactly ``text``."""
    return Glob(tuple(text))


@lru_cache(maxsize=65536)
def _regex(tokens: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for token in tokens:
        if token == STAR:
            parts.append(".*")
        elif token == ANY:
            parts.append(".")
        elif token == SEGSTAR:
            parts.append("[^:]*")
        elif token == SEGANY:
            parts.append("[^:]")
        elif token == NAMESTAR:
            parts.append(r"[^${}]+")
        elif token == NAMESEG:
            parts.append(r"[^${}:]+")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.DOTALL)


# --- satisfiability -----------------------------------------------------------


def satisfiable(
    globs: Sequence[Glob],
    accept: Callable[[Sequence[bool]], bool],
    *,
    required: Sequence[int] = (),
    limit: int = 20000,
) -> bool | None:
    """Whether some string makes ``accept`` true of which globs match it.

    ``accept`` gets one flag per glob (does it match?); globs whose indexes
    are in ``required`` must match, so a path on which one of them died is
    not followed. Exact over all strings; ``None`` when the product grows
    past ``limit`` states.

    The product of the globs' subset automata is walked once for each set
    of patterns (``_explore``, cached), and ``accept`` is asked about each
    combination of flags found there. Automata are built once per pattern
    and shared (``_machine``). Some globs are left out of the product,
    which leaves its set of states, so the answer and the ``limit`` test,
    exactly as a walk over every glob would find them, since the state of a
    glob left out is a function of the others':

    * ``*`` alone matches every string in one unchanging state: its flag is
      always true.
    * A glob that can match nothing is always in the empty state, and one
      whose leading literal text parts from that of a required glob, at
      some position within both, is in a state fixed by the length read
      until then and empty after: no string the search reaches matches it,
      and its flag is always false.
    """
    machines = [_machine(g.tokens) for g in globs]
    named: set[str] = set()
    for m in machines:
        named |= m.literals
    anchor = machines[required[0]] if required else None
    fixed: dict[int, bool] = {}
    for i, m in enumerate(machines):
        if i in required:
            continue
        if m.tokens == (STAR,):
            fixed[i] = True
        elif m.tokens is None or (anchor is not None and _parts(anchor, m)):
            fixed[i] = False
    active = tuple(i for i in range(len(machines)) if i not in fixed)
    musts = tuple(active.index(i) for i in dict.fromkeys(required))
    reached = _explore(
        tuple(machines[i].tokens for i in active),
        musts,
        frozenset(named & _NOT_IN_NAMES),
        limit,
    )
    if reached is None:
        logger.debug("satisfiable: gave up after %d states", limit)
        return None
    flags = [fixed.get(i, False) for i in range(len(machines))]
    for vector in reached:
        for i, flag in zip(active, vector, strict=True):
            flags[i] = flag
        if accept(flags):
            return True
    return False


@lru_cache(maxsize=16384)
def _explore(
    machines: tuple[tuple[str, ...] | None, ...],
    musts: tuple[int, ...],
    special: frozenset[str],
    limit: int,
) -> frozenset[tuple[bool, ...]] | None:
    """The match flags of every product state reached; None past ``limit``.

    ``musts`` index the machines that must stay alive; ``special`` are the
    characters of ``_NOT_IN_NAMES`` some pattern (kept or not) names, which
    with ``:`` and "other" make up the alphabet besides the literals.

    From each product state only the symbols that some automaton's current
    positions name literally are read, with ``:``, ``special`` and "other":
    any further symbol of the alphabet moves every automaton as "other"
    does, so it reaches no state "other" does not. When the first required
    automaton sits only on literals, only those can keep it alive.
    """
    kept = [_machine(m) for m in machines]
    base = special | {_OTHER, ":"}
    if len(kept) == 1:
        return _explore_one(kept[0], bool(musts), base, limit)
    lead = kept[musts[0]] if musts else None
    must = [kept[k] for k in musts]
    start = tuple(0 for _ in kept)
    seen = {start}
    queue = [start]
    vectors = set()
    while queue:
        state = queue.pop()
        vectors.add(tuple(m.accepting[q] for m, q in zip(kept, state, strict=True)))
        if lead is not None and not lead.wild[state[musts[0]]]:
            symbols: Iterable[str] = lead.heads[state[musts[0]]]
        else:
            symbols = set(base)
            for m, q in zip(kept, state, strict=True):
                symbols.update(m.heads[q])
        for symbol in symbols:
            nxt = tuple(m.step(q, symbol) for m, q in zip(kept, state, strict=True))
            if any(m.empty[nxt[k]] for m, k in zip(must, musts, strict=True)):
                continue  # a glob that must match can no longer
            if nxt not in seen:
                if len(seen) >= limit:
                    return None
                seen.add(nxt)
                queue.append(nxt)
    return frozenset(vectors)


def _explore_one(
    machine: _Machine, must: bool, base: frozenset[str], limit: int
) -> frozenset[tuple[bool, ...]] | None:
    """``_explore`` for a product of one automaton."""
    seen = {0}
    queue = [0]
    vectors = set()
    while queue:
        state = queue.pop()
        vectors.add((machine.accepting[state],))
        symbols: Iterable[str]
        if must and not machine.wild[state]:
            symbols = machine.heads[state]
        else:
            symbols = base.union(machine.heads[state])
        for symbol in symbols:
            nxt = machine.step(state, symbol)
            if must and machine.empty[nxt]:
                continue
            if nxt not in seen:
                if len(seen) >= limit:
                    return None
                seen.add(nxt)
                queue.append(nxt)
    return frozenset(vectors)


def _parts(anchor: _Machine, other: _Machine) -> bool:
    """Whether the leading literal texts of two globs differ somewhere."""
    return any(a != b for a, b in zip(anchor.prefix, other.prefix, strict=False))


class _Machine:
    """One glob's subset automaton, states numbered as they are found.

    Per state: the positions (sorted), whether it accepts, whether it is
    empty, the literal tokens at its positions (``heads``) and whether a
    wildcard sits at one of them (``wild``). Tuples, not sets, so that the
    garbage collector soon stops tracking them in a long-lived cache.
    """

    def __init__(self, tokens: tuple[str, ...] | None):
        self.tokens = tokens
        self.literals = frozenset(t for t in tokens or () if t not in _WILD)
        prefix = []
        for t in tokens or ():
            if t in _WILD:
                break
            prefix.append(t)
        self.prefix = tuple(prefix)
        # Per position: the literal character, or None for a wildcard.
        self.chars = tuple(None if t in _WILD else t for t in tokens or ())
        self.sets: list[tuple[int, ...]] = []
        self.ids: dict[tuple[int, ...], int] = {}
        self.accepting: list[bool] = []
        self.empty: list[bool] = []
        self.heads: list[tuple[str, ...]] = []
        self.wild: list[bool] = []
        self.moves: list[dict[str, int]] = []
        self._intern(_closure(tokens, frozenset({0})))

    def _intern(self, positions: frozenset[int]) -> int:
        states = tuple(sorted(positions))
        found = self.ids.get(states)
        if found is not None:
            return found
        with _GROWING:  # numbering stays consistent if threads share a machine
            found = self.ids.get(states)
            if found is not None:
                return found
            chars = self.chars
            size = len(chars)
            here = [chars[i] for i in states if i < size]
            self.sets.append(states)
            self.accepting.append(self.tokens is not None and size in states)
            self.empty.append(not states)
            self.heads.append(tuple(sorted({c for c in here if c is not None})))
            self.wild.append(None in here)
            self.moves.append({})
            self.ids[states] = found = len(self.sets) - 1
        return found

    def step(self, state: int, symbol: str) -> int:
        moves = self.moves[state]
        found = moves.get(symbol)
        if found is None:
            if self.wild[state]:
                positions = frozenset(self.sets[state])
                found = self._intern(_step(self.tokens, positions, symbol))
            else:
                # Only literals in reach: _step reduced to its literal case.
                chars, size = self.chars, len(self.chars)
                ahead = frozenset(
                    i + 1 for i in self.sets[state] if i < size and chars[i] == symbol
                )
                found = self._intern(_closure(self.tokens, ahead))
            moves[symbol] = found
        return found


@lru_cache(maxsize=4096)
def _machine(tokens: tuple[str, ...] | None) -> _Machine:
    # Some tens of kilobytes each when fully built: a bounded number is kept.
    return _Machine(tokens)


def _closure(machine: tuple[str, ...] | None, states: frozenset[int]) -> frozenset[int]:
    if machine is None:
        return frozenset()
    result = set(states)
    stack = list(states)
    while stack:
        i = stack.pop()
        # A star may match nothing (a name star needs one character).
        if i < len(machine) and machine[i] in (STAR, SEGSTAR) and i + 1 not in result:
            result.add(i + 1)
            stack.append(i + 1)
    return frozenset(result)


def _step(
    machine: tuple[str, ...] | None, states: frozenset[int], symbol: str
) -> frozenset[int]:
    if machine is None or not states:
        return frozenset()
    nxt: set[int] = set()
    for i in states:
        if i >= len(machine):
            continue
        token = machine[i]
        if token in (STAR, SEGSTAR, NAMESTAR, NAMESEG):
            if _admits(token, symbol):
                nxt.add(i)  # stay in the star
                if token in (NAMESTAR, NAMESEG):
                    nxt.add(i + 1)
        elif token in (ANY, SEGANY):
            if _admits(token, symbol):
                nxt.add(i + 1)
        elif token == symbol:
            nxt.add(i + 1)
    return _closure(machine, frozenset(nxt))


def _admits(token: str, symbol: str) -> bool:
    if token in (STAR, ANY):
        return True
    if token in (SEGSTAR, SEGANY):
        return symbol != ":"
    if token == NAMESEG and symbol == ":":
        return False
    return symbol not in _NOT_IN_NAMES
