"""NetworkPolicy generation: families, mutators and seeds, held to the oracle."""

from __future__ import annotations

import random

import pytest

from generator.families.netpol import FAMILIES, KIND
from generator.families.netpol_build import load_netpol_seeds
from generator.grammar.draw import draw_examples
from generator.grammar.netpol import (
    PodModel,
    Scenario,
    namespace_doc,
    pod_doc,
    policy_doc,
)
from generator.mutate.netpol import MUTATORS, REPAIRS, mutator_named
from generator.oracle.netpol import truth


def _verdict(s: Scenario) -> str:
    return truth(s.text(), s.question()).verdict


@pytest.fixture(scope="module")
def samples() -> dict[str, list[Scenario]]:
    return {f.name: draw_examples(f.base(KIND), count=12, seed=5) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_draws_judgeable_cases_on_both_sides(family, samples):
    verdicts = {_verdict(s) for s in samples[family.name]}
    assert verdicts == {"safe", "unsafe"}, family.name


def test_every_family_says_what_it_covers_and_names_are_unique():
    assert all(f.covers.startswith("gotcha") for f in FAMILIES)
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


@pytest.mark.parametrize(
    "mutator", [m for m in MUTATORS if m.keeps_meaning], ids=lambda m: m.name
)
def test_a_meaning_keeping_mutator_never_moves_the_verdict(mutator, samples):
    applied = 0
    for name, scenarios in samples.items():
        for i, s in enumerate(scenarios):
            result = mutator(s, random.Random(i))
            if result is None:
                continue
            applied += 1
            assert result.text() != s.text() or result.documents != s.documents
            assert _verdict(result) == _verdict(s), (name, mutator.name)
    assert applied, f"{mutator.name} never applied"


def test_every_mutator_has_a_scenario_and_repairs_are_mutators():
    assert all(m.scenario for m in MUTATORS)
    assert {mutator_named(n).keeps_meaning for n in REPAIRS} == {False}


def test_seed_names_claim_what_the_oracle_says():
    seeds = load_netpol_seeds()
    assert {s.claimed for s in seeds} == {"safe", "unsafe"}
    for seed in seeds:
        assert _verdict(seed.model) == seed.claimed, seed.stem


# Fixed cases from research/netpol.md §4, verdicts from the spec.
_A = PodModel("x", "a", {"app": "a"}, (("http", 80, "TCP"),))
_B = PodModel("y", "b", {"app": "b"}, (("http", 80, "TCP"),))


def _case(spec: dict, *, port: str = "80/tcp", src=_A, dst=_B) -> str:
    docs = (namespace_doc("x", {}), namespace_doc("y", {}), pod_doc(_A), pod_doc(_B),
            policy_doc(dst.namespace, "p", spec))  # fmt: skip
    return _verdict(Scenario(docs, src.key, dst.key, port))


def test_an_empty_from_list_admits_everyone_and_a_pod_selector_stays_home():
    assert _case({"podSelector": {}, "ingress": [{"from": []}]}) == "unsafe"
    # podSelector alone is the policy's namespace (y): a in x is not in it.
    spec = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
    assert _case(spec) == "safe"


def test_egress_rules_without_policy_types_deny_all_ingress():
    spec = {"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}
    assert _case(spec) == "safe"


def test_a_bare_port_is_tcp_only():
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": 53}]}]}
    assert _case(spec, port="53/udp") == "safe"
    assert _case(spec, port="53/tcp") == "unsafe"
