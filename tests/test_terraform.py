"""Reading Terraform the way Terraform and the AWS provider read it.

Expected values come from the Terraform language docs, the HCL spec and
terraform-provider-aws (policy_document_data_source.go, policy_model.go),
not from running the reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import hcl2
import pytest

from generator.config.terraform import (
    TfSet,
    Unresolved,
    evaluate,
    iam_documents,
    load_module,
    resolve,
)
from generator.config.terraform_hcl import MAX_BYTES
from generator.errors import ConfigError

DATA = Path(__file__).parent / "data" / "terraform"


def value(text: str, name: str = "x", *, prelude: str = ""):
    """Evaluate ``locals { x = <text> }`` after ``prelude``."""
    module = load_module(
        f"{prelude}\nlocals {{\n  {name} = {text}\n}}\n", source="t.tf"
    )
    return evaluate(module, module.locals[name].expression)


def documents(text: str) -> dict[str, object]:
    module = load_module(text, source="t.tf")
    return {
        f"{d.address}.{d.attribute}": d.document or d.unresolved
        for d in iam_documents(module)
    }


def only_document(text: str):
    (found,) = documents(text).values()
    return found


# python-hcl2 8 quirks: each is shown on the installed version, then undone.


def test_quirk_string_literals_keep_quotes():
    raw = hcl2.loads('locals {\n p = "tcp"\n}\n')
    assert raw["locals"][0]["p"] == '"tcp"'
    assert value('"tcp"') == "tcp"


def test_quirk_block_labels_are_quoted():
    text = 'resource "aws_iam_policy" "p" {\n}\n'
    assert '"aws_iam_policy"' in hcl2.loads(text)["resource"][0]
    resource = load_module(text, source="t.tf").resources["aws_iam_policy.p"]
    assert (resource.type, resource.name) == ("aws_iam_policy", "p")


def test_quirk_expressions_come_back_as_dollar_brace_text():
    prelude = 'variable "v" {\n default = ["a"]\n}'
    raw = hcl2.loads(prelude + "\nlocals {\n x = var.v\n}\n")
    assert raw["locals"][0]["x"] == "${var.v}"
    assert value("var.v", prelude=prelude) == ["a"]


def test_quirk_is_block_marker_and_attribute_syntax_stay_apart():
    text = 'resource "a" "b" {\n  ingress {\n  x = 1\n }\n  egress = [{x = 2}]\n}\n'
    body = hcl2.loads(text)["resource"][0]['"a"']['"b"']
    assert body["ingress"][0]["__is_block__"] is True
    block = load_module(text, source="t.tf").resources["a.b"].body
    assert [b.type for b in block.blocks] == ["ingress"]
    assert set(block.attributes) == {"egress"}
    assert "__is_block__" not in block.blocks[0].attributes


def test_quirk_comments_are_not_attributes():
    text = 'resource "a" "b" {\n  # note\n  x = 1 // trailing\n}\n'
    assert "__comments__" in hcl2.loads(text)["resource"][0]['"a"']['"b"']
    block = load_module(text, source="t.tf").resources["a.b"].body
    assert set(block.attributes) == {"x"}


def test_quirk_no_line_numbers_in_hcl2_output_but_lines_here():
    text = '\n\nresource "a" "b" {\n\n  x = 1\n  inner {\n  }\n}\n'
    options = hcl2.SerializationOptions(with_meta=True)
    assert "__start_line__" not in str(hcl2.loads(text, serialization_options=options))
    block = load_module(text, source="t.tf").resources["a.b"].body
    assert block.line == 3
    assert block.attributes["x"].line == 5
    assert block.blocks[0].line == 6


def test_quirk_heredoc_keeps_markers_and_flattening_drops_newline():
    text = "locals {\n  x = <<EOT\nline\nEOT\n}\n"
    assert hcl2.loads(text)["locals"][0]["x"] == '"<<EOT\nline\nEOT"'
    # Terraform keeps the final newline of a heredoc.
    assert value("<<EOT\nline\nEOT") == "line\n"


def test_quirk_flush_heredoc_is_dedented_by_the_least_indent():
    # HCL spec: <<- removes the smallest leading whitespace of non-blank lines.
    assert value("<<-EOT\n    a\n      b\n\n    c\n  EOT") == "a\n  b\n\nc\n"


def test_quirk_jsonencode_is_an_opaque_string_in_hcl2():
    text = 'locals {\n x = jsonencode({a = "b"})\n}\n'
    assert hcl2.loads(text)["locals"][0]["x"] == '${jsonencode({a = "b"})}'
    assert value('jsonencode({b = 1, a = "<x>"})') == '{"a":"\\u003cx\\u003e","b":1}'


def test_quirk_escapes_are_raw_and_double_dollar_is_literal():
    raw = hcl2.loads('locals {\n x = "a\\tb $${y}"\n}\n')["locals"][0]["x"]
    assert raw == '"a\\tb $${y}"'
    assert value('"a\\tb\\u00e9 \\"q\\" $${y} %%{z}"') == 'a\tbé "q" ${y} %{z}'


def test_quirk_bare_identifier_is_an_expression_not_a_string():
    raw = hcl2.loads("locals {\n x = p\n}\n")["locals"][0]["x"]
    assert raw == "p"  # the same as the string "p" once quotes are stripped
    assert isinstance(value("p"), Unresolved)
    assert value('"p"') == "p"


def test_quirk_duplicate_attribute_is_silently_last_wins_in_hcl2():
    text = 'resource "a" "b" {\n  x = 1\n  x = 2\n}\n'
    assert hcl2.loads(text)["resource"][0]['"a"']['"b"']["x"] == 2
    with pytest.raises(ConfigError, match=r"t.tf: 3: attribute 'x' is set twice"):
        load_module(text, source="t.tf")


def test_quirk_quoted_object_keys_keep_quotes():
    raw = hcl2.loads('locals {\n x = {"k:v" = 1}\n}\n')["locals"][0]["x"]
    assert raw == {'"k:v"': 1}
    assert value('{"k:v" = 1, plain = 2}') == {"k:v": 1, "plain": 2}


def test_quirk_numbers_and_quoted_numbers():
    assert value("-1") == -1
    assert value("22.0") == 22 and isinstance(value("22.0"), int)
    assert value("2.5e3") == 2500
    assert value('"22"') == "22"


# Expressions.


def test_interpolation_and_var_defaults_and_locals():
    prelude = (
        'variable "account" {\n default = "111122223333"\n}\n'
        'locals {\n role = "admin"\n}'
    )
    assert (
        value('"arn:aws:iam::${var.account}:role/${local.role}"', prelude=prelude)
        == "arn:aws:iam::111122223333:role/admin"
    )


def test_single_interpolation_keeps_the_value_type():
    assert value('"${[1, 2]}"') == [1, 2]
    assert value('"${true}-${2}"') == "true-2"


def test_variable_type_converts_the_default():
    prelude = 'variable "ports" {\n type = set(string)\n default = [22, "10", 22]\n}'
    result = value("var.ports", prelude=prelude)
    assert isinstance(result, TfSet) and result == ["10", "22"]


def test_concat_tolist_toset_and_spread():
    assert value('concat(["a"], ["b", "c"])') == ["a", "b", "c"]
    assert value('tolist(toset(["b", "a", "b"]))') == ["a", "b"]
    assert value('concat([["x"], ["y"]]...)') == ["x", "y"]


def test_conditional_with_known_condition():
    prelude = 'variable "public" {\n default = true\n}'
    assert value('var.public ? ["0.0.0.0/0"] : []', prelude=prelude) == ["0.0.0.0/0"]
    assert isinstance(value('true ? 1 : "x"'), Unresolved)


def test_index_and_attribute_access():
    prelude = 'locals {\n m = {k = ["a", "b"]}\n}'
    assert value('local.m["k"][1]', prelude=prelude) == "b"
    assert value("local.m.k.0", prelude=prelude) == "a"


def test_heredoc_interpolation():
    prelude = 'variable "b" {\n default = "logs"\n}'
    got = value('<<EOF\n{"Resource": "arn:aws:s3:::${var.b}/*"}\nEOF', prelude=prelude)
    assert got == '{"Resource": "arn:aws:s3:::logs/*"}\n'


@pytest.mark.parametrize(
    "text, reason",
    [
        ("data.aws_vpc.main.cidr_block", "not declared"),
        ("aws_s3_bucket.b.arn", "known only after apply"),
        ("module.m.out", "module outputs"),
        ("var.missing", "no variable"),
        ('file("p.json")', "file()"),
        ('upper("a")', "upper() is not evaluated"),
        ("1 + 1", "operators"),
        ("[for s in [1] : s]", "for expressions"),
        ("each.value", "each.*"),
        ('"%{if true}a%{endif}"', "directives"),
        ("[local.x]", "refers to itself"),
    ],
)
def test_unresolved_forms(text, reason):
    got = value(text)
    assert isinstance(got, Unresolved)
    assert reason in got.reason


def test_variable_without_default_is_unresolved():
    got = value("var.v", prelude='variable "v" {\n type = string\n}')
    assert isinstance(got, Unresolved) and "no default" in got.reason


def test_doubling_locals_stay_bounded():
    lines = ['  a0 = ["x", "x"]']
    lines += [f"  a{i} = concat(local.a{i - 1}, local.a{i - 1})" for i in range(1, 40)]
    module = load_module("locals {\n" + "\n".join(lines) + "\n}\n", source="t.tf")
    got = evaluate(module, module.locals["a39"].expression)
    assert isinstance(got, Unresolved) and "longer than" in got.reason


# Policy documents: every source form.


def test_policies_fixture():
    module = load_module((DATA / "policies.tf").read_text(), source="policies.tf")
    found = {(d.address, d.attribute): d for d in iam_documents(module)}
    assert set(found) == {
        ("aws_iam_policy.encoded", "policy"),
        ("aws_iam_role_policy.heredoc", "policy"),
        ("aws_iam_user_policy.literal", "policy"),
        ("data.aws_iam_policy_document.trust", "json"),
        ("aws_iam_role.app", "assume_role_policy"),
        ("aws_iam_role.app", "inline_policy[0].policy"),
    }
    assert found["aws_iam_policy.encoded", "policy"].document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                # type = string turns the number default into "111122223333"
                "Resource": "arn:aws:s3:::logs-111122223333/*",
            }
        ],
    }
    assert found["aws_iam_role_policy.heredoc", "policy"].document["Statement"] == {
        "Effect": "Deny",
        "NotAction": "iam:*",
        "Resource": "*",
    }
    assert found["aws_iam_user_policy.literal", "policy"].line == 36
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]},
            }
        ],
    }
    assert found["data.aws_iam_policy_document.trust", "json"].document == trust
    assert found["aws_iam_role.app", "assume_role_policy"].document == trust
    inline = found["aws_iam_role.app", "inline_policy[0].policy"]
    assert inline.document is None and "file()" in inline.unresolved.reason


@pytest.mark.parametrize(
    "resource, attribute",
    [
        ("aws_s3_bucket_policy", "policy"),
        ("aws_sqs_queue_policy", "policy"),
        ("aws_sns_topic_policy", "policy"),
        ("aws_kms_key", "policy"),
        ("aws_iam_group_policy", "policy"),
    ],
)
def test_each_policy_resource_is_read(resource, attribute):
    text = f'resource "{resource}" "x" {{\n  {attribute} = jsonencode({{a = 1}})\n}}\n'
    assert documents(text) == {f"{resource}.x.{attribute}": {"a": 1}}


def test_data_source_defaults_and_string_sets():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n'
        "  statement {\n"
        '    actions   = ["s3:b", "s3:a", "s3:b"]\n'
        '    resources = ["*"]\n'
        "  }\n}\n"
    )
    # Effect defaults to Allow, Version to 2012-10-17; sets dedupe and sort
    # in reverse; a single element is written as a string.
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:b", "s3:a"], "Resource": "*"}],
    }


def test_data_source_star_principal_and_conditions_merge():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n'
        "  statement {\n"
        '    sid = "Public"\n'
        '    effect = "Deny"\n'
        '    not_actions = ["s3:GetObject"]\n'
        '    not_resources = ["arn:aws:s3:::b/&{aws:username}"]\n'
        '    principals {\n      type = "*"\n      identifiers = ["*"]\n    }\n'
        '    condition {\n      test = "StringEquals"\n'
        '      variable = "aws:SourceVpc"\n      values = ["vpc-1"]\n    }\n'
        '    condition {\n      test = "StringEquals"\n'
        '      variable = "aws:SourceVpc"\n      values = ["vpc-2"]\n    }\n'
        '    condition {\n      test = "Bool"\n'
        '      variable = "aws:SecureTransport"\n      values = ["false"]\n    }\n'
        "  }\n}\n"
    )
    assert doc["Statement"] == [
        {
            "Sid": "Public",
            "Effect": "Deny",
            "NotAction": "s3:GetObject",
            "NotResource": "arn:aws:s3:::b/${aws:username}",
            "Principal": "*",
            "Condition": {
                "Bool": {"aws:SecureTransport": "false"},
                "StringEquals": {"aws:SourceVpc": ["vpc-1", "vpc-2"]},
            },
        }
    ]


def test_principals_of_one_type_merge_and_aws_star_stays_an_object():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n  statement {\n'
        '    actions = ["sts:AssumeRole"]\n'
        '    principals {\n      type = "AWS"\n      identifiers = ["*"]\n    }\n'
        '    principals {\n      type = "AWS"\n      identifiers = ["111122223333"]\n'
        "    }\n  }\n}\n"
    )
    assert doc["Statement"][0]["Principal"] == {"AWS": ["*", "111122223333"]}


def test_dynamic_statement_blocks_expand():
    doc = only_document(
        'variable "buckets" {\n default = ["a", "b"]\n}\n'
        'data "aws_iam_policy_document" "d" {\n'
        '  dynamic "statement" {\n    for_each = var.buckets\n    content {\n'
        '      actions = ["s3:*"]\n'
        '      resources = ["arn:aws:s3:::${statement.value}"]\n'
        "    }\n  }\n}\n"
    )
    assert [s["Resource"] for s in doc["Statement"]] == [
        "arn:aws:s3:::a",
        "arn:aws:s3:::b",
    ]


def test_dynamic_over_unknown_input_is_unresolved():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n'
        '  dynamic "statement" {\n    for_each = data.aws_s3_bucket.b\n'
        '    content {\n      actions = ["s3:*"]\n    }\n  }\n}\n'
    )
    assert isinstance(doc, Unresolved)


def test_source_and_override_documents_merge_by_sid():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n'
        '  source_policy_documents = [jsonencode({Version = "2012-10-17",\n'
        '    Statement = [{Sid = "A", Effect = "Allow", Action = "s3:Get*",\n'
        '                  Resource = "*"}]})]\n'
        "  override_policy_documents = [jsonencode({\n"
        '    Statement = [{Sid = "B", Effect = "Deny", Action = "*",\n'
        '                  Resource = "*"}]})]\n'
        "  statement {\n"
        '    sid = "A"\n    actions = ["s3:*"]\n    resources = ["*"]\n  }\n'
        "  statement {\n"
        '    sid = "B"\n    actions = ["ec2:*"]\n    resources = ["*"]\n  }\n}\n'
    )
    # Current statements replace source ones with the same Sid; overrides win.
    assert doc["Statement"] == [
        {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Sid": "B", "Effect": "Deny", "Action": "*", "Resource": "*"},
    ]


def test_source_documents_that_do_not_resolve_make_it_unresolved():
    doc = only_document(
        'data "aws_iam_policy_document" "d" {\n'
        "  source_policy_documents = [data.aws_iam_policy.x.policy]\n}\n"
    )
    assert isinstance(doc, Unresolved)


def test_provider_rejections_are_unresolved_not_guessed():
    lowercase = only_document(
        'data "aws_iam_policy_document" "d" {\n  statement {\n'
        '    effect = "allow"\n    actions = ["*"]\n  }\n}\n'
    )
    assert isinstance(lowercase, Unresolved) and "effect" in lowercase.reason
    duplicate_key = only_document(
        'resource "aws_iam_policy" "p" {\n'
        '  policy = "{\\"Effect\\": \\"Allow\\", \\"Effect\\": \\"Deny\\"}"\n}\n'
    )
    assert isinstance(duplicate_key, Unresolved)


def test_count_and_for_each_instances():
    found = documents(
        'resource "aws_iam_policy" "p" {\n  count = 2\n'
        '  policy = jsonencode({Id = "p${count.index}"})\n}\n'
        'resource "aws_iam_policy" "q" {\n  for_each = toset(["x"])\n'
        "  policy = jsonencode({Id = each.key})\n}\n"
        'resource "aws_iam_policy" "r" {\n  count = var.n\n  policy = "{}"\n}\n'
        'variable "n" {}\n'
    )
    assert found["aws_iam_policy.p[0].policy"] == {"Id": "p0"}
    assert found["aws_iam_policy.p[1].policy"] == {"Id": "p1"}
    assert found['aws_iam_policy.q["x"].policy'] == {"Id": "x"}
    assert isinstance(found["aws_iam_policy.r."], Unresolved)


def test_data_source_json_text_matches_the_provider_layout():
    module = load_module(
        'data "aws_iam_policy_document" "d" {\n  statement {\n'
        '    actions = ["s3:*"]\n    resources = ["*"]\n  }\n}\n'
        "locals {\n  j = data.aws_iam_policy_document.d.minified_json\n}\n",
        source="t.tf",
    )
    assert evaluate(module, module.locals["j"].expression) == (
        '{"Version":"2012-10-17","Statement":'
        '[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
    )


# Security groups: the same Module serves issue 8.


def test_security_group_blocks_resolve():
    module = load_module((DATA / "security_group.tf").read_text(), source="sg.tf")
    group = resolve(module, module.resources["aws_security_group.web"].body)
    ingress = group.nested("ingress")
    assert [
        (b.attributes["from_port"], b.attributes["cidr_blocks"]) for b in ingress
    ] == [
        (22, ["0.0.0.0/1", "128.0.0.0/1"]),
        (80, ["10.0.0.0/8"]),
        (443, ["10.0.0.0/8"]),
    ]
    assert ingress[1].attributes["protocol"] == "-1"
    assert ingress[1].attributes["self"] is True
    (egress,) = group.nested("egress")
    assert isinstance(egress.attributes["cidr_blocks"], Unresolved)


# Bad input.


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'resource "a" "b" {\n  x = \n}\n',
            r"t.tf: 2:7: unexpected .*braces and quotes",
        ),
        ('resource "a" "b" {\n  x = 1\n', r"t.tf: 3:1: unexpected end of file"),
        ('resource "a" "b" {\n  x = 1\n}\n}\n', r"4:1: unexpected '}'"),
        ('locals {\n x = "abc\n}\n', r"unexpected"),
        ("\x7fELF\x02\x01", r"t.tf: 1:1: unexpected"),
        ("PK\x03\x04\x00\x00", r"NUL bytes"),
    ],
)
def test_bad_input_is_one_line_config_error(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_module(text, source="t.tf")
    assert "\n" not in str(info.value)


def test_empty_file_is_an_empty_module():
    module = load_module("", source="t.tf")
    assert module.resources == {} and iam_documents(module) == []


def test_duplicate_resource_address_is_refused():
    text = 'resource "aws_iam_policy" "p" {\n}\nresource "aws_iam_policy" "p" {\n}\n'
    with pytest.raises(ConfigError, match=r"3: duplicate address aws_iam_policy.p"):
        load_module(text, source="t.tf")


def test_large_file_is_refused_quickly():
    text = 'resource "a" "b" {\n  x = "' + "y" * (10 * 2**20) + '"\n}\n'
    assert len(text) > MAX_BYTES
    start = time.monotonic()
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        load_module(text, source="t.tf")
    assert time.monotonic() - start < 1


def test_deep_nesting_is_refused():
    text = "locals {\n  x = " + "[" * 5000 + "]" * 5000 + "\n}\n"
    with pytest.raises(ConfigError, match="nesting deeper than"):
        load_module(text, source="t.tf")


def test_moderate_nesting_evaluates():
    got = value("[" * 60 + "1" + "]" * 60)
    for _ in range(60):
        (got,) = got
    assert got == 1


# flatten, cidrsubnet, merge_modules (added for the security-group oracle) --


def test_flatten_removes_nested_lists():
    # https://developer.hashicorp.com/terraform/language/functions/flatten
    assert value('flatten([["a", "b"], [], ["c", ["d"]]])') == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("call", "want"),
    [
        # Examples of the cidrsubnet docs, and the world split in halves.
        ('cidrsubnet("172.16.0.0/12", 4, 2)', "172.18.0.0/16"),
        ('cidrsubnet("10.1.2.0/24", 4, 15)', "10.1.2.240/28"),
        (
            'cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)',
            "fd00:fd12:3456:7800:a200::/72",  # 0xa2 lands in bits 64-71
        ),
        ('cidrsubnet("0.0.0.0/0", 1, 1)', "128.0.0.0/1"),
        ('cidrsubnet("10.1.2.3/8", 8, 2)', "10.2.0.0/16"),  # host bits masked
    ],
)
def test_cidrsubnet(call, want):
    assert value(call) == want


def test_cidrsubnet_out_of_range_is_unresolved():
    assert isinstance(value('cidrsubnet("10.0.0.0/8", 1, 2)'), Unresolved)
    assert isinstance(value('cidrsubnet("10.0.0.0/30", 4, 0)'), Unresolved)


def test_merge_modules_joins_files_and_refuses_duplicates():
    from generator.config.terraform import merge_modules

    a = load_module('variable "v" {\n  default = 1\n}\n', source="a.tf")
    b = load_module("locals {\n  x = var.v\n}\n", source="b.tf")
    merged = merge_modules([a, b], source="a.tf")
    assert evaluate(merged, merged.locals["x"].expression) == 1
    with pytest.raises(ConfigError, match="variable v is also defined in a.tf"):
        merge_modules([a, a], source="a.tf")
