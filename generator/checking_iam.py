"""``spotcheck check`` for IAM policy documents, bare or inside Terraform.

Each policy becomes one ``DocumentReport`` in the ``iam`` domain. Identity
policies are asked ``privesc`` and ``admin``; resource and trust policies are
asked ``public`` (DESIGN.md, domains). A policy that Terraform builds from
something this file cannot resolve (a data source, a module output, a file)
is reported with every answer "depends" and the reason as its one finding:
the policy alone cannot show it safe, and guessing would be worse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from generator.checking import DocumentReport
from generator.config.iam import Policy, kind, parse_policy
from generator.config.terraform import Module, iam_documents, load_module
from generator.oracle.iam import answers

__all__ = ["PolicyFinding", "check_module", "check_policy", "check_terraform"]

logger = logging.getLogger(__name__)

# Terraform attributes that hold a resource or trust policy; every other
# policy attribute holds an identity policy.
_TRUST_ATTRIBUTES = frozenset({"assume_role_policy"})
_RESOURCE_TYPES = frozenset(
    {
        "aws_s3_bucket_policy", "aws_sqs_queue_policy", "aws_sns_topic_policy",
        "aws_kms_key", "aws_ecr_repository_policy", "aws_secretsmanager_secret_policy",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PolicyFinding:
    """Why one answer is not "no": the question, the statement and the rule."""

    question: str
    statement: int | None
    rule: str
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "statement": self.statement,
            "rule": self.rule,
            "path": self.path,
            "message": self.message,
        }


def check_policy(policy: Policy, source: str) -> tuple[DocumentReport, ...]:
    """The report on one policy document read from a JSON file."""
    return (_report(policy, source, 0, "-"),)


def check_terraform(text: str, source: str) -> tuple[DocumentReport, ...]:
    """One report per IAM policy document in a ``.tf`` file, in file order."""
    return check_module(load_module(text, source=source), source)


def check_module(module: Module, source: str) -> tuple[DocumentReport, ...]:
    """One report per IAM policy document of a file's parsed module."""
    reports = []
    for index, found in enumerate(iam_documents(module)):
        name = f"{found.address}.{found.attribute}"
        if found.document is None:
            reports.append(_unresolved(found, source, index, name))
        else:
            where = f"{source}:{found.line} ({name})"
            policy = parse_policy(found.document, source=where)
            reports.append(_report(policy, source, index, name))
    return tuple(reports)


def _report(policy: Policy, source: str, index: int, name: str) -> DocumentReport:
    verdicts, findings = {}, []
    for question, answer in answers(policy).items():
        verdicts[question] = answer.value
        for f in answer.findings:
            findings.append(
                PolicyFinding(question, f.statement, f.rule, f.path, f.message)
            )
    logger.debug("%s %s: %s", source, name, verdicts)
    return DocumentReport(
        source, index, kind(policy), name, verdicts, tuple(findings), domain="iam"
    )


def _unresolved(found: Any, source: str, index: int, name: str) -> DocumentReport:
    resource_type = found.address.split(".")[-2]
    if found.attribute in _TRUST_ATTRIBUTES:
        policy_kind, questions = "trust", ("public",)
    elif resource_type in _RESOURCE_TYPES:
        policy_kind, questions = "resource", ("public",)
    else:
        policy_kind, questions = "identity", ("privesc", "admin")
    reason = (
        f"the policy cannot be read from this file alone: {found.unresolved.reason}"
    )
    findings = tuple(
        PolicyFinding(q, None, "unresolved", name, reason) for q in questions
    )
    verdicts = dict.fromkeys(questions, "depends")
    return DocumentReport(
        source, index, policy_kind, name, verdicts, findings, domain="iam"
    )
