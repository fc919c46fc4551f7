"""Terraform configs: read a ``.tf`` file, evaluate what it pins down, and
list the IAM policy documents it sends to AWS.

    module = load_module(text, source="main.tf")
    for doc in iam_documents(module):
        doc.document or doc.unresolved

    sg = module.resources["aws_security_group.web"]
    resolve(module, sg.body).nested("ingress")   # attributes evaluated

The pieces: ``terraform_hcl`` (parsing, the ``Module`` model),
``terraform_eval`` (the evaluator and its supported expression set) and
``terraform_iam`` (policy documents, the ``aws_iam_policy_document``
conversion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from generator.config.terraform_eval import Resolved, TfSet, Unresolved
from generator.config.terraform_hcl import (
    Attribute,
    Block,
    Expression,
    Module,
    Resource,
    Variable,
    load_module,
    merge_modules,
)
from generator.config.terraform_iam import (
    IamDocument,
    iam_documents,
    parse_policy,
    policy_evaluator,
    resource_instances,
)

__all__ = [
    "Attribute",
    "Block",
    "Expression",
    "IamDocument",
    "Module",
    "Resolved",
    "Resource",
    "TfSet",
    "Unresolved",
    "Variable",
    "evaluate",
    "iam_documents",
    "load_module",
    "merge_modules",
    "parse_policy",
    "policy_evaluator",
    "resolve",
    "resource_instances",
]


def evaluate(
    module: Module, expression: Expression, scope: Mapping[str, Any] | None = None
) -> Any:
    """The value of one expression of ``module``, or ``Unresolved``.

    ``scope`` adds root names, e.g. ``{"each": {"key": k, "value": v}}``.
    For many evaluations build one ``policy_evaluator(module)`` and reuse it:
    it caches locals and variables.
    """
    return policy_evaluator(module).evaluate(expression, scope)


def resolve(
    module: Module, block: Block, scope: Mapping[str, Any] | None = None
) -> Resolved:
    """``block`` with its attributes evaluated and dynamic blocks expanded."""
    return policy_evaluator(module).resolve(block, scope)
