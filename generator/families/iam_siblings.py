"""Metamorphic siblings of an IAM case: same meaning, or opposite verdict.

As for Kubernetes (``generator.families.k8s_siblings``):

* the **same** sibling is the base policy respelled by one mutator that
  ``keeps_meaning`` (layout, key or statement order, a statement split or
  merged, bare or listed values, action case, a principal's other
  spelling). The oracle must give it the base's verdict and rules, or the
  sibling is dropped with a warning.
* the **opposite** sibling is the smallest edit that moves the verdict: for
  an unsafe case one of the fixes in ``generator.mutate.iam.REPAIRS``, for a
  safe case one other mutator. Candidates are ranked by steps, then by
  changed lines of the pretty-printed policy, then by a seeded tie-break,
  and the oracle confirms the flip on the exact text, in that order.

Every random choice is seeded from the suite seed, the base case's id and
the mutator's name, so siblings do not depend on the order bases come in.
"""

from __future__ import annotations

import difflib
import logging
import random

from generator.families.iam import IamDraft
from generator.families.iam_build import IamCandidate, derive_seed, judge, to_iam_case
from generator.grammar.iam_json import JsonStyle, render_policy
from generator.mutate.iam import MUTATORS, REPAIRS, mutator_named
from generator.mutate.iam_base import Policy
from generator.records import Case, case_id

__all__ = ["iam_opposite_sibling", "iam_same_sibling"]

logger = logging.getLogger(__name__)

_SPELLINGS = tuple(m for m in MUTATORS if m.keeps_meaning)
_BREAKERS = tuple(
    m.name for m in MUTATORS if not m.keeps_meaning and m.name not in REPAIRS
)

Made = tuple[IamCandidate, Case]


def iam_same_sibling(
    candidate: IamCandidate, base: Case, *, seed: int, taken: set[str]
) -> Made | None:
    """``base`` respelled by one meaning-keeping mutator; None if none applies."""
    order = list(_SPELLINGS)
    random.Random(derive_seed(seed, "same", base.id)).shuffle(order)
    for mutator in order:
        rnd = random.Random(derive_seed(seed, "same", base.id, mutator.name))
        result = mutator(candidate.draft.policy, rnd)
        if result is None:
            continue
        made = _judged(candidate, ((mutator.name, result),), "same", base, taken)
        if made is None:
            continue
        twin = made[1]
        if twin.truth.verdict != base.truth.verdict or set(twin.truth.rules) != set(
            base.truth.rules
        ):
            logger.warning(
                "sibling of %s dropped: %s should keep the meaning but moved "
                "%s %s to %s %s",
                base.id, mutator.name, base.truth.verdict, list(base.truth.rules),
                twin.truth.verdict, list(twin.truth.rules),
            )  # fmt: skip
            continue
        return made
    return None


def iam_opposite_sibling(
    candidate: IamCandidate, base: Case, *, seed: int, taken: set[str]
) -> Made | None:
    """The smallest edit of ``base`` that flips its verdict; None if none does."""
    names = REPAIRS if base.truth.verdict == "unsafe" else _BREAKERS
    ranked = []
    before = _pretty(candidate.draft.policy)
    for name in names:
        rnd = random.Random(derive_seed(seed, "opposite", base.id, name))
        result = mutator_named(name)(candidate.draft.policy, rnd)
        if result is None:
            continue
        changed = _changed_lines(before, _pretty(result))
        tie = derive_seed(seed, "opposite", base.id, name, "tie")
        ranked.append((changed, tie, name, result))
    for _, _, name, result in sorted(ranked, key=lambda r: r[:2]):
        made = _judged(candidate, ((name, result),), "opposite", base, taken)
        if made is not None and made[1].truth.verdict != base.truth.verdict:
            return made
    return None


def _pretty(policy: Policy) -> str:
    return render_policy(policy.document, JsonStyle("pretty-4"))


def _changed_lines(before: str, after: str) -> int:
    """How many lines an edit touches, in a layout-independent rendering."""
    matcher = difflib.SequenceMatcher(
        None, before.splitlines(), after.splitlines(), autojunk=False
    )
    return sum(
        max(i2 - i1, j2 - j1)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )


def _judged(
    candidate: IamCandidate,
    steps: tuple[tuple[str, Policy], ...],
    relation: str,
    base: Case,
    taken: set[str],
) -> Made | None:
    """The sibling's candidate and oracle-judged Case; None if not a new case."""
    policy = steps[-1][1]
    text = policy.text()
    if case_id(base.domain, base.question, text) in taken:
        return None
    found, _ = judge(text, base.question)
    if found is None:
        return None
    d = candidate.draft
    draft = IamDraft(
        d.family, d.start, d.trail + steps, d.method, d.parent, d.seed, d.seed_file
    )
    twin = IamCandidate(
        candidate.group, d.family, found.verdict, found.rules, text, draft, found,
        base.question,
    )  # fmt: skip
    return twin, to_iam_case(twin, base.question, relation=relation)
