"""run_suite on a tiny model: files written, limits, resuming, torn lines."""

from __future__ import annotations

import hashlib
import json

import pytest
from tinymodel import build_tiny_model, make_case, pod_variants, write_suite

from generator.errors import InvalidArgument, ModelError, SuiteError
from generator.records import FAILURE_KINDS, Result
from generator.run import runner as runner_module
from generator.run.runner import run_suite
from generator.rundata import load_run


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture
def suite(tmp_path):
    cases = [make_case(text) for text in pod_variants()]
    return write_suite(tmp_path / "suite", cases)


def _results(out) -> list[Result]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [Result.from_dict(json.loads(line)) for line in lines]


def _run(suite, out, model, **options):
    options.setdefault("progress", False)
    return run_suite(suite, model=model, out_dir=out, **options)


def test_run_writes_one_result_per_case_and_run_json(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    summary = _run(suite, out, tiny_model, batch_size=3)

    results = _results(out)
    cases = (suite / "cases.jsonl").read_text().splitlines()
    assert len(results) == len(cases)
    assert {r.task for r in results} == {"verdict"}
    assert all(r.failure in (None, *FAILURE_KINDS) for r in results)
    assert all(r.correct == (r.failure is None) for r in results)

    meta = json.loads((out / "run.json").read_text())
    assert meta == summary
    assert meta["task"] == "verdict"
    assert meta["model"] == tiny_model
    assert meta["template"] == {"id": "k8s-verdict", "version": 1}
    assert meta["suite"] == str(suite.resolve())
    assert len(meta["manifest_sha256"]) == 64
    assert meta["counts"]["total"] == len(cases) == meta["counts"]["new"]
    assert meta["accuracy"] == meta["counts"]["correct"] / len(cases)
    assert meta["device"] in ("cpu", "cuda")
    assert meta["settings"]["rule"] == "calibrated_sum"
    assert meta["settings"]["calibration"]


def test_finished_run_reads_back_through_rundata(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=2)
    pairs = list(load_run(out).pairs())
    assert [case.id for case, _ in pairs] == [r.case_id for _, r in pairs]
    assert len(pairs) == 2


def test_limit_takes_the_first_cases_of_the_suite(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=3)
    first = [
        json.loads(x)["id"] for x in (suite / "cases.jsonl").read_text().splitlines()
    ]
    assert [r.case_id for r in _results(out)] == first[:3]


def test_rerun_skips_finished_cases(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=3)
    summary = _run(suite, out, tiny_model)
    ids = [r.case_id for r in _results(out)]
    assert len(ids) == len(set(ids)) == len(pod_variants())
    assert summary["counts"]["new"] == len(ids) - 3

    # Nothing left: no model is loaded, and run.json keeps its settings.
    again = _run(suite, out, tiny_model)
    assert again["counts"]["new"] == 0
    assert again["settings"] == summary["settings"]
    assert again["device"] == summary["device"]


def test_a_torn_last_line_is_discarded_and_its_case_rerun(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=3)
    path = out / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # A kill in the middle of writing the third line.
    path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])

    summary = _run(suite, out, tiny_model, limit=3)
    assert summary["counts"]["new"] == 1
    assert len(_results(out)) == 3


def test_a_broken_line_before_the_end_names_file_and_line(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=2)
    path = out / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("{not json\n" + "".join(lines))
    with pytest.raises(SuiteError, match=r"results.jsonl:1"):
        _run(suite, out, tiny_model)


def test_repair_runs_only_on_unsafe_cases(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, task="repair", max_new_tokens=8)
    unsafe = {
        c.id for c in map(make_case, pod_variants()) if c.truth.verdict == "unsafe"
    }
    results = _results(out)
    assert {r.case_id for r in results} == unsafe
    assert all(r.task == "repair" and not r.correct for r in results)
    meta = json.loads((out / "run.json").read_text())
    assert meta["template"]["id"] == "k8s-repair"
    assert meta["settings"] == {"decoding": "greedy", "max_new_tokens": 8}


def test_another_task_into_the_same_run_directory_is_refused(
    suite, tmp_path, tiny_model
):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=1)
    with pytest.raises(SuiteError, match="another --out"):
        _run(suite, out, tiny_model, task="repair", max_new_tokens=4)


def test_missing_suite_names_the_file(tmp_path, tiny_model):
    with pytest.raises(SuiteError, match="manifest.json: missing"):
        _run(tmp_path / "nowhere", tmp_path / "run", tiny_model)


def test_broken_case_line_names_file_and_line(suite, tmp_path, tiny_model):
    path = suite / "cases.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"id": "half"\n' + "".join(lines[1:]))
    # A suite whose manifest vouches for the broken file: the line is named.
    manifest = json.loads((suite / "manifest.json").read_text())
    manifest["cases_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (suite / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SuiteError, match=r"cases.jsonl:2"):
        _run(suite, tmp_path / "run", tiny_model)


@pytest.mark.parametrize("manifest", ["[]", "{}"])
def test_manifest_without_a_digest_is_refused(suite, tmp_path, tiny_model, manifest):
    (suite / "manifest.json").write_text(manifest)
    with pytest.raises(SuiteError, match="records no cases_sha256"):
        _run(suite, tmp_path / "run", tiny_model)


def test_a_run_of_another_task_is_refused_before_the_model_loads(
    suite, tmp_path, tiny_model, monkeypatch
):
    out = tmp_path / "run"
    _run(suite, out, tiny_model)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("generator.run.models.load_model", no_loading)
    with pytest.raises(SuiteError, match="holds a verdict run"):
        _run(suite, out, tiny_model, task="repair")


def test_missing_model_leaves_no_run_directory(suite, tmp_path):
    with pytest.raises(ModelError):
        run_suite(suite, model=str(tmp_path / "nope"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_interrupted_run_can_still_be_reported(
    suite, tmp_path, tiny_model, monkeypatch
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(runner_module, "_run_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(suite, out, tiny_model)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert load_run(out).task == "verdict"

    monkeypatch.undo()
    assert _run(suite, out, tiny_model)["status"] == "finished"


def test_suite_edited_after_generation_is_refused(suite, tmp_path, tiny_model):
    with open(suite / "cases.jsonl", "a") as handle:
        handle.write("\n")
    with pytest.raises(SuiteError, match="edited after"):
        _run(suite, tmp_path / "run", tiny_model)


@pytest.mark.parametrize(
    "options",
    [
        {"task": "translate"},
        {"limit": 0},
        {"batch_size": 0},
        {"batch_size": True},
        {"scoring": "loudest"},
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(suite, tmp_path, options):
    with pytest.raises(InvalidArgument):
        _run(suite, tmp_path / "run", "demo", **options)
    assert not (tmp_path / "run").exists()


def test_progress_bar_goes_to_stderr(suite, tmp_path, tiny_model, capsys):
    _run(suite, tmp_path / "run", tiny_model, limit=2, progress=True)
    captured = capsys.readouterr()
    assert "2/2" in captured.err
    assert captured.out == ""


def test_a_suite_of_several_domains_runs_and_resumes_in_one_directory(
    tmp_path, tiny_model
):
    # Each domain has its own template; the second domain's first batch
    # used to be refused as "another template" by the results file.
    from generator.suite import generate_suite

    suite = tmp_path / "suite"
    generate_suite(domains=("k8s", "iam", "sg"), count=18, seed=4, out_dir=suite)
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=7, batch_size=2)
    _run(suite, out, tiny_model, batch_size=2)

    results = _results(out)
    cases = [json.loads(line) for line in (suite / "cases.jsonl").open()]
    assert sorted(r.case_id for r in results) == sorted(c["id"] for c in cases)
    templates = {r.template_id for r in results}
    assert templates == {"k8s-verdict", "iam-verdict", "sg-verdict"}
    meta = json.loads((out / "run.json").read_text())
    assert set(meta["templates"]) == {"k8s", "iam", "sg"}


def test_another_version_of_a_template_is_refused(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    _run(suite, out, tiny_model, limit=1)
    path = out / "results.jsonl"
    line = json.loads(path.read_text())
    path.write_text(json.dumps({**line, "template_version": 99}) + "\n")
    with pytest.raises(SuiteError, match="k8s-verdict v99, not v1"):
        _run(suite, out, tiny_model)
