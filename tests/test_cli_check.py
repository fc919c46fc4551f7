"""``spotcheck check``: output shapes, exit statuses, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generator.cli import main
from tests.conftest import PSS_FIXTURES

V137 = PSS_FIXTURES / "restricted" / "v1.37"
PASS = V137 / "pass" / "base.yaml"
FAIL = V137 / "fail" / "allowprivilegeescalation0.yaml"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_passing_file_exits_zero(capsys):
    status, out, _ = run(capsys, str(PASS))
    assert status == 0
    assert "restricted PASS" in out


def test_failing_file_exits_one_and_explains(capsys):
    status, out, _ = run(capsys, str(FAIL))
    assert status == 1
    assert "restricted/allowPrivilegeEscalation at spec." in out


def test_json_lines_have_the_documented_keys(capsys):
    status, out, _ = run(capsys, "--json", str(PASS), str(FAIL))
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 1
    assert [set(line) for line in lines] == [
        {"file", "index", "domain", "kind", "name", "verdicts", "findings"}
    ] * 2
    assert lines[1]["verdicts"] == {"baseline": "pass", "restricted": "fail"}
    assert lines[1]["findings"][0]["rule"] == "allowPrivilegeEscalation"


def test_check_json_agrees_with_every_v1_37_fixture(capsys):
    files = sorted(str(p) for p in V137.parent.parent.glob("*/v1.37/*/*.yaml"))
    status, out, _ = run(capsys, "--json", "--pss-version", "v1.37", *files)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(files) == 148
    for line in lines:
        level, _, outcome = Path(line["file"]).parts[-4:-1]
        assert line["verdicts"][level] == outcome, line["file"]


def test_level_baseline_sets_the_exit_status(capsys):
    status, _, _ = run(capsys, "--level", "baseline", str(FAIL))
    assert status == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [1, 2\n", "document 0: line"),
        ("kind: Pod\n", "not a Kubernetes object"),
        ("apiVersion: x/v1\nkind: Rollout\n", "unknown kind 'Rollout'"),
        ("a: &a [*a]\n", "refused"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(capsys, tmp_path, content, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    status, _, err = run(capsys, str(bad), str(PASS))
    assert status == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"spotcheck: error: {bad}")
    assert message in line


def test_missing_file_and_binary_file(capsys, tmp_path):
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02")
    status, _, err = run(capsys, str(tmp_path / "nope.yaml"), str(binary))
    assert status == 2
    assert "no such file" in err and "binary data" in err


def test_bad_policy_version_is_a_usage_error(capsys):
    status, _, err = run(capsys, "--pss-version", "v2.0", str(PASS))
    assert status == 2
    assert "v1.<minor>" in err


def test_stdin_and_console_script():
    done = subprocess.run(
        [sys.executable, "-m", "generator", "check", "--json", "-"],
        input=FAIL.read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["file"] == "<stdin>"


def test_documents_without_pod_spec_are_summarised_in_one_line(capsys, tmp_path):
    chart = tmp_path / "chart.yaml"
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
    chart.write_text("---\n".join([service] * 3 + [PASS.read_text()]))
    status, out, _ = run(capsys, str(chart))
    assert status == 0
    assert f"{chart}: 3 document(s) without a pod spec (Service)" in out
    assert "[3] Pod/base" in out


def test_worker_processes_give_the_same_lines_in_the_same_order(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    files = sorted(str(p) for p in V137.glob("*/*.yaml"))[:70] + [str(bad)]
    one = run(capsys, "--json", "--jobs", "1", *files)
    two = run(capsys, "--json", "--jobs", "2", *files)
    assert one == two
    assert one[0] == 2 and len(one[1].splitlines()) == 70
