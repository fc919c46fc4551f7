"""The release gate: thresholds, exit statuses, config errors, JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fakeruns import answer, make_case, write_run, write_suite

from generator.cli import main
from generator.errors import InvalidArgument
from generator.gate import evaluate, load_config
from generator.report import build_report


def gated_run(tmp_path: Path) -> Path:
    """hostpath: 4 of 10 unsafe missed; seccomp: 1 of 10; 5 safe each, 1 alarm."""
    cases, results = [], []
    for family, misses in (("hostpath", 4), ("seccomp", 1)):
        for i in range(10):
            case = make_case(len(cases), family=family, rules=["r"])
            cases.append(case)
            results.append(answer(case, "safe" if i < misses else "unsafe"))
        for i in range(5):
            case = make_case(len(cases), family=family, verdict="safe")
            cases.append(case)
            results.append(answer(case, "unsafe" if i == 0 else "safe"))
    suite = write_suite(tmp_path / "suite", cases)
    return write_run(tmp_path / "run", suite, results)


def test_exceeded_threshold_exits_1_and_met_threshold_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = gated_run(tmp_path)

    # Run-wide 5 of 20 missed = 25%; hostpath 40%, seccomp 10%.
    assert main(["gate", str(run), "--max-missed-unsafe", "0.3"]) == 1
    out = capsys.readouterr().out
    assert "hostpath: missed_unsafe 40.0% (4/10" in out and "EXCEEDS" in out
    assert main(["gate", str(run), "--max-missed-unsafe", "0.4"]) == 0
    assert "gate: pass" in capsys.readouterr().out


def test_threshold_applies_to_the_point_estimate_not_the_interval(
    tmp_path: Path,
) -> None:
    (report,) = build_report([gated_run(tmp_path)], clusters=False)["runs"]
    config = load_config(
        _write(tmp_path, "families: {seccomp: {max_missed_unsafe: 0.1}}")
    )

    (check,) = [c for c in evaluate(report, config) if c.scope == "seccomp"]

    # 1/10 has an upper bound near 40%, yet 10% <= 10% passes.
    assert check.value == pytest.approx(0.1) and check.interval[1] > 0.3
    assert not check.exceeded


def test_per_family_thresholds_override_the_run_wide_one(tmp_path: Path) -> None:
    (report,) = build_report([gated_run(tmp_path)], clusters=False)["runs"]
    config = load_config(
        _write(
            tmp_path,
            "max_missed_unsafe: 0.5\nmax_false_alarm: 0.1\n"
            "families:\n  hostpath: {max_missed_unsafe: 0.3}\n",
        ),  # fmt: skip
    )

    exceeded = {(c.scope, c.metric) for c in evaluate(report, config) if c.exceeded}

    # False alarms: 1 of 5 safe cases (20%) in each family and 2/10 run-wide.
    assert exceeded == {
        ("hostpath", "missed_unsafe"),
        ("run", "false_alarm"),
        ("hostpath", "false_alarm"),
        ("seccomp", "false_alarm"),
    }


def test_small_families_are_skipped_with_min_cases(tmp_path: Path) -> None:
    (report,) = build_report([gated_run(tmp_path)], clusters=False)["runs"]
    config = load_config(_write(tmp_path, "max_missed_unsafe: 0.2\nmin_cases: 100\n"))

    checks = evaluate(report, config)

    assert [c.scope for c in checks if c.exceeded] == ["run"]
    assert {c.scope for c in checks if c.skipped} == {"hostpath", "seccomp"}


def test_junit_has_one_testcase_per_family_with_rate_interval_and_threshold(
    tmp_path: Path,
) -> None:
    run = gated_run(tmp_path)
    junit = tmp_path / "gate.xml"

    status = main(
        ["gate", str(run), "--max-missed-unsafe", "0.3", "--junit", str(junit)]
    )

    root = ET.parse(junit).getroot()
    assert status == 1 and root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"run", "hostpath", "seccomp"}
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failure = cases["hostpath"].find("failure")
    assert failure is not None
    assert "40.0%" in failure.get("message")  # the measured rate
    assert "95% interval" in failure.get("message")
    assert "max 30.0%" in failure.get("message")  # the threshold
    assert cases["seccomp"].find("failure") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_missed_unsafe: [1", "gate.yaml:1:"),
        ("max_missed_unsafe: 5", "a fraction: 0.05 for 5%"),
        ("max_missd_unsafe: 0.1", "unknown keys ['max_missd_unsafe']"),
        ("families: {pod: {max_missed_unsafe: yes}}", "families.pod.max_missed_unsafe"),
        ("families: {pod: 0.1}", "families.pod: need a mapping"),
        ("- 1", "top level must be a mapping"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=None) as error:
        load_config(_write(tmp_path, text))
    assert message in str(error.value) and "gate.yaml" in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = gated_run(tmp_path)
    assert main(["gate", str(run)]) == 2
    assert main(["gate", str(run), "--max-missed-unsafe", "1.5"]) == 2
    assert main(["gate", str(tmp_path / "nothing"), "--max-missed-unsafe", "0.1"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("spotcheck: error:") for e in errors)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    return path
