"""The command line as a whole: exit statuses and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from generator.cli import _parser, main


def test_an_output_path_that_is_a_file_is_one_line_and_exit_two(capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    status = main(["generate", "--count", "5", "--out", str(taken)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().splitlines() == [f"spotcheck: error: {taken}: File exists"]


def test_a_usage_error_is_one_line_that_says_where_help_is(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit:
        main(["report", "--jobs", "x", "run/"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit.value.code == 2
    assert lines == [
        "spotcheck report: error: argument --jobs: 'x' is not a whole number "
        "(see spotcheck report -h)"
    ]


def test_no_arguments_at_all_print_the_overview(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: spotcheck") and "spotcheck generate" in err


def test_verbose_before_the_command_is_kept():
    args = _parser().parse_args(["-vv", "check", "pod.yaml"])
    assert args.verbose == 2
    assert _parser().parse_args(["check", "-v", "pod.yaml"]).verbose == 1


def test_an_input_with_nothing_to_judge_fails_unless_allowed(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    assert main(["check", str(empty)]) == 2
    assert "nothing was judged" in capsys.readouterr().err
    assert main(["check", "--allow-empty", str(empty)]) == 0


def test_every_command_has_help_that_names_its_options(capsys):
    for command in ("check", "generate", "run", "report", "export"):
        try:
            main([command, "--help"])
        except SystemExit as exit:
            assert exit.code == 0
        out = capsys.readouterr().out
        assert "example" in out, command


def test_stdin_can_be_named_only_once(capsys):
    assert main(["check", "-", "-"]) == 2
    assert "stdin" in capsys.readouterr().err


def test_generate_offers_exactly_the_domains_the_suite_knows():
    from generator.cli import GENERATE_DOMAINS
    from generator.suite import DOMAINS

    assert GENERATE_DOMAINS == DOMAINS


def test_report_offers_the_minimizer_default_budget():
    from generator.cli import MINIMIZE_MAX_CALLS
    from generator.minimize import DEFAULT_MAX_CALLS

    assert MINIMIZE_MAX_CALLS == DEFAULT_MAX_CALLS


def test_building_the_parser_imports_no_generator_or_model_code():
    # Every command builds the whole parser; `check` must not pay for the
    # generators, the minimizer or the model stack.
    code = (
        "import sys; from generator.cli import _parser; _parser(); "
        "bad = [m for m in ('generator.suite', 'generator.minimize', "
        "'generator.rundata', 'hypothesis', 'torch') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
