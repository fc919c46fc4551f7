"""The run report: numbers checked by hand, suite integrity, rendering."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from fakeruns import answer, make_case, write_run, write_suite

from generator.errors import InvalidArgument, SuiteError
from generator.records import Result
from generator.report import build_report, format_report
from generator.stats import newcombe_interval

# (family, rules, what the model said): 6 unsafe cases and 4 safe ones.
SMALL_RUN = [
    ("pod", ["runAsNonRoot"], "unsafe"),
    ("pod", ["runAsNonRoot", "seccompProfile_restricted"], "safe"),  # missed
    ("pod", ["seccompProfile_restricted"], "unsafe"),
    ("deployment", ["runAsNonRoot"], "safe"),  # missed
    ("deployment", ["privileged"], None),  # unparseable
    ("deployment", ["privileged"], "unsafe"),
    ("pod", [], "safe"),
    ("pod", [], "unsafe"),  # false alarm
    ("deployment", [], "safe"),
    ("deployment", [], "safe"),
]


def small_run(tmp_path: Path) -> Path:
    cases = [
        make_case(i, family=family, rules=rules, verdict="safe")
        for i, (family, rules, _) in enumerate(SMALL_RUN)
    ]
    suite = write_suite(tmp_path / "suite", cases)
    results = [
        answer(c, said) for c, (_, _, said) in zip(cases, SMALL_RUN, strict=True)
    ]
    return write_run(tmp_path / "run", suite, results)


def test_small_run_numbers_match_a_hand_count(tmp_path: Path) -> None:
    run = build_report([small_run(tmp_path)])["runs"][0]

    assert run["cases"] == 10
    assert run["truth"] == {"unsafe": 6, "safe": 4}
    assert run["headline"]["metric"] == "missed_unsafe"
    assert run["headline"]["value"] == pytest.approx(2 / 6, abs=1e-4)
    assert (run["headline"]["count"], run["headline"]["of"]) == (2, 6)
    assert run["rates"]["accuracy"]["value"] == pytest.approx(0.6)
    assert run["rates"]["false_alarm"]["value"] == pytest.approx(0.25)
    assert run["rates"]["unparseable"]["count"] == 1
    assert run["failures"] == {"false_alarm": 1, "missed_unsafe": 2, "unparseable": 1}
    assert run["confusion"] == {
        "unsafe": {"unsafe": 3, "safe": 2, "unparseable": 1},
        "safe": {"unsafe": 1, "safe": 3, "unparseable": 0},
    }


def test_per_check_accuracy_counts_each_rule_of_a_case(tmp_path: Path) -> None:
    run = build_report([small_run(tmp_path)])["runs"][0]

    per_rule = {r["rule"]: (r["cases"], r["correct"]) for r in run["per_rule"]}
    assert per_rule == {
        "runAsNonRoot": (3, 1),
        "seccompProfile_restricted": (2, 1),
        "privileged": (2, 1),
    }
    # Worst first: runAsNonRoot is right 1 time in 3.
    assert run["per_rule"][0]["rule"] == "runAsNonRoot"


def test_per_family_accuracy_and_missed_unsafe(tmp_path: Path) -> None:
    run = build_report([small_run(tmp_path)])["runs"][0]

    families = {r["family"]: r for r in run["per_family"]}
    assert (families["pod"]["cases"], families["pod"]["correct"]) == (5, 3)
    assert families["pod"]["missed_unsafe"]["count"] == 1
    assert families["pod"]["false_alarm"]["of"] == 2
    assert (families["deployment"]["cases"], families["deployment"]["correct"]) == (
        5,
        3,
    )


def test_rates_carry_wilson_intervals_around_the_value(tmp_path: Path) -> None:
    rates = build_report([small_run(tmp_path)])["runs"][0]["rates"]

    for item in rates.values():
        low, high = item["interval"]
        assert 0 <= low <= item["value"] <= high <= 1
    # Wilson 95% for 2/6, by the textbook formula.
    assert rates["missed_unsafe"]["interval"] == pytest.approx(
        [0.0968, 0.7000], abs=1e-3
    )


def test_report_is_json_with_a_stable_key_order(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)

    first = json.dumps(build_report([run_dir]))
    second = json.dumps(build_report([run_dir]))

    assert first == second
    assert list(json.loads(first)["runs"][0])[:6] == [
        "run", "suite", "suite_sha256", "model", "task", "template",
    ]  # fmt: skip


def test_changed_suite_is_a_suite_error(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)
    cases = tmp_path / "suite" / "cases.jsonl"
    cases.write_text(cases.read_text() + "\n", encoding="utf-8")

    with pytest.raises(SuiteError, match="changed since the run"):
        build_report([run_dir])


def test_result_for_a_case_outside_the_suite_is_a_suite_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite", [make_case(1, rules=["r"])])
    stray = make_case(2, rules=["r"])
    run_dir = write_run(tmp_path / "run", suite, [answer(stray, "safe")])

    with pytest.raises(SuiteError, match="not in suite"):
        build_report([run_dir])


def test_missing_run_files_are_suite_errors(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no run.json"):
        build_report([tmp_path])
    with pytest.raises(InvalidArgument):
        build_report([])


def test_report_includes_the_failure_clusters(tmp_path: Path) -> None:
    rng = random.Random(3)
    cases, results = [], []
    for i in range(200):
        hostpath = rng.random() < 0.4
        tags = {"has_hostpath": hostpath, "n": rng.randint(1, 3)}
        rules = ["restrictedVolumes"] if hostpath else ["runAsNonRoot"]
        case = make_case(i, tags=tags, rules=rules)
        miss = rng.random() < (0.8 if hostpath else 0.05)
        cases.append(case)
        results.append(answer(case, "safe" if miss else "unsafe"))
    suite = write_suite(tmp_path / "suite", cases)
    run_dir = write_run(tmp_path / "run", suite, results)

    report = build_report([run_dir])
    clusters = report["runs"][0]["clusters"]
    text = format_report(report)

    assert clusters[0]["slice"] == "has_hostpath=true"
    assert clusters[0]["kind"] == "missed_unsafe"
    assert clusters[0]["example_case_id"] in text
    assert "`has_hostpath=true`" in text


def test_markdown_leads_with_the_missed_unsafe_rate(tmp_path: Path) -> None:
    text = format_report(build_report([small_run(tmp_path)]))

    lines = [line for line in text.splitlines() if line]
    assert lines[0].startswith("# spotcheck report")
    assert lines[2].startswith("**Missed unsafe (unsafe called safe): 33.3%**")
    assert "| unsafe | 3 | 2 | 1 |" in text
    assert "No slice of the cases fails significantly" in text


def test_two_runs_are_compared_on_the_headline(tmp_path: Path) -> None:
    first = small_run(tmp_path)
    cases = [make_case(i, rules=r, family=f, verdict="safe")
             for i, (f, r, _) in enumerate(SMALL_RUN)]  # fmt: skip
    perfect = [answer(c, c.truth.verdict) for c in cases]
    second = write_run(tmp_path / "run2", tmp_path / "suite", perfect)

    report = build_report([first, second])

    delta = report["comparison"][0]["rates"]["missed_unsafe"]
    assert delta["after"] == {"value": 0.0, "count": 0, "of": 6}
    assert delta["change"] == pytest.approx(-0.3333, abs=1e-4)
    # Newcombe's interval for 0/6 against 2/6, and it holds the change.
    assert delta["interval"] == pytest.approx(
        newcombe_interval((2, 6), (0, 6)), abs=1e-4
    )
    assert delta["interval"][0] < delta["change"] < delta["interval"][1]
    assert "# Comparison" in format_report(report)


def test_unknown_cluster_option_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="min_support"):
        build_report([small_run(tmp_path)], min_suport=5)


def test_template_is_read_from_either_run_json_spelling(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    assert build_report([run_dir])["runs"][0]["template"] == "k8s-verdict@1"

    del meta["template"]
    meta.update(template_id="k8s-verdict", template_version=2)
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert build_report([run_dir])["runs"][0]["template"] == "k8s-verdict@2"


def test_repair_headline_counts_unparseable_repairs_as_not_safe(
    tmp_path: Path,
) -> None:
    cases = [make_case(i, rules=["privileged"]) for i in range(4)]
    suite = write_suite(tmp_path / "suite", cases)
    outcomes = [None, "repair_still_unsafe", "unparseable", "repair_broke_intent"]
    results = [
        Result(
            case_id=c.id, task="repair", template_id="k8s-repair",
            template_version=1, model_id="fake", output="", answer=None,
            correct=kind is None, failure=kind,
        )
        for c, kind in zip(cases, outcomes, strict=True)
    ]  # fmt: skip
    run_dir = write_run(tmp_path / "run", suite, results, task="repair")

    report = build_report([run_dir])
    run = report["runs"][0]

    assert run["headline"]["metric"] == "repair_not_safe"
    assert (run["headline"]["count"], run["headline"]["of"]) == (2, 4)
    assert run["rates"]["repair_broke_intent"]["count"] == 1
    assert "missed_unsafe" not in run["rates"] and run["confusion"] is None
    assert "**Repairs not safe (still unsafe, or no config): 50.0%**" in format_report(
        report
    )


def test_a_torn_last_result_line_is_skipped_but_a_broken_middle_is_an_error(
    tmp_path: Path,
) -> None:
    run_dir = small_run(tmp_path)
    results = run_dir / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)

    results.write_text("".join(lines) + lines[0][:30])
    assert build_report([run_dir])["runs"][0]["cases"] == 10

    results.write_text(lines[0][:30] + "\n" + "".join(lines[1:]))
    with pytest.raises(SuiteError, match="results.jsonl:1: not JSON"):
        build_report([run_dir])


@pytest.mark.parametrize("path", ["serial", "parallel", "indexed"])
def test_results_with_bare_cr_line_ends_are_an_error_not_an_empty_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Read by newlines, such a file is one torn last line: a report of no
    # cases and exit 0 before, in each way a report reads results.
    import functools

    import generator.report as report_module
    from generator.rundata import scan_records

    monkeypatch.setenv("SPOTCHECK_CACHE", str(tmp_path / "cache"))
    if path == "parallel":
        scan = functools.partial(scan_records, min_bytes=0)
        monkeypatch.setattr(report_module, "scan_records", scan)
    if path == "indexed":
        monkeypatch.setattr(report_module, "INDEX_MIN_BYTES", 0)
    jobs = 1 if path == "serial" else 2
    run_dir = small_run(tmp_path)
    results = run_dir / "results.jsonl"
    crlf = results.read_bytes().replace(b"\n", b"\r\n")

    results.write_bytes(crlf.replace(b"\r\n", b"\r"))
    with pytest.raises(SuiteError, match=r"results.jsonl:1: lines end in a bare CR"):
        build_report([run_dir], jobs=jobs)
    # The same ending in one newline: no torn line, a line that is no JSON.
    results.write_bytes(crlf.replace(b"\r\n", b"\r") + b"\n")
    with pytest.raises(SuiteError, match=r"results.jsonl:1: not JSON.* bare CR"):
        build_report([run_dir], jobs=jobs)

    # A CRLF file torn after its last CR is only torn; one torn after a
    # CR inside a line too.
    results.write_bytes(crlf[:-1])
    assert build_report([run_dir], jobs=jobs)["runs"][0]["cases"] == 10
    results.write_bytes(crlf + crlf.split(b"\r\n")[0][:30] + b"\r")
    assert build_report([run_dir], jobs=jobs)["runs"][0]["cases"] == 10


# Pairs of (relation, base verdict, model on base, model on sibling); an
# opposite sibling has the other verdict. None is an unparseable answer.
SIBLING_RUN = [
    ("same", "unsafe", "unsafe", "unsafe"),  # consistent, both right
    ("same", "safe", "unsafe", "unsafe"),  # consistent, both wrong
    ("same", "unsafe", "unsafe", "safe"),  # inconsistent
    ("same", "safe", "safe", None),  # unparseable
    ("opposite", "unsafe", "unsafe", "safe"),  # flips with the truth
    ("opposite", "safe", "unsafe", "safe"),  # flips the wrong way
    ("opposite", "safe", "safe", "safe"),  # does not flip
]


def sibling_run(tmp_path: Path) -> Path:
    cases, results = [], []
    for i, (relation, verdict, on_base, on_sibling) in enumerate(SIBLING_RUN):
        flipped = "safe" if verdict == "unsafe" else "unsafe"
        other = verdict if relation == "same" else flipped
        base, sibling = (
            make_case(2 * i + k, rules=["privileged"] if v == "unsafe" else [],
                      verdict=v)
            for k, v in enumerate((verdict, other))
        )  # fmt: skip
        base = replace(base, siblings={relation: sibling.id})
        sibling = replace(sibling, siblings={relation: base.id})
        cases += [base, sibling]
        results += [answer(base, on_base), answer(sibling, on_sibling)]
    cases.append(make_case(99, rules=["privileged"]))  # unpaired, not counted
    results.append(answer(cases[-1], "safe"))
    suite = write_suite(tmp_path / "suite", cases)
    return write_run(tmp_path / "run", suite, results)


def test_consistency_counts_sibling_pairs_by_hand(tmp_path: Path) -> None:
    consistency = build_report([sibling_run(tmp_path)])["runs"][0]["consistency"]

    same, opposite = consistency["same"], consistency["opposite"]
    assert (same["pairs"], same["unparseable"], same["incomplete"]) == (3, 1, 0)
    assert (same["consistent"]["count"], same["consistent"]["of"]) == (2, 3)
    assert same["both_correct"]["count"] == 1
    assert opposite["pairs"] == 3
    # Both flipping pairs count, the one that flips the wrong way too.
    assert opposite["consistent"]["count"] == 2
    assert opposite["both_correct"]["count"] == 1


def test_consistency_is_in_the_markdown_only_with_siblings(tmp_path: Path) -> None:
    with_siblings = build_report([sibling_run(tmp_path / "a")])
    without = build_report([small_run(tmp_path / "b")])

    assert "## Consistency across siblings" in format_report(with_siblings)
    assert "same meaning, same answer | 3 | 66.7%" in format_report(with_siblings)
    assert without["runs"][0]["consistency"] is None
    assert "Consistency" not in format_report(without)


def test_a_pair_whose_sibling_the_run_did_not_reach_is_incomplete(
    tmp_path: Path,
) -> None:
    base, sibling = make_case(1, rules=["privileged"]), make_case(2, verdict="safe")
    base = replace(base, siblings={"opposite": sibling.id})
    sibling = replace(sibling, siblings={"opposite": base.id})
    suite = write_suite(tmp_path / "suite", [base, sibling])
    run_dir = write_run(tmp_path / "run", suite, [answer(base, "unsafe")])

    opposite = build_report([run_dir])["runs"][0]["consistency"]["opposite"]

    assert (opposite["pairs"], opposite["incomplete"]) == (0, 1)
    assert opposite["consistent"]["value"] is None


def test_an_unfinished_run_says_so(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    report = build_report([run_dir])
    assert report["runs"][0]["status"] == "running"
    assert "**Unfinished run**" in format_report(report)


def test_runs_of_different_tasks_are_not_compared(tmp_path: Path) -> None:
    first = small_run(tmp_path / "a")
    second = small_run(tmp_path / "b")
    meta = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**meta, "task": "repair"}))
    (delta,) = build_report([first, second])["comparison"]
    assert delta["not_comparable"] == "different task"
    assert "accuracy" not in delta


def test_report_read_by_several_processes_equals_the_serial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import generator.report as report_module
    from generator.rundata import scan_records

    rng = random.Random(9)
    cases, results = [], []
    for i in range(300):
        hostpath = rng.random() < 0.4
        rules = ["restrictedVolumes"] if hostpath else ["runAsNonRoot"]
        case = make_case(i, tags={"has_hostpath": hostpath}, rules=rules,
                         family=rng.choice(["pod", "job"]))  # fmt: skip
        cases.append(case)
        results.append(
            answer(
                case, "safe" if rng.random() < (0.8 if hostpath else 0.05) else "unsafe"
            )
        )
    # A resumed run repeated a case near the end: the first answer stands,
    # even when the two answers land in different processes' stretches.
    results.append(
        answer(cases[3], "unsafe" if results[3].answer == "safe" else "safe")
    )
    suite = write_suite(tmp_path / "suite", cases)
    run_dir = write_run(tmp_path / "run", suite, results)

    serial = build_report([run_dir], jobs=1)
    monkeypatch.setattr(
        report_module, "scan_records", functools.partial(scan_records, min_bytes=0)
    )
    parallel = build_report([run_dir], jobs=3)

    assert parallel == serial
    assert serial["runs"][0]["cases"] == 300 and serial["runs"][0]["clusters"]


def test_lines_only_pythons_json_reads_are_still_read(tmp_path: Path) -> None:
    # Scores of -inf (a label the model gives no mass) are written as
    # -Infinity, and a config may hold a lone surrogate escape; the fast
    # parser refuses both, and the report must read them all the same.
    cases = [
        make_case(i, family="pod", rules=["privileged"], verdict="safe")
        for i in range(3)
    ]
    cases[1] = replace(cases[1], config="name: \ud800")
    suite = write_suite(tmp_path / "suite", cases)
    results = [answer(c, "safe") for c in cases]
    results[0] = replace(results[0], scores={"logp_unsafe": float("-inf")})
    run = build_report([write_run(tmp_path / "run", suite, results)])["runs"][0]
    assert run["cases"] == 3
    assert run["failures"] == {"missed_unsafe": 3}


def test_report_command_searches_triples_when_asked(tmp_path: Path, capsys) -> None:
    # Misses only where three tags meet: no pair explains it alone.
    from generator.cli import main

    rng = random.Random(3)
    cases, results = [], []
    for i in range(600):
        tags = {k: rng.choice([True, False]) for k in ("a", "b", "c", "d")}
        case = make_case(i, tags=tags, rules=["privileged"], verdict="safe")
        bad = tags["a"] and tags["b"] and tags["c"]
        miss = rng.random() < (0.9 if bad else 0.05)
        cases.append(case)
        results.append(answer(case, "safe" if miss else "unsafe"))
    run = write_run(tmp_path / "run", write_suite(tmp_path / "suite", cases), results)

    names = {}
    for conditions in (2, 3):
        assert (
            main(["report", str(run), "--json", "--max-conditions", str(conditions)])
            == 0
        )
        report = json.loads(capsys.readouterr().out)["runs"][0]
        assert report["cluster_settings"]["max_conditions"] == conditions
        names[conditions] = [c["slice"] for c in report["clusters"]]
    assert names[3][0] == "a=true & b=true & c=true"
    assert not any(name.count("&") == 2 for name in names[2])
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(run), "--max-conditions", "4"])
    assert exit_.value.code == 2


def test_a_run_over_several_domains_names_each_template(tmp_path: Path) -> None:
    from generator.report_html import render_html

    cases = [make_case(i, rules=["privileged"]) for i in range(4)]
    run_dir = write_run(
        tmp_path / "run",
        write_suite(tmp_path / "suite", cases),
        [answer(c, "safe") for c in cases],
    )
    meta = json.loads((run_dir / "run.json").read_text())
    meta["templates"] = {
        "iam": {"id": "iam-verdict", "version": 1},
        "k8s": {"id": "k8s-verdict", "version": 2},
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    report = build_report([run_dir])
    said = "templates iam-verdict@1, k8s-verdict@2"
    assert said in format_report(report)
    assert said in render_html(report)
    # One template: said as before.
    meta["templates"] = {"k8s": {"id": "k8s-verdict", "version": 1}}
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert "template k8s-verdict@1 ·" in format_report(build_report([run_dir]))


def test_leads_say_why_each_sort_is_no_cluster() -> None:
    from generator.report import leads_said

    weak, overlapping = {"q_value": 0.0501}, {"q_value": 0.05}

    only_weak = leads_said([weak], 0.05, True)
    only_overlapping = leads_said([overlapping], 0.05, True)
    both = leads_said([weak, overlapping], 0.05, True)
    alone = leads_said([overlapping], 0.05, False)

    assert "run more cases" in only_weak and "on their own" not in only_weak
    assert "on their own" in only_overlapping and "more cases" not in only_overlapping
    assert only_overlapping.startswith("Slices with q at or below 0.05")
    assert "apart from the clusters" in only_overlapping
    assert both.startswith(only_weak) and "Those with q at or below" in both
    assert "clusters" not in alone and "larger slice holding them" in alone


def test_a_q_value_is_rounded_up_as_reported() -> None:
    from generator.cluster import rounded_up

    assert rounded_up(0.05004) == 0.0501 > 0.05
    assert rounded_up(0.05) == 0.05 and rounded_up(0.0499999) == 0.05
    assert rounded_up(1.234e-8) == 1.24e-08 and rounded_up(1.0) == 1.0
    assert rounded_up(0.0) == 0.0
