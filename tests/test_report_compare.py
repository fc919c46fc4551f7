"""Comparing runs: new, fixed and persisting clusters, family deltas, refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fakeruns import answer, make_case, write_run, write_suite

from generator.errors import InvalidArgument
from generator.report import build_report, format_report
from generator.report_html import render_html


def two_problem_suite(tmp_path: Path, n: int = 400):
    """Unsafe cases with a hostPath tag or a seccomp tag (or neither), in two
    families."""
    rng = random.Random(4)
    cases = []
    for i in range(n):
        tags = {
            "has_hostpath": rng.random() < 0.3,
            "seccomp": rng.choice(["unset", "RuntimeDefault"]),
        }
        family = rng.choice(["pod", "job"])
        cases.append(make_case(i, tags=tags, rules=["r"], family=family))
    return write_suite(tmp_path / "suite", cases), cases


def run_missing(tmp_path: Path, name: str, cases, bad, seed: int) -> Path:
    """A run that misses 90% of the cases ``bad`` picks, 3% of the rest."""
    rng = random.Random(seed)
    results = []
    for case in cases:
        miss = rng.random() < (0.9 if bad(case) else 0.03)
        results.append(answer(case, "safe" if miss else "unsafe", model=name))
    return write_run(tmp_path / name, tmp_path / "suite", results, model=name)


def hostpath(case) -> bool:
    return case.tags["has_hostpath"] is True


def unset_seccomp(case) -> bool:
    return case.tags["seccomp"] == "unset" and case.family == "job"


def test_new_fixed_and_persisting_clusters_are_told_apart(tmp_path: Path) -> None:
    _, cases = two_problem_suite(tmp_path)
    # Before: hostPath pods are missed. After: hostPath still is, and unset
    # seccomp in jobs is a new problem. Then the hostPath problem is fixed.
    before = run_missing(tmp_path, "before", cases, hostpath, 1)
    after = run_missing(
        tmp_path, "after", cases, lambda c: hostpath(c) or unset_seccomp(c), 2
    )
    later = run_missing(tmp_path, "later", cases, unset_seccomp, 3)

    report = build_report([after], compare=before)
    (delta,) = report["comparison"]
    clusters = delta["clusters"]
    assert report["baseline"]["run"] == str(before)
    assert [c["slice"] for c in clusters["persisting"]] == ["has_hostpath=true"]
    new = [c["slice"] for c in clusters["new"]]
    assert "seccomp=unset & family=job" in new
    assert clusters["fixed"] == []

    # The new cluster is counted in the baseline's cases too (where only
    # its hostPath cases failed, about 30% of them).
    seccomp = next(c for c in clusters["new"] if "seccomp" in c["slice"])
    assert seccomp["before"]["value"] < 0.5 < 0.8 < seccomp["after"]["value"]
    assert seccomp["before"]["of"] == seccomp["after"]["of"]
    assert seccomp["interval"][0] > 0.3 and seccomp["was"] == "none"

    (delta,) = build_report([later], compare=after)["comparison"]
    fixed = [c["slice"] for c in delta["clusters"]["fixed"]]
    assert fixed == ["has_hostpath=true"]
    item = delta["clusters"]["fixed"][0]
    # Still missed where it overlaps the seccomp problem (a quarter of it).
    assert item["after"]["value"] < 0.4 and item["interval"][1] < -0.4
    assert item["now"] == "none"


def test_family_deltas_carry_newcombe_intervals(tmp_path: Path) -> None:
    _, cases = two_problem_suite(tmp_path)
    before = run_missing(tmp_path, "before", cases, lambda c: False, 1)
    after = run_missing(tmp_path, "after", cases, unset_seccomp, 2)

    (delta,) = build_report([after], compare=before)["comparison"]

    rows = {(r["family"], r["metric"]): r for r in delta["per_family"]}
    job, pod = rows[("job", "missed_unsafe")], rows[("pod", "missed_unsafe")]
    # Jobs got worse for sure; pods did not move beyond their interval.
    assert job["change"] > 0.3 and job["interval"][0] > 0.2
    assert pod["interval"][0] < 0 < pod["interval"][1]
    assert (
        job["before"]["of"]
        == job["after"]["of"]
        == sum(c.family == "job" for c in cases)
    )
    # Safe cases: none in this suite, so no false-alarm rows.
    assert ("job", "false_alarm") not in rows


def test_runs_on_different_suites_are_refused_unless_allowed(tmp_path: Path) -> None:
    _, cases = two_problem_suite(tmp_path)
    before = run_missing(tmp_path, "before", cases, hostpath, 1)
    other_suite = write_suite(tmp_path / "suite2", cases[:200])
    results = [answer(c, "unsafe") for c in cases[:200]]
    after = write_run(tmp_path / "after", other_suite, results)

    with pytest.raises(InvalidArgument, match="different suite.*--allow-different"):
        build_report([after], compare=before)
    (delta,) = build_report([after], compare=before, allow_different=True)["comparison"]
    assert delta["differences"] == ["suite"]
    assert [c["slice"] for c in delta["clusters"]["fixed"]] == ["has_hostpath=true"]


def test_runs_with_different_templates_are_refused(tmp_path: Path) -> None:
    _, cases = two_problem_suite(tmp_path)
    before = run_missing(tmp_path, "before", cases, hostpath, 1)
    after = run_missing(tmp_path, "after", cases, hostpath, 2)
    meta = json.loads((after / "run.json").read_text())
    meta["template"] = {"id": "k8s-verdict", "version": 2}
    (after / "run.json").write_text(json.dumps(meta))

    with pytest.raises(InvalidArgument, match="different template"):
        build_report([after], compare=before)
    report = build_report([after], compare=before, allow_different=True)
    assert report["comparison"][0]["differences"] == ["template"]


def test_comparison_shows_in_markdown_and_html(tmp_path: Path) -> None:
    _, cases = two_problem_suite(tmp_path)
    before = run_missing(tmp_path, "before", cases, hostpath, 1)
    after = run_missing(tmp_path, "after", cases, unset_seccomp, 2)

    report = build_report([after], compare=before)
    text = format_report(report)
    page = render_html(report)

    assert "### Fixed clusters (1)" in text and "`has_hostpath=true`" in text
    assert "### New clusters (1)" in text
    assert "Newcombe" in text and "### Per family" in text
    assert "<h3 id=clusters-fixed>Fixed clusters (1)</h3>" in page
    assert "<code>has_hostpath=true</code>" in page
    # The baseline is summarised, not reported in full.
    assert text.count("# spotcheck report:") == 1
    json.dumps(report)
