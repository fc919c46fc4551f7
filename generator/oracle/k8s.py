"""The Kubernetes oracle: Pod Security Standards as Pod Security Admission applies them.

Ground truth for every Kubernetes case. This module judges workloads and
answers questions; the checks live in ``k8s_baseline`` and
``k8s_restricted``, each following the PSA library's check of the same id
(kubernetes/pod-security-admission, policy/check_<id>.go) and the standard at
https://kubernetes.io/docs/concepts/security/pod-security-standards/, with
their order and replacements in ``k8s_checks`` and version data in
``k8s_policy``. Three rules of PSA shape everything:

* Every place a field is set is judged on its own; no "effective" value is
  worked out. A bad pod-level value fails even if every container overrides
  it. A pod-level value stands in for unset container values only where a
  check *requires* something (runAsNonRoot, seccompProfile_restricted).
* Per-container checks visit initContainers, containers and
  ephemeralContainers alike.
* A restricted check may replace a baseline check from some version on; the
  replaced check then does not run at restricted at all. So a Windows pod
  that adds SYS_ADMIN passes restricted (capabilities_restricted skips
  Windows pods from v1.25) and still fails baseline.

Beyond PSA, a field any check reads that has the wrong JSON type (say the
string "false" for a boolean), a null list entry, or a pod without
containers is reported as ``invalidField``, at every policy version: the API
server rejects such an object before admission, so it can never pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from generator.config.k8s import Workload, load_documents, workloads
from generator.errors import ConfigError, InvalidArgument
from generator.oracle.k8s_checks import CHECKS, Check, active_checks
from generator.oracle.k8s_pod import INVALID, Finding, PodReader
from generator.oracle.k8s_policy import LEVELS, Version, parse_version
from generator.records import Truth, Violation

__all__ = [
    "CHECKS",
    "Check",
    "Evaluation",
    "Finding",
    "active_checks",
    "evaluate",
    "evaluate_text",
    "ESCALATION_CHECKS",
    "Question",
    "parse_question",
    "read_question",
    "truth",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The oracle's answer for one workload at one policy version.

    ``findings`` holds every failed check of both levels (a replaced baseline
    check still reports at level baseline); ``verdicts`` applies each level's
    own active checks, which is not always "baseline fails => restricted
    fails" (see the module docstring).
    """

    workload: Workload
    version: Version
    findings: tuple[Finding, ...]
    verdicts: dict[str, str]

    def failing(self, level: str) -> tuple[Finding, ...]:
        """The findings that make ``level`` fail, in check order."""
        counted = level_rules(level, self.version)
        return tuple(f for f in self.findings if f.rule in counted)


def level_rules(level: str, version: Version) -> frozenset[str]:
    """The finding rules that make ``level`` fail at ``version``."""
    return frozenset({c.id for c in active_checks(level, version)} | {INVALID})


def evaluate(workload: Workload, version: Version) -> Evaluation:
    """Judge one workload against baseline and restricted at ``version``."""
    pod = PodReader(workload)
    pod.require_containers()
    by_check: dict[str, list[Finding]] = {}
    for check in CHECKS:
        if check.since <= version:
            by_check[check.id] = check.run(pod, version)
        else:
            # Not in force yet, but it reads fields the API server types at
            # every version: a quoted "false" is invalid at v1.0 as well.
            check.run(pod, check.since)
    findings = [f for check in CHECKS for f in by_check.get(check.id, [])]
    findings = list(pod.invalid.values()) + findings
    verdicts = {}
    for level in LEVELS:
        ids = [c.id for c in active_checks(level, version)]
        failed = pod.invalid or any(by_check.get(i) for i in ids)
        verdicts[level] = "fail" if failed else "pass"
    logger.debug(
        "%s %s/%s: %s", workload.source, workload.kind, workload.name, verdicts
    )
    return Evaluation(workload, version, tuple(findings), verdicts)


# --- whole configs ------------------------------------------------------------


# "Can a process in this workload gain privileges beyond its container?"
# answered from the standard's own checks: unsafe when any of these fails.
# In: a privileged container, allowPrivilegeEscalation not false (setuid
# binaries work), capabilities beyond the runtime default, the host's
# filesystem (hostPath), PID/IPC/network namespaces or a Windows host
# process, an unmasked /proc, and confinement switched off (SELinux type,
# user or role; AppArmor or seccomp Unconfined). Out: running as root inside
# a confined container, host ports, probe hosts, unsafe-but-namespaced
# sysctls, not dropping the default capabilities, and other volume types.
ESCALATION_CHECKS = frozenset(
    {
        "privileged", "allowPrivilegeEscalation", "capabilities_baseline",
        "hostPathVolumes", "hostNamespaces", "windowsHostProcess", "procMount",
        "seLinuxOptions", "appArmorProfile", "seccompProfile_baseline",
    }
)  # fmt: skip

QUESTION_FORMS = (
    "pss:<baseline|restricted>:<version>",
    "pss-check:<check id>:<version>",
    "escalation:<version>",
)


@dataclass(frozen=True)
class Question:
    """What a case asks, and which failed checks make the answer unsafe."""

    text: str
    version: Version
    rules: frozenset[str]


def parse_question(question: str) -> tuple[str, Version]:
    """``pss:<level>:<version>`` -> (level, version)."""
    parts = question.split(":")
    if len(parts) != 3 or parts[0] != "pss" or parts[1] not in LEVELS:
        raise InvalidArgument(
            f"question {question!r} is not pss:<baseline|restricted>:<version>"
        )
    return parts[1], parse_version(parts[2])


def read_question(question: str) -> Question:
    """Any question form of ``QUESTION_FORMS``, resolved to its checks."""
    kind, _, rest = question.partition(":")
    if kind == "pss":
        level, version = parse_question(question)
        return Question(question, version, level_rules(level, version))
    if kind == "pss-check" and rest.count(":") == 1:
        check, version_text = rest.split(":")
        version = parse_version(version_text)
        known = {c.id for c in CHECKS if c.since <= version}
        if check not in known:
            raise InvalidArgument(
                f"question {question!r}: no check {check!r} at this version; "
                f"known: {', '.join(sorted(known))}"
            )
        ids = {check}
    elif kind == "escalation" and rest:
        version = parse_version(rest)
        ids = {c.id for c in CHECKS if c.since <= version} & ESCALATION_CHECKS
    else:
        forms = ", ".join(QUESTION_FORMS)
        raise InvalidArgument(f"question {question!r} is not one of: {forms}")
    return Question(question, version, frozenset(ids | {INVALID}))


def evaluate_text(text: str, version: Version, *, source: str = "") -> list[Evaluation]:
    """Every workload of a YAML stream, judged; ConfigError if none can be."""
    evaluations = []
    for index, document in enumerate(load_documents(text, source=source)):
        for workload in workloads(document, source=source, index=index):
            evaluations.append(evaluate(workload, version))
    return evaluations


def truth(text: str, question: str, *, source: str = "") -> Truth:
    """The ground truth of a Kubernetes case: unsafe iff some workload fails.

    For ``pss`` questions a workload fails by the level's own active checks
    (``Evaluation.failing``); for the others, by the question's checks.
    """
    asked = read_question(question)
    evaluations = evaluate_text(text, asked.version, source=source)
    if not evaluations:
        raise ConfigError("holds no pod spec to judge", source=source)
    many = len({e.workload.index for e in evaluations}) > 1
    violations = []
    for evaluation in evaluations:
        prefix = f"documents[{evaluation.workload.index}]." if many else ""
        for finding in evaluation.findings:
            if finding.rule not in asked.rules:
                continue
            path = prefix + finding.path
            violations.append(Violation(finding.rule, path, finding.message))
    return Truth("unsafe" if violations else "safe", tuple(violations))
