"""The IAM mutators, as one explicit list.

``MUTATORS`` is the whole catalogue in the order reports print it; adding a
mutator means adding a line here, and the contract tests pick it up. Each
entry names its family (the input region its cases belong to) and whether
it keeps the meaning (a pure respelling, which must never move a verdict).
``harden_policy``, ``add_broad_deny``, ``restrict_principal_to_account``,
``add_org_deny`` and ``scope_federated_subject`` are the fixes a reviewer
would make: chains start with one on unsafe seeds, and opposite siblings of
unsafe cases are made of them. The edits live in ``iam_grants`` (identity
policies), ``iam_public`` (resource and trust policies) and
``iam_spelling`` (respellings).
"""

from __future__ import annotations

from generator.mutate import iam_grants as grants
from generator.mutate import iam_public as public
from generator.mutate import iam_spelling as spelling
from generator.mutate.base import Mutator

__all__ = ["MUTATORS", "REPAIRS", "mutator_named"]


def _m(fn, family: str, *, keeps_meaning: bool = False) -> Mutator:
    return Mutator(fn.__name__, family, fn, keeps_meaning)


MUTATORS: tuple[Mutator, ...] = (
    # identity policies: what is granted
    _m(grants.grant_escalation_method, "escalation-methods"),
    _m(grants.grant_lookalike_action, "escalation-methods"),
    _m(grants.harden_policy, "escalation-methods"),
    _m(grants.grant_star_action, "admin-shapes"),
    _m(grants.swap_action_for_notaction, "notaction-allow"),
    _m(grants.swap_resource_for_notresource, "notresource"),
    _m(grants.widen_action_wildcard, "action-spelling"),
    _m(grants.split_wildcard, "action-spelling"),
    _m(grants.drop_method_action, "split-statements"),
    # identity policies: what takes it away, or seems to
    _m(grants.add_narrow_deny, "narrow-deny"),
    _m(grants.add_broad_deny, "narrow-deny"),
    _m(grants.add_deny_notaction_guardrail, "deny-notaction-guardrail"),
    _m(grants.add_conditional_deny, "conditional-statements"),
    _m(grants.add_attacker_condition, "conditional-statements"),
    _m(grants.require_mfa_on_allow, "conditional-statements"),
    _m(grants.add_passed_to_service, "passrole-service"),
    _m(grants.scope_multi_resource_action, "multi-resource"),
    # identity policies: where it reaches
    _m(grants.spell_star_as_arn, "arn-star"),
    _m(grants.scope_to_other_account, "arn-star"),
    _m(grants.scope_to_wrong_type, "arn-star"),
    _m(grants.scope_resource_to_username, "self-variables"),
    _m(grants.change_version, "self-variables"),
    # resource and trust policies
    _m(public.make_principal_public, "principal-forms"),
    _m(public.restrict_principal_to_account, "principal-forms"),
    _m(public.add_public_condition, "public-conditions"),
    _m(public.weaken_public_condition, "public-conditions"),
    _m(public.drop_condition, "public-conditions"),
    _m(public.add_org_deny, "resource-deny"),
    _m(public.scope_federated_subject, "federated-trust"),
    _m(public.drop_federated_subject, "federated-trust"),
    # json-spelling: same meaning, other text
    _m(spelling.relayout_json, "json-spelling", keeps_meaning=True),
    _m(spelling.reorder_statements, "json-spelling", keeps_meaning=True),
    _m(spelling.shuffle_statement_keys, "json-spelling", keeps_meaning=True),
    _m(spelling.split_statement, "json-spelling", keeps_meaning=True),
    _m(spelling.merge_statements, "json-spelling", keeps_meaning=True),
    _m(spelling.toggle_value_lists, "json-spelling", keeps_meaning=True),
    _m(spelling.toggle_statement_list, "json-spelling", keeps_meaning=True),
    _m(spelling.name_statements, "json-spelling", keeps_meaning=True),
    _m(spelling.respell_action_case, "json-spelling", keeps_meaning=True),
    _m(spelling.respell_public_principal, "principal-forms", keeps_meaning=True),
    _m(spelling.respell_account_principal, "principal-forms", keeps_meaning=True),
)

# The fixes: each can only take access away (or fence it with a condition).
REPAIRS = (
    "harden_policy",
    "add_broad_deny",
    "restrict_principal_to_account",
    "add_org_deny",
    "add_public_condition",
    "scope_federated_subject",
)

_BY_NAME = {m.name: m for m in MUTATORS}


def mutator_named(name: str) -> Mutator:
    """The mutator called ``name``; ``KeyError`` lists the known names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no mutator {name!r}; known: {', '.join(_BY_NAME)}") from None
