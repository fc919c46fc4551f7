"""Turning Kubernetes families and seeds into judged candidates, then into Cases.

The suite asks this module for a pool of candidates (grammar drafts of
every family, mutation chains over the seeds, and a single-check family
that aims at one PSA check at a time so every check can be covered), and
later for the ``Case`` of each candidate it keeps.

Two verdicts are computed, on purpose. While drafting, a cheap one is taken
from the documents as dicts (no YAML parse), to balance the pool and to
profile each operator's flips. The truth stored in a Case always comes from
the oracle reading the exact text the model will see; a case whose two
verdicts disagree would mean the renderer changed a meaning, so it is
logged and dropped, never written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from generator.config.k8s import workloads as config_workloads
from generator.errors import ConfigError
from generator.families.k8s import FAMILIES, Draft
from generator.families.k8s_mutation import mutation_drafts
from generator.families.k8s_tags import k8s_tags
from generator.grammar.draw import draw_examples
from generator.grammar.k8s import workloads
from generator.mutate.base import Manifest, Profile
from generator.mutate.k8s import mutator_named
from generator.mutate.seeds import load_seeds
from generator.oracle.k8s import active_checks, evaluate, truth
from generator.oracle.k8s_policy import Version
from generator.records import Case, Origin, case_id

__all__ = [
    "CHECK_OPERATORS",
    "Candidate",
    "Pool",
    "build_pool",
    "quick_rules",
    "to_case",
]

logger = logging.getLogger(__name__)

# The grammar families' share of a suite; the rest are mutations of seeds.
GRAMMAR_SHARE = 0.65
# Drafts per kept case: room for the selection to balance verdicts.
OVERSAMPLE = 2.0
SINGLE_CHECK = "single-check"
SINGLE_CHECK_WEIGHT = 6

# For each PSA check, operators that violate it on a hardened pod (tried in
# turn: seccomp is read from annotations up to v1.18, from fields after).
CHECK_OPERATORS: dict[str, tuple[str, ...]] = {
    "hostNamespaces": ("share_host_namespace",),
    "privileged": ("grant_privileged",),
    "capabilities_baseline": ("grant_capability",),
    "hostPathVolumes": ("add_host_path_mount",),
    "hostPorts": ("publish_host_port",),
    "hostProbesAndHostLifecycle": ("point_probe_at_host",),
    "appArmorProfile": ("set_apparmor_profile",),
    "seLinuxOptions": ("set_selinux_options",),
    "procMount": ("unmask_proc_mount",),
    "seccompProfile_baseline": ("unconfine_seccomp", "annotate_seccomp_unconfined"),
    "sysctls": ("add_sysctl",),
    "windowsHostProcess": ("run_as_windows_host_process",),
    "allowPrivilegeEscalation": ("drop_escalation_guard",),
    "capabilities_restricted": ("respell_capability",),
    "runAsNonRoot": ("flip_run_as_non_root",),
    "runAsUser": ("run_as_root",),
    "seccompProfile_restricted": ("unconfine_seccomp",),
    "restrictedVolumes": ("mount_forbidden_volume",),
    "procMount_restricted": ("unmask_proc_mount",),
}


@dataclass(frozen=True)
class Candidate:
    """A draft with its quick verdict, ready for selection."""

    group: str
    family: str
    verdict: str
    rules: tuple[str, ...]
    text: str
    draft: Draft


@dataclass
class Pool:
    """Candidates by group, each group's quota, and the rules to cover."""

    groups: dict[str, list[Candidate]] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    profile: Profile = field(default_factory=Profile)


def quick_rules(
    manifest: Manifest, level: str, version: Version
) -> tuple[str, ...] | None:
    """The violated rules of ``manifest`` read from its dicts; None if unjudgeable."""
    try:
        found = [
            evaluate(w, version)
            for index, doc in enumerate(manifest.documents)
            for w in config_workloads(doc, index=index)
        ]
    except ConfigError:
        return None
    if not found:
        return None
    return tuple(dict.fromkeys(f.rule for e in found for f in e.failing(level)))


def derive_seed(seed: int, *parts: str) -> int:
    """A 32-bit seed for one part of a suite, stable across processes."""
    text = ":".join([str(seed), *parts])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


# --- the single-check family --------------------------------------------------


def _single_check(check: str, level: str, version: Version) -> st.SearchStrategy[Draft]:
    # single-check: one PSA check at a time on a hardened Linux workload,
    # the way the upstream fixtures change one field of a passing pod; the
    # operator is retried until that very check fails, so covering every
    # check does not depend on luck.
    names = CHECK_OPERATORS[check]

    @st.composite
    def build(draw) -> Draft:
        start = Manifest((draw(workloads(hardened=True, os="linux")),))
        rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
        for attempt in range(16):
            name = names[attempt % len(names)]
            result = mutator_named(name)(start, rnd)
            if result is not None and check in (
                quick_rules(result, level, version) or ()
            ):
                return Draft(SINGLE_CHECK, start, ((name, result),))
        return Draft(SINGLE_CHECK, start, ((names[0], None),))

    return build()


def _single_check_drafts(
    wanted: int, seed: int, level: str, version: Version
) -> list[Draft]:
    """About ``wanted`` drafts, the same number for every active check, interleaved."""
    checks = [c.id for c in active_checks(level, version)]
    each = max(1, math.ceil(wanted / len(checks)))
    per_check = [
        draw_examples(_single_check(check, level, version), count=each,
                      seed=derive_seed(seed, "grammar", SINGLE_CHECK, check))
        for check in checks
    ]  # fmt: skip
    seed_of = derive_seed(seed, "grammar", SINGLE_CHECK)
    rounds = max(map(len, per_check))
    return [
        _with_seed(drafts[i], seed_of)
        for i in range(rounds)
        for drafts in per_check
        if i < len(drafts)
    ]


# --- the pool -------------------------------------------------------------------


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


def build_pool(
    *, count: int, seed: int, level: str, version: Version, question: str
) -> Pool:
    """Draft and quick-judge every candidate a suite of ``count`` may choose from."""
    pool = Pool(required=tuple(c.id for c in active_checks(level, version)))
    grammar_total = round(count * GRAMMAR_SHARE)
    weights = {f.name: f.weight for f in FAMILIES} | {SINGLE_CHECK: SINGLE_CHECK_WEIGHT}
    quotas = _quotas(grammar_total, weights)
    quotas["mutation"] = count - grammar_total

    seen: set[str] = set()
    for family in FAMILIES:
        if not quotas[family.name]:
            continue
        family_seed = derive_seed(seed, "grammar", family.name)
        wanted = math.ceil(quotas[family.name] * OVERSAMPLE) + 3
        logger.debug("drawing %d drafts of family %s", wanted, family.name)
        drafts = draw_examples(family.drafts(), count=wanted, seed=family_seed)
        drafts = [_with_seed(d, family_seed) for d in drafts]
        pool.groups[family.name] = _judge(
            drafts, family.name, level, version, pool.profile, seen
        )

    # Enough single-check drafts to cover every check, whatever the quota.
    wanted = math.ceil(quotas[SINGLE_CHECK] * OVERSAMPLE) + 3
    if count >= 2 * len(pool.required):
        wanted = max(wanted, 2 * len(pool.required))
    drafts = _single_check_drafts(wanted, seed, level, version)
    pool.groups[SINGLE_CHECK] = _judge(
        drafts, SINGLE_CHECK, level, version, pool.profile, seen
    )

    if quotas["mutation"]:
        wanted = math.ceil(quotas["mutation"] * OVERSAMPLE) + 3
        drafts = mutation_drafts(
            load_seeds(),
            count=wanted,
            seed=derive_seed(seed, "mutation"),
            question=question,
        )
        pool.groups["mutation"] = _judge(
            drafts, "mutation", level, version, pool.profile, seen
        )
    pool.quotas = {name: quotas[name] for name in pool.groups}
    return pool


def _with_seed(draft: Draft, seed: int) -> Draft:
    return Draft(draft.family, draft.start, draft.trail, "grammar", None, seed)


def _judge(
    drafts, group, level, version, profile: Profile, seen: set[str]
) -> list[Candidate]:
    out = []
    for draft in drafts:
        # Profile every attempted step, kept or not: which operators move verdicts.
        before = quick_rules(draft.start, level, version)
        for name, result in draft.trail:
            after = (
                quick_rules(result, level, version) if result is not None else before
            )
            profile.record(
                name, applied=result is not None, flipped=bool(before) != bool(after)
            )
            before = after
        rules = quick_rules(draft.manifest, level, version)
        text = draft.manifest.text()
        if rules is None or text in seen:
            continue
        seen.add(text)
        verdict = "unsafe" if rules else "safe"
        out.append(Candidate(group, draft.family, verdict, rules, text, draft))
    return out


# --- cases ----------------------------------------------------------------------


def to_case(
    candidate: Candidate, question: str, *, relation: str = "base"
) -> Case | None:
    """The Case for ``candidate``, judged by the oracle from its exact text.

    ``relation`` is the case's ``relation`` tag: ``base``, or ``same`` /
    ``opposite`` for a sibling made by ``generator.families.k8s_siblings``.
    """
    draft, text = candidate.draft, candidate.text
    try:
        verdict = truth(text, question)
    except ConfigError as exc:
        logger.warning("skipping a %s draft: %s", candidate.family, exc)
        return None
    if verdict.verdict != candidate.verdict:
        logger.warning(
            "skipping a %s draft: the text reads %s but its documents %s",
            candidate.family, verdict.verdict, candidate.verdict,
        )  # fmt: skip
        return None
    tags: dict[str, Any] = k8s_tags(
        draft.manifest.documents,
        draft.manifest.style,
        family=draft.family,
        method=draft.method,
        operators=draft.operators,
        seed_file=draft.seed_file,
        relation=relation,
    )
    return Case(
        id=case_id("k8s", question, text),
        domain="k8s",
        family=draft.family,
        origin=Origin(draft.method, draft.parent, draft.operators, draft.seed),
        format="yaml",
        config=text,
        question=question,
        truth=verdict,
        tags=tags,
    )
