"""Several run directories read as one run: shards, and a fuzz directory's rounds.

The merged report must be the unsharded run's report, whatever the split;
shards that cannot be one run are refused in one line naming both.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fakeruns import answer, make_case, write_run, write_suite

from generator.cli import main
from generator.errors import InvalidArgument
from generator.records import dumps_line
from generator.report import build_report, format_report
from generator.run.runner import in_shard
from generator.rundata import load_run, load_runs, run_dirs_of

# Keys that say which directories a run was read from: the only ones a
# merged report may differ in from the unsharded run's.
WHERE = ("run", "parts", "shards")


def edit_meta(run_dir: Path, **changes) -> Path:
    path = run_dir / "run.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, **changes}))
    return run_dir


def planted_run(tmp_path: Path, n: int = 300):
    """A suite where hostPath cases are missed 90% of the time (3% otherwise),
    its unsharded run, its cases and results."""
    rng = random.Random(5)
    cases, results = [], []
    for i in range(n):
        hostpath = rng.random() < 0.3
        case = make_case(i, tags={"has_hostpath": hostpath}, rules=["r"],
                         family=rng.choice(["pod", "job"]))  # fmt: skip
        cases.append(case)
        miss = rng.random() < (0.9 if hostpath else 0.03)
        results.append(answer(case, "safe" if miss else "unsafe"))
    for i in range(n, n + 40):  # and some safe ones, for false alarms
        case = make_case(i, verdict="safe", family="pod")
        cases.append(case)
        results.append(answer(case, "unsafe" if rng.random() < 0.2 else "safe"))
    suite = write_suite(tmp_path / "suite", cases)
    whole = write_run(tmp_path / "whole", suite, results)
    return whole, cases, results


def write_shards(
    tmp_path: Path, results, count: int, name: str = "shard", **meta
) -> list[Path]:
    """The run split as ``spotcheck run --shard I/N`` splits it."""
    dirs = []
    for index in range(1, count + 1):
        mine = [r for r in results if in_shard(r.case_id, (index, count))]
        run = write_run(tmp_path / f"{name}-{index}", tmp_path / "suite", mine)
        fields = {"shard": [index, count], "status": "finished", "limit": None}
        dirs.append(edit_meta(run, **{**fields, **meta}))
    return dirs


def without_where(run: dict) -> dict:
    return {key: value for key, value in run.items() if key not in WHERE}


# --- merging ------------------------------------------------------------------


def test_merged_shards_report_the_unsharded_runs_rates_and_clusters(
    tmp_path: Path,
) -> None:
    whole, _, results = planted_run(tmp_path)
    shards = write_shards(tmp_path, results, 3)

    (expected,) = build_report([whole], jobs=1)["runs"]
    (merged,) = build_report(shards, jobs=1)["runs"]

    assert expected["clusters"], "the planted hostPath cluster was not found"
    assert without_where(merged) == without_where(expected)
    assert merged["status"] == "finished"
    assert merged["shards"] == {
        "of": 3, "present": [1, 2, 3], "missing": [], "unfinished": [],
    }  # fmt: skip
    assert merged["parts"] == [str(d) for d in shards]
    # Named in any order, the shards are read in shard order.
    (again,) = build_report(shards[::-1], jobs=1)["runs"]
    assert again == merged


def test_merged_shards_read_by_several_processes_equal_the_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import generator.report as report_module
    from generator.rundata import scan_records

    _, cases, results = planted_run(tmp_path)
    # A case answered by hand in a second shard too: the answer in the
    # first shard stands, whichever process reads each.
    extra = answer(cases[0], "unsafe" if results[0].answer == "safe" else "safe")
    owner = next(i for i in (1, 2, 3) if in_shard(cases[0].id, (i, 3)))
    shards = write_shards(tmp_path, results, 3)
    other = shards[owner % 3]
    with open(other / "results.jsonl", "a") as handle:
        handle.write(dumps_line(extra))

    serial = build_report(shards, jobs=1)
    monkeypatch.setattr(
        report_module, "scan_records", functools.partial(scan_records, min_bytes=0)
    )
    parallel = build_report(shards, jobs=3)

    assert parallel == serial
    assert serial["runs"][0]["cases"] == len(cases)


def test_a_missing_shard_leaves_the_run_incomplete_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, cases, results = planted_run(tmp_path)
    one, two, _ = write_shards(tmp_path, results, 3)

    (run,) = build_report([one, two], jobs=1)["runs"]
    assert run["status"] == "incomplete"
    assert run["shards"]["missing"] == [3] and run["shards"]["present"] == [1, 2]
    assert run["cases"] == sum(in_shard(c.id, (3, 3)) is False for c in cases)
    assert "shard 3/3 missing" in format_report({"runs": [run]})

    # The gate judges what is there, and says what is not.
    assert main(["gate", str(one), str(two), "--max-missed-unsafe", "1"]) == 0
    assert "note: unfinished run" in (out := capsys.readouterr().out)
    assert "shard 3/3 missing" in out


def test_a_running_shard_leaves_the_run_unfinished(tmp_path: Path) -> None:
    _, _, results = planted_run(tmp_path)
    shards = write_shards(tmp_path, results, 2)
    edit_meta(shards[1], status="running")

    (run,) = build_report(shards, jobs=1)["runs"]
    assert run["status"] == "running"
    assert run["shards"]["unfinished"] == [2] and not run["shards"]["missing"]
    assert "shard 2/2 still running" in format_report({"runs": [run]})


def test_a_single_shard_of_one_is_a_finished_run(tmp_path: Path) -> None:
    whole, _, results = planted_run(tmp_path)
    (only,) = write_shards(tmp_path, results, 1)
    (run,) = build_report([only], jobs=1)["runs"]
    (expected,) = build_report([whole], jobs=1)["runs"]
    assert run["status"] == "finished"
    assert without_where(run) == without_where(expected)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tinymodel import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


def test_shards_of_a_tiny_model_run_report_as_the_unsharded_run(
    tmp_path: Path, tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import tinymodel

    from generator.run.runner import run_suite

    texts = tinymodel.pod_variants()
    texts += [
        tinymodel.SAFE_POD.replace("name: web", f"name: web-{i}") for i in range(16)
    ]
    cases = [tinymodel.make_case(t, family=f"f{i % 3}") for i, t in enumerate(texts)]
    suite = tinymodel.write_suite(tmp_path / "suite", cases)
    whole = tmp_path / "whole"
    run_suite(suite, model=tiny_model, out_dir=whole, progress=False)
    shards = [tmp_path / f"shard-{i}" for i in (1, 2, 3)]
    for index, out in enumerate(shards, start=1):
        run_suite(
            suite, model=tiny_model, out_dir=out, shard=(index, 3), progress=False
        )

    assert main(["report", "--json", str(whole)]) == 0
    (expected,) = json.loads(capsys.readouterr().out)["runs"]
    assert main(["report", "--json", *map(str, shards)]) == 0
    (merged,) = json.loads(capsys.readouterr().out)["runs"]

    assert merged["cases"] == expected["cases"] == len(cases)
    assert merged["shards"]["present"] == [1, 2, 3]
    assert without_where(merged) == without_where(expected)


# --- refusals -----------------------------------------------------------------


def _other_suite(tmp_path: Path, results) -> Path:
    """Shard 2 of 2, run on a different suite."""
    cases = [make_case(9000 + i, rules=["r"]) for i in range(5)]
    suite = write_suite(tmp_path / "other-suite", cases)
    run = write_run(tmp_path / "odd", suite, [answer(c, "safe") for c in cases])
    return edit_meta(run, shard=[2, 2], status="finished", limit=None)


MISMATCHES = {
    "model": lambda tmp, r: edit_meta(tmp / "shard-2", model="other"),
    "shard count": lambda tmp, r: edit_meta(tmp / "shard-2", shard=[2, 3]),
    "limit": lambda tmp, r: edit_meta(tmp / "shard-2", limit=100),
    "task": lambda tmp, r: edit_meta(tmp / "shard-2", task="repair"),
    "template": lambda tmp, r: edit_meta(
        tmp / "shard-2", template={"id": "k8s-verdict", "version": 2}
    ),
    "suite sha256": _other_suite,
    "both shard 1/2": lambda tmp, r: edit_meta(tmp / "shard-2", shard=[1, 2]),
}


@pytest.mark.parametrize("what", MISMATCHES)
@pytest.mark.parametrize("command", ["report", "gate"])
def test_shards_of_different_runs_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, command: str
) -> None:
    _, _, results = planted_run(tmp_path, n=60)
    one, _ = write_shards(tmp_path, results, 2)
    odd = MISMATCHES[what](tmp_path, results)

    argv = [command, str(one), str(odd)]
    argv += ["--max-missed-unsafe", "0.5"] if command == "gate" else []
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("spotcheck: error:")
    assert str(one) in line and str(odd) in line and what in line


def test_a_malformed_shard_record_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, results = planted_run(tmp_path, n=60)
    one, two = write_shards(tmp_path, results, 2)
    edit_meta(two, shard=[3, 2])
    assert main(["report", str(one), str(two)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(two / "run.json") in line and "shard=[3, 2]" in line


# --- gate ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0.05", "0.5"])
def test_gate_over_shards_judges_as_over_the_whole_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    whole, _, results = planted_run(tmp_path)
    shards = [str(d) for d in write_shards(tmp_path, results, 4)]

    expected = main(["gate", str(whole), "--max-missed-unsafe", limit])
    whole_out = capsys.readouterr().out
    junit = tmp_path / "gate.xml"
    status = main(
        ["gate", *shards, "--max-missed-unsafe", limit, "--junit", str(junit)]
    )
    shard_out = capsys.readouterr().out

    assert status == expected == (1 if limit == "0.05" else 0)
    assert shard_out.splitlines()[-1] == whole_out.splitlines()[-1]
    assert "note:" not in shard_out
    assert "<testsuite" in junit.read_text()


def test_gate_refuses_directories_of_several_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, _, results = planted_run(tmp_path, n=60)
    other = write_run(tmp_path / "other", tmp_path / "suite", results)
    (shard,) = write_shards(tmp_path, results, 1)
    for dirs in ([whole, other], [whole, shard]):
        assert main(["gate", *map(str, dirs), "--max-missed-unsafe", "0.5"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert "gate judges one run" in line and str(whole) in line


# --- report: comparing --------------------------------------------------------


def test_shards_are_one_run_beside_a_plain_run_and_as_a_baseline(
    tmp_path: Path,
) -> None:
    whole, _, results = planted_run(tmp_path)
    shards = write_shards(tmp_path, results, 3)

    # A plain run first, then the shards: one comparison, of two runs.
    report = build_report([whole, *shards], jobs=1)
    assert [r["run"] for r in report["runs"]] == [
        str(whole), ", ".join(map(str, shards)),
    ]  # fmt: skip
    (delta,) = report["comparison"]
    assert all(change["change"] == 0 for change in delta["rates"].values())

    # The shards as the baseline (--compare, once per shard).
    report = build_report([whole], compare=shards, jobs=1)
    assert report["baseline"]["parts"] == [str(d) for d in shards]
    (delta,) = report["comparison"]
    assert [c["slice"] for c in delta["clusters"]["persisting"]]
    with pytest.raises(InvalidArgument, match="names 2 runs"):
        build_report([whole], compare=[whole, shards[0]], jobs=1)


def test_cli_report_compares_sharded_runs_with_repeated_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cases, results = planted_run(tmp_path)
    old = write_shards(tmp_path, results, 2, name="old")
    # The new model misses nothing.
    fixed = [answer(c, c.truth.verdict, model="fixed") for c in cases]
    new = write_shards(tmp_path, fixed, 2, name="new", model="fixed")

    argv = ["report", str(new[0]), str(new[1]), "--json"]
    argv += ["--compare", str(old[1]), "--compare", str(old[0])]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["baseline"]["shards"]["present"] == [1, 2]
    assert report["runs"][0]["shards"]["present"] == [1, 2]
    (delta,) = report["comparison"]
    assert delta["models"] == {"before": "fake", "after": "fixed"}
    assert delta["rates"]["missed_unsafe"]["after"]["count"] == 0
    assert delta["clusters"]["fixed"]


def test_minimize_sees_the_merged_run(tmp_path: Path) -> None:
    whole, cases, results = planted_run(tmp_path)
    shards = write_shards(tmp_path, results, 3)
    seen = []

    def minimize(run, report) -> None:
        seen.append((run, report))
        # Every case answered, and each case found in its own shard's suite.
        assert sum(1 for _ in run.pairs()) == len(cases)
        assert run.case(report["clusters"][0]["example_case_id"]).truth

    build_report(shards, jobs=1, minimize=minimize)
    ((run, report),) = seen
    assert [part.run_dir for part in run.members] == shards
    assert run.run_dir == shards[0]  # where --minimize keeps its answer cache
    assert report["clusters"]


# --- fuzz directories ---------------------------------------------------------


def fuzz_dir(tmp_path: Path, rounds: int = 3, *, started: bool = True) -> Path:
    """The layout ``spotcheck fuzz --out DIR`` writes: a suite and a run per
    round; the last round has begun but written no run.json yet."""
    out = tmp_path / "fuzz"
    (out / "rounds").mkdir(parents=True)
    (out / "fuzz.json").write_text(json.dumps({"round": rounds}))
    for number in range(1, rounds + 1):
        here = out / "rounds" / f"{number:04d}"
        cases = [
            make_case(100 * number + i, rules=["r"] if i % 2 else (),
                      verdict="safe", family=f"f{number}")
            for i in range(8)
        ]  # fmt: skip
        suite = write_suite(here / "suite", cases)
        results = [answer(c, "safe") for c in cases]
        write_run(here / "run", suite, results)
        edit_meta(here / "run", status="finished")
    if started:
        (out / "rounds" / f"{rounds + 1:04d}" / "run").mkdir(parents=True)
    return out


def test_run_dirs_of_lists_a_fuzz_dirs_round_runs_in_order(tmp_path: Path) -> None:
    out = fuzz_dir(tmp_path)
    assert run_dirs_of(out) == [out / "rounds" / f"{n:04d}" / "run" for n in (1, 2, 3)]
    plain = out / "rounds" / "0002" / "run"
    assert run_dirs_of(plain) == [plain]
    assert run_dirs_of(tmp_path / "nothing") == [tmp_path / "nothing"]


def test_a_fuzz_dir_reports_as_one_run_of_its_rounds(tmp_path: Path) -> None:
    out = fuzz_dir(tmp_path)
    rounds = run_dirs_of(out)

    (run,) = build_report([out], jobs=1)["runs"]
    singles = build_report(rounds, jobs=1, allow_different=True)["runs"]
    assert run["run"] == str(out) and run["parts"] == [str(d) for d in rounds]
    assert run["cases"] == sum(r["cases"] for r in singles) == 24
    assert run["failures"]["missed_unsafe"] == sum(
        r["failures"].get("missed_unsafe", 0) for r in singles
    )
    assert [s["suite_sha256"] for s in run["suites"]] == [
        r["suite_sha256"] for r in singles
    ]
    # The combined identity is none of the rounds' own.
    assert run["suite_sha256"] not in {r["suite_sha256"] for r in singles}
    assert {r["family"] for r in run["per_family"]} == {"f1", "f2", "f3"}
    assert run["status"] == "finished" and run["shards"] is None
    assert "3 runs read as one" in format_report({"runs": [run]})
    assert load_run(out).label == str(out)


def test_a_fuzz_round_of_another_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fuzz_dir(tmp_path)
    odd = edit_meta(out / "rounds" / "0002" / "run", model="other")
    assert main(["report", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(out) in line and str(odd) in line and "model differs" in line


def test_a_fuzz_dir_without_rounds_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    out.mkdir()
    (out / "fuzz.json").write_text("{}")
    with pytest.raises(Exception, match="without a round yet"):
        load_runs([out])


def test_a_shard_with_no_answer_yet_is_judged_by_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, results = planted_run(tmp_path, n=60)
    one, two, three = write_shards(tmp_path, results, 3)
    # Before its first answer a shard's run.json names the model as given.
    (one / "results.jsonl").write_text("")
    edit_meta(one, status="running", model="demo", counts={"total": 0})

    (run,) = build_report([one, two, three], jobs=1)["runs"]
    assert run["model"] == "fake" and run["shards"]["unfinished"] == [1]

    edit_meta(three, model="other")
    assert main(["report", str(one), str(two), str(three)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{two} and {three}" in line and "model differs" in line


def test_cli_report_writes_html_and_markdown_for_merged_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, results = planted_run(tmp_path)
    shards = [str(d) for d in write_shards(tmp_path, results, 2)]
    page = tmp_path / "report.html"

    assert main(["report", *shards, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.count("# spotcheck report:") == 1 and "# Comparison" not in out
    assert "Sharded run: shards 1, 2 of 2" in out and "has_hostpath=true" in out
    html = page.read_text()
    assert shards[0] in html and "has_hostpath=true" in html


def test_fuzz_rounds_past_9999_keep_their_order(tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    (out / "rounds").mkdir(parents=True)
    (out / "fuzz.json").write_text("{}")
    for name in ("0002", "9999", "10000", "0010"):
        (out / "rounds" / name / "run").mkdir(parents=True)
        (out / "rounds" / name / "run" / "run.json").write_text("{}")
    names = [run.parent.name for run in run_dirs_of(out)]
    assert names == ["0002", "0010", "9999", "10000"]
