"""--shard I/N: shards partition a run's selection, deterministically."""

from __future__ import annotations

import json

import pytest
from tinymodel import SAFE_POD, build_tiny_model, make_case, pod_variants, write_suite

from generator.cli import main
from generator.errors import InvalidArgument, SuiteError
from generator.run.runner import in_shard, parse_shard, run_suite


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    texts = list(pod_variants())
    texts += [SAFE_POD.replace("name: web", f"name: web-{i}") for i in range(16)]
    return write_suite(tmp_path_factory.mktemp("suite"), [make_case(t) for t in texts])


def _ids(out) -> list[str]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [json.loads(line)["case_id"] for line in lines]


def test_shards_partition_the_unsharded_selection(suite, tmp_path, tiny_model):
    whole = tmp_path / "whole"
    run_suite(suite, model=tiny_model, out_dir=whole, limit=20, progress=False)
    parts = []
    for index in (1, 2, 3):
        out = tmp_path / f"shard-{index}"
        summary = run_suite(
            suite,
            model=tiny_model,
            out_dir=out,
            limit=20,
            shard=(index, 3),
            progress=False,
        )
        assert summary["shard"] == [index, 3]
        parts.append(_ids(out))
    merged = [case for part in parts for case in part]
    assert sorted(merged) == sorted(_ids(whole))
    assert all(parts), "a shard of 20 cases in 3 came out empty"


def test_shard_membership_depends_on_the_case_id_only():
    ids = [f"k8s-{i:04x}" for i in range(300)]
    for case in ids:
        owners = [i for i in (1, 2, 3, 4) if in_shard(case, (i, 4))]
        assert len(owners) == 1
    sizes = [sum(in_shard(c, (i, 4)) for c in ids) for i in (1, 2, 3, 4)]
    assert min(sizes) > 50  # roughly even
    assert all(in_shard(c, None) and in_shard(c, (1, 1)) for c in ids)


def test_resuming_with_another_shard_is_refused(suite, tmp_path, tiny_model):
    out = tmp_path / "run"
    run_suite(suite, model=tiny_model, out_dir=out, shard=(1, 2), progress=False)
    with pytest.raises(SuiteError, match="shard 1/2"):
        run_suite(suite, model=tiny_model, out_dir=out, shard=(2, 2), progress=False)
    with pytest.raises(SuiteError, match="shard 1/2"):
        run_suite(suite, model=tiny_model, out_dir=out, progress=False)


@pytest.mark.parametrize("text", ["0/4", "5/4", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_spellings_are_refused(text):
    with pytest.raises(InvalidArgument, match="I/N"):
        parse_shard(text)


def test_cli_shard_and_resume_read_run_json(suite, tmp_path, tiny_model, capsys):
    out = tmp_path / "run"
    argv = ["run", "--suite", str(suite), "--model", tiny_model, "--out", str(out)]
    assert main([*argv, "--shard", "2/2", "--limit", "6", "--no-progress"]) == 0
    first = _ids(out)
    # --resume takes suite, model, limit and shard from run.json.
    assert main(["run", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert _ids(out) == first
    meta = json.loads((out / "run.json").read_text())
    assert meta["shard"] == [2, 2] and meta["limit"] == 6
    assert main(["run", "--out", str(out)]) == 2
    assert "--suite and --model" in capsys.readouterr().err
