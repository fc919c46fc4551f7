"""Failure clusters: the slices of a run where the model fails far more than usual.

A slice is a conjunction of up to two (optionally three) features of a case,
each ``key=value``: a tag (``has_hostpath=true``), the case family, the true
verdict, a violated rule (``rule=runAsNonRoot``) or a mutation operator
(``operator=drop_seccomp``); a case can have several rules and operators.
The search is SliceFinder's lattice (Chung et al., ICDE 2019) over the
generator's own features, made exact and made to read as a handful of
distinct problems; ``slicing`` has the search, this module the records and
the run-level work:

* **Which population.** A failure kind is only possible on some cases: a
  missed unsafe config needs an unsafe config, a false alarm a safe one.
  Each kind is searched on its own population, and missed-unsafe clusters
  come first because they are the failures that ship insecure configs.
* **Chance slices.** Every slice tried, of every kind, is one test in a
  single Benjamini-Hochberg correction, so on a run of pure noise a cluster
  shows up at most ``alpha`` of the time however many tags cases carry.
  Slices too small ever to be significant are left out of the count
  (Tarone's rule, ``_testable``).
  After pruning, the step-up is run once more over the distinct clusters
  alone: the many near-copies of one real cluster must not lower the bar
  for the rest.
* **Many names.** Slices holding exactly the same cases are one cluster;
  the other spellings are kept as ``equivalent``.

Input is streamed: per case only its id, config size, verdict, failure kind
and feature numbers are kept, and slices are bitsets over case rows.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import multiprocessing
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from generator.errors import InvalidArgument
from generator.records import Case, Result, TagValue
from generator.slicing import Settings, Slice, SliceSearch
from generator.stats import benjamini_hochberg, wilson_interval

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with the model extra
    np = None

__all__ = [
    "KIND_ORDER",
    "CaseRows",
    "Cluster",
    "case_features",
    "case_key",
    "effect_order",
    "find_clusters",
    "find_slices",
    "format_conditions",
    "search_rows",
    "slice_counts",
]

logger = logging.getLogger(__name__)

# Failure kinds by how much harm they do: an insecure config let through
# first, noise for a reviewer last.
KIND_ORDER = (
    "missed_unsafe",
    "repair_still_unsafe",
    "unparseable",
    "repair_broke_intent",
    "false_alarm",
)

# Which cases each kind can happen to; other kinds can happen to any case.
_POPULATION = {"missed_unsafe": "unsafe", "false_alarm": "safe"}

# Features made from the case itself rather than from its generator tags.
_DERIVED = ("family", "operator", "rule", "truth")

Feature = tuple[str, TagValue]


@dataclass(frozen=True)
class Cluster:
    """A slice where one failure kind is significantly more frequent.

    ``lift`` is the slice's failure rate over the population's (``base_rate``);
    ``interval`` the Wilson 95% interval of the failure rate. ``p_value`` is
    the weakest of the one-sided Fisher tests that make the slice a cluster
    of its own (against the rest of the population, against each larger
    slice holding it, and on the cases no stronger cluster explains);
    ``q_value`` its Benjamini-Hochberg adjustment over every slice tried
    that could reach significance (``_testable``). For a lead both are the
    slice's own test against the rest of the population (``_leads``).
    """

    kind: str
    conditions: tuple[Feature, ...]
    support: int
    failures: int
    base_rate: float
    p_value: float
    q_value: float
    example_case_id: str
    equivalent: tuple[tuple[Feature, ...], ...] = ()

    @property
    def failure_rate(self) -> float:
        return self.failures / self.support

    @property
    def lift(self) -> float:
        return self.failure_rate / self.base_rate if self.base_rate else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.failures, self.support)

    @property
    def name(self) -> str:
        """The slice as a reader types it: ``has_hostpath=true & ape=unset``."""
        return format_conditions(self.conditions)

    def to_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "kind": self.kind,
            "slice": self.name,
            "conditions": [{"key": k, "value": v} for k, v in self.conditions],
            "support": self.support,
            "failures": self.failures,
            "failure_rate": round(self.failure_rate, 4),
            "base_rate": round(self.base_rate, 4),
            "lift": round(self.lift, 3),
            "interval": [round(low, 4), round(high, 4)],
            "p_value": float(f"{self.p_value:.3g}"),
            "q_value": rounded_up(self.q_value),
            "example_case_id": self.example_case_id,
            "equivalent": [format_conditions(c) for c in self.equivalent],
        }


def rounded_up(value: float, digits: int = 3) -> float:
    """``value`` to ``digits`` significant digits, rounded up: a q-value
    read off the report is never below the one that was compared with
    alpha, so 0.05004 reads 0.0501, not 0.05."""
    shown = float(f"{value:.{digits}g}")
    if shown >= value or value <= 0:
        return shown
    step = 10 ** (math.floor(math.log10(value)) - digits + 1)
    return float(f"{shown + step:.{digits}g}")


def case_key(case: dict[str, Any]) -> tuple[str, Any, tuple[str, ...]]:
    """(verdict, family, violated rules) of a case line, as a report counts
    them; ValueError for a verdict other than safe or unsafe, or a rule
    that is no string."""
    truth = case["truth"]
    rules = tuple(dict.fromkeys(v["rule"] for v in truth["violations"]))
    if truth["verdict"] not in ("safe", "unsafe"):
        raise ValueError(f"truth.verdict={truth['verdict']!r}: not safe or unsafe")
    if not all(isinstance(rule, str) for rule in rules):
        raise ValueError(f"violation rules {list(rules)!r}: not all strings")
    return truth["verdict"], case["family"], rules


def format_conditions(conditions: Iterable[Feature]) -> str:
    """``key=value`` joined by `` & ``, values in JSON spelling (true, 3)."""
    return " & ".join(f"{k}={json.dumps(v).strip(chr(34))}" for k, v in conditions)


def case_features(case: Case) -> list[Feature]:
    """What a slice can be built from: tags, family, verdict, rules, operators.

    Tags are flat by contract; a list or mapping value names no slice and is
    left out rather than failing the whole report.
    """
    features: list[Feature] = [("family", case.family), ("truth", case.truth.verdict)]
    features += [
        (key, value)
        for key, value in sorted(case.tags.items())
        if isinstance(value, str | int | float) and key not in _DERIVED
    ]
    features += [("rule", rule) for rule in case.truth.rules]
    # Each mutation operator on its own: which mutators make failures is what
    # an overnight fuzz run reweights by.
    features += [("operator", op) for op in dict.fromkeys(case.origin.operators)]
    return features


class CaseRows:
    """What the search keeps of each case while the results stream past.

    One row per case: its id, config size, verdict and failure kind, and the
    numbers of its features (numbered as first seen), stored flat, row after
    row. ``postings`` turns them into each feature's rows (ascending) when
    the search asks; ``merge`` appends the rows of another part of the same
    run, read by another process.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.sizes = array("q")
        self.verdicts: list[str] = []
        self.failures: list[str | None] = []
        self.index: dict[tuple, int] = {}
        self.features: list[Feature] = []
        self._flat = array("i")
        self._ends = array("q")
        # Feature numbers of the latest rows, moved into ``_flat`` in bulk
        # (a list takes them several times faster than an array does).
        self._fresh: list[int] = []
        self._count = 0
        self._postings: list[Any] | None = None
        # The per-row fast path (see ``add``): tag items straight to numbers.
        self._items: dict[tuple, int] = {}
        self._numeric: dict[str, type | None] = {}
        self._shapes: dict[tuple, bool] = {}
        self._last_shape: tuple = ()
        self._derived: dict[tuple, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None:
        """One case and its result, as their JSON objects (``to_dict``)."""
        verdict, family, rules = case_key(case)
        self.ids.append(case["id"])
        self.sizes.append(len(case["config"]))
        self.verdicts.append(verdict)
        self.failures.append(None if result["correct"] else result.get("failure"))

        # This runs for every case of a million-case run, where it costs
        # more than the search: the tag items are looked up in one C-level
        # pass whenever the row's shape (keys and value types) is known to
        # be safe for it, i.e. no key has had values of two numeric types
        # (true and 1 are equal in Python and must stay apart, as in JSON).
        tags = case.get("tags") or {}
        numbers = None
        if self._safe_shape(tags):
            numbers = list(map(self._items.get, tags.items()))
            if None in numbers:
                numbers = None
        if numbers is None:
            numbers = self._tag_numbers(tags)
        fresh = self._fresh
        fresh += numbers

        operators = case["origin"].get("operators") or ()
        key = (family, verdict, rules, tuple(operators))
        derived = self._derived.get(key)
        if derived is None:
            derived = self._derived[key] = self._derived_numbers(*key)
        fresh += derived
        self._count += len(numbers) + len(derived)
        self._ends.append(self._count)
        if len(fresh) >= 1 << 16:
            self._settle()
        self._postings = None

    def _settle(self) -> None:
        """Move the latest rows' numbers into ``_flat``."""
        if self._fresh:
            if np is not None:
                self._flat.frombytes(np.array(self._fresh, dtype=np.int32).tobytes())
            else:  # pragma: no cover - numpy is a dependency
                self._flat.extend(self._fresh)
            self._fresh.clear()

    def __getstate__(self) -> dict[str, Any]:
        self._settle()
        return self.__dict__

    def _safe_shape(self, tags: dict[str, Any]) -> bool:
        shape = (tuple(tags), tuple(map(type, tags.values())))
        # Rows of one suite mostly share a shape: compare with the last one
        # before hashing two long tuples.
        if shape == self._last_shape:
            return True
        safe = self._shapes.get(shape)
        if safe is None:
            safe = self._shapes[shape] = self._register(tags)
        if safe:
            self._last_shape = shape
        return safe

    def _register(self, tags: dict[str, Any]) -> bool:
        """Whether rows of this shape may take the fast path.

        A numeric key's items are filed for the fast path under the first
        type it shows only; a shape giving it another type never takes it.
        """
        safe = True
        for key, value in tags.items():
            kind = value.__class__
            if kind is not str and (
                kind not in _NUMBERS or self._numeric.setdefault(key, kind) is not kind
            ):
                safe = False
        return safe

    def _tag_numbers(self, tags: dict[str, Any]) -> list[int]:
        numbers = []
        for key, value in tags.items():
            kind = value.__class__
            if kind is str:
                name: tuple = (key, value)
            elif kind in _NUMBERS:
                # The type keeps true and 1 apart, as JSON does and == does not.
                name = (key, kind, value)
            else:
                continue  # tags are flat by contract; a list names no slice
            if key in _DERIVED:
                continue
            number = self.index.get(name)
            if number is None:
                number = self._new(name, key, value)
            if kind is str or self._numeric.get(key) is kind:
                self._items[(key, value)] = number
            numbers.append(number)
        return numbers

    def _derived_numbers(self, family, verdict, rules, operators) -> list[int]:
        # Each mutation operator on its own: which mutators make failures is
        # what an overnight fuzz run reweights by.
        derived = [("family", family), ("truth", verdict)]
        derived += [("rule", rule) for rule in rules]
        derived += [("operator", op) for op in dict.fromkeys(operators)]
        numbers = []
        for name in derived:
            number = self.index.get(("", *name))
            if number is None:
                number = self._new(("", *name), *name)
            numbers.append(number)
        return numbers

    def _new(self, name: tuple, key: str, value: TagValue) -> int:
        number = self.index[name] = len(self.features)
        self.features.append((key, value))
        return number

    @property
    def postings(self) -> list[Any]:
        """Each feature's rows, ascending (int32 arrays)."""
        if self._postings is None:
            self._settle()
            self._postings = _postings(self._flat, self._ends, len(self.features))
        return self._postings

    def merge(self, other: CaseRows) -> None:
        """Append ``other``'s rows after these (another stretch of the run)."""
        self.ids += other.ids
        self.sizes += other.sizes
        self.verdicts += other.verdicts
        self.failures += other.failures
        renumber = array("i")
        for name, theirs in sorted(other.index.items(), key=lambda kv: kv[1]):
            number = self.index.get(name)
            if number is None:
                number = self._new(name, *other.features[theirs])
            renumber.append(number)
        self._settle()
        other._settle()
        offset = self._count
        if np is not None:
            table = np.frombuffer(renumber, dtype=np.int32)
            flat = table[np.frombuffer(other._flat, dtype=np.int32)]
            self._flat.frombytes(flat.astype(np.int32).tobytes())
            ends = np.frombuffer(other._ends, dtype=np.int64) + offset
            self._ends.frombytes(ends.tobytes())
        else:  # pragma: no cover - numpy is a dependency
            self._flat.extend(renumber[n] for n in other._flat)
            self._ends.extend(end + offset for end in other._ends)
        self._count += other._count
        self._postings = None

    def columns(self) -> dict[str, Any]:
        """These rows as plain lists and numpy arrays (``from_columns``)."""
        self._settle()
        return {
            "ids": self.ids,
            "verdicts": self.verdicts,
            "features": self.features,
            "sizes": np.frombuffer(self.sizes, dtype=np.int64),
            "flat": np.frombuffer(self._flat, dtype=np.int32),
            "ends": np.frombuffer(self._ends, dtype=np.int64),
        }

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> CaseRows:
        """Rows saved by ``columns``, with no failures."""
        rows = cls()
        rows.ids = list(columns["ids"])
        rows.verdicts = list(columns["verdicts"])
        rows.failures = [None] * len(rows.ids)
        rows.features = [tuple(feature) for feature in columns["features"]]
        rows.index = {_name(*f): n for n, f in enumerate(rows.features)}
        rows.sizes.frombytes(np.asarray(columns["sizes"], np.int64).tobytes())
        rows._flat.frombytes(np.asarray(columns["flat"], np.int32).tobytes())
        rows._ends.frombytes(np.asarray(columns["ends"], np.int64).tobytes())
        rows._count = int(rows._ends[-1]) if rows._ends else 0
        return rows

    def select(self, rows: Any, failures: list[str | None]) -> CaseRows:
        """These rows (ascending numpy ints) alone, each with its failure
        kind, numbered as here: the answered cases of an indexed suite.
        Selecting every row shares these rows' storage."""
        self._settle()
        if len(rows) == len(self):  # every row, as rows are distinct
            picked = copy.copy(self)
            picked.failures = failures
            return picked
        picked = CaseRows()
        picked.ids = list(map(self.ids.__getitem__, rows.tolist()))
        picked.verdicts = list(map(self.verdicts.__getitem__, rows.tolist()))
        picked.failures = failures
        picked.sizes.frombytes(np.frombuffer(self.sizes, np.int64)[rows].tobytes())
        picked.index = dict(self.index)
        picked.features = list(self.features)

        # Each picked row's stretch of the flat numbers, gathered in one go.
        ends = np.frombuffer(self._ends, dtype=np.int64)
        starts = np.concatenate(([0], ends[:-1]))[rows]
        widths = ends[rows] - starts
        new_ends = np.cumsum(widths)
        gather = np.arange(int(new_ends[-1]) if len(rows) else 0, dtype=np.int64)
        gather += np.repeat(starts - (new_ends - widths), widths)
        flat = np.frombuffer(self._flat, dtype=np.int32)[gather]
        picked._flat.frombytes(flat.tobytes())
        picked._ends.frombytes(new_ends.astype(np.int64).tobytes())
        picked._count = int(new_ends[-1]) if len(rows) else 0
        return picked


# Rows from which each failure kind is searched in a forked process of its
# own (where the platform forks): at a million rows a kind takes seconds.
PARALLEL_ROWS = 200_000
# What the forked searches inherit; set only while they run.
_SHARED: tuple | None = None


def _searches(rows: CaseRows, kinds: list[str], *shared: Any) -> dict[str, Any]:
    """Each kind's SliceSearch with its slices tried, by kind."""
    global _SHARED
    postings = rows.postings  # made once, before any fork
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if len(kinds) < 2 or len(rows) < PARALLEL_ROWS or not can_fork:
        return {kind: _tried(rows, kind, *shared) for kind in kinds}
    _SHARED = (rows, shared)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(kinds), mp_context=context) as pool:
            searches = dict(zip(kinds, pool.map(_tried_forked, kinds), strict=True))
    finally:
        _SHARED = None
    for search in searches.values():
        search.attach(postings)
    return searches


def _tried_forked(kind: str) -> SliceSearch:
    """``_tried`` in a forked process; the postings stay behind (the parent
    has them)."""
    assert _SHARED is not None
    rows, shared = _SHARED
    search = _tried(rows, kind, *shared)
    search.detach()
    return search


def _tried(rows: CaseRows, kind: str, keys, order, settings) -> SliceSearch:
    wanted = _POPULATION.get(kind)
    population = (
        bytearray(b"\1") * len(rows)
        if wanted is None
        else _flags(rows.verdicts, wanted)
    )
    failed = _flags(rows.failures, kind)
    search = SliceSearch(rows.postings, keys, order, population, failed, settings)
    search.try_slices()
    return search


def _postings(flat: array, ends: array, count: int) -> list[Any]:
    """Invert row -> features into feature -> rows, rows ascending."""
    if np is None:  # pragma: no cover - numpy is a dependency
        postings = [array("i") for _ in range(count)]
        start = 0
        for row, end in enumerate(ends):
            for number in flat[start:end]:
                postings[number].append(row)
            start = end
        return postings
    features = np.frombuffer(flat, dtype=np.int32)
    widths = np.diff(np.frombuffer(ends, dtype=np.int64), prepend=0)
    # One sort of (feature, row) keys puts each feature's rows together, in
    # row order: a plain sort of integers, three times faster at a million
    # rows than a stable argsort of the features and a gather. The keys are
    # made and unpacked in place, a slice at a time, so the only large
    # array besides the input is the keys themselves.
    keys = np.repeat(np.arange(len(ends), dtype=np.int64), widths)
    step = 1 << 22
    for start in range(0, len(keys), step):
        keys[start : start + step] |= (
            features[start : start + step].astype(np.int64) << 32
        )
    keys.sort()
    keys &= 0xFFFFFFFF
    rows = keys.astype(np.int32)
    del keys
    bounds = np.concatenate(([0], np.cumsum(np.bincount(features, minlength=count))))
    return [rows[bounds[n] : bounds[n + 1]] for n in range(count)]


_NUMBERS = (bool, int, float)


def _name(key: str, value: TagValue) -> tuple:
    """How ``CaseRows.index`` files a feature (see ``_tag_numbers``)."""
    if key in _DERIVED:
        return ("", key, value)
    if isinstance(value, str):
        return (key, value)
    return (key, type(value), value)


def slice_counts(
    rows: CaseRows, kind: str, conditions: Iterable[Feature]
) -> tuple[int, int]:
    """(support, failures of ``kind``) of a slice in a run's rows.

    Counted over the kind's population, as the search counts; a condition
    no case of the run has gives (0, 0). For comparing runs: a cluster of
    one run, counted in another.
    """
    members: set[int] | None = None
    for key, value in conditions:
        number = rows.index.get(_name(key, value))
        if number is None:
            return 0, 0
        found = set(rows.postings[number])
        members = found if members is None else members & found
    wanted = _POPULATION.get(kind)
    support = failures = 0
    for row in members if members is not None else range(len(rows)):
        if wanted is None or rows.verdicts[row] == wanted:
            support += 1
            failures += rows.failures[row] == kind
    return support, failures


def find_clusters(
    pairs: Iterable[tuple[Case, Result]], **options: object
) -> list[Cluster]:
    """The failure clusters of one run, most harmful kind first.

    See ``find_slices`` for the options; this drops its leads.
    """
    return find_slices(pairs, **options)[0]  # type: ignore[arg-type]


def find_slices(
    pairs: Iterable[tuple[Case, Result]],
    *,
    min_support: int = 10,
    min_failures: int = 3,
    min_lift: float = 1.5,
    max_conditions: int = 2,
    alpha: float = 0.05,
    max_clusters: int = 10,
    max_leads: int = 5,
) -> tuple[list[Cluster], list[Cluster]]:
    """The failure clusters of one run, and the leads that did not make it.

    ``pairs`` is each case with its result, as ``Run.pairs()`` streams them.
    ``alpha`` is the false discovery rate over every slice tried for every
    kind. Clusters are listed by ``effect_order``: most harmful kind first,
    then largest lift; evidence decides only which slices are clusters (and,
    past ``max_clusters``, which are kept).

    Leads are distinct slices whose own p-value is under ``alpha`` but which
    are no clusters: where to look next, never a finding. A lead's q-value
    above ``alpha`` says it does not survive the correction (run more
    cases); at or below, that it is significant but not apart from the
    clusters (it fails no more than one holding it, or not on the cases
    they leave out).
    """
    rows = CaseRows()
    for case, result in pairs:
        rows.add(case.to_dict(), result.to_dict())
    return search_rows(
        rows,
        min_support=min_support,
        min_failures=min_failures,
        min_lift=min_lift,
        max_conditions=max_conditions,
        alpha=alpha,
        max_clusters=max_clusters,
        max_leads=max_leads,
    )


def search_rows(
    rows: CaseRows,
    *,
    min_support: int = 10,
    min_failures: int = 3,
    min_lift: float = 1.5,
    max_conditions: int = 2,
    alpha: float = 0.05,
    max_clusters: int = 10,
    max_leads: int = 5,
) -> tuple[list[Cluster], list[Cluster]]:
    """``find_slices`` on cases already collected (as ``report`` does, in
    parallel)."""
    if max_conditions not in (1, 2, 3):
        raise InvalidArgument(f"max_conditions={max_conditions!r}: use 1, 2 or 3")
    if min_support < 1 or not 0 < alpha < 1:
        raise InvalidArgument(
            f"min_support={min_support!r}, alpha={alpha!r}: need >= 1 and in (0, 1)"
        )
    settings = Settings(
        min_support, min_failures, min_lift, max_conditions, alpha, max_clusters
    )
    keys = [key for key, _ in rows.features]

    # Tags name slices before derived features (family, rule, verdict):
    # they are the generator's own words for the input space.
    def name_order(number: int) -> tuple[bool, str, str]:
        key, value = rows.features[number]
        return (key in _DERIVED, key, json.dumps(value))

    order = [0] * len(keys)
    for position, number in enumerate(sorted(range(len(keys)), key=name_order)):
        order[number] = position

    kinds = sorted(
        {kind for kind in rows.failures if kind},
        key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k),
    )
    searches = _searches(rows, kinds, keys, order, settings)

    # One family of tests for the whole run, so the false discovery rate holds
    # for the report as a whole and not once per failure kind; only the
    # slices that could ever be significant count (see ``_testable``).
    total, floor = _testable(searches, alpha)
    tried = [
        item
        for search in searches.values()
        for item in search.candidates
        if search.least_p(item.support) <= floor
    ]
    qs = benjamini_hochberg([item.p_value for item in tried], total=total)
    for item, q in zip(tried, qs, strict=True):
        item.q_value = q
    passed = [item.p_value for item in tried if item.q_value <= alpha]
    # The step-up's own threshold, alpha times discoveries over tests: the
    # largest p that passed would hold a lone discovery's other claims to
    # its own p-value, which a pair's test against its parts never meets.
    cutoff = alpha * len(passed) / total if passed else 0.0
    logger.info(
        "clusters: %d cases, %d slices tried, %d testable, %d discoveries "
        "(p <= %.3g)",
        len(rows), sum(s.tried for s in searches.values()), total, len(passed),
        cutoff,
    )  # fmt: skip

    # Overlapping slices around one real cluster are all "discoveries", and
    # so many of them loosen the BH cutoff for everything else. Counting
    # only the distinct clusters as discoveries, the step-up is run again
    # over them alone, with the same number of tests, each on the weakest
    # of the claims that make it distinct.
    chosen = [(kind, item) for kind, s in searches.items() for item in s.select(cutoff)]
    qs = benjamini_hochberg([item.evidence for _, item in chosen], total=total)
    clusters: list[Cluster] = []
    for (kind, item), q in zip(chosen, qs, strict=True):
        if q <= alpha:
            item.q_value = q
            clusters.append(_cluster(rows, kind, searches[kind], item))
    clusters.sort(key=effect_order)
    return clusters, _leads(rows, searches, clusters, alpha, max_leads)


def _testable(searches: dict[str, SliceSearch], alpha: float) -> tuple[int, float]:
    """How many of the slices tried count as tests, and the smallest p-value
    a slice must be able to reach to count.

    A slice's p-value is discrete: one of a few cases can never reach 1e-6
    however many of them fail, so it can never be a discovery. Tarone's
    rule (Biometrics 46, 1990) leaves such slices out of the count: with k
    the least number for which at most k slices can reach alpha / k, only
    those slices are tested. Gilbert (J. R. Stat. Soc. C 54, 2005) runs
    Benjamini-Hochberg over them, which still controls the false discovery
    rate. What a slice can reach depends on its support and the margins
    alone, never on its failures, so leaving it out is no look at the data.
    """
    floors = sorted(
        (search.least_p(support), count)
        for search in searches.values()
        for support, count in search.tested.items()
    )
    least = [p for p, _ in floors]
    reach = list(accumulate(count for _, count in floors))

    def reaching(k: int) -> int:
        at = bisect_right(least, alpha / k)
        return reach[at - 1] if at else 0

    # reaching(k) - k falls as k grows: the first k where it is <= 0.
    low, high = 1, max(1, reach[-1] if reach else 1)
    while low < high:
        middle = (low + high) // 2
        if reaching(middle) <= middle:
            high = middle
        else:
            low = middle + 1
    return reaching(low), alpha / low


def effect_order(cluster: Cluster) -> tuple:
    """How clusters are listed: the most harmful kind first, then the largest
    effect (lift, ties by failure rate, then by support), then the name.

    Evidence decided which slices are clusters at all; a reader fixing the
    model wants the sharpest problem first, and a slice with a tiny p-value
    can be a broad, mild one.
    """
    rank = KIND_ORDER.index(cluster.kind) if cluster.kind in KIND_ORDER else 99
    effect = (-round(cluster.lift, 9), -cluster.failure_rate, -cluster.support)
    return (rank, cluster.kind, *effect, cluster.name)


def _leads(rows, searches, clusters, alpha, limit) -> list[Cluster]:
    """Distinct slices by their own p-values, clusters left out. A lead's
    ``p_value`` and ``q_value`` are its own test against the rest of the
    population and that test's adjustment, so a small q says the slice is
    significant but not apart from the clusters."""
    found = {(c.kind, c.conditions) for c in clusters}
    leads = []
    for kind, search in searches.items():
        for item in search.select(alpha, corrected=False):
            lead = _cluster(rows, kind, search, item, own=True)
            if (kind, lead.conditions) not in found:
                leads.append((item.evidence, lead))
    # The most distinct leads are kept, then listed as clusters are.
    leads.sort(key=lambda pair: (pair[0], pair[1].kind, pair[1].name))
    return sorted((lead for _, lead in leads[:limit]), key=effect_order)


def _flags(values: list, wanted: object) -> bytearray:
    """One byte per row: 1 where the value is ``wanted``."""
    return bytearray(value == wanted for value in values)


def _cluster(
    rows: CaseRows, kind: str, search: SliceSearch, item: Slice, own: bool = False
) -> Cluster:
    return Cluster(
        kind=kind,
        conditions=tuple(rows.features[f] for f in item.features),
        support=item.support,
        failures=item.failures,
        base_rate=search.base,
        p_value=item.p_value if own else item.evidence,
        q_value=item.q_value,
        example_case_id=_smallest(rows, item.mask & search.failed),
        equivalent=tuple(
            tuple(rows.features[f] for f in name) for name in search.spellings(item)
        ),
    )


def _smallest(rows: CaseRows, mask: int) -> str:
    """The id of the smallest config among the rows of ``mask``: the one a
    person reads first (ties: the smaller id)."""
    data = mask.to_bytes((len(rows) + 7) // 8, "little")
    if np is not None:
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        members = np.flatnonzero(bits)
        sizes = np.frombuffer(rows.sizes, dtype=np.int64)[members]
        members = members[sizes == sizes.min()]
    else:
        members = [
            8 * at + bit
            for at, byte in enumerate(data)
            if byte
            for bit in range(8)
            if byte >> bit & 1
        ]
        least = min(rows.sizes[r] for r in members)
        members = [r for r in members if rows.sizes[r] == least]
    return min(rows.ids[r] for r in members)
