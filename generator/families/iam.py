"""IAM case families: named regions of the policy space, as strategies.

A family starts from a grammar draw and moves it with named operators (the
mutators of ``generator.mutate.iam``), so each region holds near misses on
both sides of the verdict. Each family below opens with a comment listing
the space it covers; trap numbers are those of shared/research/iam.md
section 2.4. Identity-policy families are asked ``iam:privesc`` and
``iam:admin``, resource- and trust-policy families ``iam:public``;
``weights`` gives a family's share per question. The list is explicit and
ordered; suite selection and the manifest follow its order.

Steps are ``(percent, ((operator, weight), ...))`` as for Kubernetes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from generator.grammar.iam import identity_policies, resource_policies, trust_policies
from generator.grammar.pools import weighted
from generator.mutate.iam import mutator_named
from generator.mutate.iam_base import Policy

__all__ = ["FAMILIES", "QUESTIONS", "IamDraft", "IamFamily", "families_for"]

QUESTIONS = ("iam:privesc", "iam:admin", "iam:public")
_IDENTITY = ("iam:privesc", "iam:admin")

Step = tuple[int, tuple[tuple[str, int], ...]]


@dataclass(frozen=True)
class IamDraft:
    """A candidate policy before the oracle: family, start, and its history.

    ``trail`` holds ``(operator, policy after it or None if it did not
    apply)`` for every attempted operator, as in the Kubernetes ``Draft``.
    """

    family: str
    start: Policy
    trail: tuple[tuple[str, Policy | None], ...]
    method: str = "grammar"
    parent: str | None = None
    seed: int | None = None
    seed_file: str = ""

    @property
    def policy(self) -> Policy:
        applied = [p for _, p in self.trail if p is not None]
        return applied[-1] if applied else self.start

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(name for name, p in self.trail if p is not None)


@dataclass(frozen=True)
class IamFamily:
    """A named region: a base policy strategy, the steps that move it, and
    its weight per question (absent: not asked that question)."""

    name: str
    weights: dict[str, int]
    base: Callable[[], st.SearchStrategy[Policy]]
    steps: tuple[Step, ...] = ()

    def drafts(self) -> st.SearchStrategy[IamDraft]:
        return _drafts(self)


@st.composite
def _drafts(draw, family: IamFamily) -> IamDraft:
    start = draw(family.base())
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    current, trail = start, []
    for percent, choices in family.steps:
        if draw(st.integers(0, 99)) >= percent:
            continue
        name = draw(weighted(choices))
        result = mutator_named(name)(current, rnd)
        trail.append((name, result))
        current = result or current
    return IamDraft(family.name, start, tuple(trail))


def _identity(escalation: str = "none", methods: tuple[str, ...] = (), **kw):
    return lambda: identity_policies(escalation=escalation, methods=methods, **kw)


_GRANTS = (("grant_escalation_method", 3), ("grant_lookalike_action", 2))
_SPELLINGS = (
    ("relayout_json", 3),
    ("reorder_statements", 2),
    ("shuffle_statement_keys", 2),
    ("split_statement", 2),
    ("merge_statements", 1),
    ("toggle_value_lists", 2),
    ("toggle_statement_list", 1),
    ("name_statements", 1),
    ("respell_action_case", 2),
)
_USER_METHODS = (
    "put-user-policy",
    "attach-user-policy",
    "create-access-key",
    "create-login-profile",
    "update-login-profile",
    "delete-user-boundary",
)
_PASSROLE = (
    "passrole-ec2",
    "passrole-lambda",
    "passrole-cloudformation",
    "passrole-glue",
    "passrole-codebuild",
    "passrole-sagemaker",
)

FAMILIES: tuple[IamFamily, ...] = (
    # escalation-methods: one catalogue method granted as written (IAM
    # self-edits, credentials of others, trust rewrites, PassRole plus
    # compute, existing-resource hijacks, boundary removal: trap 30) beside
    # ordinary grants; near misses grant the read-only neighbours instead
    # (iam:GetUserPolicy for iam:PutUserPolicy), or a reviewer's fix
    # removes the grant again.
    IamFamily(
        "escalation-methods",
        {"iam:privesc": 10, "iam:admin": 6},
        _identity(),
        ((75, _GRANTS), (20, (("harden_policy", 1),))),
    ),
    # notaction-allow: Allow with NotAction (trap 1): on "*" it grants iam:*
    # and everything AWS adds later; on one bucket it grants only that
    # bucket's actions; sometimes fenced by a Deny-NotAction guardrail.
    IamFamily(
        "notaction-allow",
        {"iam:privesc": 6, "iam:admin": 6},
        _identity(),
        (
            (50, _GRANTS),
            (100, (("swap_action_for_notaction", 1),)),
            (20, (("add_deny_notaction_guardrail", 1),)),
        ),
    ),
    # deny-notaction-guardrail: "deny everything except s3, logs, ..." as a
    # Deny with NotAction (trap 2) over an escalation grant; near misses
    # list the escalation's own service among the exceptions.
    IamFamily(
        "deny-notaction-guardrail",
        {"iam:privesc": 5, "iam:admin": 3},
        _identity("exact"),
        (
            (100, (("add_deny_notaction_guardrail", 1),)),
            (25, (("widen_action_wildcard", 1),)),
        ),
    ),
    # narrow-deny: a Deny of the escalation action on one resource (the
    # admin role, a prod function) leaves it allowed elsewhere (trap 3);
    # the near miss denies it on "*".
    IamFamily(
        "narrow-deny",
        {"iam:privesc": 6, "iam:admin": 3},
        _identity("exact"),
        ((100, (("add_narrow_deny", 3), ("add_broad_deny", 2))),),
    ),
    # conditional-statements: conditional Deny (MFA IfExists, source IP,
    # org: trap 4, trap 20), an Allow conditioned on attacker-chosen keys
    # (region, request tag, ForAllValues on tag keys), an Allow that needs
    # MFA (possible, not certain: often undecidable, then dropped).
    IamFamily(
        "conditional-statements",
        {"iam:privesc": 5, "iam:admin": 3},
        _identity("exact"),
        (
            (
                100,
                (
                    ("add_conditional_deny", 3),
                    ("add_attacker_condition", 3),
                    ("require_mfa_on_allow", 1),
                ),
            ),
        ),
    ),
    # action-spelling: wildcard and "?" spellings (traps 6, 26), case
    # (traps 7, 8), wildcards split into narrower ones, and read-only
    # look-alikes (iam:Get*, lambda:List*) as near misses.
    IamFamily(
        "action-spelling",
        {"iam:privesc": 7, "iam:admin": 4},
        _identity(),
        (
            (100, _GRANTS),
            (
                85,
                (
                    ("widen_action_wildcard", 4),
                    ("respell_action_case", 2),
                    ("split_wildcard", 1),
                ),
            ),
        ),
    ),
    # arn-star: resources equivalent to "*" without being it (trap 9:
    # arn:aws:iam::*:user/*, arn:aws:iam::111122223333:*), and look-alikes
    # that reach nothing: another account's IAM objects (trap 29), the
    # wrong resource type, a bucket ARN.
    IamFamily(
        "arn-star",
        {"iam:privesc": 6, "iam:admin": 4},
        _identity("exact"),
        (
            (
                100,
                (
                    ("spell_star_as_arn", 3),
                    ("scope_to_other_account", 2),
                    ("scope_to_wrong_type", 2),
                ),
            ),
        ),
    ),
    # notresource: Allow with NotResource (trap 10): everything except the
    # listed ARNs, in every service and account.
    IamFamily(
        "notresource",
        {"iam:privesc": 4, "iam:admin": 4},
        _identity(),
        ((50, _GRANTS), (100, (("swap_resource_for_notresource", 1),))),
    ),
    # self-variables: user actions scoped to user/${aws:username} (trap 11:
    # PutUserPolicy on oneself escalates, CreateAccessKey on oneself does
    # not), under Version 2012-10-17, 2008-10-17 or none (trap 12: the
    # variable becomes literal text), and user paths (trap 28).
    IamFamily(
        "self-variables",
        {"iam:privesc": 6, "iam:admin": 4},
        _identity("exact", _USER_METHODS),
        (
            (90, (("scope_resource_to_username", 1),)),
            (45, (("change_version", 1),)),
        ),
    ),
    # multi-resource: ec2:RunInstances allowed only on instance/* (trap 13)
    # beside PassRole; sometimes PassRole is limited to one service.
    IamFamily(
        "multi-resource",
        {"iam:privesc": 3, "iam:admin": 1},
        _identity("exact", ("passrole-ec2",)),
        (
            (65, (("scope_multi_resource_action", 1),)),
            (25, (("add_passed_to_service", 1),)),
        ),
    ),
    # split-statements: a method's actions spread over several statements
    # (trap 15) in any order; near misses lose one ingredient.
    IamFamily(
        "split-statements",
        {"iam:privesc": 4, "iam:admin": 2},
        _identity("exact", (*_PASSROLE, "update-assume-role-policy")),
        (
            (100, (("split_statement", 1),)),
            (50, (("drop_method_action", 1),)),
            (40, (("reorder_statements", 1),)),
        ),
    ),
    # passrole-service: iam:PassRole conditioned on iam:PassedToService
    # (trap 5): the path of the named service stays open, others close.
    IamFamily(
        "passrole-service",
        {"iam:privesc": 4, "iam:admin": 1},
        _identity("exact", _PASSROLE),
        ((90, (("add_passed_to_service", 1),)),),
    ),
    # admin-shapes: "*" on "*", "*" on one bucket (trap 14), iam:* on "*",
    # PowerUser-style NotAction, broad service grants; sometimes with a
    # Deny on top.
    IamFamily(
        "admin-shapes",
        {"iam:privesc": 4, "iam:admin": 12},
        _identity(),
        (
            (100, (("grant_star_action", 3), ("grant_escalation_method", 1))),
            (
                30,
                (
                    ("add_broad_deny", 1),
                    ("add_narrow_deny", 1),
                    ("add_deny_notaction_guardrail", 1),
                ),
            ),
        ),
    ),
    # json-spelling: one meaning in many spellings (layout, key and
    # statement order, split or merged statements, bare or listed values
    # and statements, Sids, action case: trap 16).
    IamFamily(
        "json-spelling",
        {"iam:privesc": 4, "iam:admin": 3},
        _identity("spelled"),
        ((100, _SPELLINGS), (60, _SPELLINGS)),
    ),
    # mixed: the loose grammar: effect mixes, NotAction and NotResource,
    # conditions, variables and every action and target spelling at once.
    IamFamily(
        "mixed",
        {"iam:privesc": 5, "iam:admin": 4},
        _identity("spelled", loose=True),
    ),
    # principal-forms: "*", {"AWS": "*"}, {"AWS": ["*"]}, a list holding
    # "*", an account id, a root ARN, another account's role, a service
    # (trap 22), opened up or closed down.
    IamFamily(
        "principal-forms",
        {"iam:public": 6},
        lambda: resource_policies(),
        (
            (
                55,
                (
                    ("make_principal_public", 2),
                    ("restrict_principal_to_account", 1),
                ),
            ),
            (
                40,
                (
                    ("respell_public_principal", 2),
                    ("respell_account_principal", 1),
                ),
            ),
        ),
    ),
    # public-conditions: a public principal with conditions that restrict
    # (org id, account, VPC endpoint, narrow IP) or only look like they
    # do (TLS, Referer, o-*, 0.0.0.0/0, a negated operator), ANDed
    # (trap 23); conditions weakened or deleted.
    IamFamily(
        "public-conditions",
        {"iam:public": 7},
        lambda: resource_policies(principal_form="star"),
        (
            (
                85,
                (
                    ("add_public_condition", 3),
                    ("weaken_public_condition", 2),
                    ("drop_condition", 1),
                ),
            ),
            (30, (("weaken_public_condition", 1),)),
        ),
    ),
    # resource-deny: a public Allow cancelled by "Deny unless same org"
    # (trap 24), or not.
    IamFamily(
        "resource-deny",
        {"iam:public": 4},
        lambda: resource_policies(principal_form="aws-star"),
        ((70, (("add_org_deny", 1),)), (20, (("drop_condition", 1),))),
    ),
    # federated-trust: GitHub OIDC with a sub condition, a repo wildcard,
    # aud only, sub "*"; Cognito with and without amr; SAML (trap 25).
    IamFamily(
        "federated-trust",
        {"iam:public": 6},
        lambda: trust_policies(federated=True),
        (
            (
                45,
                (
                    ("scope_federated_subject", 1),
                    ("drop_federated_subject", 1),
                ),
            ),
        ),
    ),
    # trust-principals: role trust for AWS principals and services, opened
    # to anyone or fenced by an org or account condition.
    IamFamily(
        "trust-principals",
        {"iam:public": 4},
        lambda: trust_policies(federated=False),
        (
            (
                45,
                (
                    ("make_principal_public", 2),
                    ("restrict_principal_to_account", 1),
                    ("add_public_condition", 1),
                ),
            ),
            (25, (("respell_public_principal", 1),)),
        ),
    ),
)


def families_for(question: str) -> tuple[IamFamily, ...]:
    """The families asked ``question``, in catalogue order."""
    return tuple(f for f in FAMILIES if question in f.weights)
