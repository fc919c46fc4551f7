"""Reading IAM policy documents: shapes AWS accepts, and errors that say where."""

from __future__ import annotations

import json
import time

import pytest

from generator.config.iam import kind, load_policy, looks_like_policy, parse_policy
from generator.errors import ConfigError
from generator.oracle.iam import answer


def one(**statement) -> dict:
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_reads_lists_strings_and_conditions() -> None:
    policy = parse_policy(
        one(
            Sid="A",
            Effect="Allow",
            Action=["iam:GetUser", "iam:List*"],
            Resource="*",
            Condition={"Bool": {"aws:MultiFactorAuthPresent": True}},
        )
    )
    statement = policy.statements[0]
    assert statement.actions == ("iam:GetUser", "iam:List*")
    assert statement.resources == ("*",)
    assert statement.conditions[0].values == ("true",)
    assert policy.variables


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (one(Effect="allow", Action="iam:*", Resource="*"),
         'Statement[0].Effect: "allow" is not Allow or Deny (the value is '
         'case-sensitive); write "Allow"'),
        (one(Action="iam:*", Resource="*"), "no Effect"),
        (one(Effect="Allow", Action="CreateAccessKey", Resource="*"),
         "has no service prefix"),
        (one(Effect="Allow", Action="i*m:Get", Resource="*"), "service prefix"),
        (one(Effect="Allow", Action="a:b", NotAction="a:c", Resource="*"),
         "both Action and NotAction"),
        (one(Effect="Allow", Action="a:b"), "needs Resource or NotResource"),
        (one(Effect="Allow", Action=[1], Resource="*"), "is not a string"),
        (one(Effect="Allow", Action=[], Resource="*"), "the list is empty"),
        (one(Effect="Allow", Action="a:b", Resource="*", Extra=1), "unknown key"),
        ({"Statement": []}, "the list is empty"),
        ({"Version": "2012-10-17"}, "no Statement"),
        ({"Statement": [], "Foo": 1}, "unknown top-level key"),
        ({"Version": "2020-01-01", "Statement": []}, "Version"),
        (one(Effect="Allow", Action="a:b", Resource="*",
             Condition={"StringEqualz": {"k": "v"}}), "unknown condition operator"),
        ([], "JSON object"),
    ],
)  # fmt: skip
def test_invalid_policies_name_the_place(data, message) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(data, source="p.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("p.json: ")


def test_json_errors() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_policy("{")
    with pytest.raises(ConfigError, match='duplicate key "Action"'):
        load_policy(
            '{"Statement": {"Effect": "Allow", "Action": "a:b", "Action": "c:d"}}'
        )


def test_kinds() -> None:
    identity = parse_policy(one(Effect="Allow", Action="s3:*", Resource="*"))
    trust = parse_policy(
        one(Effect="Allow", Principal={"Service": "ec2.amazonaws.com"},
            Action="sts:AssumeRole")
    )  # fmt: skip
    resource = parse_policy(
        one(Effect="Allow", Principal="*", Action="s3:GetObject",
            Resource="arn:aws:s3:::b/*")
    )  # fmt: skip
    assert (kind(identity), kind(trust), kind(resource)) == (
        "identity", "trust", "resource"
    )  # fmt: skip


def test_looks_like_policy() -> None:
    assert looks_like_policy({"Statement": []})
    assert looks_like_policy({"Version": "2012-10-17", "Statement": {}})
    assert not looks_like_policy({"apiVersion": "v1", "kind": "Pod"})
    assert not looks_like_policy([{"Statement": []}])


def test_a_ten_megabyte_policy_is_read_fast_and_refused_by_the_oracle() -> None:
    statement = {"Effect": "Allow", "Action": ["s3:GetObject"] * 50,
                 "Resource": [f"arn:aws:s3:::bucket-{i}/*" for i in range(50)]}  # fmt: skip
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement] * 4600})
    assert len(text) > 10_000_000
    start = time.perf_counter()
    policy = load_policy(text)
    assert time.perf_counter() - start < 10
    with pytest.raises(ConfigError, match="not judged"):
        answer(policy, "privesc")
