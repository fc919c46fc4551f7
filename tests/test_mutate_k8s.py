"""Mutators: a contract over the whole list, then the scenario each one names."""

from __future__ import annotations

import random
import re

import pytest

from generator.config.k8s import load_documents
from generator.families.k8s import FAMILIES
from generator.mutate.base import Manifest, Profile
from generator.mutate.k8s import MUTATORS, mutator_named
from generator.mutate.seeds import load_seeds
from generator.oracle.k8s import truth

RESTRICTED = "pss:restricted:v1.37"
SEEDS = {seed.stem: seed for seed in load_seeds()}
FAMILY_NAMES = {f.name for f in FAMILIES}
VERBS = {
    "add", "allow", "annotate", "comment", "disable", "drop", "enable", "flip",
    "grant", "harden", "hoist", "indent", "lift", "mount", "point", "publish",
    "push", "quote", "respell", "run", "set", "share", "shuffle", "spell",
    "strip", "swap", "unconfine", "unmask", "wrap", "write",
}  # fmt: skip


def _verdict(manifest: Manifest) -> str:
    return truth(manifest.text(), RESTRICTED).verdict


def _apply(name: str, stem: str, seed: int = 0) -> Manifest | None:
    return mutator_named(name)(Manifest(SEEDS[stem].documents), random.Random(seed))


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.name)
def test_every_mutator_has_a_verb_name_a_scenario_and_a_known_family(mutator):
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", mutator.name)
    assert mutator.name.split("_")[0] in VERBS
    assert len(mutator.scenario.split()) >= 8, "the docstring sketches one scenario"
    assert mutator.family in FAMILY_NAMES


def test_mutator_names_are_unique():
    names = [m.name for m in MUTATORS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.name)
def test_every_mutator_output_parses_and_is_judged_by_the_oracle(mutator):
    applied = 0
    for i, seed in enumerate(SEEDS.values()):
        result = mutator(Manifest(seed.documents), random.Random(i))
        if result is None:
            continue
        applied += 1
        assert load_documents(result.text()) == list(result.documents)
        assert truth(result.text(), RESTRICTED).verdict in ("safe", "unsafe")
    assert applied, f"{mutator.name} applies to no seed"


def test_mutators_never_edit_their_input():
    seed = SEEDS["ci-runner-docker-sock"]
    before = seed.text
    manifest = Manifest(seed.documents)
    snapshot = repr(manifest.documents)
    for mutator in MUTATORS:
        mutator(manifest, random.Random(1))
    assert repr(manifest.documents) == snapshot
    assert seed.text == before


@pytest.mark.parametrize(
    "mutator", [m for m in MUTATORS if m.keeps_meaning], ids=lambda m: m.name
)
def test_meaning_preserving_mutators_keep_every_seeds_verdict(mutator):
    for i, seed in enumerate(SEEDS.values()):
        for attempt in range(2):
            result = mutator(Manifest(seed.documents), random.Random(i * 7 + attempt))
            if result is not None:
                assert _verdict(result) == seed.claimed, (seed.stem, result.text())


# --- the scenarios ---------------------------------------------------------------


def test_a_read_only_host_path_still_fails_restricted():
    for i in range(10):
        result = _apply("add_host_path_mount", "restricted-pod", i)
        rules = truth(result.text(), RESTRICTED).rules
        assert rules == ("restrictedVolumes",)


def test_dropping_the_guard_prefers_an_init_container():
    result = _apply("drop_escalation_guard", "api-native-sidecar")
    violation = truth(result.text(), RESTRICTED).violations[0]
    assert violation.rule == "allowPrivilegeEscalation"
    assert ".initContainers[0]." in violation.path


def test_a_guard_hoisted_to_pod_level_is_never_read():
    result = _apply("hoist_container_field_to_pod", "restricted-pod")
    pod_context = result.documents[0]["spec"]["securityContext"]
    assert {"allowPrivilegeEscalation", "capabilities"} & set(pod_context)
    assert _verdict(result) == "unsafe"


def test_pushing_run_as_non_root_past_init_containers_fails_them():
    result = _apply("push_run_as_non_root_down", "postgres-statefulset")
    violation = truth(result.text(), RESTRICTED).violations[0]
    assert violation.rule == "runAsNonRoot" and "initContainers" in violation.path


def test_pod_false_fails_even_when_every_container_says_true():
    result = _apply("flip_run_as_non_root", "restricted-pod")
    assert truth(result.text(), RESTRICTED).rules == ("runAsNonRoot",)


def test_respelling_drop_all_makes_it_count_for_nothing():
    result = _apply("respell_capability", "restricted-pod")
    assert re.search(r"- (all|CAP_ALL|All)\n", result.text())
    assert truth(result.text(), RESTRICTED).rules == ("capabilities_restricted",)


def test_a_look_alike_volume_turns_the_docker_socket_seed_into_a_near_miss():
    hardened = _apply("harden_workload", "ci-runner-docker-sock")
    assert truth(hardened.text(), RESTRICTED).rules == ("restrictedVolumes",)
    swapped = mutator_named("swap_host_path_for_lookalike")(hardened, random.Random(0))
    assert "docker.sock" in swapped.text()
    assert _verdict(swapped) == "safe"


def test_windows_exempts_a_pod_that_only_failed_linux_checks():
    result = _apply("set_windows_os", "debug-session-pod")
    assert _verdict(Manifest(SEEDS["debug-session-pod"].documents)) == "unsafe"
    assert _verdict(result) == "safe"


def test_user_namespaces_allow_root_but_never_an_unmasked_proc():
    root = _apply("disable_host_users", "service-mesh-init")
    assert "runAsUser" not in truth(root.text(), RESTRICTED).rules
    for i in range(6):
        unmasked = _apply("unmask_proc_mount", "restricted-pod", i)
        assert "procMount_restricted" in truth(unmasked.text(), RESTRICTED).rules


def test_a_commented_out_guard_is_visible_but_unset():
    result = _apply("comment_out_field", "restricted-pod")
    text = result.text()
    assert re.search(r"# (allowPrivilegeEscalation: false|runAsNonRoot: true)", text)
    assert _verdict(result) == "unsafe"


def test_a_quoted_false_is_a_string_the_api_server_refuses():
    for i in range(4):
        result = _apply("quote_boolean", "restricted-pod", i)
        assert '"false"' in result.text() or '"true"' in result.text()
        assert "invalidField" in truth(result.text(), RESTRICTED).rules


def test_wrapping_in_a_workload_keeps_the_verdict_of_every_seed():
    for stem, seed in SEEDS.items():
        result = _apply("wrap_in_workload", stem, 3)
        if result is not None:
            assert result.documents[0]["kind"] != seed.documents[0]["kind"]
            assert _verdict(result) == seed.claimed


def test_the_profile_counts_calls_applications_and_flips():
    profile = Profile()
    profile.record("a", applied=True, flipped=True)
    profile.record("a", applied=False, flipped=True)
    profile.record("b", applied=True)
    assert profile.to_dict() == {
        "a": {"calls": 2, "applied": 1, "flips": 1},
        "b": {"calls": 1, "applied": 1, "flips": 0},
    }


def test_an_unknown_mutator_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="add_host_path_mount"):
        mutator_named("add_hostpath")


def test_hardening_leaves_only_volume_violations_on_every_seed():
    for stem, seed in SEEDS.items():
        result = _apply("harden_workload", stem) or Manifest(seed.documents)
        rules = set(truth(result.text(), RESTRICTED).rules)
        assert rules <= {"restrictedVolumes"}, stem
