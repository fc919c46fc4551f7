"""Security-group repairs: closed and kept, broke intent, still unsafe, unparseable."""

from __future__ import annotations

from generator.records import Case, Origin, Truth, case_id
from generator.repair_sg import extract_hcl, judge, judge_output

QUESTION = "sg:open_ipv4:22/tcp"


def _group(*blocks: str) -> str:
    body = "\n".join(blocks)
    return f'resource "aws_security_group" "web" {{\n  name = "web"\n{body}\n}}\n'


def _ingress(port: int, cidrs: str = "", extra: str = "") -> str:
    return (f"  ingress {{\n    from_port = {port}\n    to_port = {port}\n"
            f'    protocol = "tcp"\n    cidr_blocks = [{cidrs}]\n{extra}  }}')  # fmt: skip


SSH_WORLD = _ingress(22, '"0.0.0.0/0"')
WEB_WORLD = _ingress(443, '"0.0.0.0/0"')
VPC_DB = _ingress(
    5432, '"10.0.0.0/16"', '    security_groups = ["sg-0fedcba9876543210"]\n'
)
ORIGINAL = _group(SSH_WORLD, WEB_WORLD, VPC_DB)
CASE = Case(case_id("sg", QUESTION, ORIGINAL), "sg", "decoys", Origin("grammar"),
            "hcl", ORIGINAL, QUESTION, Truth("unsafe"))  # fmt: skip


def test_narrowing_ssh_to_the_office_and_keeping_the_rest_is_good():
    fixed = _group(_ingress(22, '"203.0.113.0/24"'), WEB_WORLD, VPC_DB)
    assert judge(CASE, fixed) == (None, "")


def test_dropping_the_public_web_port_broke_the_intent():
    failure, detail = judge(CASE, _group(_ingress(22, '"10.0.0.0/8"'), VPC_DB))
    assert failure == "repair_broke_intent" and "tcp/443" in detail


def test_dropping_the_source_group_broke_the_intent():
    db = _ingress(5432, '"10.0.0.0/16"')
    failure, detail = judge(CASE, _group(WEB_WORLD, db))
    assert failure == "repair_broke_intent" and "sg-0fedcba9876543210" in detail


def test_splitting_the_world_in_halves_is_still_unsafe():
    halves = _ingress(22, '"0.0.0.0/1", "128.0.0.0/1"')
    assert judge(CASE, _group(halves, WEB_WORLD, VPC_DB))[0] == "repair_still_unsafe"


def test_a_variable_without_default_is_still_unsafe_not_closed():
    text = 'variable "ssh" {}\n' + _group(
        _ingress(22).replace("[]", "var.ssh"), WEB_WORLD, VPC_DB)  # fmt: skip
    failure, detail = judge(CASE, text)
    assert failure == "repair_still_unsafe" and detail.startswith("undecidable")


def test_broken_hcl_or_no_terraform_is_unparseable():
    assert judge(CASE, 'resource "aws_security_group" "web" {')[0] == "unparseable"
    assert judge_output(CASE, "Close port 22.")[1] == "unparseable"


def test_terraform_is_found_in_a_fence_or_from_its_first_block():
    assert extract_hcl("```terraform\nlocals {}\n```") == "locals {}\n"
    assert extract_hcl('Fixed:\nresource "a" "b" {}\n') == 'resource "a" "b" {}\n'
