"""The parallel reader of a run: the same pairs as the serial one, and the
same clear errors, whichever process meets the bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeruns import answer, make_case, sha256, write_run, write_suite

from generator.errors import SuiteError
from generator.records import dumps_line
from generator.rundata import _tasks, load_runs, scan_records


class Pairs:
    """Every (case id, result answer) added, to compare reads."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def add(self, case: dict, result: dict) -> None:
        self.seen.append((case["id"], result["answer"]))


def read(run_dir: Path, jobs: int) -> list[tuple[str, str | None]]:
    (run,) = load_runs([run_dir])
    parts = scan_records(run, Pairs, jobs=jobs, min_bytes=0)
    return sorted(pair for part in parts for pair in part.seen)


def refused(run_dir: Path, pattern: str) -> None:
    """Both reads stop with the same SuiteError."""
    for jobs in (1, 2):
        with pytest.raises(SuiteError, match=pattern):
            read(run_dir, jobs)


def rehash(run_dir: Path, suite: Path) -> None:
    """The suite was edited on purpose: make run.json name its new hash."""
    meta = json.loads((run_dir / "run.json").read_text())
    meta["suite_sha256"] = sha256(suite)
    (run_dir / "run.json").write_text(json.dumps(meta))


def planted(tmp_path: Path, count: int = 40) -> tuple[Path, list, list]:
    cases = [make_case(i, rules=["privileged"] if i % 3 else []) for i in range(count)]
    results = [answer(c, "safe" if i % 2 else "unsafe") for i, c in enumerate(cases)]
    suite = write_suite(tmp_path / "suite", cases)
    return write_run(tmp_path / "run", suite, results), cases, results


def test_parallel_read_pairs_each_answer_with_its_case_once(tmp_path: Path) -> None:
    run_dir, cases, results = planted(tmp_path)
    # A repeated answer: the first one stands in both reads.
    with open(run_dir / "results.jsonl", "a") as handle:
        handle.write(dumps_line(answer(cases[5], "unsafe")))
    serial, parallel = read(run_dir, 1), read(run_dir, 3)
    assert parallel == serial
    assert len(serial) == len(cases)
    assert dict(serial)[cases[5].id] == results[5].answer


def test_an_answer_to_a_case_the_suite_lacks_is_named_with_its_line(
    tmp_path: Path,
) -> None:
    run_dir, _, results = planted(tmp_path)
    stranger = answer(make_case(999), "safe")
    with open(run_dir / "results.jsonl", "a") as handle:
        handle.write(dumps_line(stranger))
    line = len(results) + 1
    refused(run_dir, rf"results.jsonl:{line}: case .* not in")


def test_a_case_on_two_lines_of_the_suite_is_refused(tmp_path: Path) -> None:
    run_dir, cases, _ = planted(tmp_path)
    suite = tmp_path / "suite" / "cases.jsonl"
    with open(suite, "a") as handle:
        handle.write(dumps_line(cases[7]))
    rehash(run_dir, suite)
    refused(run_dir, f"case {cases[7].id} is on two lines")


def test_broken_lines_are_named_and_a_torn_last_one_skipped(tmp_path: Path) -> None:
    run_dir, cases, _ = planted(tmp_path)
    path = run_dir / "results.jsonl"
    whole = path.read_text()
    # A torn last line (a run killed mid-write) is skipped by both reads,
    # also when it got as far as naming its case.
    extra = make_case(500)
    write_suite(tmp_path / "suite", [*cases, extra])
    rehash(run_dir, tmp_path / "suite" / "cases.jsonl")
    for torn in ('{"answer":"sa', dumps_line(answer(extra, "safe"))[:60]):
        assert extra.id in torn or "case_id" not in torn
        path.write_text(whole + torn)
        assert read(run_dir, 2) == read(run_dir, 1)
        assert len(read(run_dir, 2)) == len(cases)
    # A broken line before the end is an error naming it.
    lines = whole.splitlines(keepends=True)
    lines[3] = "{not json\n"
    path.write_text("".join(lines))
    refused(run_dir, r"results.jsonl:4: not JSON")


def test_a_broken_case_line_is_named(tmp_path: Path) -> None:
    run_dir, _, _ = planted(tmp_path)
    suite = tmp_path / "suite" / "cases.jsonl"
    lines = suite.read_text().splitlines(keepends=True)
    lines[9] = '{"config": "no id here"}\n'
    suite.write_text("".join(lines))
    rehash(run_dir, suite)
    refused(run_dir, r"cases.jsonl:10: not a case line")


def test_cases_the_scan_paired_are_fetched_without_indexing_the_suite(
    tmp_path: Path,
) -> None:
    run_dir, cases, _ = planted(tmp_path)
    (run,) = load_runs([run_dir])
    scan_records(run, Pairs, jobs=2, min_bytes=0)
    assert run.case(cases[11].id) == cases[11]
    assert not run.indexes.by_digest  # no pass over the whole file was made
    # A case no result names still needs (and builds) the index.
    (fresh,) = load_runs([run_dir])
    assert fresh.case(cases[12].id) == cases[12]
    assert fresh.indexes.by_digest


@pytest.mark.parametrize("jobs", [1, 2, 3, 5, 40])
def test_tasks_cover_every_suite_byte_once_at_line_starts(
    tmp_path: Path, jobs: int
) -> None:
    suites = []
    for number, count in enumerate((30, 1, 12)):
        suite = write_suite(
            tmp_path / f"s{number}", [make_case(i + 100 * number) for i in range(count)]
        )
        suites.append(suite / "cases.jsonl")
    tasks = _tasks(suites, jobs)
    assert 1 <= len(tasks) <= jobs
    for path in suites:
        data = path.read_bytes()
        pieces = sorted(
            (start, len(data) if end is None else end)
            for task in tasks
            for where, start, end in task
            if where == path
        )
        assert pieces[0][0] == 0 and pieces[-1][1] == len(data)
        for (_, end), (start, _) in zip(pieces, pieces[1:], strict=False):
            assert end == start and data[start - 1 : start] == b"\n"


def test_an_empty_run_on_an_empty_suite_reads_as_empty(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", write_suite(tmp_path / "suite", []), [])
    assert read(run_dir, 2) == read(run_dir, 1) == []


def partly(tmp_path: Path) -> tuple[Path, Path, list]:
    """A 40-case suite with only its first 10 cases answered."""
    cases = [make_case(i, rules=["privileged"]) for i in range(40)]
    suite = write_suite(tmp_path / "suite", cases) / "cases.jsonl"
    results = [answer(c, "safe") for c in cases[:10]]
    return write_run(tmp_path / "run", suite.parent, results), suite, cases


def test_a_broken_line_repeating_an_answered_case_fails_both_reads(
    tmp_path: Path,
) -> None:
    run_dir, cases, _ = planted(tmp_path)
    path = run_dir / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(10, f'{{"case_id":"{cases[3].id}","answer":BROKEN\n')
    path.write_text("".join(lines))
    refused(run_dir, r"results.jsonl:11: not JSON")


def test_a_broken_answered_case_line_is_one_error_line_in_both_reads(
    tmp_path: Path,
) -> None:
    run_dir, suite, cases = partly(tmp_path)
    lines = suite.read_text().splitlines(keepends=True)
    lines[3] = f'{{"id":"{cases[3].id}","config":BROKEN\n'
    suite.write_text("".join(lines))
    rehash(run_dir, suite)
    refused(run_dir, r"cases.jsonl:4: not a case line")


def test_unanswered_lines_are_judged_alike_by_both_reads(tmp_path: Path) -> None:
    run_dir, suite, cases = partly(tmp_path)
    whole = suite.read_text()
    # An unanswered case on two lines is refused by both.
    suite.write_text(whole + dumps_line(cases[30]))
    rehash(run_dir, suite)
    refused(run_dir, f"case {cases[30].id} is on two lines")
    # A broken line that no answer names, but whose id can be read, is no
    # concern of this run: both reads pass it by.
    suite.write_text(whole + '{"id":"k8s-000099","config":BROKEN\n')
    rehash(run_dir, suite)
    assert read(run_dir, 2) == read(run_dir, 1)
    assert len(read(run_dir, 1)) == 10


def test_a_nested_case_id_does_not_move_an_answer(tmp_path: Path) -> None:
    # A hand-written result line: spaced top-level keys, and a compact
    # "case_id" inside a nested object. Its answer belongs to the top one.
    run_dir, suite, cases = partly(tmp_path)
    line = json.loads(dumps_line(answer(cases[20], "unsafe")))
    line["detail"] = {"case_id": cases[21].id}
    text = json.dumps(line, separators=(", ", ": "))
    text = text.replace(f'"case_id": "{cases[21].id}"', f'"case_id":"{cases[21].id}"')
    with open(run_dir / "results.jsonl", "a") as handle:
        handle.write(text + "\n")
    serial = read(run_dir, 1)
    assert read(run_dir, 2) == serial
    assert (cases[20].id, "unsafe") in serial
    assert all(case_id != cases[21].id for case_id, _ in serial)
