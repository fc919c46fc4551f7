"""The Kubernetes grammar: its file is checked by name, its strategies by contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.config.k8s import load_documents
from generator.config.k8s_yaml import render
from generator.errors import InvalidArgument
from generator.grammar.draw import draw_examples
from generator.grammar.k8s import (
    GRAMMAR_PATH,
    KINDS,
    capabilities,
    containers,
    default_grammar,
    k8s_grammar,
    pod_specs,
    security_contexts,
    volumes,
    workloads,
)
from generator.oracle.k8s import truth

RESTRICTED = "pss:restricted:v1.37"
FAST = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _grammar_with(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(GRAMMAR_PATH.read_text())
    edit(raw)
    path = tmp_path / "k8s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_grammar_loads_with_every_pool_the_code_reads():
    g = default_grammar()
    assert "NET_BIND_SERVICE" in g.values("capabilities_add")
    assert g.values("capabilities_drop", hardened=True) == ("ALL",)
    assert {t.path for t in g.host_paths} >= {
        "/",
        "/etc",
        "/proc",
        "/var/run/docker.sock",
    }


def test_a_misspelled_pool_name_is_reported_by_name_with_a_suggestion(tmp_path):
    def rename(raw):
        raw["pools"]["capabilties_add"] = raw["pools"].pop("capabilities_add")

    with pytest.raises(
        InvalidArgument, match="'capabilties_add' \\(did you mean 'capabilities_add'"
    ):
        k8s_grammar(_grammar_with(tmp_path, rename))


def test_a_missing_pool_is_reported_by_name(tmp_path):
    with pytest.raises(InvalidArgument, match="missing sysctls"):
        k8s_grammar(_grammar_with(tmp_path, lambda raw: raw["pools"].pop("sysctls")))


def test_a_volume_source_the_generator_cannot_write_is_refused(tmp_path):
    def add(raw):
        raw["pools"]["forbidden_volume_sources"]["quobyteX"] = 1

    with pytest.raises(InvalidArgument, match="quobyteX"):
        k8s_grammar(_grammar_with(tmp_path, add))


def test_an_allowed_source_filed_as_forbidden_is_refused(tmp_path):
    def misfile(raw):
        raw["pools"]["forbidden_volume_sources"]["emptyDir"] = 1

    with pytest.raises(InvalidArgument, match="emptyDir"):
        k8s_grammar(_grammar_with(tmp_path, misfile))


def test_hardened_values_must_come_from_the_pool(tmp_path):
    def widen(raw):
        raw["hardened"]["capabilities_drop"]["EVERYTHING"] = 1

    with pytest.raises(InvalidArgument, match="EVERYTHING"):
        k8s_grammar(_grammar_with(tmp_path, widen))


def test_an_unknown_state_name_is_reported(tmp_path):
    def typo(raw):
        raw["states"]["privileged"]["maybe"] = 1

    with pytest.raises(InvalidArgument, match="'maybe'"):
        k8s_grammar(_grammar_with(tmp_path, typo))


@pytest.mark.parametrize(
    ("build", "shown"),
    [
        (lambda: pod_specs(min_containers=0), "min_containers=0"),
        (lambda: pod_specs(min_containers=3, max_containers=2), "min_containers=3"),
        (lambda: pod_specs(os="macos"), "os='macos'"),
        (lambda: containers(role="sidecarr"), "role='sidecarr'"),
        (lambda: security_contexts(level="node"), "level='node'"),
        (lambda: capabilities(hardened="yes"), "hardened='yes'"),
        (lambda: volumes(grammar="grammars/k8s.yaml"), "grammar='grammars/k8s.yaml'"),
        (lambda: workloads(kinds=("Pod", "Podd")), "'Podd'"),
    ],
)
def test_bad_strategy_arguments_raise_invalid_argument_showing_name_and_value(
    build, shown
):
    with pytest.raises(InvalidArgument) as info:
        build()
    assert shown in str(info.value)


@FAST
@given(workloads(hardened=True))
def test_hardened_workloads_pass_restricted(doc):
    assert truth(render([doc]), RESTRICTED).verdict == "safe"


@FAST
@given(workloads())
def test_every_workload_renders_to_text_that_reads_back_the_same(doc):
    text = render([doc])
    assert load_documents(text) == [doc]
    truth(text, RESTRICTED)  # judged without error


@FAST
@given(st.data())
def test_pod_specs_stay_within_the_container_bounds(data):
    low = data.draw(st.integers(1, 3))
    high = data.draw(st.integers(low, 4))
    spec = data.draw(
        pod_specs(min_containers=low, max_containers=high, max_init_containers=0)
    )
    assert low <= len(spec["containers"]) <= high
    assert "initContainers" not in spec


@FAST
@given(workloads(kinds=("CronJob", "PodTemplate")))
def test_workloads_only_draw_the_kinds_asked_for(doc):
    assert doc["kind"] in ("CronJob", "PodTemplate")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_psa_evaluates_can_be_drawn_and_judged(kind):
    for doc in draw_examples(workloads(kinds=(kind,), hardened=True), count=3, seed=11):
        assert doc["kind"] == kind
        assert truth(render([doc]), RESTRICTED).verdict == "safe"


def test_drawing_with_the_same_seed_gives_the_same_examples():
    first = draw_examples(workloads(), count=20, seed=5)
    again = draw_examples(workloads(), count=20, seed=5)
    other = draw_examples(workloads(), count=20, seed=6)
    assert first == again
    assert first != other
