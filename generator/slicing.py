"""The slice search behind failure clusters: try, test, then prune to distinct.

``cluster`` turns a run into one bitset per feature (which case rows have
it) and one ``SliceSearch`` per failure kind; this module does the work:

1. **Try.** Every feature, pair and (optionally) triple of features with at
   least ``min_support`` cases in the kind's population is one test. All of
   them are tried, not only the extensions of promising slices as in
   SliceFinder: growing what already looks enriched is a choice made by the
   data, and the correction would not count it. Slices too small or too
   mild to ever be reported (under ``min_failures``, or a failure rate under
   ``min_lift`` times the base rate) count as tests with p = 1, which only
   makes the correction stricter.
2. **Test.** One-sided Fisher exact test of the slice against the rest of
   the population. ``cluster`` corrects all kinds' tests together
   (Benjamini-Hochberg) and hands back the p-value cutoff it implies; every
   later claim below is held to that same cutoff.
3. **Prune.** A conjunction must fail clearly more than each conjunction one
   condition shorter (``a=1 & b=2`` only if it is worse than ``a=1`` alone).
   Then, strongest evidence first, a slice is kept only if it is clearly
   worse than every kept slice that contains it, and only if the cases no
   other kept cluster explains are still enriched: that drops both the
   container of a sharper cluster and the slices that merely overlap one.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.stats import hypergeom_sf

__all__ = ["MULTI_VALUED", "Settings", "Slice", "SliceSearch"]

# Keys a case can hold several values of at once (violated rules, mutation
# operators); two values of any other key never meet in one case.
MULTI_VALUED = frozenset({"rule", "operator"})


@dataclass(frozen=True)
class Settings:
    min_support: int
    min_failures: int
    min_lift: float
    max_conditions: int
    alpha: float
    max_clusters: int


@dataclass
class Slice:
    """A conjunction of features (numbers, in name order) and its counts."""

    features: tuple[int, ...]
    mask: int
    support: int
    failures: int
    p_value: float = 1.0
    q_value: float = 1.0
    evidence: float = 1.0


class SliceSearch:
    """Slices for one failure kind, over the cases that kind can happen to.

    ``masks`` holds one row bitset per feature, ``keys`` each feature's key,
    ``order`` each feature's position in name order.
    """

    def __init__(
        self,
        masks: list[int],
        keys: list[str],
        order: list[int],
        population: int,
        failed: int,
        settings: Settings,
    ) -> None:
        self.keys, self.settings = keys, settings
        self.masks = [mask & population for mask in masks]
        self.order = order
        self.failed = failed & population
        self.total = population.bit_count()
        self.marked = self.failed.bit_count()
        self.base = self.marked / self.total if self.total else 0.0
        self.tried = 0
        self.candidates: list[Slice] = []
        self.aliases: dict[int, list[tuple[int, ...]]] = {}
        self.synonyms: dict[int, list[int]] = {}

    # --- try ----------------------------------------------------------------

    def try_slices(self) -> None:
        """Test every slice with enough support; keep those with p <= alpha."""
        cfg = self.settings
        if self.marked < cfg.min_failures:
            return

        # Features holding the very same cases are one slice under several
        # names; the first in name order speaks for the others.
        singles: dict[int, Slice] = {}
        for number in sorted(range(len(self.masks)), key=self.order.__getitem__):
            mask = self.masks[number]
            support = mask.bit_count()
            if not cfg.min_support <= support < self.total:
                continue
            if mask in singles:
                self.synonyms[singles[mask].features[0]].append(number)
                continue
            singles[mask] = Slice((number,), mask, support, 0)
            self.synonyms[number] = []
            self._test((number,), mask, support)
        self._conjunctions(list(singles.values()))

        # Kept slices with the same rows are one slice; the rest are aliases.
        first: dict[int, Slice] = {}
        for item in self.candidates:
            if item.mask in first:
                self.aliases.setdefault(item.mask, []).append(item.features)
            else:
                first[item.mask] = item
        self.candidates = list(first.values())

    def _conjunctions(self, singles: list[Slice]) -> None:
        """Test each pair of singles, and each triple when asked for."""
        cfg = self.settings
        grown: list[tuple[Slice, int]] = []
        for i, a in enumerate(singles if cfg.max_conditions >= 2 else []):
            for j in range(i + 1, len(singles)):
                if pair := self._join(a, singles[j]):
                    self._test(pair.features, pair.mask, pair.support)
                    if cfg.max_conditions >= 3:
                        grown.append((pair, j))
        # Triples extend a pair with later singles only, so each is made once.
        for pair, j in grown:
            for single in singles[j + 1 :]:
                if triple := self._join(pair, single):
                    self._test(triple.features, triple.mask, triple.support)

    def _join(self, a: Slice, b: Slice) -> Slice | None:
        key = self.keys[b.features[0]]
        if key not in MULTI_VALUED and any(self.keys[f] == key for f in a.features):
            return None
        mask = a.mask & b.mask
        support = mask.bit_count()
        # The same rows as a part is no new slice, only a longer name for it.
        if support < self.settings.min_support or support in (a.support, b.support):
            return None
        return Slice(a.features + b.features, mask, support, 0)

    def _test(self, features: tuple[int, ...], mask: int, support: int) -> None:
        self.tried += 1
        failures = (mask & self.failed).bit_count()
        if not self._big(failures, support):
            return
        p = hypergeom_sf(failures, self.total, self.marked, support)
        # q >= p, so nothing above alpha can ever be a discovery: only the
        # few that might are kept, with their bitsets.
        if p <= self.settings.alpha:
            self.candidates.append(Slice(features, mask, support, failures, p))

    def _big(self, failures: int, support: int) -> bool:
        cfg = self.settings
        return (
            failures >= cfg.min_failures
            and failures >= cfg.min_lift * self.base * support
        )

    # --- prune --------------------------------------------------------------

    def select(self, cutoff: float, *, corrected: bool = True) -> list[Slice]:
        """The distinct clusters, strongest first, once q-values are set.

        ``cutoff`` is the largest p-value the correction let through; every
        comparison that must be "clear" is held to it too. Each slice kept
        gets its ``evidence``: the largest p-value among all the claims that
        make it a cluster of its own, for the final correction in ``cluster``.
        With ``corrected=False`` a slice needs only its own p-value under
        ``cutoff``: leads to look at, not findings.
        """
        alpha = self.settings.alpha
        sharp = []
        for item in self.candidates:
            if (item.q_value <= alpha) if corrected else (item.p_value <= cutoff):
                item.evidence = max(item.p_value, self._against_parts(item))
                if item.evidence <= cutoff:
                    sharp.append(item)
        sharp.sort(
            key=lambda s: (s.p_value, -s.failures, [self.order[f] for f in s.features])
        )

        kept: list[Slice] = []
        for item in sharp:
            # Worse than each kept cluster holding it, and still enriched on
            # the cases no other kept cluster explains.
            outer = [k for k in kept if _inside(item.mask, k.mask)]
            covered = 0
            for other in kept:
                if not _inside(item.mask, other.mask):
                    covered |= other.mask
            claims = [self._worse(item, o) for o in outer]
            claims.append(self._enriched(item.mask & ~covered))
            item.evidence = max(item.evidence, *claims)
            if item.evidence <= cutoff:
                kept.append(item)
                if len(kept) == self.settings.max_clusters:
                    break
        return kept

    def _against_parts(self, item: Slice) -> float:
        """The weakest evidence that ``item`` fails more than each
        conjunction one condition shorter; 0 for a single feature."""
        weakest = 0.0
        for i in range(len(item.features) if len(item.features) > 1 else 0):
            part = item.features[:i] + item.features[i + 1 :]
            mask = self.masks[part[0]]
            for number in part[1:]:
                mask &= self.masks[number]
            outer = Slice(
                part, mask, mask.bit_count(), (mask & self.failed).bit_count()
            )
            weakest = max(weakest, self._worse(item, outer))
        return weakest

    def _worse(self, item: Slice, outer: Slice) -> float:
        """p-value of ``item`` failing more than the rest of ``outer``."""
        return hypergeom_sf(item.failures, outer.support, outer.failures, item.support)

    def _enriched(self, mask: int) -> float:
        support = mask.bit_count()
        failures = (mask & self.failed).bit_count()
        if not self._big(failures, support):
            return 1.0
        return hypergeom_sf(failures, self.total, self.marked, support)

    def spellings(self, item: Slice) -> list[tuple[int, ...]]:
        """Other names for the slice's cases, no longer than its own: slices
        with the same rows, and each condition swapped for a feature holding
        the same cases (a hostPath tag and ``rule=restrictedVolumes``, say)."""
        names = [
            name
            for name in self.aliases.get(item.mask, [])
            if len(name) <= len(item.features)
        ]
        for i, number in enumerate(item.features):
            for synonym in self.synonyms.get(number, []):
                swapped = item.features[:i] + (synonym,) + item.features[i + 1 :]
                names.append(tuple(sorted(swapped, key=self.order.__getitem__)))
        return names[:4]


def _inside(inner: int, outer: int) -> bool:
    """Whether the first set of rows is a strict subset of the second."""
    return inner != outer and inner & ~outer == 0
