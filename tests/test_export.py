"""Exporting failures: rows with the oracle's answer, kept apart from evals."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from fakeruns import QUESTION, answer, write_run, write_suite

from generator.errors import InvalidArgument, RemediationError
from generator.export import answer_text, config_fingerprint, export_failures
from generator.oracle.k8s import truth
from generator.records import Case, Origin, Result, case_id

SAFE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: app
    image: nginx:1.27
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: [ALL]
"""

# The same pod with its keys reordered, re-indented and commented.
SAFE_POD_RESHAPED = """\
kind: Pod   # reviewed
apiVersion: v1
metadata: {name: web}
spec:
    containers:
        - image: "nginx:1.27"
          name: app
          securityContext:
              capabilities: {drop: ["ALL"]}
              allowPrivilegeEscalation: false
    securityContext:
        seccompProfile: {type: RuntimeDefault}
        runAsNonRoot: true
"""

HOSTPATH_POD = (
    SAFE_POD
    + """\
    volumeMounts:
    - name: host
      mountPath: /host
  volumes:
  - name: host
    hostPath:
      path: /etc
"""
)

# HOSTPATH_POD under other names, labels and an image tag: near-equal.
HOSTPATH_POD_RENAMED = (
    HOSTPATH_POD.replace("name: web", "name: api\n  labels: {team: b}")
    .replace("name: app", "name: main")
    .replace("nginx:1.27", "nginx:1.28")
)

ROOT_POD = SAFE_POD.replace("runAsNonRoot: true", "runAsUser: 0").replace(
    "allowPrivilegeEscalation: false", "privileged: true"
)

ALL_ROWS = ("train", "test")


def oracle_case(config: str, family: str = "pod") -> Case:
    """A case judged by the real Pod Security oracle."""
    return Case(
        id=case_id("k8s", QUESTION, config),
        domain="k8s",
        family=family,
        origin=Origin("grammar"),
        format="yaml",
        config=config,
        question=QUESTION,
        truth=truth(config, QUESTION),
        tags={},
    )


@pytest.fixture
def failing_run(tmp_path: Path) -> Path:
    """The model calls both unsafe pods safe, the safe pod unsafe, and is
    right about a fourth pod; one verdict is unparseable."""
    safe, hostpath, root = (oracle_case(c) for c in (SAFE_POD, HOSTPATH_POD, ROOT_POD))
    right = oracle_case(SAFE_POD.replace("name: web", "name: api"), family="other")
    suite = write_suite(tmp_path / "suite", [safe, hostpath, root, right])
    results = [
        answer(safe, "unsafe"),
        answer(hostpath, "safe"),
        answer(root, None),
        answer(right, "safe"),
    ]
    return write_run(tmp_path / "run", suite, results)


def read_rows(out: Path, form: str = "messages", splits=ALL_ROWS) -> list[dict]:
    rows = []
    for split in splits:
        text = (out / form / f"{split}.jsonl").read_text()
        rows += [json.loads(line) for line in text.splitlines()]
    return rows


def test_failures_become_chat_rows_answered_by_the_oracle(
    failing_run: Path, tmp_path: Path
) -> None:
    summary = export_failures([failing_run], tmp_path / "out", fmt="jsonl")

    rows = read_rows(tmp_path / "out")
    assert summary["exported"] == len(rows) == 3
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        user, reply = row["messages"][1]["content"], row["messages"][2]["content"]
        config = user.split("```yaml\n", 1)[1].split("\n```", 1)[0] + "\n"
        expected = truth(config, QUESTION)
        assert reply.splitlines()[0] == expected.verdict.upper() == row["label"].upper()
        assert row["rules"] == list(expected.rules)
        for violation, line in zip(
            expected.violations, reply.splitlines()[1:], strict=True
        ):
            assert (
                line == f"- {violation.rule} at {violation.path}: {violation.message}"
            )


def test_answer_lists_each_violation_on_its_own_line() -> None:
    case = oracle_case(HOSTPATH_POD)

    lines = answer_text(case).splitlines()

    assert lines[0] == "UNSAFE"
    assert lines[1].startswith("- restrictedVolumes at spec.volumes[0].hostPath:")
    assert answer_text(oracle_case(SAFE_POD)) == "SAFE"


def test_rows_name_their_case_family_failure_template_and_cluster(
    failing_run: Path, tmp_path: Path
) -> None:
    export_failures([failing_run], tmp_path / "out", fmt="jsonl", test_fraction=0)

    rows = read_rows(tmp_path / "out", splits=("train",))
    assert [r["failure"] for r in rows] == [
        "false_alarm",
        "missed_unsafe",
        "unparseable",
    ]
    assert {r["family"] for r in rows} == {"pod"}
    assert all(r["template"] == "k8s-verdict@1" and r["case_id"] for r in rows)
    assert all(r["source"] == "failure" and r["task"] == "verdict" for r in rows)
    assert rows[1]["cluster"] == "k8s/verdict/pod/unsafe:restrictedVolumes"
    assert rows[0]["cluster"] == "k8s/verdict/pod/safe"


def test_hf_dataset_reloads_with_load_from_disk(
    failing_run: Path, tmp_path: Path
) -> None:
    import datasets

    export_failures([failing_run], tmp_path / "out", fmt=("hf",), test_fraction=0)

    data = datasets.load_from_disk(str(tmp_path / "out" / "hf" / "messages"))
    assert set(data) == {"train", "test"}
    assert len(data["train"]) == 3 and len(data["test"]) == 0
    assert data["train"][1]["messages"][2]["content"].startswith("UNSAFE")
    assert data["train"][1]["rules"] == ["restrictedVolumes"]
    # Only the formats asked for are written.
    assert not (tmp_path / "out" / "messages").exists()
    assert not (tmp_path / "out" / "parquet").exists()


def test_card_names_the_source_the_oracle_and_the_counts(
    failing_run: Path, tmp_path: Path
) -> None:
    export_failures([failing_run], tmp_path / "out")

    card = (tmp_path / "out" / "README.md").read_text()
    assert "answers come from spotcheck's oracle" in card
    assert "`fake`" in card and str(failing_run) in card
    assert "exported: 3 (unsafe 2, safe 1)" in card
    assert "| `restrictedVolumes` | 1 |" in card
    assert "SFTTrainer" in card and 'load_from_disk("hf/prompt_completion")' in card
    summary = json.loads((tmp_path / "out" / "export.json").read_text())
    assert summary["exported"] == 3


def test_configs_of_an_excluded_suite_are_dropped_up_to_layout(
    failing_run: Path, tmp_path: Path
) -> None:
    # The eval suite holds the safe pod, reshaped, and an unrelated pod.
    reshaped = oracle_case(SAFE_POD_RESHAPED)
    other = oracle_case(SAFE_POD + "  hostNetwork: true\n")
    eval_suite = write_suite(tmp_path / "eval", [reshaped, other])

    summary = export_failures(
        [failing_run], tmp_path / "out", fmt="jsonl", exclude_suites=[eval_suite]
    )

    rows = read_rows(tmp_path / "out")
    assert summary["excluded_exact"] == 1
    assert summary["excluded_near"] == 0
    assert sorted(r["label"] for r in rows) == ["unsafe", "unsafe"]


def test_near_equal_copies_in_an_excluded_suite_are_dropped(
    failing_run: Path, tmp_path: Path
) -> None:
    # The hostPath pod renamed, relabelled, its container renamed and its
    # image retagged: another text, the same pod to the checks.
    renamed = oracle_case(HOSTPATH_POD_RENAMED)
    assert renamed.truth == oracle_case(HOSTPATH_POD).truth
    eval_suite = write_suite(tmp_path / "eval", [renamed])

    summary = export_failures(
        [failing_run], tmp_path / "out", fmt="jsonl", exclude_suites=[eval_suite]
    )

    rows = read_rows(tmp_path / "out")
    assert summary["excluded_exact"] == 0
    assert summary["excluded_near"] == 1
    assert summary["excluded_by_suite"] == 1
    assert {r["case_id"] for r in rows} == {
        oracle_case(SAFE_POD).id,
        oracle_case(ROOT_POD).id,
    }


def test_a_fuzz_directory_is_read_round_by_round_for_runs_and_exclusion(
    failing_run: Path, tmp_path: Path
) -> None:
    fuzz = tmp_path / "fuzz"
    (fuzz / "rounds" / "0001").mkdir(parents=True)
    (fuzz / "fuzz.json").write_text("{}")
    suite = write_suite(fuzz / "rounds" / "0001" / "suite", [oracle_case(ROOT_POD)])
    write_run(
        fuzz / "rounds" / "0001" / "run", suite, [answer(suite_case(suite), "safe")]
    )

    summary = export_failures([failing_run, fuzz], tmp_path / "out", fmt="jsonl")
    assert summary["failures_seen"] == 4
    assert summary["duplicates"] == 1
    assert [s["run"] for s in summary["runs"]][1].endswith("rounds/0001/run")

    # The same fuzz directory as an evaluation suite excludes its round.
    summary = export_failures(
        [failing_run], tmp_path / "out2", fmt="jsonl", exclude_suites=[fuzz]
    )
    assert summary["excluded_exact"] == 1
    assert oracle_case(ROOT_POD).id not in {
        r["case_id"] for r in read_rows(tmp_path / "out2")
    }


def suite_case(suite: Path) -> Case:
    (line,) = (suite / "cases.jsonl").read_text().splitlines()
    return Case.from_dict(json.loads(line))


def test_fingerprint_ignores_layout_but_not_values() -> None:
    same = config_fingerprint(SAFE_POD) == config_fingerprint(SAFE_POD_RESHAPED)
    assert same
    assert config_fingerprint(SAFE_POD) != config_fingerprint(HOSTPATH_POD)
    # Text that is not YAML still matches a re-spaced copy.
    assert config_fingerprint("a  =\n 1 {", "hcl") == config_fingerprint(
        "a = 1 {", "hcl"
    )


def test_a_case_failed_in_two_runs_is_exported_once(
    failing_run: Path, tmp_path: Path
) -> None:
    again = tmp_path / "run-again"
    again.mkdir()
    for name in ("results.jsonl", "run.json"):
        (again / name).write_bytes((failing_run / name).read_bytes())

    summary = export_failures([failing_run, again], tmp_path / "out", fmt="jsonl")

    assert summary["failures_seen"] == 6
    assert summary["duplicates"] == 3
    assert summary["exported"] == 3


def test_near_equal_failures_are_exported_once(tmp_path: Path) -> None:
    first, second = oracle_case(HOSTPATH_POD), oracle_case(HOSTPATH_POD_RENAMED)
    suite = write_suite(tmp_path / "suite", [first, second])
    run = write_run(
        tmp_path / "run", suite, [answer(first, "safe"), answer(second, "safe")]
    )

    summary = export_failures([run], tmp_path / "out", fmt="jsonl")

    assert summary["duplicates"] == 1
    assert [r["case_id"] for r in read_rows(tmp_path / "out")] == [first.id]


def test_balance_equal_keeps_as_many_safe_as_unsafe(
    failing_run: Path, tmp_path: Path
) -> None:
    summary = export_failures(
        [failing_run], tmp_path / "out", fmt="jsonl", balance="equal"
    )

    rows = read_rows(tmp_path / "out")
    assert summary["by_label"] == {"unsafe": 1, "safe": 1}
    assert summary["dropped_for_balance"] == 1
    assert sorted(r["label"] for r in rows) == ["safe", "unsafe"]
    # The old boolean spelling means the same.
    again = export_failures([failing_run], tmp_path / "out2", fmt="jsonl", balance=True)
    assert again["by_label"] == summary["by_label"]


def pods(count: int, *, unsafe: bool) -> list[Case]:
    """Distinct pods (by hostname), all safe or all adding SYS_ADMIN."""
    base = SAFE_POD
    if unsafe:
        base = SAFE_POD.replace("drop: [ALL]", "drop: [ALL]\n        add: [SYS_ADMIN]")
    cases = [oracle_case(base + f"  hostname: h{n}\n") for n in range(count)]
    assert {c.truth.verdict for c in cases} == {"unsafe" if unsafe else "safe"}
    return cases


@pytest.fixture
def lopsided_run(tmp_path: Path) -> Path:
    """Four missed unsafe pods, one false alarm; six safe and two unsafe
    pods answered right."""
    unsafe, safe = pods(6, unsafe=True), pods(7, unsafe=False)
    suite = write_suite(tmp_path / "suite", unsafe + safe)
    results = [answer(c, "safe") for c in unsafe[:4]] + [answer(safe[0], "unsafe")]
    results += [answer(c, "unsafe") for c in unsafe[4:]]
    results += [answer(c, "safe") for c in safe[1:]]
    return write_run(tmp_path / "run", suite, results)


def test_balance_fill_adds_correct_cases_of_the_smaller_label(
    lopsided_run: Path, tmp_path: Path
) -> None:
    summary = export_failures(
        [lopsided_run], tmp_path / "out", fmt="jsonl", balance="fill"
    )

    rows = read_rows(tmp_path / "out")
    assert summary["by_label"] == {"unsafe": 4, "safe": 4}
    assert summary["correct_added"] == {"unsafe": 0, "safe": 3}
    added = [r for r in rows if r["source"] == "correct"]
    assert len(added) == 3
    assert all(r["label"] == "safe" and r["failure"] is None for r in added)
    assert all(r["messages"][2]["content"] == "SAFE" for r in added)
    assert summary["balanced"]


def test_add_correct_goes_to_the_label_with_fewer_rows(
    lopsided_run: Path, tmp_path: Path
) -> None:
    summary = export_failures(
        [lopsided_run], tmp_path / "out", fmt="jsonl", add_correct=5
    )

    # 4 unsafe and 1 safe failures: three safe even it out, then one each.
    assert summary["correct_added"] == {"unsafe": 1, "safe": 4}
    assert summary["by_label"] == {"unsafe": 5, "safe": 5}


def test_fill_says_when_the_runs_hold_too_few_correct_cases(
    lopsided_run: Path, tmp_path: Path
) -> None:
    summary = export_failures(
        [lopsided_run], tmp_path / "out", fmt="jsonl", add_correct=20
    )

    # Wanted: 3 safe to even out 4:1, then 17 alternating from unsafe, so
    # 9 unsafe and 11 safe; only 2 unsafe and 6 safe were answered right.
    assert summary["correct_wanted"] == {"unsafe": 9, "safe": 11}
    assert summary["correct_added"] == {"unsafe": 2, "safe": 6}
    assert summary["correct_short"] == {"unsafe": 7, "safe": 5}
    assert not summary["balanced"]
    assert "was not reached" in (tmp_path / "out" / "README.md").read_text()


def test_bad_options_are_rejected(failing_run: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="jsonl, hf, parquet"):
        export_failures([failing_run], tmp_path / "out", fmt="csv")
    with pytest.raises(InvalidArgument, match="none, equal, fill"):
        export_failures([failing_run], tmp_path / "out", balance="more")
    with pytest.raises(InvalidArgument, match="test_fraction"):
        export_failures([failing_run], tmp_path / "out", test_fraction=1.0)


def test_a_run_without_failures_exports_an_empty_loadable_dataset(
    tmp_path: Path,
) -> None:
    import datasets

    case = oracle_case(SAFE_POD)
    suite = write_suite(tmp_path / "suite", [case])
    run_dir = write_run(tmp_path / "run", suite, [answer(case, "safe")])

    summary = export_failures([run_dir], tmp_path / "out", balance="equal")

    assert summary["exported"] == 0
    assert (tmp_path / "out" / "messages" / "train.jsonl").read_text() == ""
    data = datasets.load_from_disk(str(tmp_path / "out" / "hf" / "prompt_completion"))
    assert len(data["train"]) == len(data["test"]) == 0


# --- repair runs ---------------------------------------------------------------


def repair_result(case: Case, failure: str = "repair_still_unsafe") -> Result:
    return Result(
        case_id=case.id, task="repair", template_id="k8s-repair", template_version=1,
        model_id="fake", output="```yaml\n...\n```", answer="kind: Pod",
        correct=False, failure=failure,
    )  # fmt: skip


@pytest.fixture
def repair_run(tmp_path: Path) -> Path:
    cases = [oracle_case(HOSTPATH_POD), oracle_case(ROOT_POD)]
    suite = write_suite(tmp_path / "suite", cases)
    return write_run(
        tmp_path / "run", suite, [repair_result(c) for c in cases], task="repair"
    )


def hostpath_fix(case: Case) -> str:
    """A stand-in remediation: drops the hostPath volume, refuses the rest."""
    if "hostPath" not in case.config:
        raise RemediationError(f"{case.id}: no fix")
    return SAFE_POD


def test_repair_failures_get_the_remediation_as_answer(
    repair_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = types.ModuleType("generator.remediate")
    stand_in.remediate = hostpath_fix  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "generator.remediate", stand_in)

    summary = export_failures([repair_run], tmp_path / "out", fmt="jsonl")

    (row,) = read_rows(tmp_path / "out", "prompt_completion")
    assert row["task"] == "repair" and row["failure"] == "repair_still_unsafe"
    assert "Rewrite its securityContext settings" in row["prompt"][1]["content"]
    assert row["completion"][0]["content"] == f"```yaml\n{SAFE_POD.rstrip()}\n```"
    assert row["template"] == "k8s-repair@1"
    assert summary["repair"] == {"exported": 1, "refused": 1}
    assert "refused 1" in (tmp_path / "out" / "README.md").read_text()


def test_a_remediation_that_fails_the_recheck_is_not_exported(
    repair_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = types.ModuleType("generator.remediate")
    # Returns the unsafe config unchanged: the repair judge must refuse it.
    stand_in.remediate = lambda case: case.config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "generator.remediate", stand_in)

    summary = export_failures([repair_run], tmp_path / "out", fmt="jsonl")

    assert summary["exported"] == 0
    assert summary["repair"] == {"failed_recheck": 2}


def test_a_remediation_bug_is_counted_not_fatal(
    repair_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(case: Case) -> str:
        raise TypeError("a bug")

    stand_in = types.ModuleType("generator.remediate")
    stand_in.remediate = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "generator.remediate", stand_in)

    summary = export_failures([repair_run], tmp_path / "out", fmt="jsonl")

    assert summary["exported"] == 0
    assert summary["repair"] == {"error": 2}


def test_repair_rows_use_the_real_remediation(repair_run: Path, tmp_path: Path) -> None:
    pytest.importorskip(
        "generator.remediate", reason="generator.remediate is not written yet"
    )
    from generator.run.repair import judge_repair

    summary = export_failures([repair_run], tmp_path / "out", fmt="jsonl")

    cases = {c.id: c for c in map(oracle_case, (HOSTPATH_POD, ROOT_POD))}
    rows = read_rows(tmp_path / "out", "messages")
    assert summary["repair"].get("exported", 0) == len(rows) >= 1
    assert sum(summary["repair"].values()) == 2
    for row in rows:
        fixed = row["messages"][2]["content"]
        assert fixed.startswith("```yaml\n") and fixed.endswith("\n```")
        assert (
            truth(fixed[len("```yaml\n") : -len("\n```")], QUESTION).verdict == "safe"
        )
        assert judge_repair(cases[row["case_id"]], fixed).failure is None


def test_files_of_an_earlier_export_layout_are_replaced(
    failing_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "hf").mkdir(parents=True)
    for stale in ("failures.jsonl", "hf/state.json", "hf/data-00000-of-00001.arrow"):
        (out / stale).write_text("stale")

    export_failures([failing_run], out, fmt=("jsonl", "hf"))

    assert not (out / "failures.jsonl").exists()
    assert sorted(p.name for p in (out / "hf").iterdir()) == [
        "messages",
        "prompt_completion",
    ]
