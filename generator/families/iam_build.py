"""Turning IAM families and seeds into judged candidates, then into Cases.

The suite asks this module, once per IAM question, for a pool of candidates
(grammar drafts of every family asked that question, and mutation chains
over the seeds of a fitting kind), and later for the ``Case`` of each
candidate it keeps.

Unlike Kubernetes there is one verdict, not two: the oracle reads the exact
text the model will see while the pool is drafted (JSON parses fast), so a
candidate's verdict already is its truth. What the oracle cannot decide
(``Undecidable``: a "depends" answer) or refuses as invalid never becomes a
candidate; both are counted per family for the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from generator.errors import ConfigError
from generator.families.iam import IamDraft, families_for
from generator.families.iam_tags import iam_tags
from generator.grammar.draw import draw_examples
from generator.mutate.base import Mutator, Profile, weighted_choice
from generator.mutate.iam import MUTATORS, mutator_named
from generator.mutate.iam_base import Policy
from generator.mutate.iam_seeds import IamSeed, load_iam_seeds
from generator.records import Case, Origin, Truth, case_id

__all__ = [
    "IamCandidate",
    "IamPool",
    "build_iam_pool",
    "derive_seed",
    "judge",
    "kinds_for",
    "to_iam_case",
]

logger = logging.getLogger(__name__)

# The grammar families' share of a question's cases; the rest are mutations.
GRAMMAR_SHARE = 0.65
# Drafts per kept case: room for balancing and for undecidable drops.
OVERSAMPLE = 2.0


def kinds_for(question: str) -> tuple[str, ...]:
    """The policy kinds a question is asked about."""
    return ("resource", "trust") if question == "iam:public" else ("identity",)


def derive_seed(seed: int, *parts: str) -> int:
    """A 32-bit seed for one part of a suite, stable across processes."""
    text = ":".join([str(seed), *parts])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class IamCandidate:
    """A judged draft, ready for selection (the attributes the suite reads)."""

    group: str
    family: str
    verdict: str
    rules: tuple[str, ...]
    text: str
    draft: IamDraft
    truth: Truth
    question: str


@dataclass
class IamPool:
    """Candidates by group, quotas, rules to cover, the profile, and drops."""

    groups: dict[str, list[IamCandidate]] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    profile: Profile = field(default_factory=Profile)
    undecidable: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)


# The oracle's answers by (document, question). The oracle reads JSON, so a
# layout or a key order cannot change its answer, while one policy is judged
# many times over (each step of a chain, each sibling tried, a relayout):
# one call per meaning keeps a suite fast. Cleared by ``clear_cache``.
_ANSWERS: dict[tuple[str, str], tuple[Truth | None, str]] = {}


def judge(text: str, question: str) -> tuple[Truth | None, str]:
    """The oracle's truth on ``text``; (None, why) when it has none."""
    from generator.oracle.iam import Undecidable, truth

    try:
        key = (json.dumps(json.loads(text), sort_keys=True), question)
    except ValueError:
        key = (text, question)
    if key in _ANSWERS:
        return _ANSWERS[key]
    try:
        found: tuple[Truth | None, str] = (truth(text, question), "")
    except Undecidable as exc:
        found = (None, f"undecidable: {exc}")
    except ConfigError as exc:
        found = (None, f"invalid: {exc}")
    _ANSWERS[key] = found
    return found


def clear_cache() -> None:
    """Forget the oracle's cached answers (tests that swap the oracle use it)."""
    _ANSWERS.clear()


def _quotas(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split ``total`` by weight, largest remainders first (ties by order)."""
    scale = sum(weights.values())
    exact = {name: total * w / scale for name, w in weights.items()}
    quotas = {name: math.floor(v) for name, v in exact.items()}
    order = sorted(
        weights, key=lambda n: (-(exact[n] - quotas[n]), list(weights).index(n))
    )
    for name in order[: total - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


def build_iam_pool(*, count: int, seed: int, question: str) -> IamPool:
    """Draft and judge every candidate a question's ``count`` cases may use."""
    pool = IamPool()
    families = families_for(question)
    grammar_total = round(count * GRAMMAR_SHARE)
    quotas = _quotas(grammar_total, {f.name: f.weights[question] for f in families})
    quotas["mutation"] = count - grammar_total

    seen: set[str] = set()
    for family in families:
        if not quotas[family.name]:
            continue
        family_seed = derive_seed(seed, "iam", question, family.name)
        wanted = math.ceil(quotas[family.name] * OVERSAMPLE) + 3
        drafts = draw_examples(family.drafts(), count=wanted, seed=family_seed)
        drafts = [
            IamDraft(d.family, d.start, d.trail, "grammar", None, family_seed)
            for d in drafts
        ]
        pool.groups[family.name] = _judge(drafts, family.name, question, pool, seen)

    if quotas["mutation"]:
        wanted = math.ceil(quotas["mutation"] * OVERSAMPLE) + 3
        seeds = tuple(
            s for s in load_iam_seeds() if s.policy.kind in kinds_for(question)
        )
        drafts = mutation_drafts(
            seeds, count=wanted, seed=derive_seed(seed, "iam", question, "mutation"),
            question=question,
        )  # fmt: skip
        pool.groups["mutation"] = _judge(drafts, "mutation", question, pool, seen)
    pool.quotas = {name: quotas[name] for name in pool.groups}
    return pool


def _judge(
    drafts: list[IamDraft], group: str, question: str, pool: IamPool, seen: set[str]
) -> list[IamCandidate]:
    out = []
    verdicts: dict[str, str | None] = {}

    def verdict_of(policy: Policy) -> str | None:
        text = policy.text()
        if text not in verdicts:
            found, _ = judge(text, question)
            verdicts[text] = found.verdict if found else None
        return verdicts[text]

    for draft in drafts:
        text = draft.policy.text()
        if text in seen or draft.policy.kind not in kinds_for(question):
            continue
        seen.add(text)
        found, why = judge(text, question)
        # Profile every attempted step: which operators move verdicts.
        before = verdict_of(draft.start)
        for name, result in draft.trail:
            after = verdict_of(result) if result is not None else before
            pool.profile.record(
                name,
                applied=result is not None,
                flipped=None not in (before, after) and before != after,
            )
            before = after
        if found is None:
            counter = (
                pool.undecidable if why.startswith("undecidable") else pool.invalid
            )
            counter[draft.family] += 1
            logger.debug("dropping a %s draft: %s", draft.family, why)
            continue
        out.append(
            IamCandidate(
                group, draft.family, found.verdict, found.rules, text, draft, found,
                question,
            )
        )  # fmt: skip
    return out


# --- mutation chains ------------------------------------------------------------

# The fix a chain may start with on an unsafe seed, per kind.
_PRELUDES = {
    "identity": ("harden_policy", "add_broad_deny"),
    "resource": ("restrict_principal_to_account", "add_org_deny"),
    "trust": ("restrict_principal_to_account", "scope_federated_subject"),
}


def _primaries() -> tuple[tuple[Mutator, int], ...]:
    return tuple((m, 1) for m in MUTATORS if not m.keeps_meaning)


def mutation_drafts(
    seeds: tuple[IamSeed, ...], *, count: int, seed: int, question: str
) -> list[IamDraft]:
    """Up to ``count`` chains over ``seeds`` in turn; chains that apply nothing drop.

    A chain: on an unsafe seed, maybe a reviewer's fix first; then one
    primary edit (retried until one applies); then, a quarter of the time,
    a respelling. The family of a chain is its primary mutator's family.
    """
    primaries = _primaries()
    spellings = tuple((m, 1) for m in MUTATORS if m.keeps_meaning)
    drafts = []
    for i in range(count):
        case_seed = int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16)
        source = seeds[i % len(seeds)]
        rnd = random.Random(case_seed)
        start = source.policy.restyled(
            rnd.choice(("pretty-4", "pretty-2", "hand-4", "hand-2", "one-line", "tab"))
        )
        chain = _chain(source, start, rnd, primaries, spellings)
        if chain is None:
            continue
        family, trail = chain
        parent = case_id("iam", question, source.text)
        drafts.append(
            IamDraft(
                family, start, trail, "mutation", parent, case_seed, source.stem
            )
        )  # fmt: skip
    return drafts


def _chain(source, start, rnd, primaries, spellings):
    """(family, trail) of one chain from ``start``; None if no primary applied."""
    trail: list[tuple[str, Any]] = []

    def step(mutator: Mutator, policy: Policy) -> Policy:
        result = mutator(policy, rnd)
        trail.append((mutator.name, result))
        return result or policy

    current = start
    if source.claimed == "unsafe" and rnd.random() < 0.5:
        current = step(mutator_named(rnd.choice(_PRELUDES[start.kind])), current)
    for _ in range(6):
        candidate = weighted_choice(rnd, primaries)
        before = current
        current = step(candidate, current)
        if current is not before:
            break
    else:
        return None
    if rnd.random() < 0.25:
        step(weighted_choice(rnd, spellings), current)
    return candidate.family, tuple(trail)


# --- cases ------------------------------------------------------------------------


def to_iam_case(
    candidate: IamCandidate, question: str, *, relation: str = "base"
) -> Case:
    """The Case for ``candidate``; its truth was the oracle's on the exact text."""
    draft = candidate.draft
    tags = iam_tags(
        draft.policy,
        question=question,
        family=draft.family,
        method=draft.method,
        operators=draft.operators,
        seed_file=draft.seed_file,
        relation=relation,
    )
    return Case(
        id=case_id("iam", question, candidate.text),
        domain="iam",
        family=draft.family,
        origin=Origin(
            draft.method,  # type: ignore[arg-type]
            draft.parent,
            draft.operators,
            draft.seed,
        ),
        format="json",
        config=candidate.text,
        question=question,
        truth=candidate.truth,
        tags=tags,
    )
