"""Prompt templates: the shipped ones load and render; broken ones are refused."""

from __future__ import annotations

import pytest
from tinymodel import SAFE_POD, make_case

from generator.errors import InvalidArgument
from generator.prompts import (
    case_variables,
    load_template,
    parse_template,
    render_case,
)

HEADER = "{# spotcheck-template id=t version=3 #}\n"


def _template(body: str, header: str = HEADER):
    return parse_template(header + body, name="t.jinja", domain="k8s")


@pytest.mark.parametrize("task", ["verdict", "repair"])
def test_shipped_k8s_templates_carry_id_and_integer_version(task):
    template = load_template("k8s", task)
    assert template.id == f"k8s-{task}"
    assert isinstance(template.version, int) and template.version >= 1


def test_verdict_prompt_is_system_then_user_with_config_and_policy():
    messages = render_case(load_template("k8s", "verdict"), make_case(SAFE_POD))
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert SAFE_POD.strip() in user
    assert "'restricted'" in user and "v1.37" in user
    assert "SAFE" in user and "UNSAFE" in user


def test_repair_prompt_asks_for_a_yaml_block():
    messages = render_case(load_template("k8s", "repair"), make_case(SAFE_POD))
    assert "```yaml" in messages[1]["content"]
    assert "securityContext" in messages[1]["content"]


def test_unknown_template_variables_are_listed_by_name():
    body = (
        "{% block system %}{{ polciy_version }}{% endblock %}"
        "{% block user %}{{ config }} {{ colour }}{% endblock %}"
    )
    with pytest.raises(InvalidArgument) as caught:
        _template(body)
    message = str(caught.value)
    assert "colour" in message and "polciy_version" in message
    assert "policy_version" in message  # the known names are offered


def test_template_without_header_is_refused():
    body = "{% block system %}x{% endblock %}{% block user %}y{% endblock %}"
    with pytest.raises(InvalidArgument, match="spotcheck-template id="):
        _template(body, header="")


def test_template_needs_exactly_the_system_and_user_blocks():
    with pytest.raises(InvalidArgument, match="missing: user; unknown: extra"):
        _template("{% block system %}x{% endblock %}{% block extra %}{% endblock %}")


def test_template_syntax_error_names_the_line():
    # The header is line 1, so the broken tag is on line 3 of the file.
    with pytest.raises(InvalidArgument, match="line 3"):
        _template("{% block system %}\n{{ config {% endblock %}")


def test_sandbox_refuses_reaching_into_python_internals():
    template = _template(
        "{% block system %}{{ config.__class__.__mro__ }}{% endblock %}"
        "{% block user %}x{% endblock %}"
    )
    with pytest.raises(InvalidArgument):
        template.render(case_variables(make_case(SAFE_POD)))


def test_undefined_attribute_is_an_error_not_an_empty_string():
    template = _template(
        "{% block system %}{{ config.no_such_thing }}{% endblock %}"
        "{% block user %}x{% endblock %}"
    )
    with pytest.raises(InvalidArgument, match="no_such_thing"):
        template.render(case_variables(make_case(SAFE_POD)))


def test_missing_template_names_the_file_it_looked_for():
    with pytest.raises(InvalidArgument, match="gcp/verdict.jinja"):
        load_template("gcp", "verdict")


def test_k8s_case_needs_a_pss_question():
    case = make_case(SAFE_POD)
    odd = type(case)(**{**case.__dict__, "question": "iam:privesc"})
    with pytest.raises(InvalidArgument, match="pss:<level>:<version>"):
        case_variables(odd)
