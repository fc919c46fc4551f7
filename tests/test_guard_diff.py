"""Weakenings between the input config and the model's output.

Each case changes one setting in a direction the domain's rules call weaker
(a capability added, a Deny removed, a CIDR widened, ...) while the output
still passes the oracle, so only the diff can flag it; the path named is
where the weaker setting sits in the output.
"""

from __future__ import annotations

from test_guard import SAFE_POD

from generator.guard import Guard


def weakened(before: str, after: str) -> list[tuple[str, str]]:
    decision = Guard().decide(f"```\n{after}```", before)
    return [(f.rule, f.path) for f in decision.findings if f.event == "weakened"]


def test_unchanged_and_stricter_outputs_have_no_weakening() -> None:
    assert weakened(SAFE_POD, SAFE_POD) == []
    stricter = SAFE_POD.replace(
        "image: nginx:1.27", "image: nginx:1.27\n    readOnlyRootFilesystem: true"
    )
    assert weakened(SAFE_POD, stricter) == []


def test_capability_added_passes_restricted_but_is_a_weakening() -> None:
    after = SAFE_POD.replace(
        'drop: ["ALL"]', 'drop: ["ALL"]\n        add: ["NET_BIND_SERVICE"]'
    )
    decision = Guard().decide(f"```\n{after}```", SAFE_POD)
    assert decision.decision == "review"
    assert [(f.event, f.path) for f in decision.findings] == [
        ("weakened", "spec.containers[0].securityContext.capabilities.add")
    ]


def test_allow_privilege_escalation_dropped_is_named() -> None:
    after = SAFE_POD.replace("      allowPrivilegeEscalation: false\n", "")
    paths = {p for _, p in weakened(SAFE_POD, after)}
    assert "spec.containers[0].securityContext.allowPrivilegeEscalation" in paths


def test_hostpath_added_is_named() -> None:
    after = SAFE_POD + "  volumes:\n  - name: root\n    hostPath: {path: /}\n"
    paths = {p for _, p in weakened(SAFE_POD, after)}
    assert "spec.volumes[0].hostPath" in paths


POLICY = """{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"},
  {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:GetObject",
   "Resource": "arn:aws:s3:::data/secrets/*"}
]}
"""


def test_deny_removed_and_action_widened() -> None:
    no_deny = POLICY.replace(
        ',\n  {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:GetObject",\n'
        '   "Resource": "arn:aws:s3:::data/secrets/*"}',
        "",
    )
    assert weakened(POLICY, no_deny) == [("deny-removed", "policy[0].Statement[1]")]
    wider = POLICY.replace(
        '"Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"',
        '"Action": "s3:Get*", "Resource": "arn:aws:s3:::data/*"',
    )
    assert weakened(POLICY, wider) == [
        ("allow-widened", "policy[0].Statement[0].Action")
    ]
    narrower = POLICY.replace("arn:aws:s3:::data/*", "arn:aws:s3:::data/public/*", 1)
    assert weakened(POLICY, narrower) == []


TRUST = """{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Principal": {"AWS": "arn:aws:iam::111122223333:role/ci"},
  "Action": "sts:AssumeRole"}]}
"""


def test_trust_principal_widened() -> None:
    wider = TRUST.replace(
        "arn:aws:iam::111122223333:role/ci", "arn:aws:iam::111122223333:root"
    )
    assert weakened(TRUST, wider) == [
        ("allow-widened", "policy[0].Statement[0].Principal")
    ]


SG = """resource "aws_security_group" "web" {
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/8"]
  }
}
"""


def test_cidr_and_port_range_widened() -> None:
    cidr = SG.replace("10.0.0.0/8", "10.0.0.0/7")
    assert weakened(SG, cidr) == [("cidr-widened", "aws_security_group.web.ingress[0]")]
    ports = SG.replace("from_port   = 443", "from_port   = 0")
    assert weakened(SG, ports) == [
        ("ports-widened", "aws_security_group.web.ingress[0]")
    ]
    narrower = SG.replace("10.0.0.0/8", "10.1.0.0/16")
    assert weakened(SG, narrower) == []


NETPOL = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    ports:
    - port: 5432
"""


def test_netpol_rule_widened() -> None:
    any_port = NETPOL.replace("    ports:\n    - port: 5432\n", "")
    assert weakened(NETPOL, any_port) == [("rule-widened", "spec.ingress[0]")]
    assert weakened(NETPOL, NETPOL) == []
