"""The slice search behind failure clusters: try, test, then prune to distinct.

``cluster`` turns a run into one bitset per feature (which case rows have
it) and one ``SliceSearch`` per failure kind; this module does the work:

1. **Try.** Every feature, pair and (optionally) triple of features with at
   least ``min_support`` cases in the kind's population is one test. All of
   them are tried, not only the extensions of promising slices as in
   SliceFinder: growing what already looks enriched is a choice made by the
   data, and the correction would not count it. Slices too small or too
   mild to ever be reported (under ``min_failures``, or neither failing
   ``min_lift`` times as often as the population nor right ``min_lift``
   times less often) count as tests with p = 1, which only makes the
   correction stricter.
2. **Test.** One-sided Fisher exact test of the slice against the rest of
   the population. ``cluster`` corrects all kinds' tests together
   (Benjamini-Hochberg over the slices whose size lets them reach
   significance at all, ``least_p``) and hands back the p-value cutoff it
   implies; every later claim below is held to that same cutoff.
3. **Prune.** A conjunction must fail clearly more than each conjunction one
   condition shorter (``a=1 & b=2`` only if it is worse than ``a=1`` alone).
   Then, strongest evidence first, a slice is kept only if it is clearly
   worse than every kept slice that contains it, and only if the cases no
   other kept cluster explains are still enriched: that drops both the
   container of a sharper cluster and the slices that merely overlap one.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from generator.stats import hypergeom_sf

try:  # Counting pairs by columns needs numpy; without it, bitsets do it.
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with the model extra
    np = None

__all__ = ["MULTI_VALUED", "Settings", "Slice", "SliceSearch", "mask_of_rows"]

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

    ``postings`` holds each feature's case rows (ascending), ``keys`` each
    feature's key, ``order`` each feature's position in name order;
    ``population`` and ``failed`` have one byte per row (1: in it). Bitsets
    (Python ints over rows) are made only for the slices that need one.
    """

    def __init__(
        self,
        postings: list[array],
        keys: list[str],
        order: list[int],
        population: bytearray,
        failed: bytearray,
        settings: Settings,
    ) -> None:
        self.keys, self.settings = keys, settings
        self.postings, self.order = postings, order
        self.rows = len(population)
        self.in_population = population
        self.population = mask_of_rows(_set_rows(population), self.rows)
        self.failed = mask_of_rows(
            _set_rows(bytes(a & b for a, b in zip(population, failed, strict=True)))
            if np is None
            else np.flatnonzero(_np_bytes(population) & _np_bytes(failed)),
            self.rows,
        )
        self.total = self.population.bit_count()
        self.marked = self.failed.bit_count()
        self.base = self.marked / self.total if self.total else 0.0
        # How many slices were tested at each support: what the correction
        # counts, and what decides which of them could ever be significant.
        self.tested: Counter[int] = Counter()
        self.candidates: list[Slice] = []
        self.aliases: dict[int, list[tuple[int, ...]]] = {}
        self.synonyms: dict[int, list[int]] = {}
        self._masks: dict[int, int] = {}
        self._failed_np = None

    def masks(self, number: int) -> int:
        """The population's rows holding feature ``number``, as a bitset."""
        mask = self._masks.get(number)
        if mask is None:
            mask = mask_of_rows(self._rows_of(number), self.rows) & self.population
            self._masks[number] = mask
        return mask

    def _rows_of(self, number: int):
        return self.postings[number] if np is None else _np_rows(self.postings[number])

    def mask_of(self, features: tuple[int, ...]) -> int:
        mask = self.masks(features[0])
        for number in features[1:]:
            mask &= self.masks(number)
        return mask

    # --- try ----------------------------------------------------------------

    def try_slices(self) -> None:
        """Test every slice with enough support; keep those with p <= alpha."""
        cfg = self.settings
        if self.marked < cfg.min_failures:
            return

        # Features holding the very same cases are one slice under several
        # names; the first in name order speaks for the others.
        numbers: list[int] = []
        supports: list[int] = []
        seen: dict[tuple[int, int], list[tuple[object, int]]] = {}
        for number in sorted(range(len(self.postings)), key=self.order.__getitem__):
            support, failures, rows = self._single_counts(number)
            if not cfg.min_support <= support < self.total:
                continue
            same = seen.setdefault((support, hash(rows)), [])
            first = next((f for r, f in same if r == rows), None)
            if first is not None:
                self.synonyms[first].append(number)
                continue
            same.append((rows, number))
            numbers.append(number)
            supports.append(support)
            self.synonyms[number] = []
            self._test((number,), support, failures)
        del seen
        self._conjunctions(numbers, supports)

        # Kept slices with the same rows are one slice; the rest are aliases.
        kept: dict[int, Slice] = {}
        for item in self.candidates:
            item.mask = self.mask_of(item.features)
            if item.mask in kept:
                self.aliases.setdefault(item.mask, []).append(item.features)
            else:
                kept[item.mask] = item
        self.candidates = list(kept.values())

    def detach(self) -> None:
        """Leave only what is cheap to send to another process: no postings
        (the receiver has them) and no slice bitsets (``attach`` remakes
        them from the features' bitsets, which stay)."""
        self.postings = []
        by_mask = {item.mask: item.features for item in self.candidates}
        self.aliases = {by_mask[mask]: names for mask, names in self.aliases.items()}
        for item in self.candidates:
            item.mask = 0

    def attach(self, postings: list[array]) -> None:
        """Undo ``detach`` with the sender's postings."""
        self.postings = postings
        for item in self.candidates:
            item.mask = self.mask_of(item.features)
        self.aliases = {
            self.mask_of(features): names for features, names in self.aliases.items()
        }

    def _single_counts(self, number: int) -> tuple[int, int, object]:
        """Support and failures of one feature, and its rows as a hashable."""
        if np is None:
            mask = self.masks(number)
            return mask.bit_count(), (mask & self.failed).bit_count(), mask
        rows = _np_rows(self.postings[number])
        rows = rows[_np_bytes(self.in_population)[rows].astype(bool)]
        failures = int(self._failed_rows()[rows].sum())
        return len(rows), failures, rows.tobytes()

    def _failed_rows(self):
        """The failed rows as one bool per row (numpy only)."""
        if self._failed_np is None:
            self._failed_np = _np_bits(self.failed, self.rows)
        return self._failed_np

    def _conjunctions(self, numbers: list[int], supports: list[int]) -> None:
        """Test each pair of singles, and each triple when asked for."""
        cfg = self.settings
        if cfg.max_conditions < 2:
            return
        # Pairs too small or too mild to report only count as tests; triples
        # grow from every pair, so then all of them are listed.
        everything = cfg.max_conditions >= 3
        if np is None:
            pairs = _pairs_by_bitsets(self, numbers, supports)
        else:
            skipped, pairs = _pairs_by_columns(self, numbers, supports, everything)
            self.tested.update(skipped)
        grown: list[tuple[tuple[int, int], int]] = []
        for i, j, support, failures in pairs:
            features = (numbers[i], numbers[j])
            self._test(features, support, failures)
            if everything:
                grown.append((features, j))
        # Triples extend a pair with later singles only, so each is made once.
        for features, j in grown:
            mask = self.mask_of(features)
            pair_support = mask.bit_count()
            for k in range(j + 1, len(numbers)):
                if self._clash(features, numbers[k]):
                    continue
                triple = mask & self.masks(numbers[k])
                support = triple.bit_count()
                # The same rows as a part is no new slice, only a longer name.
                if support < cfg.min_support or support in (pair_support, supports[k]):
                    continue
                failures = (triple & self.failed).bit_count()
                self._test(features + (numbers[k],), support, failures)

    def _clash(self, features: tuple[int, ...], number: int) -> bool:
        """Whether adding ``number`` repeats a key that holds one value."""
        key = self.keys[number]
        return key not in MULTI_VALUED and any(self.keys[f] == key for f in features)

    @property
    def tried(self) -> int:
        """How many slices were tested."""
        return self.tested.total()

    def least_p(self, support: int) -> float:
        """The smallest p-value a reportable slice of ``support`` cases can
        have: the one holding as many failures as it can (1.0 if even that
        is too few or too mild to report)."""
        most = min(support, self.marked)
        if not self.big(most, support):
            return 1.0
        return hypergeom_sf(most, self.total, self.marked, support)

    def _test(self, features: tuple[int, ...], support: int, failures: int) -> None:
        self.tested[support] += 1
        if not self.big(failures, support):
            return
        alpha = self.settings.alpha
        p = hypergeom_sf(failures, self.total, self.marked, support, limit=alpha)
        # q >= p, so nothing above alpha can ever be a discovery: only the
        # few that might are kept; their bitsets are made afterwards.
        if p <= alpha:
            self.candidates.append(Slice(features, 0, support, failures, p))

    def big(self, failures, support):
        """Whether a slice is worse enough to report: ``min_lift`` times the
        base failure rate, or ``min_lift`` times less often right. Counts
        may be ints or numpy arrays (then one answer each).

        The second reading is what a kind failing most of the time can
        show: at an 80% false-alarm rate no slice can fail 1.5 times as
        often, but one where the model is right on 2% of configs rather
        than 20% is a problem of its own. Below a base rate of
        1 / (1 + min_lift) the first reading is the milder one.
        """
        cfg = self.settings
        return (failures >= cfg.min_failures) & (
            (failures >= cfg.min_lift * self.base * support)
            | ((support - failures) * cfg.min_lift <= (1 - self.base) * support)
        )

    # --- prune --------------------------------------------------------------

    def select(self, cutoff: float, *, corrected: bool = True) -> list[Slice]:
        """The distinct clusters, strongest first, once q-values are set.

        ``cutoff`` is the p-value threshold of the correction (alpha times
        discoveries over tests); every comparison that must be "clear" is
        held to it too. Each slice kept
        gets its ``evidence``: the largest p-value among all the claims that
        make it a cluster of its own, for the final correction in ``cluster``.
        With ``corrected=False`` a slice needs only its own p-value under
        ``cutoff``: leads to look at, not findings.
        """
        alpha = self.settings.alpha
        sharp = []
        for item in self.candidates:
            if (item.q_value <= alpha) if corrected else (item.p_value <= cutoff):
                item.evidence = max(item.p_value, self._against_parts(item, cutoff))
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
            claims = [self._worse(item, o, cutoff) for o in outer]
            claims.append(self._enriched(item.mask & ~covered, cutoff))
            item.evidence = max(item.evidence, *claims)
            if item.evidence <= cutoff:
                kept.append(item)
                if len(kept) == self.settings.max_clusters:
                    break
        return kept

    # The claims below are judged against ``cutoff`` only (a value above it
    # drops the slice, whatever it is), so each p-value may stop there.

    def _against_parts(self, item: Slice, cutoff: float) -> float:
        """The weakest evidence that ``item`` fails more than each
        conjunction one condition shorter; 0 for a single feature."""
        weakest = 0.0
        for i in range(len(item.features) if len(item.features) > 1 else 0):
            part = item.features[:i] + item.features[i + 1 :]
            mask = self.mask_of(part)
            outer = Slice(
                part, mask, mask.bit_count(), (mask & self.failed).bit_count()
            )
            weakest = max(weakest, self._worse(item, outer, cutoff))
        return weakest

    def _worse(self, item: Slice, outer: Slice, cutoff: float) -> float:
        """p-value of ``item`` failing more than the rest of ``outer``."""
        return hypergeom_sf(
            item.failures, outer.support, outer.failures, item.support, cutoff
        )

    def _enriched(self, mask: int, cutoff: float) -> float:
        support = mask.bit_count()
        failures = (mask & self.failed).bit_count()
        if not self.big(failures, support):
            return 1.0
        return hypergeom_sf(failures, self.total, self.marked, support, cutoff)

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


# --- counting pairs -------------------------------------------------------------


def _pairs_by_bitsets(
    search: SliceSearch, numbers: list[int], supports: list[int]
) -> Iterator[tuple[int, int, int, int]]:
    """(i, j, support, failures) of each pair of singles worth a test, in
    order: one AND of two bitsets a pair, for runs too small to care."""
    min_support = search.settings.min_support
    for i, a in enumerate(numbers):
        mask_a = search.masks(a)
        for j in range(i + 1, len(numbers)):
            if search._clash((a,), numbers[j]):
                continue
            mask = mask_a & search.masks(numbers[j])
            support = mask.bit_count()
            # The same rows as a part is no new slice, only a longer name.
            if support < min_support or support in (supports[i], supports[j]):
                continue
            yield i, j, support, (mask & search.failed).bit_count()


def _pairs_by_columns(
    search: SliceSearch, numbers: list[int], supports: list[int], everything: bool
) -> tuple[Counter[int], list[tuple[int, int, int, int]]]:
    """The pairs of ``_pairs_by_bitsets``, counted by contingency tables.

    Returns the supports of the pairs that count as tests but cannot be
    reported (too few failures, too mild), as a count per support, and the
    others in order; with ``everything``, all.

    With F singles a pair at a time costs F^2/2 ANDs of n-bit sets, which at
    a million cases and a thousand features is minutes. The values of one
    key split the cases, so one ``bincount`` of two keys' value codes counts
    every pair of their values at once: the cost is keys^2 * n instead.
    A multi-valued feature (a rule, an operator) is a key of its own with
    one value, and is counted over only the rows that hold it.
    """
    in_population = _np_bytes(search.in_population).astype(bool)
    population = np.flatnonzero(in_population)
    failed = search._failed_rows()

    # Groups: one per single-valued key, one per multi-valued feature; each
    # gets a code per row (0: none of its singles, else 1 + its index in the
    # group) and the population rows it covers.
    members: dict[str, list[int]] = {}
    for position, number in enumerate(numbers):
        key = search.keys[number]
        group = f"{key}\0{number}" if key in MULTI_VALUED else key
        members.setdefault(group, []).append(position)
    groups = []
    for positions in members.values():
        dtype = np.uint8 if len(positions) < 255 else np.int32
        codes = np.zeros(search.rows, dtype=dtype)
        for code, position in enumerate(positions, start=1):
            codes[_np_rows(search.postings[numbers[position]])] = code
        covered = np.flatnonzero((codes > 0) & in_population)
        groups.append(_Group(np.asarray(positions), codes, covered))
    groups.sort(key=lambda g: len(g.covered))

    # A group covering most of the population is counted over all of it
    # (its code 0 rows fall in a margin that is dropped): no gather of the
    # other group's codes for each pair. The frames hold codes times two,
    # the failed flag being the low bit of each cell.
    dense_from = 3 * len(population) // 4
    dense: dict[int, object] = {}
    failed_in = {id(population): failed[population].astype(np.int32)}

    part = np.asarray(supports, dtype=np.int64)
    skipped, found = [], []
    for g, group in enumerate(groups):
        if len(group.covered) >= dense_from:
            frame, local = population, _doubled(dense, g, group.codes, population)
        else:
            frame = group.covered
            local = group.codes[frame].astype(np.int32) * 2
            failed_in[id(frame)] = failed[frame].astype(np.int32)
        for h in range(g + 1, len(groups)):
            other = groups[h]
            if frame is population:
                second = _doubled(dense, h, other.codes, population)
            else:
                second = other.codes[frame].astype(np.int32) * 2
            support, fails = _table(local, second, failed_in[id(frame)],
                                    len(group.positions) + 1,
                                    len(other.positions) + 1)  # fmt: skip
            valid = (
                (support >= search.settings.min_support)
                & (support != part[group.positions][:, None])
                & (support != part[other.positions][None, :])
            )
            wanted = valid if everything else valid & search.big(fails, support)
            skipped.append(support[valid & ~wanted])
            for r, c in zip(*np.nonzero(wanted), strict=True):
                i, j = sorted((int(group.positions[r]), int(other.positions[c])))
                found.append((i, j, int(support[r, c]), int(fails[r, c])))
        dense.pop(g, None)
        failed_in.pop(id(group.covered), None)
    found.sort()
    sizes, counts = np.unique(
        np.concatenate([np.zeros(0, np.int64), *skipped]), return_counts=True
    )
    return Counter(dict(zip(sizes.tolist(), counts.tolist(), strict=True))), found


@dataclass
class _Group:
    """A key's singles (positions in the search's list), each row's code for
    them, and the population rows that have one."""

    positions: object
    codes: object
    covered: object


def _doubled(cache: dict, g: int, codes, rows):
    """Twice the group's codes at ``rows``, as int32, made once."""
    if g not in cache:
        cache[g] = codes[rows].astype(np.int32) * 2
    return cache[g]


def _table(local, other, failed, height: int, width: int):
    """Support and failures by (this group's code, the other's), codes 0
    (none of a group's singles) left out.

    ``local`` and ``other`` are the codes doubled, ``failed`` 0 or 1 per row:
    one cell number per row counts both at once.
    """
    size = height * width * 2
    cells = (local if size < 1 << 31 else local.astype(np.int64)) * width
    cells += other
    cells += failed
    if size <= 1 << 23:
        counts = np.bincount(cells, minlength=size)
    else:
        # Two keys with thousands of values each: count the cells present.
        counts = np.zeros(size, dtype=np.int64)
        values, present = np.unique(cells, return_counts=True)
        counts[values] = present
    counts = counts.reshape(height, width, 2)[1:, 1:]
    return counts.sum(axis=2), counts[:, :, 1]


def mask_of_rows(rows, size: int) -> int:
    """A bitset (bit r set for each row r) from row numbers."""
    if np is not None and not isinstance(rows, array | list | bytes):
        bits = np.zeros(size, dtype=bool)
        bits[rows] = True
        return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")
    bits = bytearray((size + 7) // 8)
    for row in rows:
        bits[row >> 3] |= 1 << (row & 7)
    return int.from_bytes(bits, "little")


def _set_rows(flags: bytes | bytearray):
    """The rows whose flag byte is 1."""
    if np is not None:
        return np.flatnonzero(_np_bytes(flags))
    return [r for r, flag in enumerate(flags) if flag]


def _np_bytes(flags: bytes | bytearray):
    return np.frombuffer(flags, dtype=np.uint8)


def _np_rows(rows):
    if isinstance(rows, np.ndarray):
        return rows
    return np.frombuffer(rows, dtype=np.int32) if len(rows) else np.zeros(0, np.int32)


def _np_bits(mask: int, size: int):
    """A bitset as one bool per row."""
    data = np.frombuffer(mask.to_bytes((size + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(data, bitorder="little")[:size].astype(bool)
