"""``spotcheck check`` on IAM policies: recognition by content, Terraform, errors."""

from __future__ import annotations

import json

import pytest

from generator.cli import main
from tests.conftest import SHARED

CASES = json.loads((SHARED / "conformance" / "iam" / "cases.json").read_text())["cases"]
WANT = {"YES": "yes", "NO": "no", "DEPENDS": "depends"}

ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
READ = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}  # fmt: skip


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return str(path)


def test_every_conformance_case_through_check_json(tmp_path, capsys):
    files = [write(tmp_path, f"{c['id']}.json", c["policy"]) for c in CASES]
    status, out, err = run(capsys, "--json", *files)
    lines = [json.loads(line) for line in out.splitlines()]
    assert err == "" and status == 1
    assert len(lines) == len(CASES)
    for case, line in zip(CASES, lines, strict=True):
        assert line["domain"] == "iam"
        assert line["verdicts"][case["question"]] == WANT[case["truth"]], case["id"]


def test_identity_policy_gets_privesc_and_admin_resource_policy_public(
    tmp_path, capsys
):
    public = {
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::b/*"}]
    }  # fmt: skip
    status, out, _ = run(capsys, "--json", write(tmp_path, "a.json", ADMIN),
                         write(tmp_path, "p.json", public))  # fmt: skip
    admin, bucket = (json.loads(line) for line in out.splitlines())
    assert admin["kind"] == "identity"
    assert admin["verdicts"] == {"privesc": "yes", "admin": "yes"}
    assert bucket["kind"] == "resource" and bucket["verdicts"] == {"public": "yes"}
    assert {f["question"] for f in admin["findings"]} == {"privesc", "admin"}
    assert all(f["statement"] == 0 for f in admin["findings"])
    assert status == 1


def test_a_policy_answering_no_everywhere_exits_zero(tmp_path, capsys):
    status, out, _ = run(capsys, write(tmp_path, "r.json", READ))
    assert status == 0
    assert "privesc NO  admin NO" in out


def test_kubernetes_json_is_not_taken_for_a_policy(tmp_path, capsys):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"Statement": "x"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}  # fmt: skip
    status, out, _ = run(capsys, "--json", write(tmp_path, "pod.json", pod))
    assert json.loads(out)["domain"] == "k8s"
    assert status == 1  # a bare pod fails restricted


TF = """\
resource "aws_iam_policy" "admin" {
  name   = "admin"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }]
  })
}

resource "aws_iam_role" "ci" {
  name               = "ci"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "from_file" {
  role   = "ci"
  policy = file("policy.json")
}
"""


def test_terraform_policies_are_each_judged_and_unresolved_ones_depend(
    tmp_path, capsys
):
    status, out, _ = run(capsys, "--json", write(tmp_path, "main.tf", TF))
    lines = {line["name"]: line for line in map(json.loads, out.splitlines())}
    assert lines["aws_iam_policy.admin.policy"]["verdicts"] == {
        "privesc": "yes",
        "admin": "yes",
    }
    assert lines["aws_iam_role.ci.assume_role_policy"]["verdicts"] == {"public": "yes"}
    unresolved = lines["aws_iam_role_policy.from_file.policy"]
    assert unresolved["verdicts"] == {"privesc": "depends", "admin": "depends"}
    assert unresolved["findings"][0]["rule"] == "unresolved"
    assert "file" in unresolved["findings"][0]["message"]
    assert status == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Statement": [', "not valid JSON"),
        ('{"Version": "2012-10-17", "Statement": []}', "Statement"),
        ('{"Statement": [{"Effect": "allow", "Action": "s3:*", "Resource": "*"}]}',
         "Statement[0].Effect"),
        ('{"Statement": [{"Effect": "Allow", "Action": "CreateAccessKey", "Resource": "*"}]}',
         "Statement[0].Action"),
        ('{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Bogus": 1}]}',
         "Bogus"),
        ('{"Statement": [{"Effect": "Allow", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}',
         "Effect"),
    ],
)  # fmt: skip
def test_bad_policies_get_one_line_naming_file_and_place(
    tmp_path, capsys, text, expected
):
    path = write(tmp_path, "bad.json", text)
    status, out, err = run(capsys, path)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spotcheck: error: {path}")
    assert expected in lines[0]


def test_bad_terraform_gets_one_line(tmp_path, capsys):
    path = write(tmp_path, "main.tf", 'resource "aws_iam_policy" "x" {\n  policy = \n')
    status, _, err = run(capsys, path)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and path in err


def test_a_ten_megabyte_policy_gets_an_answer_or_one_line(tmp_path, capsys):
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::b/k",
    }
    big = {"Version": "2012-10-17", "Statement": [statement] * 100_000}
    path = write(tmp_path, "big.json", big)
    assert (tmp_path / "big.json").stat().st_size > 10_000_000
    status, out, err = run(capsys, path)
    assert (status, err) == (0, "") or (status == 2 and len(err.splitlines()) == 1)
