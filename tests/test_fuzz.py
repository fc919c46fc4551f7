"""``spotcheck fuzz`` end to end with a tiny local model: the budget, the files
it writes, mutation of failures, and crash safety (a real fuzz killed with
SIGKILL mid-round and resumed must end where an uninterrupted one does)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinymodel import build_tiny_model

from generator.cli import main
from generator.errors import SuiteError
from generator.fuzz import loop
from generator.fuzz.loop import run_fuzz
from generator.records import Result

# One identity for every fuzz here: 10 cases in rounds of 4 (4, 4, then 2).
CASES, SIZE = 10, 4
SETTINGS = {"cases": 10, "round_size": 4, "seed": 3, "batch_size": 2}
FLAGS = ["--cases", "10", "--round-size", "4", "--seed", "3", "--batch-size", "2"]

# Slows each batch of the child down, before and after its write, so that
# the kill lands mid-round whatever the machine's speed; the journal, the
# runner and the fuzz themselves are untouched.
_CHILD = """\
import sys, time
import generator.run.journal as journal
append = journal.Journal.append
def slow_append(self, results):
    time.sleep(0.1)
    append(self, results)
    time.sleep(0.1)
journal.Journal.append = slow_append
from generator.cli import main
from generator.errors import SuiteError
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model) -> Path:
    """An uninterrupted fuzz, the yardstick of the others."""
    out = tmp_path_factory.mktemp("reference") / "fuzz"
    run_fuzz(out, model=tiny_model, report_every=2, progress=False, **SETTINGS)
    return out


def _rounds(out: Path) -> list[Path]:
    return sorted((out / "rounds").iterdir(), key=lambda p: int(p.name))


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _suite_ids(round_dir: Path) -> list[str]:
    return [case["id"] for case in _lines(round_dir / "suite" / "cases.jsonl")]


def _results(out: Path) -> list[Result]:
    return [
        Result.from_dict(line)
        for round_dir in _rounds(out)
        for line in _lines(round_dir / "run" / "results.jsonl")
    ]


def _assert_same_fuzz(got: Path, want: Path) -> None:
    """Round by round the same cases; every case answered once, as in ``want``."""
    assert [_suite_ids(r) for r in _rounds(got)] == [
        _suite_ids(r) for r in _rounds(want)
    ]
    answers = _results(got)
    ids = [r.case_id for r in answers]
    assert len(ids) == len(set(ids)), "a case was answered twice"
    expected = {r.case_id: r for r in _results(want)}
    assert set(ids) == set(expected), "a case was lost"
    for result in answers:
        # Answers at a float-noise margin may legitimately differ.
        if abs(expected[result.case_id].scores["decision"]) > 1e-3:
            assert result.answer == expected[result.case_id].answer
    state = json.loads((got / "fuzz.json").read_text())
    assert state["status"] == "finished"
    assert state["answered"] == CASES


def test_the_cases_budget_stops_at_exactly_n_answers(reference):
    rounds = _rounds(reference)
    sizes = [len(_suite_ids(r)) for r in rounds]
    assert sum(sizes) == CASES and max(sizes) <= SIZE
    assert [r.name for r in rounds] == [f"{i:04d}" for i in range(1, len(rounds) + 1)]
    for round_dir in rounds:
        answered = {line["case_id"] for line in _lines(round_dir / "run/results.jsonl")}
        assert answered == set(_suite_ids(round_dir))
        assert json.loads((round_dir / "run/run.json").read_text())["status"] == (
            "finished"
        )
    # No case is asked twice across rounds.
    ids = [i for r in rounds for i in _suite_ids(r)]
    assert len(ids) == len(set(ids))


def test_fuzz_json_and_profile_json_hold_the_counts(reference, tiny_model):
    state = json.loads((reference / "fuzz.json").read_text())
    results = _results(reference)
    assert state["params"]["model"] == tiny_model
    assert state["params"]["seed"] == 3 and state["params"]["round_size"] == SIZE
    assert state["params"]["domains"] == ["k8s"]
    assert state["budget"] == {"cases": CASES, "hours": None}
    assert state["rounds"] == len(_rounds(reference))
    assert state["answered"] == len(results) == CASES
    assert state["failures"] == sum(not r.correct for r in results)
    assert sum(state["failure_kinds"].values()) == state["failures"]

    # Every slot of every round is one pull of one arm.
    manifests = [
        json.loads((r / "suite/manifest.json").read_text()) for r in _rounds(reference)
    ]
    arms = state["arms"]
    assert sum(a["pulls"] for a in arms.values()) == sum(
        sum(m["fuzz"]["picks"].values()) for m in manifests
    )
    assert sum(a["cases"] for a in arms.values()) == CASES
    assert sum(a["failures"] for a in arms.values()) == state["failures"]

    profile = json.loads((reference / "profile.json").read_text())
    assert set(profile["generators"]) == set(arms)
    for arm, entry in profile["generators"].items():
        assert entry["calls"] == arms[arm]["pulls"]
        assert entry["failures"] == arms[arm]["failures"]
    assert profile["mutators"], "no operator was profiled"
    for entry in profile["mutators"].values():
        assert entry["applied"] <= entry["calls"]
        assert entry["failures"] <= entry["answered"] <= entry["cases"]
    assert sum(f["answered"] for f in profile["families"].values()) == CASES


def test_later_rounds_mutate_the_failures_of_earlier_ones(reference):
    failed: set[str] = set()
    mutants = 0
    for round_dir in _rounds(reference):
        answers = {
            line["case_id"]: line for line in _lines(round_dir / "run/results.jsonl")
        }
        cases = _lines(round_dir / "suite/cases.jsonl")
        for case in cases:
            if case["origin"]["method"] == "mutation":
                mutants += 1
                assert case["origin"]["parent"] in failed
        failed |= {c["id"] for c in cases if not answers[c["id"]]["correct"]}
    assert failed, "the tiny model got everything right: nothing to mutate"
    assert mutants, "no round mutated a failing case"


def test_report_md_is_the_fuzz_summary_and_the_report_of_every_round(reference):
    text = (reference / "report.md").read_text()
    assert text.startswith(f"# spotcheck fuzz: {reference}")
    assert "Status: finished after" in text
    assert f"## spotcheck report: {reference}" in text
    assert "### Failure clusters" in text
    state = json.loads((reference / "fuzz.json").read_text())
    for arm in state["arms"]:
        assert f"`{arm}`" in text
    # The ordinary report read every round's run as one run.
    assert f"{CASES} cases" in text


def _spotcheck(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_fuzz_killed_mid_round_resumes_to_the_uninterrupted_one(
    reference, tmp_path, tiny_model, capsys
):
    out = tmp_path / "fuzz"
    child = _spotcheck(
        "fuzz", "--model", tiny_model, "--out", str(out), *FLAGS, "--no-progress"
    )
    journal = out / "rounds/0002/run/results.jsonl"
    deadline = time.monotonic() + 180
    while _count(journal) < 2 and child.poll() is None:
        assert time.monotonic() < deadline, "the fuzz never reached round 2"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the fuzz ended before the kill"

    # Killed inside round 2: round 1 folded in, round 2 half answered.
    state = json.loads((out / "fuzz.json").read_text())
    assert state["rounds"] == 1
    assert 2 <= _count(journal) < len(_suite_ids(out / "rounds/0002"))

    # Resumed here rather than in a second child: the model stack is loaded.
    capsys.readouterr()
    assert main(["fuzz", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert f"finished, {CASES} cases" in capsys.readouterr().out
    _assert_same_fuzz(out, reference)


def test_a_torn_round_suite_is_made_again_the_same(reference, tmp_path, tiny_model):
    out = tmp_path / "fuzz"
    # One round, then a kill while round 2's suite was being written.
    run_fuzz(out, model=tiny_model, progress=False, **{**SETTINGS, "cases": SIZE})
    torn = out / "rounds/0002/suite.partial"
    torn.mkdir(parents=True)
    (torn / "cases.jsonl").write_text('{"id": "k8s-torn"')

    # Running again into the same directory resumes it (a new budget is fine).
    run_fuzz(out, model=tiny_model, progress=False, **SETTINGS)
    assert not torn.exists()
    _assert_same_fuzz(out, reference)


def test_ctrl_c_saves_the_state_and_exits_130(tmp_path, tiny_model, monkeypatch):
    answer = loop._Fuzz._answer
    calls = []

    def interrupted(self, suite, run_dir):
        calls.append(run_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return answer(self, suite, run_dir)

    monkeypatch.setattr(loop._Fuzz, "_answer", interrupted)
    out = tmp_path / "fuzz"
    status = main(["fuzz", "--model", tiny_model, "--out", str(out), *FLAGS,
                   "--no-progress"])  # fmt: skip
    assert status == 130
    state = json.loads((out / "fuzz.json").read_text())
    assert state["status"] == "interrupted" and state["rounds"] == 1
    assert state["elapsed_seconds"] > 0
    # Round 2's suite is on disk for the resume to answer.
    assert len(_suite_ids(out / "rounds/0002")) == SIZE


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cases", "4"], "fuzz needs --model"),
        (["--model", "MODEL"], "needs a budget"),
        (["--model", "MODEL", "--hours", "-1"], "--hours -1"),
        (["--model", "MODEL", "--cases", "4", "--pss-version", "v9"], "v9"),
        (["--model", "/no/such/model", "--cases", "4"], "/no/such/model"),
        (["--resume", "--cases", "4"], "no fuzz to resume"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, tiny_model, capsys, args, message):
    out = tmp_path / "fuzz"
    args = [tiny_model if a == "MODEL" else a for a in args]
    assert main(["fuzz", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spotcheck: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (out / "fuzz.json").exists(), "a refused fuzz wrote its state"


def test_resuming_with_another_identity_is_refused(reference, tmp_path, capsys):
    copy = tmp_path / "fuzz"
    shutil.copytree(reference, copy)
    before = (copy / "fuzz.json").read_bytes()
    assert main(["fuzz", "--resume", "--out", str(copy), "--seed", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed 3, not 4" in err
    assert (copy / "fuzz.json").read_bytes() == before


def test_the_hours_budget_counts_every_session(reference, tmp_path, tiny_model):
    copy = tmp_path / "fuzz"
    shutil.copytree(reference, copy)
    spent = json.loads((copy / "fuzz.json").read_text())["elapsed_seconds"]
    assert spent > 0
    # Less time than the first session already used: nothing more is done.
    summary = run_fuzz(copy, hours=spent / 2 / 3600, progress=False, resume=True)
    state = json.loads((copy / "fuzz.json").read_text())
    assert summary["rounds"] == state["rounds"] == len(_rounds(reference))
    assert state["budget"] == {"hours": spent / 2 / 3600, "cases": None}
    assert state["elapsed_seconds"] >= spent


def test_a_second_fuzz_into_the_same_directory_is_refused(reference, tmp_path):
    copy = tmp_path / "fuzz"
    shutil.copytree(reference, copy)
    with loop._locked(copy):
        with pytest.raises(SuiteError, match="another spotcheck process"):
            run_fuzz(copy, resume=True, cases=CASES + SIZE, progress=False)
    assert json.loads((copy / "fuzz.json").read_text())["rounds"] == len(
        _rounds(reference)
    )


def test_the_model_is_opened_once_for_every_round(reference, tmp_path, tiny_model,
                                                  monkeypatch):  # fmt: skip
    import generator.run.backends as backends

    opened = []
    real = backends.open_backend

    def counting(*args, **kwargs):
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "open_backend", counting)
    out = tmp_path / "fuzz"
    run_fuzz(out, model=tiny_model, progress=False, **SETTINGS)
    assert len(_rounds(out)) == 3 and len(opened) == 1
    _assert_same_fuzz(out, reference)
