"""The Pod Security oracle on the traps that scanners and models get wrong.

Each test states one rule of Pod Security Admission's semantics (see
shared/research/k8s-pss.md) on a minimal manifest built from the restricted
base pod.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from generator.config.k8s import Workload
from generator.errors import InvalidArgument
from generator.oracle.k8s import (
    active_checks,
    evaluate,
    evaluate_text,
    read_question,
    truth,
)
from generator.oracle.k8s_policy import LATEST, parse_version

BASE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": "nginx",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    },
}


def pod(**spec_changes) -> dict:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(spec_changes)
    return doc


def judge(doc: dict, version: str = "latest"):
    (evaluation,) = evaluate_text(yaml.safe_dump(doc), parse_version(version))
    return evaluation


def rules(evaluation, level: str = "restricted") -> set[str]:
    return {f.rule for f in evaluation.failing(level)}


def container_sc(doc: dict, index: int = 0) -> dict:
    return doc["spec"]["containers"][index]["securityContext"]


def test_base_pod_passes_both_levels():
    assert judge(BASE).verdicts == {"baseline": "pass", "restricted": "pass"}


def test_pod_level_bad_value_fails_even_when_every_container_overrides_it():
    doc = pod()
    doc["spec"]["securityContext"]["runAsNonRoot"] = False
    container_sc(doc)["runAsNonRoot"] = True
    assert rules(judge(doc)) == {"runAsNonRoot"}


def test_pod_level_run_as_non_root_covers_unset_containers_only():
    doc = pod()
    container_sc(doc)["runAsNonRoot"] = False
    assert rules(judge(doc)) == {"runAsNonRoot"}


def test_non_zero_run_as_user_does_not_satisfy_run_as_non_root():
    doc = pod()
    del doc["spec"]["securityContext"]["runAsNonRoot"]
    doc["spec"]["securityContext"]["runAsUser"] = 1000
    assert rules(judge(doc)) == {"runAsNonRoot"}


def test_allow_privilege_escalation_at_pod_level_does_not_count():
    # PodSecurityContext has no such field; the decoder drops it.
    doc = pod()
    del container_sc(doc)["allowPrivilegeEscalation"]
    doc["spec"]["securityContext"]["allowPrivilegeEscalation"] = False
    assert rules(judge(doc)) == {"allowPrivilegeEscalation"}


@pytest.mark.parametrize("spelling", ["all", "All", "CAP_ALL"])
def test_drop_must_spell_all_exactly(spelling):
    doc = pod()
    container_sc(doc)["capabilities"]["drop"] = [spelling]
    assert rules(judge(doc)) == {"capabilities_restricted"}


@pytest.mark.parametrize("name", ["chown", "CAP_CHOWN", "Chown", "ALL"])
def test_baseline_capability_names_are_exact(name):
    doc = pod()
    container_sc(doc)["capabilities"]["add"] = [name]
    assert rules(judge(doc), "baseline") == {"capabilities_baseline"}


def test_default_capability_passes_baseline_but_not_restricted():
    doc = pod()
    container_sc(doc)["capabilities"]["add"] = ["CHOWN"]
    evaluation = judge(doc)
    assert evaluation.verdicts == {"baseline": "pass", "restricted": "fail"}


def test_ephemeral_and_init_containers_are_checked():
    for key in ("initContainers", "ephemeralContainers"):
        doc = pod(**{key: [{"name": "dbg", "image": "busybox"}]})
        failing = judge(doc).failing("restricted")
        assert {f.rule for f in failing} == {
            "allowPrivilegeEscalation",
            "capabilities_restricted",
        }
        assert all(f.path.startswith(f"spec.{key}[0]") for f in failing)


def test_windows_pod_skips_linux_checks_but_not_run_as_non_root():
    doc = pod(os={"name": "windows"})
    doc["spec"]["containers"][0].pop("securityContext")
    del doc["spec"]["securityContext"]["seccompProfile"]
    assert judge(doc).verdicts["restricted"] == "pass"
    del doc["spec"]["securityContext"]["runAsNonRoot"]
    assert rules(judge(doc)) == {"runAsNonRoot"}


def test_windows_exemption_needs_policy_v1_25():
    doc = pod(os={"name": "windows"})
    doc["spec"]["containers"][0].pop("securityContext")
    assert judge(doc, "v1.24").verdicts["restricted"] == "fail"
    assert judge(doc, "v1.25").verdicts["restricted"] == "pass"


def test_windows_pod_adding_sys_admin_passes_restricted_but_fails_baseline():
    # capabilities_restricted replaces capabilities_baseline at restricted and
    # skips Windows pods, so nothing at restricted looks at the add list.
    doc = pod(os={"name": "windows"})
    container_sc(doc)["capabilities"]["add"] = ["SYS_ADMIN"]
    assert judge(doc).verdicts == {"baseline": "fail", "restricted": "pass"}


def test_volume_with_only_a_name_is_defaulted_to_empty_dir():
    assert judge(pod(volumes=[{"name": "scratch"}])).verdicts["restricted"] == "pass"


@pytest.mark.parametrize(
    "volume",
    [
        {"name": "h", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}},
        {"name": "h", "hostPath": {"path": "/"}},
        {"name": "n", "nfs": {"server": "x", "path": "/"}},
    ],
)
def test_forbidden_volume_sources_fail_restricted(volume):
    evaluation = judge(pod(volumes=[volume]))
    assert rules(evaluation) == {"restrictedVolumes"}


def test_host_path_fails_baseline_through_its_own_check():
    evaluation = judge(pod(volumes=[{"name": "h", "hostPath": {"path": "/etc"}}]))
    assert rules(evaluation, "baseline") == {"hostPathVolumes"}


def test_host_users_false_relaxes_run_as_user_from_v1_35_only():
    doc = pod(hostUsers=False)
    doc["spec"]["securityContext"]["runAsUser"] = 0
    assert judge(doc, "v1.35").verdicts["restricted"] == "pass"
    assert rules(judge(doc, "v1.34")) == {"runAsUser"}


def test_unmasked_proc_with_user_namespace_passes_baseline_fails_restricted():
    doc = pod(hostUsers=False)
    container_sc(doc)["procMount"] = "Unmasked"
    evaluation = judge(doc)
    assert evaluation.verdicts == {"baseline": "pass", "restricted": "fail"}
    assert rules(evaluation) == {"procMount_restricted"}


def test_host_port_zero_is_allowed():
    doc = pod()
    doc["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 0}]
    assert judge(doc).verdicts["baseline"] == "pass"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_probe_hosts_fail_baseline_even_on_loopback(host):
    doc = pod()
    doc["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"host": host, "port": 80}
    }
    assert rules(judge(doc), "baseline") == {"hostProbesAndHostLifecycle"}
    assert judge(doc, "v1.33").verdicts["baseline"] == "pass"


def test_seccomp_annotation_is_ignored_from_v1_19():
    doc = pod()
    doc["metadata"]["annotations"] = {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined"
    }
    assert judge(doc, "v1.19").verdicts["baseline"] == "pass"
    assert judge(doc, "v1.18").verdicts["baseline"] == "fail"


def test_string_false_is_not_the_boolean_false():
    text = yaml.safe_dump(BASE).replace(
        "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: 'false'"
    )
    (evaluation,) = evaluate_text(text, LATEST)
    assert evaluation.verdicts == {"baseline": "fail", "restricted": "fail"}
    assert "invalidField" in rules(evaluation)


def test_go_yaml_short_booleans_count():
    # sigs.k8s.io/yaml reads "n" as false, as kubectl does.
    text = yaml.safe_dump(BASE).replace(
        "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: n"
    )
    (evaluation,) = evaluate_text(text, LATEST)
    assert evaluation.verdicts["restricted"] == "pass"


@pytest.mark.parametrize(
    ("kind", "wrap"),
    [
        ("Deployment", lambda t: {"spec": {"template": t}}),
        ("DaemonSet", lambda t: {"spec": {"template": t}}),
        ("StatefulSet", lambda t: {"spec": {"template": t}}),
        ("ReplicaSet", lambda t: {"spec": {"template": t}}),
        ("ReplicationController", lambda t: {"spec": {"template": t}}),
        ("Job", lambda t: {"spec": {"template": t}}),
        ("CronJob", lambda t: {"spec": {"jobTemplate": {"spec": {"template": t}}}}),
        ("PodTemplate", lambda t: {"template": t}),
    ],
)
def test_pod_template_kinds_are_judged_with_template_paths(kind, wrap):
    template = {"metadata": {}, "spec": copy.deepcopy(BASE["spec"])}
    template["spec"]["hostNetwork"] = True
    doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w"}}
    doc.update(wrap(template))
    (evaluation,) = evaluate_text(yaml.safe_dump(doc), LATEST)
    (finding,) = evaluation.failing("baseline")
    assert finding.rule == "hostNamespaces"
    assert finding.path.endswith("spec.hostNetwork")
    assert finding.path != "spec.hostNetwork"


def test_list_items_are_each_judged():
    doc = {"apiVersion": "v1", "kind": "List", "items": [BASE, pod(hostPID=True)]}
    evaluations = evaluate_text(yaml.safe_dump(doc), LATEST)
    assert [e.verdicts["baseline"] for e in evaluations] == ["pass", "fail"]
    assert evaluations[1].findings[0].path == "items[1].spec.hostPID"


def test_truth_of_multi_document_config_names_the_document():
    text = yaml.safe_dump_all([BASE, pod(hostIPC=True)])
    result = truth(text, "pss:baseline:v1.37")
    assert result.verdict == "unsafe"
    assert [v.path for v in result.violations] == ["documents[1].spec.hostIPC"]


def test_restricted_drops_replaced_baseline_checks():
    restricted = {c.id for c in active_checks("restricted", LATEST)}
    assert "hostPathVolumes" not in restricted
    assert "capabilities_baseline" not in restricted
    assert "capabilities_baseline" in {
        c.id for c in active_checks("restricted", (1, 21))
    }


def test_evaluate_accepts_a_workload_directly():
    workload = Workload("x", 0, "Pod", "p", {}, {"hostPID": True}, "spec", "metadata")
    assert evaluate(workload, LATEST).verdicts["baseline"] == "fail"


@pytest.mark.parametrize("containers", [None, []])
def test_pod_without_containers_is_invalid(containers):
    doc = pod(containers=containers)
    evaluation = judge(doc)
    assert rules(evaluation) == {"invalidField"}
    assert evaluation.verdicts == {"baseline": "fail", "restricted": "fail"}


def test_probe_of_the_wrong_type_is_invalid_not_skipped():
    doc = pod()
    doc["spec"]["containers"][0]["livenessProbe"] = "nope"
    assert rules(judge(doc), "baseline") == {"invalidField"}


def test_pss_question_truth_matches_the_level_verdict_on_every_v1_37_fixture(
    pss_fixtures,
):
    for path in sorted(pss_fixtures.glob("*/v1.37/*/*.yaml")):
        level, outcome = path.parts[-4], path.parts[-2]
        verdict = truth(path.read_text(), f"pss:{level}:v1.37").verdict
        assert verdict == {"pass": "safe", "fail": "unsafe"}[outcome], path


def test_per_check_question_sees_only_that_check():
    doc = pod(hostPID=True)
    container_sc(doc)["runAsNonRoot"] = False
    text = yaml.safe_dump(doc)
    assert truth(text, "pss-check:runAsNonRoot:v1.37").rules == ("runAsNonRoot",)
    assert truth(text, "pss-check:privileged:v1.37").verdict == "safe"


def test_per_check_question_refuses_a_check_not_yet_in_force():
    with pytest.raises(InvalidArgument, match="no check 'runAsUser'"):
        read_question("pss-check:runAsUser:v1.22")


def test_escalation_counts_unset_escalation_and_host_paths_not_root():
    base = yaml.safe_dump(BASE)
    assert truth(base, "escalation:latest").verdict == "safe"
    doc = pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert truth(yaml.safe_dump(doc), "escalation:latest").rules == ("hostPathVolumes",)
    doc = pod()
    del container_sc(doc)["allowPrivilegeEscalation"]
    doc["spec"]["securityContext"]["runAsUser"] = 0
    assert truth(yaml.safe_dump(doc), "escalation:latest").rules == (
        "allowPrivilegeEscalation",
    )


def test_escalation_sees_sys_admin_on_a_windows_pod_that_restricted_passes():
    doc = pod(os={"name": "windows"})
    container_sc(doc)["capabilities"]["add"] = ["SYS_ADMIN"]
    text = yaml.safe_dump(doc)
    assert truth(text, "pss:restricted:latest").verdict == "safe"
    assert truth(text, "escalation:latest").verdict == "unsafe"


@pytest.mark.parametrize("question", ["pss:root:v1.37", "escalation:", "x:y", ""])
def test_unknown_question_forms_are_refused(question):
    with pytest.raises(InvalidArgument):
        read_question(question)


def test_wrong_type_is_invalid_even_before_the_check_reading_it_exists():
    text = yaml.safe_dump(BASE).replace(
        "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: 'false'"
    )
    (evaluation,) = evaluate_text(text, (1, 0))
    assert evaluation.verdicts == {"baseline": "fail", "restricted": "fail"}
    assert [f.rule for f in evaluation.findings] == ["invalidField"]


def test_null_container_entry_is_invalid_not_absent():
    doc = pod()
    doc["spec"]["initContainers"] = [None]
    assert rules(judge(doc), "baseline") == {"invalidField"}


def test_null_capability_reads_as_the_empty_name_as_in_go():
    doc = pod()
    container_sc(doc)["capabilities"]["add"] = [None]
    assert rules(judge(doc), "baseline") == {"capabilities_baseline"}
