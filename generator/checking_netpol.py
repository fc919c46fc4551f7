"""``spotcheck check`` for NetworkPolicies: reachability over a file set.

NetworkPolicies, Namespaces and Pods (or pod-template holders, standing for
their pods) are gathered from every Kubernetes file of the run and from
``--cluster FILE``, then:

* with ``--question from=NS/POD,to=NS/POD,port=80/tcp``: one report per
  question, kind ``Reachability``, verdicts ``{"allowed": "yes"|"no"|
  "undecidable"}``, findings that explain it (which policies isolate each
  end, which rule lets the flow through, what is unknown);
* without: one report per policy, kind ``NetworkPolicy``, verdicts
  ``{"isolates_ingress": "yes"|"no", "isolates_egress": "yes"|"no"}``
  (whether it selects some pod of the model for that direction), findings
  naming each pod it isolates and the defaults the API server applies.

Reachability is a question, not a violation: ``allowed: yes`` does not fail
``check``. ``undecidable`` does (a gate must not pass what it cannot
prove), and so does an answer other than the question's ``expect=yes|no``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from generator.checking import DocumentReport, FileOutcome, read_text
from generator.config.k8s import load_documents
from generator.config.netpol import Cluster, NetpolObjects, NetworkPolicy, read_objects
from generator.errors import ConfigError
from generator.oracle.netpol import answer, isolation, parse_question

__all__ = ["NetpolFinding", "check_netpol"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetpolFinding:
    question: str
    rule: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "question": self.question,
            "rule": self.rule,
            "path": self.path,
            "message": self.message,
        }


def check_netpol(
    files: Sequence[str], questions: Sequence[str] = (), cluster: str | None = None
) -> Iterator[FileOutcome]:
    """The reports of the netpol pass; an unreadable file yields its error."""
    found = NetpolObjects()
    names = [*files, *([cluster] if cluster and cluster not in files else [])]
    broken = False
    for name in names:
        source = "<stdin>" if name == "-" else name
        try:
            documents = load_documents(read_text(name), source=source)
            read_objects(documents, source=source, into=found)
        except ConfigError as exc:
            broken = True
            yield FileOutcome(source, error=exc)
    if broken:
        return  # a missing policy or pod would change the answers
    model = found.cluster()
    if not questions and not found.policies:
        return  # "NetworkPolicy" named only in a comment or a string
    home = found.policies[0].source if found.policies else (names or ["-"])[0]
    home = cluster or home
    if questions:
        reports = [
            _question(text, i, found.policies, model, home)
            for i, text in enumerate(questions)
        ]
    else:
        reports = [_policy(p, model) for p in found.policies]
    yield FileOutcome(home, tuple(reports))


def _question(text, index, policies, model: Cluster, home: str) -> DocumentReport:
    traffic, expect = parse_question(text, model)
    result = answer(policies, model, traffic)
    findings = [NetpolFinding("allowed", "answer", str(traffic), result.reason)]
    findings += [
        NetpolFinding("allowed", f.rule, f.path, f.message) for f in result.findings
    ]
    if expect and result.value != expect:
        findings.insert(
            0,
            NetpolFinding(
                "allowed", "expected", str(traffic),
                f"expected allowed={expect}, the policies say {result.value}",
            ),
        )  # fmt: skip
    logger.debug("%s: %s", traffic, result.value)
    return DocumentReport(
        home, index, "Reachability", str(traffic), {"allowed": result.value},
        tuple(findings), domain="netpol", question=text, expect=expect or "",
    )  # fmt: skip


def _policy(policy: NetworkPolicy, model: Cluster) -> DocumentReport:
    findings = []
    isolated = {"Ingress": False, "Egress": False}
    for pod in model.pods.values():
        directions = [d for d, chosen in isolation([policy], pod).items() if chosen]
        for direction in directions:
            isolated[direction] = True
        if directions:
            findings.append(
                NetpolFinding(
                    "isolates", "selects", pod.key,
                    f"isolates {pod.key} for {' and '.join(directions).lower()}",
                )
            )  # fmt: skip
    if not policy.types_written:
        types = ", ".join(sorted(policy.policy_types))
        findings.append(
            NetpolFinding(
                "isolates", "defaulted", policy.key,
                f"policyTypes not written: the API server sets [{types}]",
            )
        )  # fmt: skip
    for direction, rules in (("Ingress", policy.ingress), ("Egress", policy.egress)):
        if rules and direction not in policy.policy_types:
            findings.append(
                NetpolFinding(
                    "isolates", "ignored", policy.key,
                    f"{direction.lower()} rules are ignored: {direction} is not in "
                    "policyTypes (some CNIs enforce them anyway)",
                )
            )  # fmt: skip
    verdicts = {
        "isolates_ingress": "yes" if isolated["Ingress"] else "no",
        "isolates_egress": "yes" if isolated["Egress"] else "no",
    }
    return DocumentReport(
        policy.source, policy.index, "NetworkPolicy", policy.key, verdicts,
        tuple(findings), domain="netpol",
    )  # fmt: skip
