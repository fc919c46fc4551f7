"""Finding configs in model text: fences, bare YAML/JSON/HCL, never prose."""

from __future__ import annotations

from generator.guard_text import find_blocks


def shapes(text: str) -> list[tuple[str, str]]:
    return [(b.shape, b.lang) for b in find_blocks(text)]


def test_fences_with_and_without_tags_and_an_unclosed_one() -> None:
    text = "a\n```yaml\nx: 1\n```\nb\n~~~\ny: 2\n~~~\n```json\n{"
    blocks = find_blocks(text)
    assert [(b.shape, b.lang, b.cut) for b in blocks] == [
        ("fenced", "yaml", False),
        ("fenced", "", False),
        ("fenced", "json", True),
    ]
    assert blocks[0].text == "x: 1\n" and blocks[0].line == 3


def test_bare_configs_between_prose() -> None:
    text = (
        "Here:\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nThat is all.\n"
        '{"Statement": [{"Effect": "Allow"}]}\ntrailing words\n'
        'resource "aws_security_group" "g" {\n  name = "{"\n}\nend\n'
    )
    blocks = find_blocks(text)
    assert [b.shape for b in blocks] == ["yaml", "json", "hcl"]
    assert blocks[0].text.endswith("  name: a\n")
    assert blocks[1].text == '{"Statement": [{"Effect": "Allow"}]}'
    assert blocks[2].text.endswith("}")


def test_prose_is_not_a_block() -> None:
    assert shapes("Note: this pod is safe.\nAll good: nothing to change.\n") == []
    assert shapes("[1] see the docs") == []


def test_fragment_needs_an_indented_line_and_a_relevant_field() -> None:
    assert shapes("securityContext:\n  privileged: true\n") == [("fragment", "")]
    assert shapes("colours:\n  red: 1\n") == []


def test_block_count_is_bounded() -> None:
    assert len(find_blocks("```\nx\n```\n" * 500, limit=10)) == 10
