"""``spotcheck check`` on Terraform security groups."""

from __future__ import annotations

import json

from generator.cli import main

GROUP = """resource "aws_security_group" "web" {
  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/1"]
  }
}
"""
HALF = """resource "aws_security_group_rule" "other_half" {
  type              = "ingress"
  security_group_id = aws_security_group.web.id
  protocol          = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_blocks       = var.rest
}
"""
VARS = 'variable "rest" {\n  default = ["128.0.0.0/1"]\n}\n'
POLICY = """resource "aws_iam_policy" "p" {
  policy = jsonencode({Version = "2012-10-17", Statement = [
    {Effect = "Allow", Action = "s3:GetObject", Resource = "*"}]})
}
"""


def run(capsys, *args):
    status = main(["check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def lines(out):
    return [json.loads(line) for line in out.splitlines()]


def test_files_of_one_directory_are_one_module(tmp_path, capsys):
    # Terraform reads every .tf of a directory together: the variable in
    # vars.tf and the rule in rules.tf complete the group in main.tf.
    # Separate rules only: inline ingress beside them would be order-dependent.
    first_half = HALF.replace("other_half", "first_half").replace(
        "var.rest", '["0.0.0.0/1"]'
    )
    (tmp_path / "main.tf").write_text(
        'resource "aws_security_group" "web" {}\n' + first_half + POLICY
    )
    (tmp_path / "rules.tf").write_text(HALF)
    (tmp_path / "vars.tf").write_text(VARS)
    names = [str(tmp_path / n) for n in ("main.tf", "rules.tf", "vars.tf")]
    status, out, err = run(capsys, "--json", "--question", "port=22/tcp", *names)
    reports = lines(out)
    assert err == "" and status == 1
    iam, sg = reports
    assert iam["domain"] == "iam" and iam["file"].endswith("main.tf")
    assert sg["domain"] == "sg" and sg["name"] == "aws_security_group.web"
    assert sg["verdicts"] == {"open_ipv4": "yes", "open_ipv6": "no"}
    assert sg["question"] == "port=22/tcp"
    assert {f["path"] for f in sg["findings"]} >= {"aws_security_group_rule.other_half"}


def test_one_file_alone_does_not_see_the_other_half(tmp_path, capsys):
    (tmp_path / "main.tf").write_text(GROUP)
    status, out, _ = run(
        capsys, "--json", "--question", "22/tcp", str(tmp_path / "main.tf")
    )
    assert lines(out)[0]["verdicts"] == {"open_ipv4": "no", "open_ipv6": "no"}
    assert status == 0


def test_default_question_is_any_tcp_or_udp_port(tmp_path, capsys):
    (tmp_path / "main.tf").write_text(GROUP.replace('"0.0.0.0/1"', '"0.0.0.0/0"'))
    status, out, _ = run(capsys, str(tmp_path / "main.tf"))
    assert status == 1
    assert "open_ipv4 YES  open_ipv6 NO  (port=any)" in out
    assert "tcp 22 open to all of IPv4" in out


def test_undecidable_fails_with_its_reason(tmp_path, capsys):
    (tmp_path / "main.tf").write_text(
        GROUP.replace('["0.0.0.0/1"]', "data.aws_ip_ranges.r.cidr_blocks")
        + 'data "aws_ip_ranges" "r" {}\n'
    )
    status, out, _ = run(capsys, "--json", str(tmp_path / "main.tf"))
    (report,) = lines(out)
    assert status == 1 and report["verdicts"]["open_ipv4"] == "undecidable"
    assert "data.aws_ip_ranges.r" in report["findings"][0]["message"]


def test_invalid_hcl_is_one_line_naming_file_and_place(tmp_path, capsys):
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "aws_security_group" "x" {\n  ingress {\n')
    status, out, err = run(capsys, str(bad))
    assert status == 2
    assert err.count("\n") == 1 and str(bad) in err and "unexpected end of file" in err


def test_a_duplicate_across_files_is_refused(tmp_path, capsys):
    (tmp_path / "a.tf").write_text(GROUP)
    (tmp_path / "b.tf").write_text(GROUP)
    status, _, err = run(capsys, str(tmp_path / "a.tf"), str(tmp_path / "b.tf"))
    assert status == 2 and "aws_security_group.web is also defined in" in err


def test_bad_question_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "main.tf").write_text(GROUP)
    status, _, err = run(capsys, "--question", "port=ssh", str(tmp_path / "main.tf"))
    assert status == 2 and "port=22/tcp" in err
