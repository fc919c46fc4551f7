"""scripts/crosscheck_iam.py: the classifier's rules on small policies with
hand-made peer results (no peer venv needed), the comparison and report, and
one run of the whole script when .venv-iampeers exists."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> Any:
    name = "crosscheck_iam"
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "scripts" / "crosscheck_iam.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cc = _load()

# What the peer run reports about the peers' databases, cut to what we use.
FACTS = {
    "cloudsplaining_wildcard_only": ["ec2:describeinstances"],
    "cloudsplaining_names": {
        "iam:createaccesskey": "iam:CreateAccessKey",
        "iam:putuserpolicy": "iam:PutUserPolicy",
    },
}
CATALOGUES = {
    "cloudsplaining": {
        "PutUserPolicy": ["iam:putuserpolicy"],
        "CreateAccessKey": ["iam:createaccesskey"],
        "CreateEC2WithExistingIP": ["iam:passrole", "ec2:runinstances"],
    },
    "parliament": {
        "PutUserPolicy": ["iam:putuserpolicy"],
        "CreateAccessKey": ["iam:createaccesskey"],
        "PutRolePolicy": ["iam:putrolepolicy", "sts:assumerole"],
        "CreateEC2WithExistingIP": ["iam:passrole", "ec2:runinstances"],
    },
}


def method(mid: str, actions: list[str], cs: str = "", pa: str = "") -> Any:
    aliases = {k: (v,) for k, v in (("cloudsplaining", cs), ("parliament", pa)) if v}
    return cc.Method(mid, tuple(a.lower() for a in actions), (), aliases)


METHODS = {
    m.id: m
    for m in (
        method("iam-put-user-policy", ["iam:PutUserPolicy"], "PutUserPolicy",
               "PutUserPolicy"),
        method("iam-create-access-key", ["iam:CreateAccessKey"], "CreateAccessKey",
               "CreateAccessKey"),
        method("iam-put-role-policy", ["iam:PutRolePolicy"], pa="PutRolePolicy"),
        method("ec2-passrole-runinstances", ["iam:PassRole", "ec2:RunInstances"],
               "CreateEC2WithExistingIP", "CreateEC2WithExistingIP"),
        method("ssm-send-command", ["ssm:SendCommand"]),
    )
}  # fmt: skip


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> dict:
    return {"Version": version, "Statement": list(statements)}


def case(cid: str, doc: dict, question: str = "privesc", kind: str = "identity"):
    return {"id": cid, "family": "test", "question": question,
            "text": json.dumps(doc), "policy": doc, "kind": kind,
            "truth": {"verdict": "?", "methods": None, "statements": None}}  # fmt: skip


def ctx(doc: dict, peer: str, out: dict, spot: dict | None = None, **kw: Any):
    spot = spot or {"verdict": "yes", "methods": [], "statements": []}
    return cc.Ctx(case("c", doc, **kw), peer, out, FACTS, spot)


MFA = {"Bool": {"aws:MultiFactorAuthPresent": "false"}}
USER = "arn:aws:iam::111122223333:user/"


# --- matching as IAM and as the peers do it ---------------------------------------


def test_action_matching_and_cloudsplaining_expansion() -> None:
    assert cc.amatch("IAM:createACCESSkey", "iam:CreateAccessKey")
    assert cc.amatch("iam:?ttachUserPolicy", "iam:AttachUserPolicy")
    assert not cc.amatch("iam:Create*", "iam:PutUserPolicy")
    # policy_sentry: '?' without '*' stays literal (trap 6), an upper-case
    # prefix is not found for expansion (trap 7), a literal name is lowered.
    assert not cc.cs_expands("iam:?ttachuserpolicy", "iam:attachuserpolicy")
    assert not cc.cs_expands("IAM:*", "iam:createaccesskey")
    assert cc.cs_expands("iam:?ttach*", "iam:attachuserpolicy")
    assert cc.cs_expands("IAM:CreateAccessKey", "iam:createaccesskey")
    # A Deny subtracts by spelling (trap 8).
    assert not cc.cs_subtracts("IAM:CREATEACCESSKEY", "iam:createaccesskey", FACTS)
    assert cc.cs_subtracts("iam:CreateAccessKey", "iam:createaccesskey", FACTS)


def test_reaches_skips_statements_about_other_services() -> None:
    on_bucket = allow("*", "arn:aws:s3:::b/*")
    assert not cc.reaches(on_bucket, "iam:createaccesskey")
    assert cc.reaches(allow("*", USER + "*"), "iam:createaccesskey")
    assert cc.reaches({"Effect": "Allow", "Action": "*", "NotResource": "x"}, "a:b")
    assert cc.allows(policy(on_bucket), "iam:createaccesskey") == []


# --- privesc: why a peer misses what spotcheck finds ------------------------------


CS_NONE = {"methods": [], "counted": [], "allowed": []}


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        (allow("iam:PutUserPolicy", "arn:aws:iam::*:user/*"), "cs-literal-star"),
        ({"Effect": "Allow", "Action": "iam:PutUserPolicy", "NotResource": USER + "x"},
         "cs-notresource-allow"),
        (allow("iam:PutUserPolicy", Condition=MFA), "cs-skips-conditional-allow"),
        (allow("iam:P?tUserPolicy"), "cs-question-mark"),
        (allow("IAM:Put*"), "cs-prefix-case"),
    ],
)  # fmt: skip
def test_cloudsplaining_miss_rules(statement: dict, rule: str) -> None:
    c = ctx(policy(statement), "cloudsplaining", CS_NONE)
    assert cc.miss_reasons(c, "iam:putuserpolicy") == [rule]


def test_cloudsplaining_deny_rules_need_the_deny_to_be_partial() -> None:
    counted = {"methods": [], "counted": ["iam:putuserpolicy"], "allowed": []}
    narrow = policy(allow("iam:PutUserPolicy"), deny("iam:*", USER + "admin"))
    c = ctx(narrow, "cloudsplaining", counted)
    assert cc.miss_reasons(c, "iam:putuserpolicy") == ["cs-deny-ignores-resource"]
    maybe = policy(allow("iam:PutUserPolicy"), deny("iam:PutUserPolicy", Condition=MFA))
    c = ctx(maybe, "cloudsplaining", counted)
    assert cc.miss_reasons(c, "iam:putuserpolicy") == ["cs-deny-ignores-condition"]
    # A Deny on every resource, unconditional, denies for IAM too: no rule,
    # so the row would be UNCLASSIFIED (spotcheck said yes against it).
    total = policy(allow("iam:PutUserPolicy"), deny("iam:PutUserPolicy"))
    assert (
        cc.miss_reasons(ctx(total, "cloudsplaining", counted), "iam:putuserpolicy")
        == []
    )


def test_parliament_miss_rules() -> None:
    out = {"methods": [], "valid": True, "issues": [], "referenced": [], "allowed": []}
    notaction = policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})
    c = ctx(notaction, "parliament", out)
    assert cc.miss_reasons(c, "iam:putuserpolicy") == ["pa-ignores-notaction"]
    self_only = {"Effect": "Deny", "Action": "iam:*", "NotResource": USER + "me"}
    c = ctx(policy(allow("iam:*"), self_only), "parliament", out)
    assert cc.miss_reasons(c, "iam:putuserpolicy") == ["pa-notresource-deny-as-star"]
    # An Action Allow on * that parliament drops anyway: nothing re-checks it.
    assert (
        cc.miss_reasons(ctx(policy(allow("iam:*")), "parliament", out), "iam:x") == []
    )


def test_parliament_rejection_must_show_in_the_policy() -> None:
    doc = policy(allow("iam:PutUserPolicy"), allow("bedrock-agentcore:GetThing"))
    unknown = {"issue": "UNKNOWN_PREFIX", "detail": "Unknown prefix bedrock-agentcore",
               "string": "bedrock-agentcore:GetThing"}  # fmt: skip
    out = {"methods": [], "valid": False, "issues": [unknown],
           "allowed": ["iam:putuserpolicy"]}  # fmt: skip
    assert cc._rejection_shown(ctx(doc, "parliament", out))
    made_up = {**unknown, "string": "nothing:InThePolicy"}
    assert not cc._rejection_shown(ctx(doc, "parliament", {**out, "issues": [made_up]}))


# --- privesc: why spotcheck refuses what a peer reports ---------------------------


def test_cloudsplaining_extra_rules() -> None:
    c = ctx(policy(allow("iam:CreateAccessKey"), deny("IAM:CREATEACCESSKEY")),
            "cloudsplaining", {})  # fmt: skip
    assert cc.extra_reasons(c, "iam:createaccesskey") == ["cs-deny-spelling"]
    guardrail = {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}
    c = ctx(policy(allow("iam:PutUserPolicy"), guardrail), "cloudsplaining", {})
    assert cc.extra_reasons(c, "iam:putuserpolicy") == ["cs-ignores-notaction-deny"]
    own = allow("IAM:CreateAccessKey", USER + "${aws:username}")
    c = ctx(policy(own), "cloudsplaining", {})
    assert cc.extra_reasons(c, "iam:createaccesskey") == ["cs-any-resource"]


@pytest.mark.parametrize(
    ("doc", "action", "first"),
    [
        (policy(allow("iam:CreateAccessKey", USER + "${aws:username}")),
         "iam:createaccesskey", "pa-self-credentials"),
        (policy(allow("iam:PutUserPolicy", USER + "${aws:username}"),
                version="2008-10-17"), "iam:putuserpolicy", "pa-variables-old-version"),
        (policy(allow("ec2:*", "arn:aws:ec2:*:*:instance/*")), "ec2:runinstances",
         "pa-multi-resource"),
        (policy({"Effect": "Allow", "Action": "iam:PutUserPolicy", "NotResource": "*"}),
         "iam:putuserpolicy", "pa-notresource-allow-as-star"),
        (policy(allow("iam:PutUserPolicy", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
         "iam:putuserpolicy", "pa-ignores-allow-condition"),
        (policy(allow("iam:PutUserPolicy"), deny("iam:PutUserPolicy", Condition=MFA)),
         "iam:putuserpolicy", "pa-skips-conditional-deny"),
        (policy(allow("iam:PutUserPolicy"), deny("iam:*", "arn:aws:iam::*:user/*")),
         "iam:putuserpolicy", "pa-deny-exact-resource"),
        (policy(allow("iam:PutUserPolicy", USER + "alice")), "iam:putuserpolicy",
         "pa-named-resource"),
    ],
)  # fmt: skip
def test_parliament_extra_rules(doc: dict, action: str, first: str) -> None:
    assert cc.extra_reasons(ctx(doc, "parliament", {}), action)[0] == first


# --- public ------------------------------------------------------------------------


def bucket(condition: dict | None = None, **extra: Any) -> dict[str, Any]:
    st = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
          "Resource": "arn:aws:s3:::b/*", **extra}  # fmt: skip
    return {**st, "Condition": condition} if condition else st


ORG = {"aws:PrincipalOrgID": "o-abc123def4"}


@pytest.mark.parametrize(
    ("doc", "kind", "spot", "rule"),
    [
        (policy(bucket({"StringEquals": ORG, "IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})),
         "resource", "no", "cs-public-ors-keys"),
        (policy(bucket({"StringEquals": {"aws:SourceOrgID": "o-abc123def4"}})),
         "resource", "no", "cs-public-ignored-key"),
        (policy(bucket(), deny("s3:*", "arn:aws:s3:::b/*", Principal="*",
                               Condition={"StringNotEquals": ORG})),
         "resource", "no", "cs-public-ignores-deny"),
        (policy(bucket({"StringEqualsIfExists": ORG})), "resource", "yes",
         "cs-public-ifexists"),
        (policy({**{k: v for k, v in bucket().items() if k != "Action"},
                 "NotAction": "s3:DeleteBucket"}), "resource", "yes",
         "cs-public-notaction"),
        (policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                 "Condition": {"Bool": {"aws:SecureTransport": "true"}}}),
         "trust", "yes", "cs-trust-conditional"),
        (policy({"Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                 "Action": "sts:AssumeRoleWithWebIdentity"}), "trust", "yes",
         "cs-trust-literal-action"),
        (policy({"Effect": "Allow", "Principal": {"Federated": "accounts.google.com"},
                 "Action": "s3:GetObject", "Resource": "*"}), "resource", "yes",
         "cs-public-federated"),
    ],
)  # fmt: skip
def test_public_rules(doc: dict, kind: str, spot: str, rule: str) -> None:
    answer = {"verdict": spot, "methods": [], "statements": []}
    c = ctx(doc, "cloudsplaining", {"public": spot == "no"}, answer, kind=kind)
    assert cc.public_reasons(c) == [rule]


# --- the comparison and the report ------------------------------------------------


def _peers(results: dict[str, dict]) -> dict[str, Any]:
    return {"versions": {"cloudsplaining": "t", "parliament": "t"},
            "catalogues": CATALOGUES, "facts": FACTS, "results": results}  # fmt: skip


CASES = [
    case("star-role", policy(allow("iam:PassRole", "arn:aws:iam::*:role/*"),
                             allow("ec2:RunInstances"))),
    case("both-yes", policy(allow(["iam:PutUserPolicy", "iam:PutRolePolicy"]))),
    case("ssm", policy(allow("ssm:SendCommand"))),
    case("odd", policy(allow("iam:PutUserPolicy"), deny("iam:PutUserPolicy"))),
    case("unsure", policy(allow("iam:PutUserPolicy", USER + "alice"))),
    case("broken", policy(allow("iam:PutUserPolicy"))),
    case("admin", policy(allow("*")), question="admin"),
]  # fmt: skip
SPOT = {
    "star-role": {"verdict": "yes", "methods": ["ec2-passrole-runinstances"]},
    "both-yes": {"verdict": "yes", "methods": ["iam-put-role-policy",
                                               "iam-put-user-policy"]},
    "ssm": {"verdict": "yes", "methods": ["ssm-send-command"]},
    "odd": {"verdict": "yes", "methods": ["iam-put-user-policy"]},
    "unsure": {"verdict": "depends", "methods": []},
    "broken": {"verdict": "yes", "methods": ["iam-put-user-policy"]},
    "admin": {"verdict": "yes", "methods": []},
}  # fmt: skip
PA_OK = {"valid": True, "issues": [], "referenced": []}
RESULTS = {
    "star-role": {"cloudsplaining": {"methods": [], "counted": ["ec2:runinstances"],
                                     "allowed": ["ec2:runinstances"]}},
    "both-yes": {"parliament": {**PA_OK, "methods": ["PutUserPolicy"],
                                "allowed": ["iam:putrolepolicy", "iam:putuserpolicy"]}},
    "ssm": {"cloudsplaining": {"methods": [], "counted": [], "allowed": []}},
    "odd": {"cloudsplaining": {"methods": [], "counted": ["iam:putuserpolicy"],
                               "allowed": []}},
    "unsure": {"parliament": {**PA_OK, "methods": ["PutUserPolicy"], "allowed": []}},
    "broken": {"cloudsplaining": {"error": "KeyError: 'Effect'"}},
    "admin": {},
}  # fmt: skip


def rows() -> dict[tuple[str, str], dict[str, Any]]:
    result = cc.crosscheck(CASES, SPOT, _peers(RESULTS), METHODS)
    return {(r["id"], r["peer"]): r for r in result["disagreements"]}


def test_verdict_rows_carry_the_rule_that_explains_them() -> None:
    got = rows()
    r = got[("star-role", "cloudsplaining")]
    assert (r["level"], r["side"], r["class"]) == ("verdict", "peer-missed",
                                                   "cs-literal-star")  # fmt: skip
    assert "trap 9" in r["reasons"][0]
    assert got[("ssm", "cloudsplaining")]["class"] == "catalogue-missing"
    assert got[("broken", "cloudsplaining")]["class"] == "peer-error"


def test_method_rows_where_both_say_yes() -> None:
    r = rows()[("both-yes", "parliament")]
    # parliament's PutRolePolicy also needs sts:AssumeRole, not granted.
    assert (r["level"], r["method"], r["class"]) == (
        "method",
        "iam-put-role-policy",
        "catalogue-needs-more",
    )


def test_unexplained_rows_are_unclassified_and_depends_is_not_compared() -> None:
    result = cc.crosscheck(CASES, SPOT, _peers(RESULTS), METHODS)
    got = {(r["id"], r["peer"]): r for r in result["disagreements"]}
    odd = got[("odd", "cloudsplaining")]
    assert odd["class"] == cc.UNCLASSIFIED
    assert odd["detail"] == "no rule for: iam-put-user-policy"
    assert [d["id"] for d in result["depends"]] == ["unsure"]
    assert result["compared"] == {"cloudsplaining": 4, "parliament": 2}
    md = cc.markdown(result)
    assert "| odd | test | privesc | cloudsplaining | yes | no | verdict " in md
    assert "| cloudsplaining | verdict | peer-missed | UNCLASSIFIED | 1 |" in md
    assert "- unsure: parliament says yes" in md
    # Every method in the test catalogues has an alias, and the reverse.
    assert result["alias_gaps"]["cloudsplaining"]["unaliased"] == []
    assert result["alias_gaps"]["parliament"]["unaliased"] == []
    small = {"parliament": {"PutUserPolicy": [], "AddUserToGroup": []}}
    gaps = cc.alias_gaps(small, METHODS)
    assert gaps["parliament"]["unaliased"] == ["AddUserToGroup"]
    assert "PutRolePolicy" in gaps["parliament"]["unknown"]


def test_loading_suites_conformance_files_and_the_catalogue(tmp_path: Path) -> None:
    doc = policy(allow("iam:PutUserPolicy"))
    lines = [
        {"id": "a", "question": "iam:privesc", "config": json.dumps(doc),
         "family": "f", "truth": {"verdict": "unsafe", "violations": [
             {"rule": "iam-put-user-policy", "path": "Statement[0]"}]}},
        {"id": "k", "question": "pss:restricted:v1.37", "config": "x"},
    ]  # fmt: skip
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    [a] = cc.load_suite(tmp_path)
    assert (a["question"], a["kind"]) == ("privesc", "identity")
    assert a["truth"] == {"verdict": "yes", "methods": ["iam-put-user-policy"],
                          "statements": [0]}  # fmt: skip
    conf = {"cases": [{"id": "p", "question": "public", "truth": "NO", "why": "",
                       "policy": policy(bucket({"StringEquals": ORG}))}]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(conf))
    [p] = cc.load_conformance(tmp_path / "c.json")
    assert (p["kind"], p["truth"]["verdict"]) == ("resource", "no")
    spot = {"p": {"verdict": "yes", "reason": "r"}}
    assert cc.truth_mismatches([p], spot)[0]["stored"] == "no"
    methods = cc.load_methods()
    assert methods["iam-attach-role-policy"].aliases["parliament"] == (
        "AttachRolePolicy",
    )  # a note in parentheses is not part of the name


def test_main_with_a_saved_peer_result(tmp_path: Path) -> None:
    # Everything but the peer run, so a missing peer venv hides nothing else.
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"cases": [
        {"id": "star-role", "question": "privesc", "truth": "YES", "why": "",
         "policy": CASES[0]["policy"]}]}))  # fmt: skip
    saved = tmp_path / "peers.json"
    saved.write_text(json.dumps(_peers({"star-role": RESULTS["star-role"]})))
    out = tmp_path / "out"
    assert cc.main(["--cases", str(cases), "--peers-json", str(saved),
                    "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "crosscheck.json").read_text())
    assert result["spotcheck_side"] == "oracle"
    assert {r["class"] for r in result["disagreements"]} == {"cs-literal-star"}
    assert "| star-role |" in (out / "crosscheck.md").read_text()


def test_peer_program_compiles_and_refuses_the_network() -> None:
    compile(cc.PEER_PROGRAM, "peer", "exec")
    assert "socket.socket.connect = _refuse" in cc.PEER_PROGRAM
    assert cc.PINS == ("cloudsplaining==0.9.1", "parliament==1.6.4")


PEER_PYTHON = cc.VENV / "bin" / "python"


@pytest.mark.skipif(
    not PEER_PYTHON.exists(),
    reason="no .venv-iampeers (run scripts/crosscheck_iam.py --setup); CI has "
    "none, and every other part of the script is tested above",
)
def test_whole_script_against_the_real_peers(tmp_path: Path) -> None:
    policies = {
        "T08": ("privesc", CASES[0]["policy"], {"cloudsplaining": "cs-literal-star"}),
        "T01": ("privesc", policy({"Effect": "Allow", "NotAction": ["s3:*"],
                                   "Resource": "*"}), {}),
        "P1": ("public", policy(bucket({"StringEqualsIfExists": ORG})),
               {"cloudsplaining": "cs-public-ifexists"}),
        "R17": ("privesc", policy(allow("iam:PutUserPolicy"),
                                  allow("s3:GetObjectz", "arn:aws:s3:::b/*")),
                {"parliament": "pa-rejects-policy"}),
    }  # fmt: skip
    conf = {"cases": [{"id": k, "question": q, "policy": p, "truth": "?", "why": ""}
                      for k, (q, p, _) in policies.items()]}  # fmt: skip
    (tmp_path / "cases.json").write_text(json.dumps(conf))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "crosscheck_iam.py"),
         "--cases", str(tmp_path / "cases.json"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "crosscheck.json").read_text())
    peers = json.loads((tmp_path / "out" / "peers.json").read_text())
    assert peers["versions"]["cloudsplaining"] == "0.9.1"
    got = {(r["id"], r["peer"]): r["class"] for r in result["disagreements"]}
    for cid, (_, _, expected) in policies.items():
        for peer, rule in expected.items():
            assert got[(cid, peer)] == rule
    assert cc.UNCLASSIFIED not in got.values()
    # parliament ignores the NotAction Allow (trap 1).
    assert got[("T01", "parliament")].startswith("pa-ignores-notaction")
