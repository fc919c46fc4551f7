"""Records: one JSON form, and old case lines still load."""

from __future__ import annotations

import json

import pytest

from generator.records import Case, Origin, Truth, Violation, dumps_line


def a_case(**changes) -> Case:
    fields = {
        "id": "k8s-0000000000000001",
        "domain": "k8s",
        "family": "pod",
        "origin": Origin("grammar", seed=1),
        "format": "yaml",
        "config": "kind: Pod\n",
        "question": "pss:restricted:v1.37",
        "truth": Truth("unsafe", (Violation("privileged", "spec", "no"),)),
        "tags": {"kind": "Pod"},
    }
    return Case(**{**fields, **changes})


def test_a_case_with_siblings_round_trips_with_sorted_relations() -> None:
    case = a_case(siblings={"same": "k8s-b", "opposite": "k8s-a"})

    line = dumps_line(case)

    assert '"siblings":{"opposite":"k8s-a","same":"k8s-b"}' in line
    assert Case.from_dict(json.loads(line)) == case


def test_a_case_without_siblings_has_no_siblings_key() -> None:
    assert "siblings" not in a_case().to_dict()


def test_a_line_written_before_siblings_existed_still_loads() -> None:
    old = json.loads(dumps_line(a_case()))
    assert "siblings" not in old

    assert Case.from_dict(old).siblings == {}


@pytest.mark.parametrize("siblings", [{"cousin": "k8s-a"}, ["k8s-a"]])
def test_unknown_relations_or_shapes_are_refused(siblings) -> None:
    data = {**a_case().to_dict(), "siblings": siblings}

    with pytest.raises((TypeError, ValueError)):
        Case.from_dict(data)
