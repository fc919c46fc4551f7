"""The suite index: a report joined with it says exactly what a report that
parses every answered case line says, and a suite it cannot index is read
the old way."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fakeruns import answer, make_case, write_run, write_suite

import generator.report as report
import generator.suite_index as suite_index
from generator.cluster import CaseRows
from generator.errors import SuiteError
from generator.records import dumps_line
from generator.report import build_report
from generator.rundata import _Answers, load_runs
from generator.suite import generate_suite


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPOTCHECK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "suites"


def both(run_dirs: list[Path], monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The report by a scan, and by the index (None if the index was not
    used)."""
    monkeypatch.setattr(report, "INDEX_MIN_BYTES", 1 << 62)
    scanned = build_report(run_dirs, jobs=2)
    used = []
    monkeypatch.setattr(report, "INDEX_MIN_BYTES", 0)
    monkeypatch.setattr(
        report,
        "join",
        lambda *a, **k: used.append(suite_index.join(*a, **k)) or used[-1],
    )
    joined = build_report(run_dirs, jobs=2)
    return scanned, joined if used and used[0] is not None else None


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real suite of two domains, with siblings and mutation operators."""
    out = tmp_path_factory.mktemp("generated") / "suite"
    generate_suite(domains=("k8s", "iam"), count=90, seed=5, out_dir=out)
    return out


def a_run(tmp_path: Path, suite: Path, every: int = 1) -> Path:
    """A model that says unsafe for every third case, on every ``every``-th
    case (in reverse order, as a runner's batches reorder them); one answer
    unparseable."""
    from generator.rundata import iter_cases

    cases = list(iter_cases(suite))[::every][::-1]
    results = [
        answer(case, None if n == 4 else ("unsafe" if n % 3 else "safe"))
        for n, case in enumerate(cases)
    ]
    return write_run(tmp_path / f"run-{every}", suite, results)


def hand_written(tmp_path: Path, cases: list[dict], answered: list) -> Path:
    """A suite of hand-made case lines and a run answering ``answered``
    (cases), its run.json naming the suite's real sha256."""
    from fakeruns import sha256

    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    run = write_run(tmp_path / "run", suite, [answer(c, "safe") for c in answered])
    meta = json.loads((run / "run.json").read_text())
    meta["suite_sha256"] = sha256(suite / "cases.jsonl")
    (run / "run.json").write_text(json.dumps(meta))
    return run


def test_the_joined_report_is_the_scanned_one(
    tmp_path: Path, generated: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for every in (1, 3):  # every case answered, and a third of them
        run = a_run(tmp_path, generated, every)
        scanned, joined = both([run], monkeypatch)
        assert joined is not None
        assert joined == scanned
        assert scanned["runs"][0]["cases"] == len(range(0, 90, every))
    assert scanned["runs"][0]["consistency"] is not None  # siblings were counted
    assert len(list(cache.iterdir())) == 1  # one suite, indexed once


def test_the_cached_index_is_read_not_rebuilt(
    tmp_path: Path, generated: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = a_run(tmp_path, generated)
    scanned, first = both([run], monkeypatch)
    monkeypatch.setattr(suite_index, "_build", lambda *a: pytest.fail("rebuilt"))
    assert both([run], monkeypatch)[1] == first == scanned


def test_a_repeated_answer_and_a_torn_last_line_read_as_in_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cases = [make_case(i, rules=["privileged"] if i % 2 else []) for i in range(30)]
    suite = write_suite(tmp_path / "suite", cases)
    results = [answer(c, "safe") for c in cases]
    run = write_run(tmp_path / "run", suite, results)
    with open(run / "results.jsonl", "a") as handle:
        handle.write(dumps_line(answer(cases[3], "unsafe")))  # a repeat: ignored
        handle.write(dumps_line(answer(cases[4], "unsafe"))[:40])  # torn
    caplog.set_level(logging.WARNING)
    scanned, joined = both([run], monkeypatch)
    assert joined == scanned
    # Every case unsafe, answered safe; the repeat's "unsafe" does not count.
    missed = joined["runs"][0]["rates"]["missed_unsafe"]
    assert (missed["count"], missed["of"]) == (30, 30)
    assert "torn last line skipped" in caplog.text
    assert "answered again" in caplog.text


def test_a_suite_with_a_broken_line_is_read_line_by_line(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [make_case(i) for i in range(20)]
    broken = {"id": "k8s-broken", "config": 3}  # no one answers it
    run = hand_written(tmp_path, [c.to_dict() for c in cases] + [broken], cases)
    scanned, joined = both([run], monkeypatch)
    assert joined is None  # no index: the scan ran
    assert not cache.exists() or not list(cache.iterdir())
    assert scanned["runs"][0]["cases"] == 20


def test_an_answer_to_a_case_the_suite_lacks_is_refused_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [make_case(i) for i in range(10)]
    suite = write_suite(tmp_path / "suite", cases)
    stranger = answer(make_case(99), "safe")
    run = write_run(tmp_path / "run", suite, [answer(c, "safe") for c in cases])
    with open(run / "results.jsonl", "a") as handle:
        handle.write(dumps_line(stranger))
    for limit in (1 << 62, 0):
        monkeypatch.setattr(report, "INDEX_MIN_BYTES", limit)
        with pytest.raises(SuiteError, match=r"results.jsonl:11: case .* not in"):
            build_report([run], jobs=2)


def test_parsed_answers_match_the_quick_pass_in_any_number_of_processes(
    tmp_path: Path,
) -> None:
    cases = [make_case(i) for i in range(40)]
    suite = write_suite(tmp_path / "suite", cases)
    run = write_run(tmp_path / "run", suite, [answer(c, "unsafe") for c in cases])
    with open(run / "results.jsonl", "a") as handle:
        # A repeat in the second half, malformed: a repeat only warns.
        handle.write(json.dumps({"case_id": cases[0].id, "answer": "safe"}) + "\n")
    (loaded,) = load_runs([run])
    quick = _Answers.of(loaded)
    for jobs in (1, 2, 4):
        parsed = _Answers.parsed(loaded, jobs=jobs)
        assert parsed.ids == quick.ids
        assert list(parsed.offset) == list(quick.offset)
        assert list(parsed.line) == list(quick.line)
        assert parsed.fields[0] == ("verdict", "unsafe", True, None)


def test_a_malformed_first_answer_is_named_with_its_line(tmp_path: Path) -> None:
    cases = [make_case(i) for i in range(6)]
    suite = write_suite(tmp_path / "suite", cases)
    run = write_run(tmp_path / "run", suite, [answer(c, "safe") for c in cases[:5]])
    with open(run / "results.jsonl", "a") as handle:
        handle.write(json.dumps({"case_id": cases[5].id, "answer": "safe"}) + "\n")
    (loaded,) = load_runs([run])
    with pytest.raises(SuiteError, match=r"results.jsonl:6: malformed record"):
        _Answers.parsed(loaded, jobs=2)


def test_selected_rows_are_the_rows_added_alone(generated: Path) -> None:
    from generator.rundata import iter_cases

    cases = [case.to_dict() for case in iter_cases(generated)]
    every = CaseRows()
    for case in cases:
        every.add(case, {"correct": True})
    picked = np.array(range(1, len(cases), 4))
    alone = CaseRows()
    for row in picked.tolist():
        alone.add(cases[row], {"correct": False, "failure": "missed_unsafe"})
    chosen = every.select(picked, ["missed_unsafe"] * len(picked))
    assert chosen.ids == alone.ids and chosen.failures == alone.failures
    assert list(chosen.sizes) == list(alone.sizes)

    def named(rows: CaseRows) -> dict:
        return {
            rows.features[n]: list(rows.postings[n])
            for n in range(len(rows.features))
            if len(rows.postings[n])
        }

    assert named(chosen) == named(alone)
    restored = CaseRows.from_columns(every.columns())
    assert named(restored) == named(every) and restored.index == every.index


def test_a_damaged_cache_file_is_rebuilt_and_replaced(
    tmp_path: Path, generated: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = a_run(tmp_path, generated)
    scanned, joined = both([run], monkeypatch)
    (index,) = cache.iterdir()
    assert index.stat().st_mode & 0o777 == 0o644  # readable by a shared cache's users
    good = index.read_bytes()
    damages = [
        good[: len(good) // 2],
        b"",
        good[:100] + bytes([good[100] ^ 1]) + good[101:],
    ]
    # Columns that unzip but do not fit: a key past the key table.
    with np.load(index) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["keys"] = arrays["keys"] + 1000
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    damages.append(bad.read_bytes())
    for damaged in damages:
        index.write_bytes(damaged)
        assert both([run], monkeypatch)[1] == scanned
        assert index.read_bytes() != damaged  # replaced by a good one


def test_a_suite_edited_while_it_is_indexed_is_not_filed_under_its_old_hash(
    tmp_path: Path, generated: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = a_run(tmp_path, generated)
    scanned, _ = both([run], monkeypatch)
    for index in cache.iterdir():
        index.unlink()
    cases = generated / "cases.jsonl"
    original = cases.read_bytes()
    build = suite_index._build

    def edited_meanwhile(path: Path, jobs: int):
        built = build(path, jobs)
        cases.write_bytes(original.replace(b'"format":"yaml"', b'"format":"json"', 1))
        return built

    monkeypatch.setattr(suite_index, "_build", edited_meanwhile)
    try:
        _, joined = both([run], monkeypatch)
    finally:
        cases.write_bytes(original)
    assert joined is None and not list(cache.iterdir())


def test_siblings_of_another_shape_leave_the_suite_to_the_scan(tmp_path: Path) -> None:
    cases = [make_case(i).to_dict() for i in range(8)]
    cases[3]["siblings"] = [["same", cases[1]["id"]]]
    run = hand_written(tmp_path, cases, [make_case(i) for i in range(4, 8)])
    digest = json.loads((run / "run.json").read_text())["suite_sha256"]
    assert suite_index.suite_index(tmp_path / "suite" / "cases.jsonl", digest) is None


def test_a_line_appended_while_the_results_are_read_is_skipped_as_torn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import generator.rundata as rundata

    cases = [make_case(i) for i in range(12)]
    suite = write_suite(tmp_path / "suite", cases)
    run = write_run(tmp_path / "run", suite, [answer(c, "safe") for c in cases[:10]])
    (loaded,) = load_runs([run])
    results = run / "results.jsonl"
    lines = rundata._lines

    def while_a_runner_writes(path: Path, *args):
        if path == results:  # after the size was read, before the lines are
            with open(results, "a") as handle:
                handle.write(dumps_line(answer(cases[11], "safe"))[:30])
        yield from lines(path, *args)

    monkeypatch.setattr(rundata, "_lines", while_a_runner_writes)
    assert len(_Answers.parsed(loaded, jobs=1)) == 10
    assert len(_Answers.of(loaded)) == 10


def test_a_verdict_other_than_safe_or_unsafe_is_named_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [make_case(i).to_dict() for i in range(6)]
    cases[2]["truth"]["verdict"] = "maybe"
    run = hand_written(tmp_path, cases, [make_case(i) for i in range(6)])
    for limit in (1 << 62, 0):
        monkeypatch.setattr(report, "INDEX_MIN_BYTES", limit)
        with pytest.raises(SuiteError, match=r"results.jsonl:3: malformed .*maybe"):
            build_report([run], jobs=2)


def test_a_suite_line_whose_id_is_no_string_is_named(tmp_path: Path) -> None:
    cases = [make_case(i) for i in range(5)]
    lines = [c.to_dict() for c in cases] + [{"id": ["x"], "config": ""}]
    (loaded,) = load_runs([hand_written(tmp_path, lines, cases)])
    with pytest.raises(SuiteError, match=r"cases.jsonl:6: not a case line"):
        loaded.offsets  # noqa: B018 - the index pass is what is tested


def test_a_malformed_example_case_is_named_with_its_real_line(tmp_path: Path) -> None:
    cases = [make_case(i).to_dict() for i in range(4)]
    del cases[2]["question"]
    (loaded,) = load_runs(
        [hand_written(tmp_path, cases, [make_case(i) for i in range(4)])]
    )
    with pytest.raises(SuiteError, match=r"cases.jsonl:3: malformed record"):
        loaded.case(cases[2]["id"])


def test_a_rule_or_failure_that_is_no_string_is_named_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [make_case(i, rules=["privileged"]).to_dict() for i in range(6)]
    cases[1]["truth"]["violations"][0]["rule"] = 7
    run = hand_written(tmp_path, cases, [make_case(i) for i in range(6)])
    for limit in (1 << 62, 0):
        monkeypatch.setattr(report, "INDEX_MIN_BYTES", limit)
        with pytest.raises(SuiteError, match=r"results.jsonl:2: malformed .*rules"):
            build_report([run], jobs=2)

    fine = [make_case(i) for i in range(6)]
    run = write_run(tmp_path / "run-2", write_suite(tmp_path / "s2", fine), [])
    lines = [answer(c, "safe").to_dict() for c in fine]
    lines[4]["failure"] = 3
    (run / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for limit in (1 << 62, 0):
        monkeypatch.setattr(report, "INDEX_MIN_BYTES", limit)
        with pytest.raises(SuiteError, match=r"results.jsonl:5: malformed .*failure"):
            build_report([run], jobs=2)
