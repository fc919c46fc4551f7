"""Reading one block of a model's answer and running the matching oracle.

``read_block`` decides what a block is by its content (as ``check`` does):
Terraform (IAM policies and security groups), an IAM policy document (JSON,
or YAML with a ``Statement``), or Kubernetes YAML/JSON (workloads for Pod
Security, NetworkPolicies). What it reads is kept in ``Contents`` for the
diff against the input; what the oracles say becomes ``GuardFinding``s
with the event of ``guard_policy.EVENTS`` they fall under.

A reader's refusal is never a pass: a block that no reader accepts and
that names a security-relevant field is ``unparseable``, and one that reads
but is not a whole object an oracle judges (a bare ``securityContext``, a
lone statement, a kind spotcheck does not know) is ``partial``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from generator.config.iam import Policy, load_policy, parse_policy
from generator.config.k8s import Workload, load_documents, workloads
from generator.config.netpol import NetworkPolicy, read_objects
from generator.errors import SpotcheckError, UnsupportedKind
from generator.guard_policy import GuardPolicy, strongest
from generator.guard_text import MAX_BLOCK_CHARS, Block, security_relevant
from generator.oracle.k8s import ESCALATION_CHECKS, evaluate
from generator.oracle.sg_rules import Group

__all__ = ["CATEGORIES", "Contents", "GuardFinding", "read_block"]

logger = logging.getLogger(__name__)

CATEGORIES = (
    "pod-security", "host-namespaces", "host-paths", "capabilities", "volumes",
    "iam", "network-policy", "security-group",
)  # fmt: skip

_HCL_LANGS = frozenset({"hcl", "terraform", "tf", "hcl2"})
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC", "hostUsers")
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class GuardFinding:
    """Why an output is not a plain pass: the event, where, and what.

    ``block`` is the 0-based index of the config block in the output (None
    for a finding about the whole output); ``path`` the field path inside
    the block (``documents[i].`` first when the block has several YAML
    documents); ``action`` the policy's action for ``event``.
    """

    event: str
    domain: str
    rule: str
    path: str
    message: str
    block: int | None = None
    action: str = "review"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "action": self.action,
            "domain": self.domain,
            "block": self.block,
            "rule": self.rule,
            "path": self.path,
            "message": self.message,
        }


@dataclass
class Contents:
    """What a text's blocks held, for the diff: each object by a stable name."""

    workloads: list[tuple[str, Workload]] = field(default_factory=list)
    policies: list[tuple[str, Policy]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    netpols: list[NetworkPolicy] = field(default_factory=list)
    findings: list[GuardFinding] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)
    judged: list[str] = field(default_factory=list)  # "Pod/web", "policy[0]", ...


def read_block(block: Block, index: int, policy: GuardPolicy, into: Contents) -> None:
    """Judge one block, adding its objects, findings and categories to ``into``."""
    text = block.text
    if not text.strip():
        return
    if len(text) > MAX_BLOCK_CHARS:
        # Not read, so not cleared: whatever it holds goes to a human.
        reader = _Reader(index, policy, into, relevant=True)
        reader.unparseable("size", f"{len(text):,} characters; too large to judge")
        return
    reader = _Reader(index, policy, into, security_relevant(text))
    if block.cut:
        reader.unparseable("cut", "the block is cut off (its fence never closes)")
    try:
        if block.lang in _HCL_LANGS or block.shape == "hcl" or _looks_hcl(text):
            reader.terraform(text)
        elif text.lstrip()[:1] in "{[" and '"Statement"' in text:
            reader.iam_json(text)
        else:
            reader.kubernetes(text)
    except SpotcheckError as exc:
        reader.unparseable("unreadable", str(exc))
    except Exception as exc:  # noqa: BLE001 - a model's text must not crash a server
        logger.warning("block %d: reader failed: %r", index, exc)
        reader.unparseable("reader-error", f"could not be judged: {exc!r}")


def _looks_hcl(text: str) -> bool:
    head = text.lstrip()
    return head.startswith(("resource ", "data ", "variable ", "locals ", "module "))


class _Reader:
    """Turns one block's objects and oracle answers into findings."""

    def __init__(self, index: int, policy: GuardPolicy, into: Contents, relevant):
        self.index = index
        self.policy = policy
        self.into = into
        self.relevant = relevant

    def add(self, event: str, domain: str, rule: str, path: str, message: str):
        self.into.findings.append(
            GuardFinding(
                event, domain, rule, path, message, self.index,
                self.policy.action(event),
            )
        )  # fmt: skip

    def unparseable(self, rule: str, message: str, domain: str = "") -> None:
        # A block naming no security-relevant field is not ours to judge.
        if self.relevant:
            self.add("unparseable", domain, rule, "", message)

    # --- Kubernetes ---------------------------------------------------------

    def kubernetes(self, text: str) -> None:
        documents = load_documents(text, source=f"block {self.index}")
        present = [d for d in documents if d is not None]
        for number, document in enumerate(documents):
            if document is None:
                continue
            prefix = f"documents[{number}]." if len(present) > 1 else ""
            self.document(document, number, prefix)

    def document(self, document: Any, number: int, prefix: str) -> None:
        if not isinstance(document, dict):
            self.partial(f"a YAML {type(document).__name__}, not a config object")
            return
        if "Statement" in document and "kind" not in document:
            self.iam(parse_policy(document, source=f"block {self.index}"))
            return
        if not isinstance(document.get("kind"), str) or "apiVersion" not in document:
            self.partial("a fragment without apiVersion and kind")
            return
        kind = document["kind"]
        if kind == "NetworkPolicy" or kind.endswith("List"):
            try:
                self.netpol(document, number)
            except SpotcheckError as exc:
                self.unparseable("invalid", str(exc), "netpol")
        try:
            found = workloads(document, source=f"block {self.index}", index=number)
        except UnsupportedKind:
            self.partial(f"kind {document['kind']!r} is not one spotcheck judges")
            return
        for workload in found:
            self.workload(workload, prefix)

    def partial(self, what: str) -> None:
        if self.relevant:
            self.add(
                "partial", "", "partial", "",
                f"{what}; no oracle can judge it on its own",
            )  # fmt: skip

    def workload(self, workload: Workload, prefix: str) -> None:
        name = f"{workload.kind}/{workload.name}"
        self.into.workloads.append((prefix, workload))
        self.into.judged.append(name)
        self.into.categories.update(_pod_categories(workload.spec))
        evaluation = evaluate(workload, self.policy.pss_version)
        baseline = {id(f) for f in evaluation.failing("baseline")}
        restricted = {id(f) for f in evaluation.failing("restricted")}
        for finding in evaluation.findings:
            events = []
            if finding.rule in ESCALATION_CHECKS:
                events.append("k8s_escalation")
            if id(finding) in baseline:
                events.append("k8s_baseline")
            if id(finding) in restricted:
                events.append("k8s_restricted")
            if not events:
                continue  # a replaced check that no level in force counts
            # The event whose action is strongest speaks for the finding.
            actions = [self.policy.action(e) for e in events]
            event = events[actions.index(strongest(actions))]
            self.add(
                event, "k8s", finding.rule, prefix + finding.path,
                f"{name}: {finding.message}",
            )  # fmt: skip

    def netpol(self, document: dict[str, Any], number: int) -> None:
        from generator.guard_diff import allow_all_rules

        found = read_objects([document], source=f"block {self.index}")
        for netpol in found.policies:
            self.into.netpols.append(netpol)
            self.into.categories.add("network-policy")
            self.into.judged.append(f"NetworkPolicy/{netpol.key}")
            for path, message in allow_all_rules(netpol):
                self.add("netpol_allow_all", "netpol", "allow-all", path, message)

    # --- IAM ----------------------------------------------------------------

    def iam_json(self, text: str) -> None:
        if text.lstrip().startswith("["):
            self.partial("a JSON list of statements, not a policy document")
            return
        self.iam(load_policy(text, source=f"block {self.index}"))

    def iam(self, policy: Policy, name: str = "", prefix: str = "") -> None:
        from generator.oracle.iam import answers

        name = name or f"policy[{len(self.into.policies)}]"
        self.into.policies.append((name, policy))
        self.into.categories.add("iam")
        self.into.judged.append(name)
        for question, answer in answers(policy).items():
            if answer.value == "no":
                continue
            event = f"iam_{question}" if answer.value == "yes" else "iam_depends"
            for finding in answer.findings or ():
                self.add(
                    event, "iam", f"{question}:{finding.rule}",
                    prefix + finding.path, f"{name}: {finding.message}",
                )  # fmt: skip
            if not answer.findings:
                self.add(event, "iam", question, prefix, f"{name}: {answer.reason}")

    # --- Terraform ----------------------------------------------------------

    def terraform(self, text: str) -> None:
        from generator.config.terraform import iam_documents, load_module
        from generator.oracle.sg import answer
        from generator.oracle.sg_rules import security_groups

        module = load_module(text, source=f"block {self.index}")
        for found in iam_documents(module):
            name = f"{found.address}.{found.attribute}"
            if found.document is None:
                self.into.categories.add("iam")
                self.add(
                    "iam_depends", "iam", "unresolved", name,
                    f"{name}: cannot be read from this answer alone: "
                    f"{found.unresolved.reason}",
                )  # fmt: skip
                continue
            policy = parse_policy(found.document, source=f"block {self.index}")
            self.iam(policy, name, prefix=f"{name}.")
        for group in security_groups(module):
            self.into.groups.append(group)
            self.into.categories.add("security-group")
            self.into.judged.append(group.address)
            question = self.policy.sg_question
            for version in (4, 6):
                result = answer(group, question, version)
                if result.value == "no":
                    continue
                event = "sg_open" if result.value == "yes" else "sg_undecidable"
                self.add(
                    event, "sg", f"open_ipv{version}", group.address,
                    f"{group.address}: port={question} {result.reason}",
                )  # fmt: skip


def _pod_categories(spec: dict[str, Any]) -> set[str]:
    """The categories a pod spec touches, by the fields it writes."""
    found = {"pod-security"}
    if any(key in spec for key in _HOST_NAMESPACES):
        found.add("host-namespaces")
    volumes = spec.get("volumes")
    if isinstance(volumes, list) and volumes:
        found.add("volumes")
        if any(isinstance(v, dict) and "hostPath" in v for v in volumes):
            found.add("host-paths")
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        for container in containers if isinstance(containers, list) else ():
            if not isinstance(container, dict):
                continue
            context = container.get("securityContext")
            if isinstance(context, dict) and "capabilities" in context:
                found.add("capabilities")
    return found
