"""The shared machinery of the netpol and sg generators: pools, cases, siblings.

Both domains work the same way, so one builder serves them, driven by a
``DomainSpec`` (the families, mutators, seeds, renderer and oracle of one
domain):

* a **model** is the meaning of a config as plain data (a ``Scenario`` of
  documents plus the asked flow for netpol, an ``SgModel`` for sg) together
  with how it is spelled; ``spec.render(model)`` writes the text the model
  under test sees, and ``spec.question(model, kind)`` the question;
* a **pool** holds, per question kind, grammar drafts of every family and
  mutation chains over the seeds, each judged by the oracle on the exact
  rendered text (the oracles are fast: tenths of a millisecond a case);
* **siblings**: a same sibling is one meaning-keeping mutator applied to the
  base; an opposite sibling is the smallest verdict-moving edit (repairs
  for unsafe bases, breakers for safe ones), ranked by changed lines of the
  canonical rendering, then a seeded tie-break, confirmed by the oracle.

What the oracle cannot decide (``Undecidable``) or refuses as invalid never
becomes a candidate; both are counted per family for the manifest. Every
random choice is seeded from the suite seed and names (a family, a case id,
a mutator), never from process state, so suites are byte-identical.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from generator.errors import ConfigError, InvalidArgument, Undecidable
from generator.grammar.draw import draw_examples
from generator.mutate.base import Mutator, Profile, weighted_choice
from generator.records import Case, Origin, Truth, case_id

__all__ = [
    "Candidate",
    "DomainSpec",
    "Draft",
    "Family",
    "Pool",
    "Seed",
    "build_pool",
    "derive_seed",
    "opposite_sibling",
    "same_sibling",
    "to_case",
]

logger = logging.getLogger(__name__)

# The grammar families' share of a question kind's cases; the rest mutations.
GRAMMAR_SHARE = 0.7
# Drafts per kept case: room for balancing and for undecidable drops.
OVERSAMPLE = 2.5


def derive_seed(seed: int, *parts: str) -> int:
    """A 32-bit seed for one part of a suite, stable across processes."""
    text = ":".join([str(seed), *parts])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class Family:
    """A named region of the input space: a strategy of models per question
    kind (``base(kind)``), and its weight (0: not asked that kind)."""

    name: str
    base: Callable[[str], st.SearchStrategy[Any]]
    weights: dict[str, int]
    covers: str = ""


@dataclass(frozen=True)
class Seed:
    """A realistic config: file stem, verdict claimed by its name, model."""

    stem: str
    claimed: str
    model: Any
    kind: str  # the question kind the claim answers


@dataclass(frozen=True)
class DomainSpec:
    """One domain's parts, as the builder needs them."""

    domain: str
    format: str
    kinds: tuple[str, ...]
    families: tuple[Family, ...]
    mutators: tuple[Mutator, ...]
    repairs: tuple[str, ...]
    seeds: Callable[[], tuple[Seed, ...]]
    render: Callable[[Any], str]
    canonical: Callable[[Any], str]  # a spelling-free rendering, for diffs
    question: Callable[[Any, str], str]
    truth: Callable[[str, str], Truth]
    tags: Callable[..., dict[str, Any]]
    # Whether a seed or model can be asked a question kind (sg: IPv6 needs
    # nothing; netpol has one kind).
    fits: Callable[[Any, str], bool] = lambda model, kind: True


@dataclass(frozen=True)
class Draft:
    """A model before the oracle: family, start, and every attempted step
    ``(operator, model after it or None if it did not apply)``."""

    family: str
    start: Any
    trail: tuple[tuple[str, Any], ...] = ()
    method: str = "grammar"
    parent: str | None = None
    seed: int | None = None
    seed_file: str = ""

    @property
    def model(self) -> Any:
        applied = [m for _, m in self.trail if m is not None]
        return applied[-1] if applied else self.start

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(name for name, m in self.trail if m is not None)


@dataclass(frozen=True)
class Candidate:
    """A judged draft, ready for selection (the attributes the suite reads)."""

    group: str
    family: str
    verdict: str
    rules: tuple[str, ...]
    text: str
    draft: Draft
    truth: Truth
    question: str


@dataclass
class Pool:
    """Candidates by group, quotas, rules to cover (none here), the profile,
    and the drafts dropped as undecidable or invalid, per family."""

    groups: dict[str, list[Candidate]] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    profile: Profile = field(default_factory=Profile)
    undecidable: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)


def judge(spec: DomainSpec, text: str, question: str) -> tuple[Truth | None, str]:
    """The oracle's truth on ``text``; (None, why) when it has none."""
    try:
        return spec.truth(text, question), ""
    except Undecidable as exc:
        return None, f"undecidable: {exc}"
    except (ConfigError, InvalidArgument) as exc:
        return None, f"invalid: {exc}"


def _quotas(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split ``total`` by weight, largest remainders first (ties by order)."""
    scale = sum(weights.values()) or 1
    exact = {name: total * w / scale for name, w in weights.items()}
    quotas = {name: math.floor(v) for name, v in exact.items()}
    order = sorted(
        weights, key=lambda n: (-(exact[n] - quotas[n]), list(weights).index(n))
    )
    for name in order[: total - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


def build_pool(spec: DomainSpec, *, count: int, seed: int, kind: str) -> Pool:
    """Draft and judge every candidate ``count`` cases of ``kind`` may use."""
    pool = Pool()
    families = [f for f in spec.families if f.weights.get(kind)]
    grammar_total = round(count * GRAMMAR_SHARE)
    quotas = _quotas(grammar_total, {f.name: f.weights[kind] for f in families})
    quotas["mutation"] = count - grammar_total

    seen: set[str] = set()
    for family in families:
        if not quotas[family.name]:
            continue
        family_seed = derive_seed(seed, spec.domain, kind, family.name)
        wanted = math.ceil(quotas[family.name] * OVERSAMPLE) + 4
        models = draw_examples(family.base(kind), count=wanted, seed=family_seed)
        drafts = [
            Draft(family.name, m, (), "grammar", None, family_seed) for m in models
        ]
        pool.groups[family.name] = _judge(spec, drafts, family.name, kind, pool, seen)

    if quotas["mutation"]:
        wanted = math.ceil(quotas["mutation"] * OVERSAMPLE) + 4
        seeds = tuple(s for s in spec.seeds() if spec.fits(s.model, kind))
        drafts = mutation_drafts(
            spec, seeds, count=wanted, kind=kind,
            seed=derive_seed(seed, spec.domain, kind, "mutation"),
        )  # fmt: skip
        pool.groups["mutation"] = _judge(spec, drafts, "mutation", kind, pool, seen)
    pool.quotas = {name: quotas[name] for name in pool.groups}
    return pool


def _judge(
    spec: DomainSpec,
    drafts: list[Draft],
    group: str,
    kind: str,
    pool: Pool,
    seen: set[str],
) -> list[Candidate]:
    out = []
    verdicts: dict[tuple[str, str], str | None] = {}

    def verdict_of(model: Any) -> str | None:
        key = (spec.render(model), spec.question(model, kind))
        if key not in verdicts:
            found, _ = judge(spec, *key)
            verdicts[key] = found.verdict if found else None
        return verdicts[key]

    for draft in drafts:
        text = spec.render(draft.model)
        question = spec.question(draft.model, kind)
        if (text, question) in seen:
            continue
        seen.add((text, question))  # type: ignore[arg-type]
        found, why = judge(spec, text, question)
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
            Candidate(
                group, draft.family, found.verdict, found.rules, text, draft, found,
                question,
            )
        )  # fmt: skip
    return out


# --- mutation chains ----------------------------------------------------------


def mutation_drafts(
    spec: DomainSpec, seeds: tuple[Seed, ...], *, count: int, seed: int, kind: str
) -> list[Draft]:
    """Up to ``count`` chains over ``seeds`` in turn.

    A chain: on an unsafe seed, half the time a reviewer's fix first; then
    one primary edit (retried until one applies); then, a third of the time,
    a respelling. The family of a chain is its primary mutator's family.
    """
    if not seeds:
        return []
    primaries = tuple((m, 1) for m in spec.mutators if not m.keeps_meaning)
    spellings = tuple((m, 1) for m in spec.mutators if m.keeps_meaning)
    drafts = []
    for i in range(count):
        case_seed = derive_seed(seed, str(i))
        source = seeds[i % len(seeds)]
        rnd = random.Random(case_seed)
        trail: list[tuple[str, Any]] = []

        def step(mutator: Mutator, model: Any, rnd=rnd, trail=trail) -> Any:
            result = mutator(model, rnd)
            trail.append((mutator.name, result))
            return result if result is not None else model

        current = source.model
        if source.claimed == "unsafe" and rnd.random() < 0.5:
            wanted = rnd.choice(spec.repairs)
            fix = next(m for m in spec.mutators if m.name == wanted)
            current = step(fix, current)
        for _ in range(6):
            primary = weighted_choice(rnd, primaries)
            before = current
            current = step(primary, current)
            if current is not before:
                break
        else:
            continue
        if rnd.random() < 0.33:
            step(weighted_choice(rnd, spellings), current)
        parent = case_id(
            spec.domain, spec.question(source.model, kind), spec.render(source.model)
        )
        drafts.append(
            Draft(
                primary.family, source.model, tuple(trail), "mutation", parent,
                case_seed, source.stem,
            )
        )  # fmt: skip
    return drafts


# --- cases ----------------------------------------------------------------------


def to_case(spec: DomainSpec, candidate: Candidate, *, relation: str = "base") -> Case:
    """The Case for ``candidate``; its truth was the oracle's on the exact text."""
    draft = candidate.draft
    tags = spec.tags(
        draft.model,
        question=candidate.question,
        family=draft.family,
        method=draft.method,
        operators=draft.operators,
        seed_file=draft.seed_file,
        relation=relation,
        text=candidate.text,
    )
    return Case(
        id=case_id(spec.domain, candidate.question, candidate.text),
        domain=spec.domain,
        family=draft.family,
        origin=Origin(
            draft.method,  # type: ignore[arg-type]
            draft.parent,
            draft.operators,
            draft.seed,
        ),
        format=spec.format,  # type: ignore[arg-type]
        config=candidate.text,
        question=candidate.question,
        truth=candidate.truth,
        tags=tags,
    )


Made = tuple[Candidate, Case]


def same_sibling(
    spec: DomainSpec, candidate: Candidate, base: Case, *, seed: int, taken: set[str]
) -> Made | None:
    """``base`` respelled by one meaning-keeping mutator; None if none applies."""
    order = [m for m in spec.mutators if m.keeps_meaning]
    random.Random(derive_seed(seed, "same", base.id)).shuffle(order)
    for mutator in order:
        rnd = random.Random(derive_seed(seed, "same", base.id, mutator.name))
        result = mutator(candidate.draft.model, rnd)
        if result is None:
            continue
        made = _judged(spec, candidate, mutator.name, result, "same", base, taken)
        if made is None:
            continue
        twin = made[1]
        if twin.truth.verdict != base.truth.verdict or set(twin.truth.rules) != set(
            base.truth.rules
        ):
            logger.warning(
                "sibling of %s dropped: %s should keep the meaning but moved "
                "%s to %s",
                base.id, mutator.name, base.truth.verdict, twin.truth.verdict,
            )  # fmt: skip
            continue
        return made
    return None


def opposite_sibling(
    spec: DomainSpec, candidate: Candidate, base: Case, *, seed: int, taken: set[str]
) -> Made | None:
    """The smallest edit of ``base`` that flips its verdict; None if none does."""
    if base.truth.verdict == "unsafe":
        names = spec.repairs
    else:
        names = tuple(
            m.name
            for m in spec.mutators
            if not m.keeps_meaning and m.name not in spec.repairs
        )
    by_name = {m.name: m for m in spec.mutators}
    model = candidate.draft.model
    before = spec.canonical(model)
    ranked = []
    for name in names:
        rnd = random.Random(derive_seed(seed, "opposite", base.id, name))
        result = by_name[name](model, rnd)
        if result is None:
            continue
        changed = _changed_lines(before, spec.canonical(result))
        tie = derive_seed(seed, "opposite", base.id, name, "tie")
        ranked.append((changed, tie, name, result))
    for _, _, name, result in sorted(ranked, key=lambda r: r[:2]):
        made = _judged(spec, candidate, name, result, "opposite", base, taken)
        if made is not None and made[1].truth.verdict != base.truth.verdict:
            return made
    return None


def _changed_lines(before: str, after: str) -> int:
    """How many lines an edit touches, in a spelling-independent rendering."""
    matcher = difflib.SequenceMatcher(
        None, before.splitlines(), after.splitlines(), autojunk=False
    )
    return sum(
        max(i2 - i1, j2 - j1)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )


def _judged(
    spec: DomainSpec,
    candidate: Candidate,
    name: str,
    model: Any,
    relation: str,
    base: Case,
    taken: set[str],
) -> Made | None:
    """The sibling's candidate and oracle-judged Case; None if not a new case."""
    text = spec.render(model)
    # A sibling asks the base's question: the same flow, port and IP version.
    question = base.question
    if spec.question(model, _kind(question)) != question:
        return None
    if case_id(base.domain, question, text) in taken:
        return None
    found, _ = judge(spec, text, question)
    if found is None:
        return None
    d = candidate.draft
    draft = Draft(
        d.family, d.start, (*d.trail, (name, model)), d.method, d.parent, d.seed,
        d.seed_file,
    )  # fmt: skip
    twin = Candidate(
        candidate.group, d.family, found.verdict, found.rules, text, draft, found,
        question,
    )  # fmt: skip
    return twin, to_case(spec, twin, relation=relation)


def _kind(question: str) -> str:
    """The question kind of a question: ``sg:open_ipv4`` of
    ``sg:open_ipv4:22/tcp``, ``netpol:reach`` of any netpol question."""
    if question.startswith("netpol:"):
        return "netpol:reach"
    return question.rpartition(":")[0]
