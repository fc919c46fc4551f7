"""The fuzz's per-domain sources: grammar cases, parents read back from their
text, and neighbours that are new cases judged by the oracle."""

from __future__ import annotations

import pytest

from generator.fuzz.sources import open_source
from generator.records import Case

QUESTION = "pss:restricted:v1.37"


def _truth(case: Case):
    """The oracle's truth on the case's exact text, by domain."""
    if case.domain == "k8s":
        from generator.oracle.k8s import truth
    elif case.domain == "iam":
        from generator.oracle.iam import truth
    elif case.domain == "netpol":
        from generator.oracle.netpol import truth
    else:
        from generator.oracle.sg import truth
    return truth(case.config, case.question)


@pytest.mark.parametrize("domain", ["k8s", "iam", "netpol", "sg"])
def test_a_failing_case_gets_oracle_judged_neighbours(domain):
    source = open_source(domain, question=QUESTION)
    log: dict = {}
    family = source.families()[0]
    cases = source.draw(family, 4, 11, log)
    assert cases, f"{domain}: {family} drew nothing"
    for case in cases:
        assert case.origin.method == "grammar" and case.family == family
        assert case.truth == _truth(case)

    # Neighbours of the first case that reads back, one per mutator that applies.
    parent = next(c for c in cases if source.read(c) is not None)
    model = source.read(parent)
    neighbours = [
        source.mutate(parent, model, name, i, log)
        for i, name in enumerate(source.mutators())
    ]
    # An edit may give the parent's text back (the loop drops it as taken).
    made = [c for c in neighbours if c is not None and c.id != parent.id]
    assert len(made) >= 3, f"{domain}: only {len(made)} new neighbours"
    for case in made:
        assert case.origin.method == "mutation" and case.origin.parent == parent.id
        assert len(case.origin.operators) == 1
        assert case.truth == _truth(case)
    # Every mutator tried is counted, applied or not.
    assert all(log[name]["calls"] >= 1 for name in source.mutators())
    assert all(e["applied"] <= e["calls"] for e in log.values())


def test_drawing_is_the_same_for_the_same_seed():
    source = open_source("k8s", question=QUESTION)
    first = [c.id for c in source.draw("escalation", 4, 5, {})]
    assert first == [c.id for c in source.draw("escalation", 4, 5, {})]
    assert first != [c.id for c in source.draw("escalation", 4, 6, {})]
