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


def hypergeom_sf(observed: int, total: int, marked: int, drawn: int) -> float:
    """P(X >= observed) for X ~ Hypergeometric(total, marked, drawn).

    Read as a one-sided Fisher exact test: of ``total`` cases, ``marked``
    failed; a slice of ``drawn`` cases holds ``observed`` failures; how
    likely is at least that many if the slice were a random draw?
    """
    if not 0 <= marked <= total or not 0 <= drawn <= total:
        raise ValueError(f"bad counts: {total=} {marked=} {drawn=}")
    low = max(0, drawn - (total - marked))
    high = min(drawn, marked)
    if observed <= low:
        return 1.0
    if observed > high:
        return 0.0

    # Sum the pmf upward from the observed count with the term ratio, so one
    # log-space evaluation is enough and tiny tails do not lose precision.
    log_term = (
        _log_choose(marked, observed)
        + _log_choose(total - marked, drawn - observed)
        - _log_choose(total, drawn)
    )
    term = math.exp(log_term)
    tail = 0.0
    for x in range(observed, high + 1):
        tail += term
        if term < tail * 1e-17:
            break
        term *= (
            (marked - x) * (drawn - x) / ((x + 1) * (total - marked - drawn + x + 1))
        )
    return min(1.0, tail)


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
