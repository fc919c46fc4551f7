"""Rendering manifests: every spelling reads back as the same documents."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.config.k8s import load_documents
from generator.config.k8s_yaml import Style, render
from generator.grammar.k8s import workloads

styles = st.builds(
    Style,
    indent_sequences=st.booleans(),
    flow_keys=st.sampled_from(
        [
            frozenset(),
            frozenset({"drop", "add"}),
            frozenset({"securityContext"}),
            frozenset("*"),
        ]
    ),
    quote_keys=st.booleans(),
    true_word=st.just("true"),
    false_word=st.just("false"),
    anchors=st.sampled_from(["none", "alias", "merge"]),
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    workloads(), styles, st.sampled_from([("yes", "no"), ("y", "n"), ("True", "False")])
)
def test_every_style_reads_back_as_the_same_documents(doc, style, words):
    text = render([doc], style)
    assert load_documents(text) == [doc]
    spelled = Style(true_word=words[0], false_word=words[1], anchors=style.anchors)
    assert load_documents(render([doc], spelled)) == [doc]


def test_strings_that_yaml_would_read_as_other_types_are_quoted():
    doc = {"args": ["n", "yes", "1:20", "0x10", "null", "~", "8080", "a b", "--flag"]}
    text = render([doc])
    assert load_documents(text) == [doc]
    assert "- --flag" in text
    assert '- "n"' in text


def test_merge_keys_spell_a_shared_context_once():
    shared = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    doc = {
        "spec": {
            "containers": [
                {"name": "a", "securityContext": dict(shared)},
                {"name": "b", "securityContext": {**shared, "runAsUser": 1000}},
            ]
        }
    }
    text = render([doc], Style(anchors="merge"))
    assert "&restricted" in text and "<<: *restricted" in text
    assert load_documents(text) == [doc]


def test_a_comment_for_a_missing_key_stays_inside_its_mapping():
    doc = {"securityContext": {"runAsNonRoot": True}}
    style = Style(
        comments=(
            (
                "securityContext.allowPrivilegeEscalation",
                "allowPrivilegeEscalation: false",
            ),
        )
    )
    text = render([doc], style)
    assert text.splitlines()[-1] == "  # allowPrivilegeEscalation: false"
    assert load_documents(text) == [doc]


def test_documents_are_separated_by_a_document_marker():
    text = render([{"kind": "Service"}, {"kind": "Pod"}])
    assert text == "kind: Service\n---\nkind: Pod\n"
