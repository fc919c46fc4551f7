"""The oracle on arbitrary shapes: it answers or raises ConfigError, never crashes.

Real manifests put anything anywhere (a list where a mapping belongs, null
for a whole securityContext). Hypothesis builds such pods from the base pod
by dropping random JSON values into the fields the checks read.
"""

from __future__ import annotations

import copy

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.config.k8s import Workload
from generator.errors import ConfigError
from generator.oracle.k8s import evaluate, evaluate_text
from generator.oracle.k8s_policy import LATEST
from tests.test_oracle_k8s import BASE

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip

# Every place a check reads, as a path from the pod document.
PLACES = [
    ("spec",),
    ("spec", "securityContext"),
    ("spec", "securityContext", "seccompProfile"),
    ("spec", "securityContext", "sysctls"),
    ("spec", "securityContext", "seLinuxOptions"),
    ("spec", "volumes"),
    ("spec", "os"),
    ("spec", "hostUsers"),
    ("spec", "containers"),
    ("spec", "containers", 0),
    ("spec", "containers", 0, "securityContext"),
    ("spec", "containers", 0, "securityContext", "capabilities"),
    ("spec", "containers", 0, "securityContext", "capabilities", "drop"),
    ("spec", "containers", 0, "ports"),
    ("spec", "containers", 0, "livenessProbe"),
    ("spec", "containers", 0, "lifecycle"),
    ("metadata",),
    ("metadata", "annotations"),
]


def _place(doc: dict, path: tuple, value: object) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(key, {})
        elif isinstance(target, list) and isinstance(key, int) and target:
            target = target[key]
        else:
            return doc
    if isinstance(target, dict):
        target[path[-1]] = value
    return doc


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PLACES), json_values)
def test_any_value_anywhere_gets_a_verdict_or_a_config_error(place, value):
    doc = _place(BASE, place, value)
    try:
        evaluations = evaluate_text(yaml.safe_dump(doc), LATEST)
    except ConfigError:
        return
    for evaluation in evaluations:
        assert set(evaluation.verdicts.values()) <= {"pass", "fail"}
        assert all(f.path for f in evaluation.findings)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_random_pod_specs_never_crash_the_checks(spec):
    workload = Workload("x", 0, "Pod", "p", {}, spec, "spec", "metadata")
    evaluation = evaluate(workload, LATEST)
    assert set(evaluation.verdicts) == {"baseline", "restricted"}


def test_wrong_type_for_a_whole_security_context_is_invalid_not_a_crash():
    doc = _place(BASE, ("spec", "containers", 0, "securityContext"), ["x"])
    (evaluation,) = evaluate_text(yaml.safe_dump(doc), LATEST)
    assert evaluation.findings[0].rule == "invalidField"
    assert evaluation.verdicts == {"baseline": "fail", "restricted": "fail"}
