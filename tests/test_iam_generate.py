"""IAM grammar: the file is checked, strategies draw valid shapes, spellings cover."""

from __future__ import annotations

import json
import random

import pytest

from generator.errors import InvalidArgument
from generator.grammar.draw import draw_examples
from generator.grammar.iam import (
    GRAMMAR_PATH,
    RandomChooser,
    action_matches,
    default_grammar,
    escalation_statements,
    identity_policies,
    load_iam_grammar,
    principals,
    resource_policies,
    spell_action,
    statements,
    trust_policies,
)
from generator.grammar.iam_json import LAYOUTS, JsonStyle, render_policy
from generator.mutate.iam_base import statements_of
from generator.mutate.iam_seeds import kind_of

G = default_grammar()
SPELLINGS = [s for s, _ in G.pools["action_spellings"]]


def _valid_shape(document: dict) -> None:
    """The shape rules of iam.md 2.2 that a generated case must never break."""
    assert set(document) <= {"Version", "Id", "Statement"}
    assert document.get("Version", "2008-10-17") in ("2012-10-17", "2008-10-17")
    body = statements_of(document)
    assert body and len(body) == len(
        document["Statement"] if isinstance(document["Statement"], list) else [1]
    )
    for statement in body:
        assert statement["Effect"] in ("Allow", "Deny")
        assert ("Action" in statement) != ("NotAction" in statement)
        assert not ("Resource" in statement and "NotResource" in statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement:
                value = statement[key]
                assert isinstance(value, str) or (
                    isinstance(value, list)
                    and value
                    and all(isinstance(v, str) for v in value)
                )
        for action in [statement.get("Action"), statement.get("NotAction")]:
            for a in action if isinstance(action, list) else [action] if action else []:
                # Never a wildcard in the service prefix (its meaning is unclear).
                assert a == "*" or (
                    "*" not in a.split(":")[0] and "?" not in a.split(":")[0]
                )


@pytest.mark.parametrize(
    "strategy",
    [
        identity_policies(escalation="none"),
        identity_policies(escalation="exact"),
        identity_policies(escalation="spelled", loose=True),
        resource_policies(),
        trust_policies(federated=True),
        trust_policies(federated=False),
    ],
    ids=["none", "exact", "loose", "resource", "federated", "trust"],
)
def test_every_strategy_draws_valid_policies_that_round_trip_through_json(strategy):
    for policy in draw_examples(strategy, count=60, seed=7):
        _valid_shape(policy.document)
        assert json.loads(policy.text()) == policy.document


def test_the_kind_a_strategy_promises_is_the_kind_the_document_reads_as():
    for strategy, kind in (
        (identity_policies(), "identity"),
        (resource_policies(), "resource"),
        (trust_policies(), "trust"),
    ):
        for policy in draw_examples(strategy, count=40, seed=3):
            assert policy.kind == kind == kind_of(policy.document)


def test_loose_grammar_reaches_every_statement_shape():
    body = [
        s
        for p in draw_examples(identity_policies(loose=True), count=300, seed=11)
        for s in statements_of(p.document)
    ]
    assert any(s["Effect"] == "Deny" for s in body)
    assert any("NotAction" in s for s in body)
    assert any("NotResource" in s for s in body)
    assert any("Condition" in s for s in body)
    assert any(isinstance(s.get("Action"), str) for s in body)
    assert any(isinstance(s.get("Action"), list) for s in body)


def test_versions_layouts_and_single_statements_all_occur():
    policies = draw_examples(identity_policies(escalation="none"), count=300, seed=5)
    assert {p.document.get("Version", "none") for p in policies} == {
        "2012-10-17", "2008-10-17", "none",
    }  # fmt: skip
    assert {p.style.layout for p in policies} == set(LAYOUTS)
    assert any(isinstance(p.document["Statement"], dict) for p in policies)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_an_action_still_covers_it(spelling):
    for method in G.methods:
        for action, _ in method.actions:
            assert action_matches(spell_action(action, spelling), action)


def test_action_matching_follows_the_iam_rules():
    assert action_matches("IAM:createACCESSkey", "iam:CreateAccessKey")
    assert action_matches("iam:P?tUserPolicy", "iam:PutUserPolicy")
    assert not action_matches("iam:P?tUserPolicy", "iam:PutRolePolicy")
    assert action_matches("iam:Put*Policy", "iam:PutGroupPolicy")
    assert not action_matches("iam:Get*", "iam:PutUserPolicy")
    assert not action_matches("iam:Put", "iam:PutUserPolicy")  # no prefix match


def test_the_spellings_differ_from_the_action_where_they_can():
    written = {spell_action("iam:PutUserPolicy", s) for s in SPELLINGS}
    assert written == {
        "iam:PutUserPolicy", "iam:putuserpolicy", "IAM:PutUserPolicy",
        "iam:pUTuSERpOLICY", "iam:Put*", "iam:Put*Policy", "iam:P?tUserPolicy",
        "iam:*", "*",
    }  # fmt: skip


def test_exact_escalation_statements_grant_every_action_of_the_method_on_star():
    rnd = random.Random(0)
    method = G.method("passrole-lambda")
    body = escalation_statements(RandomChooser(rnd), G, method, spelled=False)
    actions = {
        a
        for s in body
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions == {a for a, _ in method.actions}
    assert all(s["Resource"] in ("*", ["*"]) for s in body)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_writes_the_same_document(layout):
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": "arn:aws:s3:::b/${aws:username}/*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        ],
    }  # fmt: skip
    text = render_policy(document, JsonStyle(layout))
    assert json.loads(text) == document
    assert text.endswith("\n") and not text.endswith("\n\n")
    if layout in ("one-line", "compact"):
        assert text.count("\n") == 1


def test_layouts_really_differ():
    document = {
        "Statement": [{"Effect": "Allow", "Action": ["a:B", "a:C"], "Resource": "*"}]
    }
    texts = {render_policy(document, JsonStyle(layout)) for layout in LAYOUTS}
    assert len(texts) == len(LAYOUTS)


def test_an_unknown_layout_is_refused_by_name():
    with pytest.raises(InvalidArgument, match="layout='yaml'"):
        JsonStyle("yaml")


def test_strategy_arguments_are_checked_when_built():
    with pytest.raises(InvalidArgument, match="escalation='some'"):
        identity_policies(escalation="some")
    with pytest.raises(InvalidArgument, match="no-such-method"):
        identity_policies(methods=("no-such-method",))
    with pytest.raises(InvalidArgument, match="principal_form='everyone'"):
        resource_policies(principal_form="everyone")
    with pytest.raises(InvalidArgument, match="federated=1"):
        trust_policies(federated=1)


def test_the_grammar_file_refuses_unknown_names_with_a_hint(tmp_path):
    text = GRAMMAR_PATH.read_text().replace("  layouts:", "  layoutz:")
    bad = tmp_path / "iam.yaml"
    bad.write_text(text)
    with pytest.raises(InvalidArgument, match="did you mean 'layouts'"):
        load_iam_grammar(bad)


def test_the_grammar_file_refuses_a_target_it_cannot_write(tmp_path):
    text = GRAMMAR_PATH.read_text().replace(
        "{iam:PutUserPolicy: user}", "{iam:PutUserPolicy: bucket}"
    )
    bad = tmp_path / "iam.yaml"
    bad.write_text(text)
    with pytest.raises(InvalidArgument, match="bucket"):
        load_iam_grammar(bad)


def test_the_same_seed_draws_the_same_policies():
    first = [
        p.text() for p in draw_examples(identity_policies(loose=True), count=30, seed=9)
    ]
    again = [
        p.text() for p in draw_examples(identity_policies(loose=True), count=30, seed=9)
    ]
    other = [
        p.text()
        for p in draw_examples(identity_policies(loose=True), count=30, seed=10)
    ]
    assert first == again != other


def test_statements_and_principals_strategies_draw_their_parts():
    for statement in draw_examples(statements(), count=20, seed=1):
        _valid_shape({"Statement": [statement]})
    forms = draw_examples(principals(), count=60, seed=1)
    assert "*" in forms and {"AWS": "*"} in forms
