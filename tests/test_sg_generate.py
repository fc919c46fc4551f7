"""Security-group generation: rendering, families, mutators and seeds."""

from __future__ import annotations

import random

import pytest

from generator.config.terraform import load_module
from generator.families.sg import FAMILIES, KINDS
from generator.families.sg_build import SG, load_sg_seeds
from generator.grammar.draw import draw_examples
from generator.grammar.sg import SgGrant, SgModel, cidr_list, quote, render
from generator.mutate.sg import MUTATORS, REPAIRS, mutator_named
from generator.oracle.sg import truth


def _verdict(m: SgModel, kind: str = KINDS[0]) -> str:
    return truth(render(m), SG.question(m, kind)).verdict


@pytest.fixture(scope="module")
def samples() -> dict[tuple[str, str], list[SgModel]]:
    return {
        (f.name, kind): draw_examples(f.base(kind), count=12, seed=5)
        for f in FAMILIES
        for kind in KINDS
        if f.weights.get(kind)
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_draws_cases_on_both_sides(family, kind, samples):
    verdicts = set()
    for m in samples[(family.name, kind)]:
        try:
            verdicts.add(_verdict(m, kind))
        except Exception:  # undecidable drafts are dropped by the pool
            continue
    assert verdicts == {"safe", "unsafe"}, (family.name, kind)


def test_every_rendering_parses_back_in_every_style():
    grant = SgGrant(cidrs=cidr_list("0.0.0.0/0"), ipv6=cidr_list("::/0"), self_=True)
    for style in ("inline", "attribute", "rule", "vpc"):
        text = render(SgModel((grant,), 22, style=style))
        assert load_module(text, source=style).resources, style


def test_quote_escapes_what_hcl_would_read_as_syntax():
    assert quote('a "b" ${c} %{d} \\') == '"a \\"b\\" $${c} %%{d} \\\\"'


@pytest.mark.parametrize(
    "mutator", [m for m in MUTATORS if m.keeps_meaning], ids=lambda m: m.name
)
def test_a_meaning_keeping_mutator_never_moves_the_verdict(mutator, samples):
    applied = 0
    for (name, kind), models in samples.items():
        for i, m in enumerate(models):
            try:
                before = _verdict(m, kind)
            except Exception:
                continue
            result = mutator(m, random.Random(i))
            if result is None:
                continue
            applied += 1
            assert _verdict(result, kind) == before, (name, kind, mutator.name)
    assert applied, f"{mutator.name} never applied"


def test_repairs_are_verdict_moving_mutators():
    assert {mutator_named(n).keeps_meaning for n in REPAIRS} == {False}


def test_seed_names_claim_what_the_oracle_says_for_ipv4():
    seeds = load_sg_seeds()
    assert {s.claimed for s in seeds} == {"safe", "unsafe"}
    for seed in seeds:
        assert _verdict(seed.model) == seed.claimed, seed.stem


# Fixed cases from research/sg-terraform.md, verdicts from the notes.
def _one(style: str = "inline", **fields) -> SgModel:
    return SgModel((SgGrant(**fields),), 22, style=style)


def test_halves_cover_the_world_and_one_half_does_not():
    assert _verdict(_one(cidrs=cidr_list("0.0.0.0/1", "128.0.0.0/1"))) == "unsafe"
    assert _verdict(_one(cidrs=cidr_list("128.0.0.0/1"))) == "safe"


def test_tcp_zero_to_zero_is_port_zero_but_all_protocols_on_a_rule_is_everything():
    world = cidr_list("0.0.0.0/0")
    assert _verdict(_one(cidrs=world, from_port="0", to_port="0")) == "safe"
    rule = _one("rule", cidrs=world, protocol='"-1"', from_port="8080", to_port="8080")
    assert _verdict(rule) == "unsafe"


def test_ipv4_world_says_nothing_about_ipv6_and_colon_zero_is_the_world():
    assert _verdict(_one(cidrs=cidr_list("0.0.0.0/0")), KINDS[1]) == "safe"
    assert _verdict(_one(ipv6=cidr_list("::0/0")), KINDS[1]) == "unsafe"
