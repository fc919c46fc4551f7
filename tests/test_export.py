"""Exporting failures: chat rows with the oracle's answer, kept apart from evals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeruns import QUESTION, answer, write_run, write_suite

from generator.errors import InvalidArgument
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

ROOT_POD = SAFE_POD.replace("runAsNonRoot: true", "runAsUser: 0").replace(
    "allowPrivilegeEscalation: false", "privileged: true"
)


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


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failures_become_chat_rows_answered_by_the_oracle(
    failing_run: Path, tmp_path: Path
) -> None:
    summary = export_failures([failing_run], tmp_path / "out", fmt="chat-jsonl")

    rows = read_rows(tmp_path / "out" / "failures.jsonl")
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


def test_rows_name_their_case_family_failure_and_template(
    failing_run: Path, tmp_path: Path
) -> None:
    export_failures([failing_run], tmp_path / "out", fmt="chat-jsonl")

    rows = read_rows(tmp_path / "out" / "failures.jsonl")
    assert [r["failure"] for r in rows] == [
        "false_alarm",
        "missed_unsafe",
        "unparseable",
    ]
    assert {r["family"] for r in rows} == {"pod"}
    assert all(r["template"] == "k8s-verdict@1" and r["case_id"] for r in rows)


def test_hf_dataset_reloads_with_load_from_disk(
    failing_run: Path, tmp_path: Path
) -> None:
    import datasets

    export_failures([failing_run], tmp_path / "out", fmt=("hf",))

    dataset = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert len(dataset) == 3
    assert dataset[1]["messages"][2]["content"].startswith("UNSAFE")
    assert dataset[1]["rules"] == ["restrictedVolumes"]
    # Only the formats asked for are written.
    assert not (tmp_path / "out" / "failures.jsonl").exists()


def test_card_names_the_source_and_the_oracle(
    failing_run: Path, tmp_path: Path
) -> None:
    export_failures([failing_run], tmp_path / "out")

    card = (tmp_path / "out" / "README.md").read_text()
    assert "answers come from spotcheck's oracle" in card
    assert "`fake`" in card and str(failing_run) in card
    assert "exported: 3 (unsafe 2, safe 1)" in card
    assert "| `restrictedVolumes` | 1 |" in card


def test_configs_of_an_excluded_suite_are_dropped_up_to_layout(
    failing_run: Path, tmp_path: Path
) -> None:
    # The eval suite holds the safe pod, reshaped, and an unrelated pod.
    reshaped = oracle_case(SAFE_POD_RESHAPED)
    other = oracle_case(SAFE_POD.replace("nginx:1.27", "nginx:1.28"))
    eval_suite = write_suite(tmp_path / "eval", [reshaped, other])

    summary = export_failures(
        [failing_run], tmp_path / "out", fmt="chat-jsonl", exclude_suites=[eval_suite]
    )

    rows = read_rows(tmp_path / "out" / "failures.jsonl")
    assert summary["excluded_by_suite"] == 1
    assert [r["label"] for r in rows] == ["unsafe", "unsafe"]


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

    summary = export_failures([failing_run, again], tmp_path / "out", fmt="chat-jsonl")

    assert summary["failures_seen"] == 6
    assert summary["duplicates"] == 3
    assert summary["exported"] == 3


def test_balance_keeps_as_many_safe_as_unsafe(
    failing_run: Path, tmp_path: Path
) -> None:
    summary = export_failures(
        [failing_run], tmp_path / "out", fmt="chat-jsonl", balance=True
    )

    rows = read_rows(tmp_path / "out" / "failures.jsonl")
    assert summary["by_label"] == {"unsafe": 1, "safe": 1}
    assert summary["dropped_for_balance"] == 1
    assert sorted(r["label"] for r in rows) == ["safe", "unsafe"]


def test_unknown_format_is_rejected(failing_run: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="chat-jsonl, hf"):
        export_failures([failing_run], tmp_path / "out", fmt="parquet")


def test_a_run_without_failures_exports_an_empty_loadable_dataset(
    tmp_path: Path,
) -> None:
    import datasets

    case = oracle_case(SAFE_POD)
    suite = write_suite(tmp_path / "suite", [case])
    run_dir = write_run(tmp_path / "run", suite, [answer(case, "safe")])

    summary = export_failures([run_dir], tmp_path / "out", balance=True)

    assert summary["exported"] == 0
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""
    assert len(datasets.load_from_disk(str(tmp_path / "out" / "hf"))) == 0


def test_repair_failures_are_exported_as_verdict_examples(tmp_path: Path) -> None:
    case = oracle_case(HOSTPATH_POD)
    suite = write_suite(tmp_path / "suite", [case])
    repair = Result(
        case_id=case.id, task="repair", template_id="k8s-repair", template_version=1,
        model_id="fake", output="```yaml\n...\n```", answer="kind: Pod",
        correct=False, failure="repair_still_unsafe",
    )  # fmt: skip
    run_dir = write_run(tmp_path / "run", suite, [repair], task="repair")

    export_failures([run_dir], tmp_path / "out", fmt="chat-jsonl")

    (row,) = read_rows(tmp_path / "out" / "failures.jsonl")
    assert row["failure"] == "repair_still_unsafe"
    assert "Answer SAFE if it does" in row["messages"][1]["content"]
    assert row["messages"][2]["content"] == answer_text(case)
    assert row["messages"][2]["content"].startswith("UNSAFE\n- restrictedVolumes")
