"""Mutation chains over the seed manifests: the realistic half of a suite.

A chain is short and shaped like a reviewer's week: an unsafe seed is
often hardened first (the fix), then one primary mutator moves it into a
family's region; a new hostPath mount gets an escalation edit half the
time (the motivating scenario) and is swapped for a look-alike allowed
source in nearly half (its near miss); a fifth of the chains are respelled
at the end. The family of a chain is its primary mutator's family.

Chains use ``random.Random`` seeded per case from the suite seed; the seed
is stored in the case's origin so a chain can be replayed.
"""

from __future__ import annotations

import hashlib
import random

from generator.families.k8s import Draft
from generator.mutate.base import Manifest, Mutator, weighted_choice
from generator.mutate.k8s import MUTATORS, mutator_named
from generator.mutate.seeds import Seed
from generator.records import case_id

__all__ = ["PRIMARY_WEIGHTS", "mutation_drafts"]

_PRELUDE = "harden_workload"
# How often each mutator is a chain's primary step; the motivating region
# (hostPath plus escalation) weighs most. Unlisted mutators weigh 2;
# pure respellings are only ever the last step.
PRIMARY_WEIGHTS = {
    "add_host_path_mount": 12,
    "swap_host_path_for_lookalike": 4,
    "drop_escalation_guard": 5,
    "enable_privilege_escalation": 3,
    "hoist_container_field_to_pod": 3,
    "add_bare_init_container": 3,
    "push_run_as_non_root_down": 3,
    "respell_capability": 3,
    "comment_out_field": 2,
    "quote_boolean": 1,
}
_ESCALATION = ("drop_escalation_guard", "enable_privilege_escalation",
               "add_bare_init_container", "hoist_container_field_to_pod")  # fmt: skip


def _primaries() -> tuple[tuple[Mutator, int], ...]:
    # Meaning-keeping edits of shape (another kind, a List, a companion
    # document) may lead a chain; pure respellings only end one.
    return tuple(
        (m, PRIMARY_WEIGHTS.get(m.name, 2))
        for m in MUTATORS
        if m.name != _PRELUDE and (not m.keeps_meaning or m.family != "yaml-spelling")
    )


def mutation_drafts(
    seeds: tuple[Seed, ...], *, count: int, seed: int, question: str
) -> list[Draft]:
    """Up to ``count`` chains, seeds taken in turn; chains that apply nothing drop."""
    primaries = _primaries()
    spellings = tuple((m, 1) for m in MUTATORS if m.keeps_meaning)
    drafts = []
    for i in range(count):
        case_seed = int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16)
        source = seeds[i % len(seeds)]
        start = Manifest(source.documents)
        chain = _chain(source, start, random.Random(case_seed), primaries, spellings)
        if chain is None:
            continue
        family, trail = chain
        parent = case_id("k8s", question, source.text)
        drafts.append(
            Draft(family, start, trail, "mutation", parent, case_seed, source.stem)
        )
    return drafts


def _chain(source, start, rnd, primaries, spellings):
    """(family, trail) of one chain from ``start``, or None if nothing applied."""
    trail: list[tuple[str, Manifest | None]] = []

    def step(mutator: Mutator, current: Manifest) -> Manifest:
        result = mutator(current, rnd)
        trail.append((mutator.name, result))
        return result or current

    current = start
    if source.claimed == "unsafe" and rnd.random() < 0.65:
        current = step(mutator_named(_PRELUDE), current)
    # A primary that does not apply (no hostPath to swap) gives way to another.
    primary = None
    for _ in range(4):
        candidate = weighted_choice(rnd, primaries)
        before = current
        current = step(candidate, current)
        if current is not before:
            primary = candidate
            break
    if primary is None:
        return None
    # The motivating region: hostPath plus an escalation edit, or the near
    # miss where the hostPath turns out to be a look-alike allowed source.
    if primary.name == "add_host_path_mount":
        if rnd.random() < 0.5:
            current = step(mutator_named(rnd.choice(_ESCALATION)), current)
        if rnd.random() < 0.45:
            current = step(mutator_named("swap_host_path_for_lookalike"), current)
    if rnd.random() < 0.2:
        step(weighted_choice(rnd, spellings), current)
    return primary.family, tuple(trail)
