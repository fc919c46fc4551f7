"""Writing a suite: the chosen cases in ``cases.jsonl`` and ``manifest.json``.

``generate_suite`` is deterministic: the same arguments give byte-identical
files on any machine and in any process, because every random choice is
seeded from ``seed`` (Hypothesis through ``@seed``, mutation chains through
``random.Random``), the output holds no time or path, and cases are
written sorted by id.

Which candidates become cases is decided here, in three passes:

1. coverage: for every check active at the question's level and version,
   one case that violates it (when the count leaves room);
2. quotas: each family's share, alternating verdicts so a family holds
   near misses on both sides where it has them;
3. balance: top up, then swap until each verdict is at least 30% of the
   suite, never removing a coverage case.

With siblings (the default), about ``SIBLING_SHARE`` of the suite is then
given to metamorphic siblings (``generator.families.k8s_siblings``): base
cases taken in id order, by turns of verdict, each get a same-meaning and an
opposite-verdict sibling, linked both ways in ``Case.siblings``. To keep
``count`` the suite's size, as many unpaired base cases leave, from the more
common verdict and never the last case violating a rule, so the verdict
floor and the check coverage hold with siblings too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import hypothesis

from generator import tags as T
from generator.errors import InvalidArgument
from generator.families.k8s_build import Candidate, Pool, build_pool, to_case
from generator.families.k8s_siblings import opposite_sibling, same_sibling
from generator.grammar.k8s import GRAMMAR_PATH
from generator.mutate.seeds import SEEDS_DIR
from generator.oracle.k8s import parse_question
from generator.oracle.k8s_policy import LEVELS
from generator.records import Case, dumps_line

__all__ = [
    "DOMAINS",
    "MIN_VERDICT_SHARE",
    "SIBLING_SHARE",
    "generate_suite",
    "question_kind",
]

logger = logging.getLogger(__name__)

DOMAINS = ("k8s", "iam", "netpol", "sg")
MIN_VERDICT_SHARE = 0.30
MAX_COUNT = 1_000_000
# An IAM share is split over its questions: privilege escalation is the
# motivating one; admin-equivalence is asked of the same identity policies;
# public access of resource and trust policies.
IAM_QUESTIONS = ("iam:privesc", "iam:admin", "iam:public")
IAM_SHARES = (0.4, 0.25, 0.35)
# netpol asks one kind of question (can this flow get through?), each case
# about its own flow; sg asks whether a port is open to the whole IPv4 or
# IPv6 internet, IPv4 first because that is where most rules are written.
NETWORK_SHARES = {"netpol": (1.0,), "sg": (0.6, 0.4)}
# The share of a suite given to siblings: 40 in 100 cases are siblings of 20
# base cases (one same, one opposite each), leaving 60 distinct meanings
# for coverage and clusters while 20 pairs of each kind measure consistency.
SIBLING_SHARE = 0.4

Chosen = list[tuple[Candidate, Case]]


def generate_suite(
    *,
    domains: tuple[str, ...] = ("k8s",),
    count: int,
    seed: int,
    out_dir: str | Path,
    pss_version: str = "v1.37",
    level: str = "restricted",
    siblings: bool = True,
) -> dict[str, Any]:
    """Generate ``count`` cases into ``out_dir``; return the manifest written.

    ``siblings=False`` writes base cases only, as suites did before siblings.
    """
    _check_arguments(domains, count, seed, level)
    if not isinstance(siblings, bool):
        raise InvalidArgument(f"siblings={siblings!r} must be True or False")
    question = f"pss:{level}:{pss_version}"
    level, version = parse_question(question)
    started = time.perf_counter()

    # Each domain writes its share of the suite by its own generator; a
    # suite of one domain is exactly that domain's part.
    shares = _shares(count, tuple(dict.fromkeys(domains)))
    parts: list[dict[str, Any]] = []
    for domain, share in shares.items():
        if not share:
            continue
        if domain == "k8s":
            parts.append(
                _k8s_part(share, seed, question, level, version, siblings, started)
            )
        elif domain == "iam":
            parts.append(_iam_part(share, seed, siblings))
        else:
            parts.append(_network_part(domain, share, seed, siblings))
    cases = [case for part in parts for case in part["cases"]]
    if len(cases) < count:
        logger.warning(
            "generate: only %d distinct cases for count=%d", len(cases), count
        )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(dumps_line(c) for c in sorted(cases, key=lambda c: c.id))
    _write(out / "cases.jsonl", body)
    manifest = _manifest(cases, parts, body, domains, count, seed)
    manifest["siblings"] = _sibling_summary(cases, enabled=siblings)
    for name, entry in manifest["mutator_profile"].items():
        logger.debug(
            "mutator %s: %d calls, %d applied, %d verdict flips",
            name, entry["calls"], entry["applied"], entry["flips"],
        )  # fmt: skip
    _write(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    logger.info(
        "generate: wrote %d cases (%s) to %s in %.1fs",
        len(cases), manifest["counts"]["verdict"], out, time.perf_counter() - started,
    )  # fmt: skip
    return manifest


def _shares(count: int, domains: tuple[str, ...]) -> dict[str, int]:
    """``count`` split evenly over ``domains``; the first ones take the rest."""
    each, rest = divmod(count, len(domains))
    return {d: each + (i < rest) for i, d in enumerate(domains)}


def _k8s_part(count, seed, question, level, version, siblings, started):
    """The Kubernetes cases of a suite, with what the manifest says of them."""
    pool = build_pool(
        count=count, seed=seed, level=level, version=version, question=question
    )
    logger.info(
        "generate: %d candidates in %d groups after %.1fs",
        sum(map(len, pool.groups.values())), len(pool.groups),
        time.perf_counter() - started,
    )  # fmt: skip
    chosen = _cases(pool, count, question, to_case)
    if siblings:

        def same(candidate, base, taken):
            return same_sibling(
                candidate, base, seed=seed, level=level, version=version, taken=taken
            )

        def opposite(candidate, base, taken):
            return opposite_sibling(
                candidate, base, seed=seed, level=level, version=version, taken=taken
            )

        cases = with_siblings(chosen, count, same=same, opposite=opposite)
    else:
        cases = [case for _, case in chosen]
    return {
        "domain": "k8s",
        "cases": cases,
        "questions": [question],
        "profile": pool.profile.to_dict(),
        "inputs": {
            "grammar_sha256": _digest([GRAMMAR_PATH]),
            "seeds_sha256": _digest(sorted(SEEDS_DIR.glob("*.yaml"))),
        },
    }


def _iam_part(count: int, seed: int, siblings: bool) -> dict[str, Any]:
    """The IAM cases of a suite: each question gets its share, chosen and
    paired with siblings on its own, so both verdicts reach the floor per
    question, not only over the mix."""
    from generator.families.iam_build import build_iam_pool, to_iam_case
    from generator.families.iam_siblings import (
        iam_opposite_sibling,
        iam_same_sibling,
    )
    from generator.grammar.iam import GRAMMAR_PATH as IAM_GRAMMAR_PATH
    from generator.mutate.iam_seeds import IAM_SEEDS_DIR

    def same(candidate, base, taken):
        return iam_same_sibling(candidate, base, seed=seed, taken=taken)

    def opposite(candidate, base, taken):
        return iam_opposite_sibling(candidate, base, seed=seed, taken=taken)

    split = dict(zip(IAM_QUESTIONS, _split_by_share(count, IAM_SHARES), strict=True))

    def pool_of(question: str, share: int):
        return build_iam_pool(count=share, seed=seed, question=question)

    cases, profile, undecidable, invalid = _per_question(
        split, pool_of, to_iam_case, siblings, same=same, opposite=opposite
    )
    return {
        "domain": "iam",
        "cases": cases,
        "questions": [q for q, n in split.items() if n],
        "profile": profile,
        "undecidable": undecidable,
        "invalid": invalid,
        "inputs": {
            "iam_grammar_sha256": _digest([IAM_GRAMMAR_PATH]),
            "iam_seeds_sha256": _digest(sorted(IAM_SEEDS_DIR.glob("*.json"))),
        },
    }


def _network_part(domain: str, count: int, seed: int, siblings: bool):
    """The netpol or sg cases of a suite, chosen per question kind (netpol:
    one; sg: open_ipv4, open_ipv6) so both verdicts reach the floor in each,
    with siblings made by ``generator.families.netpol_sg_build``."""
    from generator.families import netpol_sg_build as build

    if domain == "netpol":
        from generator.families.netpol_build import NETPOL as spec
        from generator.families.netpol_build import NETPOL_SEEDS_DIR as seeds_dir
        from generator.grammar.netpol import GRAMMAR_PATH as grammar_path
    else:
        from generator.families.sg_build import SG as spec
        from generator.families.sg_build import SG_SEEDS_DIR as seeds_dir
        from generator.grammar.sg import GRAMMAR_PATH as grammar_path

    def same(candidate, base, taken):
        return build.same_sibling(spec, candidate, base, seed=seed, taken=taken)

    def opposite(candidate, base, taken):
        return build.opposite_sibling(spec, candidate, base, seed=seed, taken=taken)

    def make_case(candidate, question):
        return build.to_case(spec, candidate)

    split = dict(
        zip(spec.kinds, _split_by_share(count, NETWORK_SHARES[domain]), strict=True)
    )

    def pool_of(kind: str, share: int):
        return build.build_pool(spec, count=share, seed=seed, kind=kind)

    cases, profile, undecidable, invalid = _per_question(
        split, pool_of, make_case, siblings, same=same, opposite=opposite
    )
    return {
        "domain": domain,
        "cases": cases,
        "questions": [k for k, n in split.items() if n],
        "profile": profile,
        "undecidable": undecidable,
        "invalid": invalid,
        "inputs": {
            f"{domain}_grammar_sha256": _digest([grammar_path]),
            f"{domain}_seeds_sha256": _digest(sorted(seeds_dir.glob("*.*"))),
        },
    }


def _per_question(split, pool_of, make_case, siblings: bool, *, same, opposite):
    """Each question's share chosen from its own pool (and given siblings).

    Returns the cases in question order, the mutators' merged profile, and
    per question the undecidable and invalid drafts that were dropped.
    """
    cases: list[Case] = []
    profile: dict[str, dict[str, int]] = {}
    undecidable: dict[str, dict[str, int]] = {}
    invalid: dict[str, dict[str, int]] = {}
    for question, share in split.items():
        if not share:
            continue
        pool = pool_of(question, share)
        chosen = _cases(pool, share, question, make_case)
        if siblings:
            made = with_siblings(chosen, share, same=same, opposite=opposite)
        else:
            made = [case for _, case in chosen]
        cases.extend(made)
        for name, entry in pool.profile.to_dict().items():
            merged = profile.setdefault(name, {"calls": 0, "applied": 0, "flips": 0})
            for key, value in entry.items():
                merged[key] += value
        undecidable[question] = dict(sorted(pool.undecidable.items()))
        invalid[question] = dict(sorted(pool.invalid.items()))
        logger.info(
            "generate: %s: %d cases, %d undecidable drafts dropped",
            question, len(made), sum(pool.undecidable.values()),
        )  # fmt: skip
    return cases, profile, undecidable, invalid


def question_kind(question: str) -> str:
    """What a question asks, without the cell: ``sg:open_ipv4`` of
    ``sg:open_ipv4:22/tcp``, ``netpol:reach`` of every netpol flow; other
    questions are their own kind."""
    if question.startswith("netpol:"):
        return "netpol:reach"
    if question.startswith("sg:"):
        return question.rpartition(":")[0]
    return question


def _split_by_share(count: int, shares: tuple[float, ...]) -> list[int]:
    """``count`` split by ``shares``, largest remainders first (ties in order)."""
    exact = [count * share for share in shares]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: count - sum(parts)]:
        parts[i] += 1
    return parts


def _check_arguments(domains: Any, count: Any, seed: Any, level: Any) -> None:
    if not isinstance(domains, tuple | list) or not domains:
        raise InvalidArgument(f"domains={domains!r} must be a non-empty tuple of names")
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise InvalidArgument(
            f"domains={tuple(domains)!r}: no generator yet for "
            f"{', '.join(map(repr, unknown))}; "
            f"known: {', '.join(DOMAINS)}"
        )
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not 1 <= count <= MAX_COUNT
    ):
        raise InvalidArgument(f"count={count!r} must be an int in [1, {MAX_COUNT:,}]")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgument(f"seed={seed!r} ({type(seed).__name__}) must be an int")
    if level not in LEVELS:
        raise InvalidArgument(f"level={level!r} must be one of {LEVELS}")


def _write(path: Path, text: str) -> None:
    # Write beside, then rename: a crash never leaves half a suite behind.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


# --- choosing the cases -----------------------------------------------------


def _cases(pool: Pool, count: int, question: str, make_case) -> Chosen:
    """Select, judge, and reselect around any draft the oracle refuses.

    ``make_case(candidate, question)`` is the domain's Case maker; it returns
    None for a draft its oracle refuses.
    """
    refused: set[str] = set()
    for _ in range(4):
        chosen = _select(pool, count, refused)
        cases, failed = [], False
        for candidate in chosen:
            case = make_case(candidate, question)
            if case is None:
                refused.add(candidate.text)
                failed = True
            else:
                cases.append((candidate, case))
        if not failed:
            break
    return cases


def _select(pool: Pool, count: int, refused: set[str]) -> list[Candidate]:
    chosen: dict[str, Candidate] = {}
    usable = {
        group: [c for c in candidates if c.text not in refused]
        for group, candidates in pool.groups.items()
    }

    # 1. coverage: one violation of each active check, when there is room.
    protected: set[str] = set()
    if count >= 2 * len(pool.required):
        every = [c for group in _coverage_order(usable) for c in usable[group]]
        for rule in pool.required:
            if any(rule in c.rules for c in chosen.values()):
                continue
            hit = next(
                (c for c in every if rule in c.rules and c.text not in chosen), None
            )
            if hit is not None:
                chosen[hit.text] = hit
                protected.add(hit.text)

    # 2. quotas, alternating verdicts inside each group.
    for group, candidates in usable.items():
        quota = pool.quotas[group] - sum(1 for c in chosen.values() if c.group == group)
        for candidate in _alternating(candidates, chosen, quota):
            chosen[candidate.text] = candidate

    # 3. top up, then rebalance the verdicts.
    leftovers = [c for group in usable.values() for c in group if c.text not in chosen]
    for candidate in _alternating(leftovers, chosen, count - len(chosen)):
        chosen[candidate.text] = candidate
    _rebalance(chosen, leftovers, protected, count)
    return list(chosen.values())[:count]


def _coverage_order(groups: dict[str, list[Candidate]]) -> list[str]:
    return sorted(groups, key=lambda g: g != "single-check")


def _alternating(candidates, chosen, quota: int) -> list[Candidate]:
    """Up to ``quota`` candidates not yet chosen, taking safe and unsafe in turn."""
    queues = {
        v: [c for c in candidates if c.verdict == v and c.text not in chosen]
        for v in ("safe", "unsafe")
    }
    picked: list[Candidate] = []
    while len(picked) < quota and (queues["safe"] or queues["unsafe"]):
        counts = Counter(c.verdict for c in picked)
        want = "safe" if counts["safe"] <= counts["unsafe"] else "unsafe"
        queue = queues[want] or queues["unsafe" if want == "safe" else "safe"]
        picked.append(queue.pop(0))
    return picked


def _rebalance(chosen, leftovers, protected: set[str], count: int) -> None:
    floor = math.ceil(MIN_VERDICT_SHARE * min(count, len(chosen)))
    for scarce, plenty in (("safe", "unsafe"), ("unsafe", "safe")):
        spare = [c for c in leftovers if c.verdict == scarce and c.text not in chosen]
        while sum(c.verdict == scarce for c in chosen.values()) < floor and spare:
            removable = [
                text
                for text, c in chosen.items()
                if c.verdict == plenty and text not in protected
            ]
            if not removable:
                break
            del chosen[removable[-1]]
            incoming = spare.pop(0)
            chosen[incoming.text] = incoming


# --- siblings -----------------------------------------------------------------


def with_siblings(chosen: Chosen, count: int, *, same, opposite) -> list[Case]:
    """The chosen cases with siblings linked in, still ``count`` at most.

    ``same(candidate, base, taken)`` and ``opposite(...)`` are the domain's
    sibling makers: each returns ``(candidate, case)`` or None.
    """
    budget = math.floor(count * SIBLING_SHARE)
    taken = {case.id for _, case in chosen}
    # Bases in id order (a content hash, so no family or verdict leads),
    # one queue per verdict.
    queues = {
        verdict: [pair for pair in sorted(chosen, key=lambda p: p[1].id)
                  if pair[1].truth.verdict == verdict]
        for verdict in ("safe", "unsafe")
    }  # fmt: skip
    made: list[tuple[str, Case, Case]] = []
    leaning: Counter[str] = Counter()
    want = "unsafe"
    while len(made) < budget and (queues["safe"] or queues["unsafe"]):
        # Bases of each verdict by turns, so opposites are measured both
        # ways (a repair and a break). A base without an opposite (no repair
        # fixes it) leaves a lone same sibling of its verdict; once those
        # tilt the siblings by more than two, bases of the other verdict
        # come first until it evens out.
        tilt = leaning["unsafe"] - leaning["safe"]
        want = "safe" if tilt > 2 else "unsafe" if tilt < -2 else _other(want)
        candidate, base = (queues[want] or queues[_other(want)]).pop(0)
        for relation, make in (("same", same), ("opposite", opposite)):
            if len(made) == budget:
                break
            sibling = make(candidate, base, taken)
            if sibling is not None:
                taken.add(sibling[1].id)
                made.append((relation, base, sibling[1]))
                leaning[sibling[1].truth.verdict] += 1

    links: dict[str, dict[str, str]] = {}
    for relation, base, sibling in made:
        links.setdefault(base.id, {})[relation] = sibling.id
        links[sibling.id] = {relation: base.id}
    kept = {case.id: case for _, case in chosen}
    kept.update((sibling.id, sibling) for _, _, sibling in made)
    _drop_unpaired(kept, set(links), len(kept) - count)
    logger.info(
        "generate: %d same and %d opposite siblings of %d base cases",
        sum(r == "same" for r, _, _ in made), sum(r == "opposite" for r, _, _ in made),
        len({base.id for _, base, _ in made}),
    )  # fmt: skip
    return [
        replace(case, siblings=links[case.id]) if case.id in links else case
        for case in kept.values()
    ]


def _other(verdict: str) -> str:
    return "unsafe" if verdict == "safe" else "safe"


def _drop_unpaired(kept: dict[str, Case], paired: set[str], excess: int) -> None:
    """Remove ``excess`` unpaired cases from ``kept``, keeping balance and coverage.

    Each comes from the verdict that has more cases at that moment, in
    reverse id order; a case that is the last to carry one of its features
    (a violated rule, or a yes/no tag of its family such as a read-only
    hostPath) stays while any other can go: coverage is a suite guarantee,
    and a family's rare near misses are what its clusters are made of.
    """
    carriers = Counter(f for case in kept.values() for f in _features(case))
    verdicts = Counter(case.truth.verdict for case in kept.values())
    queues: dict[str, list[Case]] = {"safe": [], "unsafe": []}
    for case in sorted(kept.values(), key=lambda c: c.id, reverse=True):
        if case.id not in paired:
            queues[case.truth.verdict].append(case)
    for _ in range(max(0, excess)):
        order = sorted(queues, key=lambda v: -verdicts[v])
        victim = _next_droppable(queues, order, carriers)
        if victim is None:
            break
        del kept[victim.id]
        carriers.subtract(_features(victim))
        verdicts[victim.truth.verdict] -= 1


def _next_droppable(
    queues: dict[str, list[Case]], order: list[str], carriers: Counter[str]
) -> Case | None:
    # Last carriers stay at the front of their queue, so a scan passes at
    # most one per feature before it finds a case that may go.
    for spare_carriers in (True, False):
        for verdict in order:
            queue = queues[verdict]
            for i, case in enumerate(queue):
                features = _features(case)
                if not spare_carriers or all(carriers[f] > 1 for f in features):
                    return queue.pop(i)
    return None


def _features(case: Case) -> list[str]:
    flags = [f"{case.family}:{key}" for key, v in case.tags.items() if v is True]
    return [*case.truth.rules, *flags]


def _sibling_summary(cases: list[Case], *, enabled: bool) -> dict[str, Any]:
    relations = Counter(case.tags.get(T.RELATION) for case in cases)
    return {
        "enabled": enabled,
        "share": SIBLING_SHARE if enabled else 0.0,
        "paired_bases": sum(
            bool(c.siblings) for c in cases if c.tags.get(T.RELATION) == "base"
        ),
        "same": relations["same"],
        "opposite": relations["opposite"],
    }


# --- the manifest -----------------------------------------------------------


def _manifest(cases, parts, body, domains, count, seed) -> dict[str, Any]:
    counts: dict[str, Counter] = {
        k: Counter()
        for k in ("family", "verdict", "rule", "method", "operator", "relation")
    }
    by_family: dict[str, Counter] = {}
    by_question: dict[str, Counter] = {}
    for case in cases:
        counts["family"][case.family] += 1
        counts["verdict"][case.truth.verdict] += 1
        counts["method"][case.origin.method] += 1
        counts["relation"][case.tags.get(T.RELATION, "base")] += 1
        counts["rule"].update(case.truth.rules)
        counts["operator"].update(dict.fromkeys(case.origin.operators, 1))
        by_family.setdefault(case.family, Counter())[case.truth.verdict] += 1
        by_question.setdefault(question_kind(case.question), Counter())[
            case.truth.verdict
        ] += 1
    profile: dict[str, dict[str, int]] = {}
    questions: list[str] = []
    inputs: dict[str, Any] = {}
    for part in parts:
        questions.extend(part["questions"])
        inputs.update(part["inputs"])
        for name, entry in part["profile"].items():
            merged = profile.setdefault(name, {"calls": 0, "applied": 0, "flips": 0})
            for key, value in entry.items():
                merged[key] += value
    manifest: dict[str, Any] = {
        "spotcheck_version": _version(),
        "domains": list(domains),
        # The one question every case answers; null when a suite asks several
        # (IAM asks three), which "questions" then lists. netpol and sg list
        # question kinds: each case names its own flow or port.
        "question": questions[0]
        if len(questions) == 1 and parts[0]["domain"] in ("k8s", "iam")
        else None,
        "seed": seed,
        "count": count,
        "cases": len(cases),
        "cases_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "family_verdicts": {
            f: dict(sorted(v.items())) for f, v in sorted(by_family.items())
        },
        "mutator_profile": dict(sorted(profile.items())),
        # What else fixes the bytes: the same arguments give the same suite
        # only with the same grammar, seeds and Hypothesis release.
        "inputs": {**inputs, "hypothesis": hypothesis.__version__},
    }
    if any(part["domain"] != "k8s" for part in parts):
        manifest["questions"] = questions
        manifest["question_verdicts"] = {
            q: dict(sorted(v.items())) for q, v in sorted(by_question.items())
        }
        for part in parts:
            for key in ("undecidable", "invalid"):
                if key in part:
                    manifest.setdefault(key, {}).update(part[key])
    return manifest


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _version() -> str:
    try:
        return metadata.version("spotcheck")
    except metadata.PackageNotFoundError:
        return "unknown"
