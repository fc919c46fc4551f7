"""Monotonicity of the IAM oracle, checked on generated policies.

A Deny can only take permissions away and an Allow can only add them
(research/iam.md §2.1), so adding a Deny statement never moves an answer
up (no -> depends -> yes) and adding an Allow never moves it down. The
policies name at most one account: with several the oracle's own-account
convention (see generator.oracle.iam) tries each, which is not monotone.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.config.iam import parse_policy
from generator.oracle.iam import answer

RANK = {"no": 0, "depends": 1, "yes": 2}
ACCT = "111122223333"

ACTIONS = [
    "*", "iam:*", "iam:PutUserPolicy", "iam:Put*", "iam:CreateAccessKey",
    "iam:PassRole", "ec2:RunInstances", "lambda:CreateFunction",
    "lambda:InvokeFunction", "lambda:UpdateFunctionCode", "iam:AttachRolePolicy",
    "s3:GetObject", "iam:Get*", "sts:AssumeRole", "IAM:createaccesskey",
]  # fmt: skip
RESOURCES = [
    "*", f"arn:aws:iam::{ACCT}:role/*", f"arn:aws:iam::{ACCT}:user/*",
    "arn:aws:iam::*:user/${aws:username}", f"arn:aws:iam::{ACCT}:role/app",
    "arn:aws:ec2:*:*:instance/*", "arn:aws:s3:::bucket/*",
    "arn:aws:lambda:*:*:function:*", f"arn:aws:iam::{ACCT}:user/dev/*",
]  # fmt: skip
CONDITIONS = [
    None,
    {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
    {"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123def4"}},
    {"Bool": {"aws:SecureTransport": "true"}},
]


@st.composite
def statements(draw, effect=None):
    data = {
        "Effect": effect or draw(st.sampled_from(["Allow", "Deny"])),
        draw(st.sampled_from(["Action", "NotAction"])): draw(
            st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True)
        ),
        draw(st.sampled_from(["Resource", "Resource", "NotResource"])): draw(
            st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2, unique=True)
        ),
    }
    condition = draw(st.sampled_from(CONDITIONS))
    if condition:
        data["Condition"] = condition
    return data


PUBLIC_ACTIONS = ["s3:GetObject", "s3:*", "*", "s3:PutObject"]
PUBLIC_RESOURCES = ["arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/private/*", "*"]
PUBLIC_CONDITIONS = CONDITIONS + [
    {"StringEquals": {"aws:PrincipalOrgID": "o-abc123def4"}},
    {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
    {"Bool": {"aws:SecureTransport": "false"}},
]


@st.composite
def public_statements(draw, effect=None):
    data = {
        "Effect": effect or draw(st.sampled_from(["Allow", "Deny"])),
        "Principal": draw(st.sampled_from(["*", {"AWS": "*"}, {"AWS": ACCT}])),
        draw(st.sampled_from(["Action", "NotAction"])): draw(
            st.lists(
                st.sampled_from(PUBLIC_ACTIONS), min_size=1, max_size=2, unique=True
            )
        ),
        draw(st.sampled_from(["Resource", "NotResource"])): draw(
            st.sampled_from(PUBLIC_RESOURCES)
        ),
    }
    condition = draw(st.sampled_from(PUBLIC_CONDITIONS))
    if condition:
        data["Condition"] = condition
    return data


def _values(statements_: list[dict], questions) -> dict[str, int]:
    policy = parse_policy({"Version": "2012-10-17", "Statement": statements_})
    return {q: RANK[answer(policy, q).value] for q in questions}


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
IDENTITY = ("privesc", "admin")


@SETTINGS
@given(st.lists(statements(), min_size=1, max_size=4), statements(effect="Deny"))
def test_adding_a_deny_never_adds_escalation_or_admin(base, extra) -> None:
    before = _values(base, IDENTITY)
    after = _values([*base, extra], IDENTITY)
    for question in IDENTITY:
        assert after[question] <= before[question], question


@SETTINGS
@given(st.lists(statements(), min_size=1, max_size=4), statements(effect="Allow"))
def test_adding_an_allow_never_removes_escalation_or_admin(base, extra) -> None:
    before = _values(base, IDENTITY)
    after = _values([*base, extra], IDENTITY)
    for question in IDENTITY:
        assert after[question] >= before[question], question


@SETTINGS
@given(
    st.lists(public_statements(), min_size=1, max_size=3),
    public_statements(effect="Deny"),
)
def test_adding_a_deny_never_makes_a_policy_public(base, extra) -> None:
    after = _values([*base, extra], ("public",))
    assert after["public"] <= _values(base, ("public",))["public"]


@SETTINGS
@given(
    st.lists(public_statements(), min_size=1, max_size=3),
    public_statements(effect="Allow"),
)
def test_adding_an_allow_never_makes_a_policy_private(base, extra) -> None:
    after = _values([*base, extra], ("public",))
    assert after["public"] >= _values(base, ("public",))["public"]
