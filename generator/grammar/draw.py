"""Drawing examples from a strategy, the same ones every time for the same seed.

A release suite must be byte-identical for the same arguments, on any
machine and in any process. Hypothesis is random by default, so this runs
the strategy through ``@given`` with everything that could vary pinned:
``@seed`` fixes the engine's random source, only the generate phase runs
(no database replay, no shrinking, no targeting), there is no deadline or
health check that depends on timing, and ``derandomize`` is off so a CI
settings profile cannot swap the seed for a hash of this function's code.

``.example()`` is not used: Hypothesis documents it as interactive-only,
and it keeps a cache whose state depends on earlier calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers

from generator.errors import InvalidArgument

__all__ = ["draw_examples"]

T = TypeVar("T")


def draw_examples(strategy: st.SearchStrategy[T], *, count: int, seed: int) -> list[T]:
    """Up to ``count`` examples of ``strategy``; fewer if its space is smaller.

    The list may hold repeats (Hypothesis revisits simple examples); callers
    that need distinct values deduplicate.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidArgument(f"count={count!r} must be a positive int")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidArgument(f"seed={seed!r} ({type(seed).__name__}) must be an int")
    found: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        phases=(Phase.generate,),
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=False,
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    with _no_local_constants():
        collect()
    return found


@contextmanager
def _no_local_constants() -> Iterator[None]:
    """Keep Hypothesis from mixing constants of the calling program into draws.

    Hypothesis sometimes draws a literal harvested from every local module
    in ``sys.modules`` (providers._get_local_constants) and caches the pools
    per choice type on first use, so the same seed gave different suites
    depending on what had been imported first (under pytest, the test
    modules). A hack on a private hook, kept because byte-identical suites
    are a promise of ``spotcheck generate``; tests/test_suite.py checks it.
    """
    original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE
    empty = providers.Constants(
        integers=providers.SortedSet(),
        floats=providers.SortedSet(key=providers.float_to_int),
        bytes=providers.SortedSet(),
        strings=providers.SortedSet(),
    )
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE = type(cache)(1024)
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE = cache
