"""The IAM oracle on the 30 traps of research/iam.md §2.4, and its API.

Each expected value is argued in a comment from the rule that decides it
(research/iam.md §2 and the oracle's stated conventions), not read off the
oracle's output.
"""

from __future__ import annotations

import time

import pytest

from generator.config.iam import parse_policy
from generator.errors import ConfigError
from generator.oracle import iam_conditions as cond
from generator.oracle.iam import Undecidable, answer, answers, truth
from generator.oracle.iam_catalogue import expand
from generator.oracle.iam_match import arn_glob

V12 = "2012-10-17"
ACCT = "111122223333"


def policy(*statements: dict, version: str | None = V12):
    data: dict = {"Statement": list(statements)}
    if version:
        data["Version"] = version
    return parse_policy(data)


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def ask(*statements: dict, question: str = "privesc", version: str | None = V12):
    return answer(policy(*statements, version=version), question).value


def public(*statements: dict) -> str:
    return answer(policy(*statements), "public").value


def s3_public(principal="*", **extra) -> dict:
    return {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::bucket/*",
        **extra,
    }


# --- traps 1-21: identity policies -------------------------------------------


def test_trap01_notaction_allow_grants_iam() -> None:
    # NotAction s3:* + Allow grants every non-S3 action, iam:PutUserPolicy on
    # self included: a self-escalation method, and admin tier B.
    statement = {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}
    assert ask(statement) == "yes"
    assert ask(statement, question="admin") == "yes"


def test_trap02_deny_notaction_leaves_only_listed_service() -> None:
    # Deny NotAction s3:* denies everything but S3; no method is S3-only.
    assert (
        ask(allow("*"), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"})
        == "no"
    )


def test_trap03_deny_on_one_resource_keeps_the_rest() -> None:
    # Deny is per resource: keys for every other user stay allowed.
    breakglass = f"arn:aws:iam::{ACCT}:user/breakglass"
    assert (
        ask(allow("iam:CreateAccessKey"), deny("iam:CreateAccessKey", breakglass))
        == "yes"
    )


def test_trap04_conditional_deny_on_ip_is_not_definite() -> None:
    # The source IP is not the caller's to choose: the Deny may or may not
    # apply, so the open path is possible, not definite: depends.
    ip_deny = deny(
        "iam:CreateAccessKey",
        Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    )
    assert ask(allow("iam:CreateAccessKey"), ip_deny) == "depends"
    # An unconditional Deny closes it; an MFA Deny does not (T06: the caller
    # signs in with MFA).
    assert ask(allow("iam:CreateAccessKey"), deny("iam:CreateAccessKey")) == "no"
    mfa = deny(
        "iam:CreateAccessKey",
        Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    )
    assert ask(allow("iam:CreateAccessKey"), mfa) == "yes"


def test_trap05_passed_to_service_narrows_passrole() -> None:
    # PassRole restricted to ec2.amazonaws.com keeps the EC2 path open;
    # restricted to Lambda it closes it (conformance T24).
    def passrole(service: str) -> dict:
        condition = {"StringEquals": {"iam:PassedToService": service}}
        return allow("iam:PassRole", Condition=condition)

    assert ask(passrole("ec2.amazonaws.com"), allow("ec2:RunInstances")) == "yes"
    assert ask(passrole("lambda.amazonaws.com"), allow("ec2:RunInstances")) == "no"
    # Lambda then needs CreateFunction plus Invoke: present, so open again.
    lam = allow(["lambda:CreateFunction", "lambda:InvokeFunction"])
    assert ask(passrole("lambda.amazonaws.com"), lam) == "yes"


def test_trap06_question_mark_matches_one_character() -> None:
    assert ask(allow("iam:Put?serPolicy")) == "yes"  # PutUserPolicy on self
    assert ask(allow("iam:Put??serPolicy")) == "no"  # two characters: nothing


def test_trap07_upper_case_prefix_with_wildcard() -> None:
    assert ask(allow("IAM:*")) == "yes"
    assert expand("IAM:Put*Policy") == expand("iam:put*policy")


def test_trap08_odd_casing_in_a_deny_still_denies() -> None:
    assert ask(allow("iam:CreateAccessKey"), deny("IAM:CREATEACCESSKEY")) == "no"


def test_trap09_resource_equivalent_to_star() -> None:
    # role/* in the named account covers every role: PassRole + EC2 is open.
    roles = f"arn:aws:iam::{ACCT}:role/*"
    assert ask(allow("iam:PassRole", roles), allow("ec2:RunInstances")) == "yes"


def test_trap10_notresource_allow() -> None:
    # Everything but one user, the caller included: attach to self.
    statement = {
        "Effect": "Allow",
        "Action": "iam:AttachUserPolicy",
        "NotResource": f"arn:aws:iam::{ACCT}:user/breakglass",
    }
    assert ask(statement) == "yes"


def test_trap11_self_scoped_keys_are_not_escalation() -> None:
    me = "arn:aws:iam::*:user/${aws:username}"
    # Keys or a password for oneself give nothing new.
    assert ask(allow(["iam:CreateAccessKey", "iam:CreateLoginProfile"], me)) == "no"
    # A policy put on oneself can grant anything.
    assert ask(allow("iam:PutUserPolicy", me)) == "yes"
    assert ask(allow("iam:PutUserPolicy", me), question="admin") == "yes"


def test_trap12_old_version_makes_variables_literal() -> None:
    # Under 2008-10-17 (or no Version) ${aws:username} is text, which no
    # user name can contain: the statement names no real user.
    me = "arn:aws:iam::*:user/${aws:username}"
    assert ask(allow("iam:PutUserPolicy", me), version="2008-10-17") == "no"
    assert ask(allow("iam:PutUserPolicy", me), version=None) == "no"


def test_trap13_multi_resource_actions() -> None:
    pass_any = allow("iam:PassRole")
    ec2 = "arn:aws:ec2:*:*:"
    instance_only = allow("ec2:RunInstances", ec2 + "instance/*")
    assert ask(pass_any, instance_only) == "no"  # no image, no security group
    every = [ec2 + t + "/*" for t in ("instance", "network-interface",
             "security-group", "subnet", "volume")] + ["arn:aws:ec2:*::image/*"]  # fmt: skip
    assert ask(pass_any, allow("ec2:RunInstances", every)) == "yes"
    # Without subnet the reference's required list fails but its
    # instance-store scenario does not need one: not settled by the policy.
    no_subnet = [r for r in every if "subnet" not in r and "volume" not in r]
    assert ask(pass_any, allow("ec2:RunInstances", no_subnet)) == "depends"


def test_trap13b_wildcard_only_actions_need_star() -> None:
    # cloudformation:CreateStackSet has no resource type: a Resource list of
    # specific ARNs grants it nothing, "*" does.
    roles = allow("iam:PassRole")
    named = "arn:aws:cloudformation:*:*:stackset/*"
    both = ["cloudformation:CreateStackSet", "cloudformation:CreateStackInstances"]
    assert ask(roles, allow(both, named)) != "yes"
    assert ask(roles, allow(both)) == "yes"


def test_trap14_star_on_one_bucket_is_not_admin() -> None:
    bucket = allow("*", ["arn:aws:s3:::b", "arn:aws:s3:::b/*"])
    assert ask(bucket, question="admin") == "no"
    assert ask(bucket) == "no"


def test_trap15_actions_split_over_statements_combine() -> None:
    statements = [
        allow("iam:PassRole"),
        allow("lambda:CreateFunction"),
        allow("lambda:InvokeFunction"),
    ]
    assert ask(*statements) == "yes"
    assert ask(*statements[:2]) == "no"  # CreateFunction alone runs nothing


def test_trap16_single_statement_object_and_string_action() -> None:
    data = {"Version": V12, "Statement": allow("iam:PutUserPolicy")}
    assert answer(parse_policy(data), "privesc").value == "yes"


def test_trap17_unknown_actions_do_not_hide_others() -> None:
    statement = allow(["madeup:DoThing", "bedrock-agentcore:InvokeAgentRuntimeCommand"])
    # The AgentCore action alone is the existing-runtime method.
    assert ask(statement) == "yes"
    assert ask(allow(["madeup:DoThing", "iam:PutRolePolicy"])) == "yes"
    # codestar:CreateProject left the catalogue but still matches by name.
    assert ask(allow("iam:PassRole"), allow("codestar:CreateProject")) == "yes"


def test_trap18_lower_case_effect_is_invalid() -> None:
    with pytest.raises(ConfigError, match="case-sensitive"):
        policy({"Effect": "allow", "Action": "iam:*", "Resource": "*"})


def test_trap19_invalid_shapes_are_refused() -> None:
    with pytest.raises(ConfigError, match="both Action and NotAction"):
        policy(
            {"Effect": "Allow", "Action": "a:b", "NotAction": "c:d", "Resource": "*"}
        )
    with pytest.raises(ConfigError, match="duplicate key"):
        truth('{"Statement": [{"Effect": "Allow", "Effect": "Deny"}]}', "iam:privesc")


def test_trap20_condition_key_traps() -> None:
    def c(operator: str, values=("x",)) -> cond.Condition:
        return cond.Condition(operator, "k", tuple(values))

    # Missing key: ForAllValues vacuously true, ForAnyValue false, negated
    # operators true, IfExists true, positive operators false.
    assert cond.entry(c("ForAllValues:StringEquals"), None) == cond.TRUE
    assert cond.entry(c("ForAnyValue:StringEquals"), None) == cond.FALSE
    assert cond.entry(c("StringNotEquals"), None) == cond.TRUE
    assert cond.entry(c("StringEqualsIfExists"), None) == cond.TRUE
    assert cond.entry(c("StringEquals"), None) == cond.FALSE
    # The MFA guardrail: BoolIfExists false fires for long-term keys (absent)
    # and stops for an MFA session.
    mfa = cond.Condition("BoolIfExists", "aws:MultiFactorAuthPresent", ("false",))
    assert cond.entry(mfa, None) == cond.TRUE
    assert cond.entry(mfa, ("true",)) == cond.FALSE


def test_trap21_deny_with_unresolvable_variable_stops_applying() -> None:
    # For a role session ${aws:username} has no value: the Deny matches
    # nothing, so the role can still put a policy on itself.
    named_deny = deny("iam:PutRolePolicy", "arn:aws:iam::*:role/${aws:username}")
    assert ask(allow("iam:PutRolePolicy"), named_deny) == "yes"


# --- traps 22-25: public access ----------------------------------------------


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}])
def test_trap22_everyone_principals(principal) -> None:
    assert public(s3_public(principal)) == "yes"


def test_trap22_specific_and_invalid_principals() -> None:
    assert public(s3_public({"AWS": ACCT})) == "no"  # one account, not everyone
    with pytest.raises(ConfigError, match="wildcard inside"):
        policy(s3_public({"AWS": "arn:aws:iam::*:root"}))
    # Allow + NotPrincipal is invalid; accepted, it is everyone but X.
    everyone_but = dict(s3_public(), NotPrincipal={"AWS": ACCT})
    del everyone_but["Principal"]
    assert public(everyone_but) == "yes"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # Positive operators pinning who or where: outsiders never match.
        ({"StringEquals": {"aws:PrincipalOrgID": "o-abc123def4"}}, "no"),
        ({"StringEquals": {"aws:PrincipalAccount": ACCT}}, "no"),
        ({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, "no"),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, "no"),
        # Negated, match-all and request-shape keys restrict nothing.
        ({"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123def4"}}, "yes"),
        ({"StringLike": {"aws:PrincipalOrgID": "o-*"}}, "yes"),
        ({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, "yes"),
        ({"Bool": {"aws:SecureTransport": "true"}}, "yes"),
        ({"StringLike": {"aws:Referer": "https://example.com/*"}}, "yes"),
        # Keys in one block are ANDed: one restrictive key is enough.
        (
            {
                "Bool": {"aws:SecureTransport": "true"},
                "StringEquals": {"aws:PrincipalOrgID": "o-abc123def4"},
            },
            "no",
        ),
    ],
)
def test_trap23_public_access_conditions(condition, expected) -> None:
    assert public(s3_public(Condition=condition)) == expected


def test_trap24_resource_policy_deny_is_respected() -> None:
    not_org = {"StringNotEquals": {"aws:PrincipalOrgID": "o-abc123def4"}}
    guard = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::bucket/*",
        "Condition": not_org,
    }
    assert public(s3_public(), guard) == "no"
    # A Deny on one prefix leaves the rest of the bucket public.
    partial = dict(guard, Resource="arn:aws:s3:::bucket/private/*")
    assert public(s3_public(), partial) == "yes"
    # A Deny the outsider avoids (plain HTTP only) leaves it public; one it
    # cannot avoid while satisfying the Allow closes it.
    http = dict(guard, Condition={"Bool": {"aws:SecureTransport": "false"}})
    assert public(s3_public(), http) == "yes"
    https_only = s3_public(Condition={"Bool": {"aws:SecureTransport": "false"}})
    assert public(https_only, http) == "no"


def test_trap25_federated_trust_without_subject() -> None:
    github = f"arn:aws:iam::{ACCT}:oidc-provider/token.actions.githubusercontent.com"

    def trust(condition=None, provider=github) -> dict:
        statement = {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
        }
        if condition:
            statement["Condition"] = condition
        return statement

    aud = {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    }
    assert public(trust(aud)) == "yes"  # any repository's workflow
    pinned = {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
        },
        "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/app:*"},
    }
    assert public(trust(pinned)) == "no"
    wide = {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:*"}}
    assert public(trust(wide)) == "yes"
    cognito = "cognito-identity.amazonaws.com"
    assert public(trust(provider=cognito)) == "yes"
    pool = {"StringEquals": {"cognito-identity.amazonaws.com:aud": "us-east-1:pool"}}
    assert public(trust(pool, provider=cognito)) == "no"
    saml = f"arn:aws:iam::{ACCT}:saml-provider/corp"
    assert public(trust(provider=saml)) == "no"


# --- traps 26-30 -------------------------------------------------------------


def test_trap26_wildcards_expand_but_prefixes_do_not_leak() -> None:
    assert ask(allow("iam:Create*")) == "yes"  # names iam:CreateAccessKey
    assert ask(allow("es:*")) == "no"  # es:* is not iam:CreateAccessKey


def test_trap27_arns_are_case_sensitive_and_literal() -> None:
    def glob(text: str):
        return arn_glob(
            text, variables=True, resolve=lambda k: None, unknown_as_star=False
        )

    role = f"arn:aws:iam::{ACCT}:role/a+b"
    assert glob(role).matches(role)  # "+" is a character, not a regex
    assert not glob(role).matches(f"arn:aws:iam::{ACCT}:role/aab")
    assert not glob(f"arn:aws:iam::{ACCT}:ROLE/*").matches(
        f"arn:aws:iam::{ACCT}:role/x"
    )
    # So an upper-cased resource grants nothing over real users.
    assert ask(allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCT}:USER/*")) == "no"


def test_trap28_user_paths() -> None:
    plain = arn_glob(
        f"arn:aws:iam::{ACCT}:user/alice",
        variables=True,
        resolve=lambda k: None,
        unknown_as_star=False,
    )
    assert not plain.matches(f"arn:aws:iam::{ACCT}:user/dev/alice")
    # Denying every user with a path leaves the default-path users open.
    paths = deny("iam:CreateAccessKey", f"arn:aws:iam::{ACCT}:user/*/*")
    assert ask(allow("iam:CreateAccessKey"), paths) == "yes"
    # Self-escalation scoped to a path the caller (default path) is not on:
    # only users under /dev/ can be targeted, maybe the caller, maybe not.
    assert (
        ask(allow("iam:PutUserPolicy", f"arn:aws:iam::{ACCT}:user/dev/*")) == "depends"
    )


def test_trap29_other_account_iam_resources_grant_nothing() -> None:
    other = policy(allow("iam:PutUserPolicy", "arn:aws:iam::999988887777:user/*"))
    # Told the caller's account, the grant is over a foreign account: nothing.
    assert answer(other, "privesc", account=ACCT).value == "no"
    # Convention: with one account named, it is taken as the caller's own.
    assert answer(other, "privesc").value == "yes"


def test_trap30_removing_a_guardrail_is_escalation() -> None:
    me = "arn:aws:iam::*:user/${aws:username}"
    assert ask(allow("iam:DeleteUserPermissionsBoundary", me)) == "yes"
    assert ask(allow("iam:DetachRolePolicy", "arn:aws:iam::*:role/*")) == "yes"
    # Not admin-equivalent: the caller must already hold more than it uses.
    assert ask(allow("iam:DeleteUserPermissionsBoundary", me), question="admin") == "no"


# --- admin tiers -------------------------------------------------------------


def test_admin_tiers() -> None:
    result = answer(policy(allow("*")), "admin")
    assert (result.value, result.findings[0].rule) == ("yes", "literal-admin")
    iam_full = answer(policy(allow("iam:*")), "admin")
    assert (iam_full.value, iam_full.findings[0].rule) == ("yes", "admin-equivalent")
    # PowerUserAccess shape: escalation through Lambda etc., not admin.
    power = {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"],
             "Resource": "*"}  # fmt: skip
    assert ask(power, question="admin") == "no"
    assert ask(power) == "yes"
    # PassRole paths need a privileged role to exist: escalation, not admin.
    assert (
        ask(allow("iam:PassRole"), allow("ec2:RunInstances"), question="admin") == "no"
    )
    # Admin only from a network the caller may or may not be on.
    ip = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    assert ask(allow("*", Condition=ip), question="admin") == "depends"


def test_attach_policy_condition_on_policy_arn() -> None:
    # Attaching only a customer-managed policy of the account: whether one is
    # admin-grade is outside the policy.
    own = {"ArnLike": {"iam:PolicyARN": f"arn:aws:iam::{ACCT}:policy/team-*"}}
    assert (
        ask(allow("iam:AttachUserPolicy", Condition=own), question="admin") == "depends"
    )
    admin = {
        "ArnEquals": {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
    }
    assert (
        ask(allow("iam:AttachUserPolicy", Condition=admin), question="admin") == "yes"
    )


# --- API ----------------------------------------------------------------------


def test_truth_carries_methods_and_raises_on_depends() -> None:
    text = '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:PutUserPolicy", "Resource": "*"}}'  # noqa: E501
    result = truth(text, "iam:privesc")
    assert result.verdict == "unsafe"
    assert "iam-put-user-policy" in result.rules
    assert result.violations[0].path == "Statement[0]"
    assert truth(text, "iam:admin").rules == ("admin",)
    readonly = text.replace("iam:PutUserPolicy", "iam:Get*")
    assert truth(readonly, "iam:privesc").verdict == "safe"
    named = text.replace('"*"}', '"arn:aws:iam::111122223333:user/dev/*"}')
    with pytest.raises(Undecidable):
        truth(named, "iam:privesc")


def test_answers_picks_questions_by_kind() -> None:
    assert set(answers(policy(allow("s3:GetObject")))) == {"privesc", "admin"}
    assert set(answers(policy(s3_public()))) == {"public"}
    with pytest.raises(ConfigError, match="identity"):
        answer(policy(s3_public()), "privesc")


def test_expansion_matches_py_iam_expand() -> None:
    from py_iam_expand.actions import expand_actions

    for pattern in ("iam:Put*Policy", "IAM:*", "s3:Get*", "iam:?ttachUserPolicy",
                    "ec2:Describe*", "lambda:*Function*"):  # fmt: skip
        ours = {a.lower() for a in expand(pattern)}
        theirs = {a.lower() for a in expand_actions(pattern)}
        assert ours == theirs, pattern


def test_expansion_is_fast_after_warm_up() -> None:
    expand("iam:*")  # builds the index
    expand.cache_clear()
    patterns = [f"{s}:{p}" for s in ("iam", "s3", "ec2", "lambda") for p in
                ("Get*", "Put*", "*Policy*", "?ist*", "Create*")]  # fmt: skip
    start = time.perf_counter()
    for pattern in patterns:
        expand(pattern)
    assert time.perf_counter() - start < 0.01
