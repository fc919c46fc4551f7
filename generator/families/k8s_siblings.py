"""Metamorphic siblings of a Kubernetes case: same meaning, or opposite verdict.

A model that calls a Pod unsafe and the same Pod in flow style safe is
guessing from the spelling; one whose answer does not move when the one
field that matters is fixed is not reading the field. Siblings let a report
measure both, pair by pair:

* the **same** sibling is the base case respelled by one mutator that
  ``keeps_meaning`` (flow style, quoted keys, key order, anchors, another
  workload kind, a companion document, ...). The oracle must give it the
  base's verdict and the same violated rules; if it does not, the mutator is
  wrong, so the sibling is dropped with a warning, never written.
* the **opposite** sibling is the smallest edit that moves the verdict: for
  an unsafe case a repair (``harden_workload``, a hostPath made a look-alike
  allowed source, or the two together), for a safe case one breaking
  mutator. Candidates are ranked by steps, then by changed lines; the oracle
  must confirm the flip on the exact text.

Every random choice is seeded from the suite seed, the base case's id and
the mutator's name, so siblings do not depend on the order bases are taken
in, and a suite stays byte-deterministic.
"""

from __future__ import annotations

import difflib
import logging
import random

from generator.families.k8s import Draft
from generator.families.k8s_build import Candidate, derive_seed, quick_rules, to_case
from generator.mutate.base import Manifest
from generator.mutate.k8s import MUTATORS, mutator_named
from generator.oracle.k8s_policy import Version
from generator.records import Case, case_id

__all__ = ["REPAIRS", "opposite_sibling", "same_sibling"]

logger = logging.getLogger(__name__)

# The edits that make an unsafe case safe the way a reviewer would: harden
# every security context, or take the host out of a hostPath volume. Any
# other mutator can only add a violation (or move one), so a safe case's
# opposite is one of those instead.
REPAIRS = ("harden_workload", "swap_host_path_for_lookalike", "strip_volume_source")
_REPAIR_CHAINS: tuple[tuple[str, ...], ...] = (
    *((name,) for name in REPAIRS),
    *(("harden_workload", name) for name in REPAIRS[1:]),
)
_BREAKERS: tuple[tuple[str, ...], ...] = tuple(
    (m.name,) for m in MUTATORS if not m.keeps_meaning and m.name not in REPAIRS
)
_SPELLINGS = tuple(m for m in MUTATORS if m.keeps_meaning)

Made = tuple[Candidate, Case]


def same_sibling(
    candidate: Candidate,
    base: Case,
    *,
    seed: int,
    level: str,
    version: Version,
    taken: set[str],
) -> Made | None:
    """``base`` respelled by one meaning-keeping mutator; None if none applies.

    ``taken`` holds the ids already in the suite: a respelling that lands on
    one of them (or on the base itself) is no new case.
    """
    order = list(_SPELLINGS)
    random.Random(derive_seed(seed, "same", base.id)).shuffle(order)
    for mutator in order:
        rnd = random.Random(derive_seed(seed, "same", base.id, mutator.name))
        result = mutator(candidate.draft.manifest, rnd)
        if result is None:
            continue
        made = _judged(
            candidate, ((mutator.name, result),), "same", base, taken, level, version
        )
        if made is None:
            continue
        twin = made[1]
        if twin.truth.verdict != base.truth.verdict or set(twin.truth.rules) != set(
            base.truth.rules
        ):
            # keeps_meaning is a promise the contract tests hold every
            # spelling mutator to; breaking it here is a bug to report.
            logger.warning(
                "sibling of %s dropped: %s should keep the meaning but moved "
                "%s %s to %s %s",
                base.id, mutator.name, base.truth.verdict, list(base.truth.rules),
                twin.truth.verdict, list(twin.truth.rules),
            )  # fmt: skip
            continue
        return made
    return None


def opposite_sibling(
    candidate: Candidate,
    base: Case,
    *,
    seed: int,
    level: str,
    version: Version,
    taken: set[str],
) -> Made | None:
    """The smallest edit of ``base`` that flips its verdict; None if none does."""
    unsafe = base.truth.verdict == "unsafe"
    chains = _REPAIR_CHAINS if unsafe else _BREAKERS
    ranked = []
    for names in chains:
        steps = _apply(candidate.draft.manifest, names, seed, base.id)
        if steps is None:
            continue
        # Judged cheaply from the documents first; the oracle reads the
        # text of the one kept below.
        rules = quick_rules(steps[-1][1], level, version)
        if rules is None or bool(rules) == unsafe:
            continue
        changed = _changed_lines(candidate.text, steps[-1][1].text())
        # Equal sizes are broken by a seeded draw, not by catalogue order,
        # so the opposites of a suite are not all the same one edit.
        tie = derive_seed(seed, "opposite", base.id, *names)
        ranked.append((len(names), changed, tie, names, steps))
    for *_, steps in sorted(ranked):
        made = _judged(candidate, steps, "opposite", base, taken, level, version)
        if made is not None and made[1].truth.verdict != base.truth.verdict:
            return made
    return None


def _apply(
    manifest: Manifest, names: tuple[str, ...], seed: int, base_id: str
) -> tuple[tuple[str, Manifest], ...] | None:
    """Each step of the chain ``names``, or None if one does not apply."""
    steps = []
    for name in names:
        rnd = random.Random(derive_seed(seed, "opposite", base_id, *names, name))
        result = mutator_named(name)(manifest, rnd)
        if result is None:
            return None
        steps.append((name, result))
        manifest = result
    return tuple(steps)


def _changed_lines(before: str, after: str) -> int:
    """How many lines an edit touches: the size a reviewer would see in a diff."""
    matcher = difflib.SequenceMatcher(
        None, before.splitlines(), after.splitlines(), autojunk=False
    )
    return sum(
        max(i2 - i1, j2 - j1)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )


def _judged(
    candidate: Candidate,
    steps: tuple[tuple[str, Manifest], ...],
    relation: str,
    base: Case,
    taken: set[str],
    level: str,
    version: Version,
) -> Made | None:
    """The sibling's candidate and oracle-judged Case; None if not a new case."""
    manifest = steps[-1][1]
    text = manifest.text()
    if case_id(base.domain, base.question, text) in taken:
        return None
    rules = quick_rules(manifest, level, version)
    if rules is None:
        return None
    d = candidate.draft
    draft = Draft(
        d.family, d.start, d.trail + steps, d.method, d.parent, d.seed, d.seed_file
    )
    verdict = "unsafe" if rules else "safe"
    twin = Candidate(candidate.group, d.family, verdict, rules, text, draft)
    case = to_case(twin, base.question, relation=relation)
    return None if case is None else (twin, case)
