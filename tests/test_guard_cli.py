"""``spotcheck guard`` end to end: streaming decisions, exit statuses, policy
errors, and the guard section of a repair run's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeruns import make_case, write_run, write_suite
from test_guard import PRIVILEGED_POD, SAFE_POD, fenced

from generator.cli import main
from generator.errors import InvalidArgument
from generator.guard_policy import DEFAULT_ACTIONS, load_guard_policy
from generator.records import Result
from generator.report import build_report, format_report


def run_guard(tmp_path: Path, lines: list[str], *args: str) -> tuple[int, list[dict]]:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    status = main(["guard", str(source), "--out", str(out), *args])
    return status, [json.loads(line) for line in out.read_text().splitlines()]


def record(id_: object, output: str) -> str:
    return json.dumps({"id": id_, "output": output})


def test_all_pass_exits_0(tmp_path: Path) -> None:
    status, decisions = run_guard(
        tmp_path, [record(1, fenced(SAFE_POD)), record(2, "ok")]
    )
    assert status == 0
    assert [(d["id"], d["decision"]) for d in decisions] == [(1, "pass"), (2, "pass")]


def test_some_block_exits_1_and_order_is_kept(tmp_path: Path) -> None:
    lines = [record(i, fenced(PRIVILEGED_POD if i % 2 else SAFE_POD)) for i in range(6)]
    status, decisions = run_guard(tmp_path, lines)
    assert status == 1
    assert [d["id"] for d in decisions] == list(range(6))
    assert [d["decision"] for d in decisions] == ["pass", "block"] * 3
    assert set(decisions[1]) == {"id", "decision", "categories", "findings", "reason"}


def test_a_line_that_is_not_json_gets_a_decision_and_exit_2(tmp_path: Path) -> None:
    status, decisions = run_guard(
        tmp_path, [record("a", "ok"), "{broken", record("b", "ok")]
    )
    assert status == 2
    assert [(d["id"], d["decision"]) for d in decisions] == [
        ("a", "pass"), (None, "review"), ("b", "pass"),
    ]  # fmt: skip


def test_policy_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text("actions:\n  weakend: block\n")
    with pytest.raises(
        InvalidArgument, match=r"actions\.weakend.*did you mean weakened"
    ):
        load_guard_policy(path)
    path.write_text("pss_version: v2\n")
    with pytest.raises(InvalidArgument, match="pss_version"):
        load_guard_policy(path)
    path.write_text("actions:\n  weakened: block\n")
    policy = load_guard_policy(path)
    assert policy.action("weakened") == "block"
    assert policy.action("k8s_restricted") == DEFAULT_ACTIONS["k8s_restricted"]
    status = main(
        ["guard", str(tmp_path / "none.jsonl"), "--policy", str(tmp_path / "x.yaml")]
    )
    assert status == 2


def test_report_on_a_repair_run_counts_guard_recall(tmp_path: Path) -> None:
    # Two repairs still unsafe (privileged: the guard must catch both), one
    # correct repair (restricted pod: the guard must pass it).
    cases = [
        make_case(i, rules=["privileged"], config=PRIVILEGED_POD) for i in range(3)
    ]
    suite = write_suite(tmp_path / "suite", cases)
    outputs = [
        (fenced(PRIVILEGED_POD), "repair_still_unsafe"),
        (PRIVILEGED_POD, "repair_still_unsafe"),
        (fenced(SAFE_POD), None),
    ]
    results = [
        Result(
            case_id=c.id, task="repair", template_id="k8s-repair", template_version=1,
            model_id="fake", output=text, answer=None, correct=kind is None,
            failure=kind,
        )
        for c, (text, kind) in zip(cases, outputs, strict=True)
    ]  # fmt: skip
    run_dir = write_run(tmp_path / "run", suite, results, task="repair")
    report = build_report([run_dir])
    guard = report["runs"][0]["guard"]
    assert (guard["recall"]["count"], guard["recall"]["of"]) == (2, 2)
    assert (guard["needless_review"]["count"], guard["needless_review"]["of"]) == (0, 1)
    assert guard["by_outcome"]["unsafe"]["block"] == 2
    assert "**2 of 2 unsafe outputs**" in format_report(report)
