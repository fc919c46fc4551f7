"""Reading manifests as the API server does, and refusing what it could not read."""

from __future__ import annotations

import re

import pytest
import yaml

from generator.config import k8s
from generator.config.k8s import load_documents, workloads
from generator.errors import ConfigError, UnsupportedKind
from tests.conftest import PSS_FIXTURES

BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_alias_bomb_is_refused_with_document_index():
    with pytest.raises(ConfigError) as info:
        load_documents("a: 1\n---\n" + BOMB, source="bomb.yaml")
    assert info.value.index == 1
    assert "bomb.yaml: document 1" in str(info.value)
    assert "expands to over" in str(info.value)


def test_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match="its own ancestor"):
        load_documents("&a [*a]\n")


def test_deep_nesting_is_refused():
    with pytest.raises(ConfigError, match="nesting depth; flatten it"):
        load_documents("[" * 1500 + "]" * 1500)


def test_small_anchor_and_merge_key_use_is_fine():
    (doc,) = load_documents("base: &b {x: 1}\nother:\n  <<: *b\n  z: 2\n")
    assert doc["other"] == {"x": 1, "z": 2}


def test_written_key_overrides_a_merged_one():
    (doc,) = load_documents(
        "a: &a {x: 1, y0: 1}\nb: &b {x: 2}\nc:\n  <<: [*b, *a]\n  y0: 3\n"
    )
    assert doc["c"] == {"x": 2, "y0": 3}


def test_keys_become_json_strings_as_in_sigs_yaml():
    (doc,) = load_documents("y: 1\n0x10: 2\n")
    assert doc == {"true": 1, "16": 2}


def test_duplicate_keys_are_refused_with_line():
    with pytest.raises(ConfigError, match="line 2.*duplicate key 'a'"):
        load_documents("a: 1\na: 2\n", source="dup.yaml")


def test_malformed_yaml_names_line_and_column():
    with pytest.raises(ConfigError) as info:
        load_documents("a: [1, 2\n", source="bad.yaml")
    assert "bad.yaml: document 0: line" in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("y", True), ("N", False), ("yes", True), ("off", False),
        ("True", True), ("1:20", "1:20"), ("0x10", 16), ("0o7", "0o7"),
        ("2001-12-14", "2001-12-14"), ("1_000", 1000), ("1.5", 1.5),
    ],
)  # fmt: skip
def test_scalars_resolve_as_in_go_yaml_v2(text, value):
    (doc,) = load_documents(f"v: {text}\n")
    assert doc["v"] == value
    assert type(doc["v"]) is type(value)


def test_empty_documents_are_kept_as_none():
    assert load_documents("---\n---\na: 1\n") == [None, {"a": 1}]


def test_a_scalar_document_is_not_kubernetes():
    with pytest.raises(ConfigError, match="not a Kubernetes object"):
        workloads("hello", source="x.yaml")


def test_mapping_without_kind_is_not_kubernetes():
    with pytest.raises(ConfigError, match="apiVersion"):
        workloads({"foo": 1})


def test_unknown_kind_is_an_error_naming_the_kind():
    with pytest.raises(UnsupportedKind, match="'Rollout'"):
        workloads({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"})


def test_known_kind_without_pod_spec_is_skipped():
    assert workloads({"apiVersion": "v1", "kind": "Service"}) == []


def test_holder_without_template_has_nothing_to_judge():
    assert workloads({"apiVersion": "apps/v1", "kind": "Deployment"}) == []


def test_spec_of_the_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="spec must be a mapping"):
        workloads({"apiVersion": "v1", "kind": "Pod", "spec": [1]})


def test_nesting_through_aliases_is_refused_at_the_same_depth():
    text = "a: &a " + "[" * 600 + "]" * 600 + "\nb: " + "[" * 500 + "*a" + "]" * 500
    with pytest.raises(ConfigError, match="nesting deeper than 1000"):
        load_documents(text)


def test_alias_fan_out_under_the_node_limit_is_still_refused():
    text = "c: &c {name: a, image: b}\nlist: [" + ", ".join(["*c"] * 30000) + "]\n"
    with pytest.raises(ConfigError, match="refused: repeats its"):
        load_documents(text, source="fan.yaml")


def test_a_file_of_many_moderate_alias_documents_has_one_budget():
    doc = (
        "c: &c [" + ", ".join(["x"] * 40) + "]\nl: [" + ", ".join(["*c"] * 2000) + "]\n"
    )
    with pytest.raises(ConfigError, match="file expands to over"):
        load_documents("---\n".join([doc] * 20))


def test_list_items_of_the_wrong_type_are_an_error():
    with pytest.raises(ConfigError, match="items must be a list"):
        workloads({"apiVersion": "v1", "kind": "List", "items": {}})


# The direct builder must give exactly what PyYAML's generic constructor (with
# our mapping and bool rules) gives; these documents reach each of its paths.
SPELLINGS = [
    "a: 1\nb: [true, n, ~, 0x10, 1_000, 0o7, 017, .5, 1e3, -.inf]\nc: {d: e}\n",
    "? [1, 2]\n: x\n",
    "a: !!str 10\nb: !!int '7'\nc: !!binary aGk=\nd: 2001-12-14\n",
    "y: 1\n10: a\n0x10: b\n1.5: c\nnull: d\n",
    "a: \"quoted\"\nb: 'single'\nc: |\n  block\nd: >\n  folded\n",
    "a: {x: 1, y: [{z: on}, {z: Off}]}\n",
    "a: &x {p: 1}\nb: *x\n",
    "a: &x {p: 1}\nb:\n  <<: *x\n  q: 2\n",
    "list:\n- - - deep\n- []\n- {}\n",
    "a: 1\na: 2\n",
    "a: {}\nb: !!set {x, y}\nc: !!omap [k: v]\n",
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_direct_builder_agrees_with_the_generic_constructor(text):
    def generic():
        loader = k8s.KubeLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()

    try:
        expected = generic()
    except yaml.YAMLError as exc:
        with pytest.raises(ConfigError, match=re.escape(exc.problem)):
            k8s.load_documents(text)
        return
    assert k8s.load_documents(text) == [expected]


def test_direct_builder_agrees_on_every_conformance_fixture():
    for path in sorted(PSS_FIXTURES.glob("*/v*/*/*.yaml")):
        text = path.read_text()
        loader = k8s.KubeLoader(text)
        try:
            expected = []
            while loader.check_data():
                expected.append(loader.get_data())
        finally:
            loader.dispose()
        assert k8s.load_documents(text) == expected, path
