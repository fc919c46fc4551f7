"""The few statistics the report and the cluster search need, exactly.

Failure counts in a run are small and often extreme (0 of 12, 40 of 50), so
everything here is an exact or score-based method that behaves at the edges:
the Wilson interval rather than the normal one, the hypergeometric tail
(Fisher's exact test, one-sided) rather than a z-test, Benjamini-Hochberg
to control the false discovery rate over the many slices tried, and
Newcombe's interval (built from two Wilson intervals) for the change of a
rate between two runs. Pure Python:
scipy would be a large dependency for four formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "Z95",
    "benjamini_hochberg",
    "hypergeom_sf",
    "newcombe_interval",
    "wilson_interval",
]

# The two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion; (0, 1) when nothing was tried.

    Unlike the normal approximation it stays inside [0, 1] and is not
    degenerate at 0 or n successes, which is where failure slices live.
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (z / (1 + z2 / trials)) * math.sqrt(
        p * (1 - p) / trials + z2 / (4 * trials * trials)
    )
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(
    before: tuple[int, int], after: tuple[int, int], z: float = Z95
) -> tuple[float, float] | None:
    """95% interval for the change of a proportion, after minus before.

    ``before`` and ``after`` are (successes, trials) of two independent
    samples. Newcombe's hybrid score interval (method 10 of Newcombe 1998,
    "Interval estimation for the difference between independent
    proportions") combines the two Wilson intervals, so it inherits their
    good behaviour at 0 and n, where the Wald interval collapses to a point.
    None when either side has no trials.
    """
    (x1, n1), (x2, n2) = before, after
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    change = p2 - p1
    low = change - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = change + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (max(-1.0, low), min(1.0, high))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def hypergeom_sf(
    observed: int, total: int, marked: int, drawn: int, limit: float = 1.0
) -> float:
    """P(X >= observed) for X ~ Hypergeometric(total, marked, drawn).

    Read as a one-sided Fisher exact test: of ``total`` cases, ``marked``
    failed; a slice of ``drawn`` cases holds ``observed`` failures; how
    likely is at least that many if the slice were a random draw?

    A caller that only asks whether the p-value is at most ``limit`` can
    say so: the sum may then stop as soon as it passes ``limit``, and a
    value above ``limit`` is only a lower bound of the tail.
    """
    if not 0 <= marked <= total or not 0 <= drawn <= total:
        raise ValueError(f"bad counts: {total=} {marked=} {drawn=}")
    low = max(0, drawn - (total - marked))
    high = min(drawn, marked)
    if observed <= low:
        return 1.0
    if observed > high:
        return 0.0

    # Sum the pmf from the observed count away from the mode, with the term
    # ratio: one log-space evaluation is enough, tiny tails keep their
    # precision, and the terms shrink from the first, so the sum stops after
    # a few standard deviations. At or below the mode the upper tail is
    # large (the median sits next to the mode), so one minus the lower tail
    # is as exact; summing up from there would walk through the whole bulk,
    # thousands of terms on a million-case run.
    mode = (drawn + 1) * (marked + 1) // (total + 2)
    if observed <= mode:
        return max(0.0, 1.0 - _lower_tail(observed - 1, total, marked, drawn, low))
    term = _pmf(observed, total, marked, drawn)
    tail = 0.0
    for x in range(observed, high + 1):
        tail += term
        # A first term that underflowed to zero ends the sum too.
        if term <= tail * 1e-17 or tail > limit:
            break
        term *= (
            (marked - x) * (drawn - x) / ((x + 1) * (total - marked - drawn + x + 1))
        )
    return min(1.0, tail)


def _pmf(x: int, total: int, marked: int, drawn: int) -> float:
    return math.exp(
        _log_choose(marked, x)
        + _log_choose(total - marked, drawn - x)
        - _log_choose(total, drawn)
    )


def _lower_tail(top: int, total: int, marked: int, drawn: int, low: int) -> float:
    """P(X <= top) for ``top`` below the mode, summed downward."""
    term = _pmf(top, total, marked, drawn)
    tail = 0.0
    for x in range(top, low - 1, -1):
        tail += term
        if term <= tail * 1e-17:
            break
        term *= x * (total - marked - drawn + x) / ((marked - x + 1) * (drawn - x + 1))
    return tail


def benjamini_hochberg(
    pvalues: Sequence[float], total: int | None = None
) -> list[float]:
    """BH-adjusted p-values (q-values), in the order given.

    A slice is a discovery at false discovery rate ``alpha`` when its
    q-value is at most ``alpha``. ``total`` is the number of tests made when
    only some p-values are passed (the rest count as 1): the q-values of the
    ones passed are then upper bounds, exact wherever they are at most any
    p-value left out.
    """
    m = len(pvalues) if total is None else total
    if m < len(pvalues):
        raise ValueError(f"total={total} is less than the {len(pvalues)} p-values")
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 1.0
    # From the largest p-value down, each q is the smallest p*m/rank seen.
    for rank in range(len(pvalues), 0, -1):
        index = order[rank - 1]
        running = min(running, pvalues[index] * m / rank)
        adjusted[index] = running
    return adjusted
