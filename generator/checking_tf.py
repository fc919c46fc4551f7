"""``spotcheck check`` for Terraform: IAM policies and security groups.

The ``.tf`` files of one directory are read together, as Terraform reads
them: a rule in ``rules.tf`` reaches the group in ``main.tf``, a variable
declared in ``variables.tf`` resolves in both. Only the files named on the
command line take part (pass ``dir/*.tf`` to give the whole module).

Per file, in order: its IAM policy reports (``checking_iam``), then one
report per security group instance defined in it and per asked question
(domain ``sg``, verdicts ``open_ipv4`` and ``open_ipv6``, each ``yes``,
``no`` or ``undecidable``; see ``oracle/sg.py``). A group that rules target
but the files do not define is reported in the file of the first such rule.
When one file of a directory cannot be read, its error is reported and the
directory's groups are not judged: a missing file may hold their rules.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from generator.checking import DocumentReport, FileOutcome, read_text
from generator.checking_iam import check_module
from generator.config.terraform import Module, load_module, merge_modules
from generator.errors import ConfigError
from generator.oracle.sg import ANY, Question, answer
from generator.oracle.sg_rules import Group, security_groups

__all__ = ["SgFinding", "check_terraform_files"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SgFinding:
    """Why an answer is not "no": which question, which grant or unknown."""

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


def check_terraform_files(
    names: Sequence[str], questions: Sequence[Question] = (ANY,)
) -> list[FileOutcome]:
    """One outcome per ``.tf`` file of one directory, in the order given."""
    modules: dict[str, Module] = {}
    iam: dict[str, tuple[DocumentReport, ...]] = {}
    errors: dict[str, ConfigError] = {}
    for name in names:
        try:
            module = load_module(read_text(name), source=name)
            iam[name] = check_module(module, name)
            modules[name] = module
        except ConfigError as exc:
            logger.info("bad input: %s", exc)
            errors[name] = exc
    sg: dict[str, list[DocumentReport]] = {name: [] for name in names}
    if not errors and modules:
        try:
            merged = merge_modules(list(modules.values()), source=names[0])
        except ConfigError as exc:
            errors[exc.source or names[0]] = exc
        else:
            _judge_groups(merged, modules, iam, questions, sg)
    outcomes = []
    for name in names:
        if name in errors:
            outcomes.append(FileOutcome(name, error=errors[name]))
        else:
            outcomes.append(FileOutcome(name, (*iam.get(name, ()), *sg[name])))
    return outcomes


def _judge_groups(merged, modules, iam, questions, into) -> None:
    home = {
        address: name
        for name, module in modules.items()
        for address in module.resources
    }
    for group in security_groups(merged):
        name = home[group.resource]
        for question in questions:
            index = len(iam[name]) + len(into[name])
            into[name].append(_report(group, question, name, index))


def _report(
    group: Group, question: Question, source: str, index: int
) -> DocumentReport:
    verdicts, findings = {}, []
    for key, version in (("open_ipv4", 4), ("open_ipv6", 6)):
        result = answer(group, question, version)
        verdicts[key] = result.value
        if result.value == "no":
            continue
        if result.value == "yes":
            findings.append(SgFinding(key, "open", group.address, result.reason))
        findings.extend(
            SgFinding(key, f.rule, f.path, f.message) for f in result.findings
        )
    logger.debug("%s %s %s: %s", source, group.address, question, verdicts)
    return DocumentReport(
        source, index, "aws_security_group", group.address, verdicts,
        tuple(findings), domain="sg", question=f"port={question}",
    )  # fmt: skip


def terraform_groups(names: Sequence[str]) -> list[list[str]]:
    """``.tf`` names grouped by directory, each group at its first name."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(os.path.dirname(os.path.abspath(name)), []).append(name)
    return list(groups.values())
