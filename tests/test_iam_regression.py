"""The IAM oracle gives the answers it gave before it was made fast.

Two checks, both cheap:

* ``tests/data/iam_regression.jsonl`` holds policies with the full answer
  (value, findings, reason) the oracle gave at commit 7b3199f, before its
  search was rewritten for speed; the file's first line says how they were
  chosen and checked. The oracle must reproduce every one exactly.
* ``satisfiable`` is compared with the plain product search it replaced
  (kept below as ``_reference``) on seeded random sets of patterns, limits
  small enough to give up included.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from generator.config.iam import parse_policy
from generator.oracle.iam import answer
from generator.oracle.iam_access import _shape
from generator.oracle.iam_match import (
    ANY,
    NAMESEG,
    NAMESTAR,
    SEGANY,
    SEGSTAR,
    STAR,
    Glob,
    arn_glob,
    satisfiable,
)

DATA = Path(__file__).parent / "data" / "iam_regression.jsonl"


def _entries() -> list[dict]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert "header" in header
    return [json.loads(line) for line in lines[1:] if line.strip()]


ENTRIES = _entries()


def test_the_corpus_covers_every_question_and_value() -> None:
    seen = {(e["question"], e["expected"].get("value", "error")) for e in ENTRIES}
    for question in ("privesc", "admin", "public"):
        for value in ("yes", "no", "depends"):
            assert (question, value) in seen, (question, value)
    assert len(ENTRIES) >= 150


def _got(entry: dict) -> dict:
    policy = parse_policy(entry["policy"])
    try:
        found = answer(policy, entry["question"], account=entry["account"])
    except Exception as exc:  # the recorded refusals are part of the answer
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "value": found.value,
        "findings": [[f.statement, f.rule, f.path, f.message] for f in found.findings],
        "reason": found.reason,
    }


@pytest.mark.parametrize("chunk", range(4))
def test_the_oracle_reproduces_the_recorded_answers(chunk: int) -> None:
    wrong = []
    for number, entry in enumerate(ENTRIES):
        if number % 4 != chunk:
            continue
        got = _got(entry)
        if got != entry["expected"]:
            wrong.append((number, entry["question"], entry["policy"], got))
    assert not wrong, wrong[:3]


# --- satisfiable against the plain search -------------------------------------

_WILD = frozenset({STAR, ANY, SEGSTAR, SEGANY, NAMESTAR, NAMESEG})
_OTHER = "\0other"


def _reference(
    globs: Sequence[Glob],
    accept: Callable[[Sequence[bool]], bool],
    *,
    required: Sequence[int] = (),
    limit: int = 20000,
) -> bool | None:
    """satisfiable as it was at 7b3199f: every glob, every symbol."""
    machines = [g.tokens for g in globs]
    alphabet = {t for m in machines if m for t in m if t not in _WILD}
    alphabet.update((_OTHER, ":"))
    start = tuple(_closure(m, frozenset({0})) for m in machines)
    seen = {start}
    queue = [start]
    while queue:
        state = queue.pop()
        flags = [
            m is not None and len(m) in s for m, s in zip(machines, state, strict=True)
        ]
        if accept(flags):
            return True
        for symbol in sorted(alphabet):
            nxt = tuple(
                _step(m, s, symbol) for m, s in zip(machines, state, strict=True)
            )
            if any(not nxt[i] for i in required):
                continue
            if nxt not in seen:
                if len(seen) >= limit:
                    return None
                seen.add(nxt)
                queue.append(nxt)
    return False


def _closure(machine, states):
    if machine is None:
        return frozenset()
    result, stack = set(states), list(states)
    while stack:
        i = stack.pop()
        if i < len(machine) and machine[i] in (STAR, SEGSTAR) and i + 1 not in result:
            result.add(i + 1)
            stack.append(i + 1)
    return frozenset(result)


def _step(machine, states, symbol):
    if machine is None or not states:
        return frozenset()
    nxt = set()
    for i in states:
        if i >= len(machine):
            continue
        token = machine[i]
        if token in (STAR, SEGSTAR, NAMESTAR, NAMESEG):
            if _admits(token, symbol):
                nxt.add(i)
                if token in (NAMESTAR, NAMESEG):
                    nxt.add(i + 1)
        elif token in (ANY, SEGANY):
            if _admits(token, symbol):
                nxt.add(i + 1)
        elif token == symbol:
            nxt.add(i + 1)
    return _closure(machine, frozenset(nxt))


def _admits(token, symbol):
    if token in (STAR, ANY):
        return True
    if token in (SEGSTAR, SEGANY):
        return symbol != ":"
    if token == NAMESEG and symbol == ":":
        return False
    return symbol not in "${}"


_PATTERNS = (
    "*",
    "arn:*",
    "arn:aws:iam::*:role/*",
    "arn:aws:iam::111122223333:role/a*",
    "arn:aws:iam::111122223333:user/${aws:username}",
    "arn:aws:iam::*:user/?b",
    "arn:aws:s3:::b*",
    "arn:aws:s3:::b/*/x",
    "arn:aws:s3:::$*",
    "arn:aws:lambda:*:*:function:f*",
    "arn:aws:lambda:us-east-1:111122223333:function:f:*",
    "arn:aws:*:*:111122223333:*",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:iam::111122223333:role/a",
    "arn:aws:s3:::{x}",
)
_TEMPLATES = (
    "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}",
    "arn:${Partition}:iam::${Account}:user/${UserNameWithPath}",
    "arn:${Partition}:lambda:${Region}:${Account}:function:${FunctionName}",
    "arn:${Partition}:s3:::${BucketName}",
)


def _glob(rng: random.Random) -> Glob:
    roll = rng.random()
    if roll < 0.05:
        return Glob(None)
    if roll < 0.3:
        template = rng.choice(_TEMPLATES)
        return _shape(template, "aws", "111122223333", rng.random() < 0.5)
    pattern = rng.choice(_PATTERNS)
    return arn_glob(
        pattern,
        variables=rng.random() < 0.7,
        resolve=lambda key: "b" if rng.random() < 0.5 else None,
        unknown_as_star=rng.random() < 0.5,
    )


def test_a_name_breaking_character_of_a_glob_left_out_still_counts() -> None:
    # "$" is named only by the third glob, which parts from the first at
    # "b"/"$" and so is left out of the product; "arn:aws:s3:::b$" still
    # matches the first glob and not the bucket-name shape.
    plain = {"variables": False, "resolve": lambda key: None}
    globs = [
        arn_glob("arn:aws:s3:::b*", unknown_as_star=False, **plain),
        _shape("arn:${Partition}:s3:::${BucketName}", "aws", "111122223333", False),
        arn_glob("arn:aws:s3:::$x", unknown_as_star=False, **plain),
    ]

    def accept(flags):
        return flags[0] and not flags[1]

    assert _reference(globs, accept, required=(0,)) is True
    assert satisfiable(globs, accept, required=(0,)) is True


def test_satisfiable_agrees_with_the_plain_search() -> None:
    rng = random.Random(20261204)
    for case in range(400):
        globs = [_glob(rng) for _ in range(rng.randint(1, 4))]
        salt = rng.randrange(1 << 30)
        modulus = rng.choice((2, 3, 5))

        def accept(flags, salt=salt, modulus=modulus):
            bits = sum(1 << i for i, f in enumerate(flags) if f)
            return (bits * 2654435761 + salt) % 7919 % modulus == 0

        required = (0,) if rng.random() < 0.6 else ()
        limit = rng.choice((3, 10, 40, 20000))
        want = _reference(globs, accept, required=required, limit=limit)
        got = satisfiable(globs, accept, required=required, limit=limit)
        # Callers read None (gave up) as "maybe": the same as True.
        assert (True if got is None else got) == (True if want is None else want), (
            case,
            [g.tokens for g in globs],
            required,
            limit,
        )
