"""Crash safety: a real ``spotcheck run`` killed with SIGKILL and resumed.

The resumed run must hold exactly the results of an uninterrupted one: every
case once, no duplicate, the same answers and scores up to float noise
(batches are cut differently after a resume, and batch composition moves
the last bits of a log-probability).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tinymodel import SAFE_POD, build_tiny_model, make_case, pod_variants, write_suite

from generator.errors import SuiteError
from generator.records import Result
from generator.run.journal import Journal
from generator.run.runner import run_suite

# Slows each batch of the child down, before and after its write, so that
# the kill lands mid-run whatever the machine's speed; the journal and the
# runner themselves are untouched.
_CHILD = """\
import sys, time
import generator.run.journal as journal
append = journal.Journal.append
def slow_append(self, results):
    time.sleep(0.02)
    append(self, results)
    time.sleep(0.02)
journal.Journal.append = slow_append
from generator.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    texts = list(pod_variants())
    texts += [SAFE_POD.replace("name: web", f"name: web-{i}") for i in range(56)]
    cases = [make_case(text) for text in texts]
    return write_suite(tmp_path_factory.mktemp("suite"), cases)


def _results(out) -> list[Result]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [Result.from_dict(json.loads(line)) for line in lines]


def _spotcheck(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _assert_same_results(got: list[Result], want: list[Result]) -> None:
    ids = [r.case_id for r in got]
    assert len(ids) == len(set(ids)), "a case was written twice"
    assert set(ids) == {r.case_id for r in want}, "a case was lost"
    by_id = {r.case_id: r for r in want}
    for result in got:
        expected = by_id[result.case_id]
        for key, value in expected.scores.items():
            assert result.scores[key] == pytest.approx(value, abs=1e-4), key
        if abs(expected.scores["decision"]) > 1e-3:
            assert result.answer == expected.answer


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_results(
    suite, tmp_path, tiny_model
):
    reference = tmp_path / "reference"
    run_suite(suite, model=tiny_model, out_dir=reference, batch_size=4, progress=False)
    want = _results(reference)

    out = tmp_path / "killed"
    args = ["run", "--suite", str(suite), "--model", tiny_model, "--out", str(out)]
    child = _spotcheck(*args, "--batch-size", "4", "--no-progress")
    journal = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while _lines(journal) < 12 and child.poll() is None:
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the run ended before the kill"

    done = _lines(journal)
    assert 12 <= done < len(want)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "running"

    resumed = _spotcheck("run", "--resume", "--out", str(out), "--no-progress")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{len(want)} results" in stdout

    _assert_same_results(_results(out), want)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "finished"
    assert meta["counts"]["total"] == len(want)
    # At most the batch in flight was lost and answered again.
    assert meta["counts"]["new"] <= len(want) - done + 4


@pytest.mark.parametrize("cut", [1, 0.5, -1])
def test_a_kill_at_any_byte_of_the_last_batch_loses_only_that_batch(
    suite, tmp_path, tiny_model, cut
):
    out = tmp_path / "run"
    run_suite(
        suite, model=tiny_model, out_dir=out, limit=12, batch_size=4, progress=False
    )
    want = _results(out)
    data = (out / "results.jsonl").read_bytes()
    # The last batch's bytes: after the 8th newline.
    start = [i for i, b in enumerate(data) if b == 10][7] + 1
    offset = {1: start + 1, 0.5: (start + len(data)) // 2, -1: len(data) - 1}[cut]
    (out / "results.jsonl").write_bytes(data[:offset])

    summary = run_suite(
        suite, model=tiny_model, out_dir=out, limit=12, batch_size=4, progress=False
    )
    assert 1 <= summary["counts"]["new"] <= 4
    _assert_same_results(_results(out), want)


def test_a_second_run_into_the_same_directory_is_refused(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    run_suite(suite, model=tiny_model, out_dir=out, limit=2, progress=False)
    with Journal(out / "results.jsonl"):
        with pytest.raises(SuiteError, match="another spotcheck run"):
            run_suite(suite, model=tiny_model, out_dir=out, progress=False)
    # The lock goes with the journal.
    assert run_suite(suite, model=tiny_model, out_dir=out, progress=False)


def test_the_journal_never_writes_a_case_twice(tmp_path):
    path = tmp_path / "results.jsonl"
    result = Result("k8s-1", "verdict", "t", 1, "m", "SAFE", "safe", True)
    with Journal(path) as journal:
        journal.append([result, result])
        journal.append([result])
    assert path.read_text().count("\n") == 1


def test_resume_without_a_run_is_an_error(suite, tmp_path, tiny_model):
    with pytest.raises(SuiteError, match="no run to resume"):
        run_suite(suite, model=tiny_model, out_dir=tmp_path / "new", resume=True)
