"""IAM mutators: a contract over the whole list, then the scenario each one names."""

from __future__ import annotations

import json
import random
import re

import pytest

from generator.config.iam import kind, load_policy
from generator.errors import InvalidArgument
from generator.families.iam import FAMILIES
from generator.grammar.draw import draw_examples
from generator.mutate.iam import MUTATORS, REPAIRS, mutator_named
from generator.mutate.iam_base import Policy, as_list, statements_of
from generator.mutate.iam_seeds import IAM_SEEDS_DIR, kind_of, load_iam_seeds
from generator.mutate.k8s import MUTATORS as K8S_MUTATORS

SEEDS = {seed.stem: seed for seed in load_iam_seeds()}
FAMILY_NAMES = {f.name for f in FAMILIES}
VERBS = {
    "add", "change", "drop", "grant", "harden", "make", "merge", "name",
    "relayout", "reorder", "require", "respell", "restrict", "scope", "shuffle",
    "spell", "split", "swap", "toggle", "weaken", "widen",
}  # fmt: skip


def _policy(stem: str) -> Policy:
    return SEEDS[stem].policy


def _apply(name: str, stem: str, seed: int = 0) -> Policy | None:
    return mutator_named(name)(_policy(stem), random.Random(seed))


def _statements(policy: Policy) -> list[dict]:
    return statements_of(policy.document)


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.name)
def test_every_mutator_has_a_verb_name_a_scenario_and_a_known_family(mutator):
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", mutator.name)
    assert mutator.name.split("_")[0] in VERBS
    assert len(mutator.scenario.split()) >= 8, "the docstring sketches one scenario"
    assert mutator.family in FAMILY_NAMES


def test_mutator_names_are_unique_and_distinct_from_the_kubernetes_ones():
    names = [m.name for m in MUTATORS]
    assert len(names) == len(set(names))
    # One manifest profile holds both domains' mutators.
    assert not set(names) & {m.name for m in K8S_MUTATORS}
    assert set(REPAIRS) <= set(names)


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.name)
def test_every_mutator_output_is_a_valid_policy_of_the_same_kind(mutator):
    applied = 0
    for i, seed in enumerate(SEEDS.values()):
        before = json.loads(json.dumps(seed.policy.document))
        result = mutator(seed.policy, random.Random(i))
        assert seed.policy.document == before, "a mutator never edits its input"
        if result is None:
            continue
        applied += 1
        parsed = load_policy(result.text())
        assert kind(parsed) == result.kind == seed.policy.kind
        assert json.loads(result.text()) == result.document
    assert applied, f"{mutator.name} applies to no seed"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_draws_valid_policies_and_moves_them(family):
    drafts = draw_examples(family.drafts(), count=40, seed=2)
    for draft in drafts:
        load_policy(draft.policy.text())
        assert kind_of(draft.policy.document) == draft.policy.kind
    if family.steps:
        assert any(draft.operators for draft in drafts)


# --- scenarios that need no oracle ----------------------------------------------


def test_swap_action_for_notaction_keeps_the_key_in_place():
    result = _apply("swap_action_for_notaction", "s3-read-only")
    statement = next(s for s in _statements(result) if "NotAction" in s)
    assert list(statement).index("NotAction") == 2  # after Sid and Effect
    assert "Action" not in statement


def test_change_version_writes_version_first_or_not_at_all():
    seen = set()
    for seed in range(12):
        result = _apply("change_version", "self-managed-inline-policy", seed)
        version = result.document.get("Version", "none")
        seen.add(version)
        assert version != "2012-10-17"
        if version != "none":
            assert next(iter(result.document)) == "Version"
    assert seen == {"2008-10-17", "none"}


def test_scope_resource_to_username_targets_the_callers_own_user():
    base = mutator_named("grant_escalation_method")
    policy = _policy("s3-read-only")
    for seed in range(40):
        granted = base(policy, random.Random(seed))
        if "iam:PutUserPolicy" in granted.text():
            break
    result = mutator_named("scope_resource_to_username")(granted, random.Random(1))
    grant = next(
        s for s in _statements(result) if "iam:PutUserPolicy" in as_list(s["Action"])
    )
    assert as_list(grant["Resource"])[0].endswith(":user/${aws:username}")


def test_add_passed_to_service_conditions_only_the_passrole_action():
    result = _apply("add_passed_to_service", "ec2-operator")
    conditioned = [s for s in _statements(result) if "Condition" in s]
    assert len(conditioned) == 1
    assert as_list(conditioned[0]["Action"]) == ["iam:PassRole"]
    assert "iam:PassedToService" in conditioned[0]["Condition"]["StringEquals"]
    rest = [
        s
        for s in _statements(result)
        if "iam:ListInstanceProfiles" in as_list(s["Action"])
    ]
    assert rest and "Condition" not in rest[0]


def test_relayout_changes_the_text_and_nothing_else():
    policy = _policy("admin-access")
    result = mutator_named("relayout_json")(policy, random.Random(3))
    assert result.text() != policy.text()
    assert result.document == policy.document


def test_reorder_statements_changes_the_order_only():
    policy = _policy("ci-deployer-passrole")
    result = _apply("reorder_statements", "ci-deployer-passrole")
    before, after = _statements(policy), _statements(result)
    assert before != after
    assert sorted(map(json.dumps, before)) == sorted(map(json.dumps, after))


def test_split_statement_keeps_every_action_and_the_rest_of_the_statement():
    result = _apply("split_statement", "ci-deployer-passrole")
    before = _statements(_policy("ci-deployer-passrole"))
    after = _statements(result)
    assert len(after) == len(before) + 1

    def actions(body):
        return sorted(a for s in body for a in as_list(s["Action"]))

    assert actions(before) == actions(after)
    sids = [s["Sid"] for s in after if "Sid" in s]
    assert len(sids) == len(set(sids))


def test_respell_account_principal_swaps_id_and_root_arn():
    result = _apply("respell_account_principal", "bucket-cross-account")
    assert _statements(result)[0]["Principal"] == {"AWS": "444455556666"}


def test_drop_federated_subject_leaves_only_the_audience():
    result = _apply("drop_federated_subject", "github-actions-deploy")
    condition = _statements(result)[0]["Condition"]
    assert condition == {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    }


def test_a_seed_without_a_verdict_in_its_name_is_refused(tmp_path):
    (tmp_path / "policy.json").write_text(
        (IAM_SEEDS_DIR / "admin-access-UNSAFE.json").read_text()
    )
    with pytest.raises(InvalidArgument, match="policy.json"):
        load_iam_seeds(tmp_path)


def test_seeds_cover_every_kind_and_both_claims():
    kinds = {(s.policy.kind, s.claimed) for s in SEEDS.values()}
    assert {k for k, _ in kinds} == {"identity", "resource", "trust"}
    assert all(
        (k, v) in kinds
        for k in ("identity", "resource", "trust")
        for v in ("safe", "unsafe")
    )
    assert 15 <= len(SEEDS) <= 40


# --- scenarios judged by the oracle ------------------------------------------------

oracle = pytest.importorskip("generator.oracle.iam")


def _truth(policy: Policy, question: str):
    return oracle.truth(policy.text(), question)


@pytest.mark.parametrize("seed", list(SEEDS.values()), ids=lambda s: s.stem)
def test_the_verdict_in_each_seed_name_agrees_with_the_oracle(seed):
    assert oracle.truth(seed.text, seed.question).verdict == seed.claimed


@pytest.mark.parametrize(
    "mutator", [m for m in MUTATORS if m.keeps_meaning], ids=lambda m: m.name
)
def test_a_meaning_keeping_mutator_never_moves_the_truth(mutator):
    applied = 0
    for i, seed in enumerate(SEEDS.values()):
        questions = (
            ("iam:privesc", "iam:admin")
            if seed.policy.kind == "identity"
            else ("iam:public",)
        )
        for j in range(3):
            result = mutator(seed.policy, random.Random(100 * i + j))
            if result is None:
                continue
            applied += 1
            for question in questions:
                try:
                    before = _truth(seed.policy, question)
                except oracle.Undecidable:
                    continue
                after = _truth(result, question)
                assert after.verdict == before.verdict, (seed.stem, question)
                assert set(after.rules) == set(before.rules), (seed.stem, question)
    assert applied


def test_a_broad_deny_closes_what_a_narrow_deny_leaves_open():
    policy = _policy("self-managed-inline-policy")
    narrow = mutator_named("add_narrow_deny")(policy, random.Random(0))
    broad = mutator_named("add_broad_deny")(policy, random.Random(0))
    assert _truth(policy, "iam:privesc").verdict == "unsafe"
    assert _truth(narrow, "iam:privesc").verdict == "unsafe"
    assert _truth(broad, "iam:privesc").verdict == "safe"


def test_notaction_on_star_turns_a_read_grant_into_escalation():
    policy = _policy("developer-read-only")
    assert _truth(policy, "iam:privesc").verdict == "safe"
    swapped = mutator_named("swap_action_for_notaction")(policy, random.Random(0))
    assert _truth(swapped, "iam:privesc").verdict == "unsafe"


def test_restricting_a_public_principal_to_an_account_closes_it():
    policy = _policy("bucket-public-website")
    fixed = mutator_named("restrict_principal_to_account")(policy, random.Random(0))
    assert _truth(policy, "iam:public").verdict == "unsafe"
    assert _truth(fixed, "iam:public").verdict == "safe"


def test_a_github_trust_without_a_subject_is_public_and_with_one_is_not():
    policy = _policy("github-actions-deploy")
    opened = mutator_named("drop_federated_subject")(policy, random.Random(0))
    assert _truth(policy, "iam:public").verdict == "safe"
    assert _truth(opened, "iam:public").verdict == "unsafe"
