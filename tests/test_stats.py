"""The exact statistics behind report intervals and cluster tests."""

from __future__ import annotations

from math import comb

import pytest

from generator.stats import (
    benjamini_hochberg,
    hypergeom_sf,
    newcombe_interval,
    wilson_interval,
)


def brute_tail(observed: int, total: int, marked: int, drawn: int) -> float:
    denominator = comb(total, drawn)
    return (
        sum(
            comb(marked, x) * comb(total - marked, drawn - x)
            for x in range(observed, min(marked, drawn) + 1)
        )
        / denominator
    )


@pytest.mark.parametrize(
    "observed,total,marked,drawn",
    [(3, 20, 5, 6), (0, 20, 5, 6), (5, 20, 5, 6), (6, 20, 5, 6), (24, 200, 47, 32),
     (1, 10, 10, 1), (40, 1000, 100, 50), (2, 1000, 100, 50), (5, 1000, 100, 50),
     (6, 1000, 100, 50), (480, 20000, 5000, 2000), (520, 20000, 5000, 2000),
     (9000, 20000, 10000, 10000)],
)  # fmt: skip
def test_hypergeometric_tail_matches_exact_sum(
    observed: int, total: int, marked: int, drawn: int
) -> None:
    expected = brute_tail(observed, total, marked, drawn)
    assert hypergeom_sf(observed, total, marked, drawn) == pytest.approx(
        expected, rel=1e-9, abs=1e-300
    )


def test_hypergeometric_tail_is_exact_on_every_count_of_small_tables() -> None:
    # Both sides of the mode, every observed count, the bounds included.
    for total, marked, drawn in [(30, 7, 12), (31, 20, 25), (12, 12, 5), (9, 0, 4)]:
        for observed in range(-1, drawn + 2):
            expected = brute_tail(max(observed, 0), total, marked, drawn)
            got = hypergeom_sf(observed, total, marked, drawn)
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), observed


def test_wilson_interval_matches_textbook_values() -> None:
    assert wilson_interval(2, 6) == pytest.approx((0.0968, 0.7000), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_benjamini_hochberg_adjusts_in_input_order() -> None:
    qs = benjamini_hochberg([0.04, 0.01, 0.03, 0.5])
    # Sorted: 0.01*4/1, 0.03*4/2, 0.04*4/3, 0.5; each q is the min from its rank up.
    assert qs == pytest.approx([0.04 * 4 / 3, 0.04, 0.04 * 4 / 3, 0.5])


def test_benjamini_hochberg_counts_tests_left_out() -> None:
    # Passing only the small p-values with the full count gives the same q.
    full = benjamini_hochberg([0.001, 0.002, 0.9, 0.95])
    part = benjamini_hochberg([0.001, 0.002], total=4)
    assert part == pytest.approx(full[:2])


# Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10:
# (successes, trials) of the first sample, of the second, and the interval
# for second minus first as printed there (4 decimals).
@pytest.mark.parametrize(
    "before,after,expected",
    [((48, 80), (56, 70), (0.0524, 0.3339)), ((3, 10), (9, 10), (0.1705, 0.8090)),
     ((0, 29), (5, 56), (-0.0381, 0.1926)), ((0, 20), (0, 10), (-0.1611, 0.2775))],
)  # fmt: skip
def test_newcombe_interval_matches_the_published_examples(
    before: tuple[int, int], after: tuple[int, int], expected: tuple[float, float]
) -> None:
    assert newcombe_interval(before, after) == pytest.approx(expected, abs=1e-4)


def test_newcombe_interval_flips_sign_with_the_order_and_needs_trials() -> None:
    low, high = newcombe_interval((48, 80), (56, 70))
    assert newcombe_interval((56, 70), (48, 80)) == pytest.approx((-high, -low))
    assert newcombe_interval((0, 0), (3, 10)) is None
    # No change, all failures on both sides: the interval still has width.
    low, high = newcombe_interval((10, 10), (10, 10))
    assert low < 0 < high
