"""The Backend interface: the runner works with any object that offers it."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tinymodel import make_case, pod_variants, write_suite

from generator.cli import main
from generator.errors import InvalidArgument, ModelError
from generator.run import backends
from generator.run.backends import Generation, OptionScores, check_backend
from generator.run.runner import run_suite


class ScriptedBackend:
    """Says UNSAFE exactly when the config mentions ``privileged``."""

    name = "scripted"
    model_id = "scripted-1"

    def describe(self):
        return {"backend": self.name, "device": "none", "dtype": None}

    def count_tokens(self, text):
        return len(text.split())

    def score_options(self, prompts, options):
        scores = []
        for chat in prompts:
            risky = "privileged: true" in chat[-1]["content"]
            safe, unsafe = (-2.0, -0.5) if risky else (-0.5, -2.0)
            scores.append(OptionScores([[safe, -0.1], [unsafe, -0.1]], True, 7))
        return scores

    def generate(self, prompts, max_new_tokens):
        return [Generation("no idea", 2) for _ in prompts]


@pytest.fixture
def suite(tmp_path):
    return write_suite(tmp_path / "suite", [make_case(t) for t in pod_variants()])


def test_the_runner_needs_only_the_backend_interface(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "check_backend", lambda *args: None)
    monkeypatch.setattr("generator.run.runner.check_backend", lambda *args: None)
    monkeypatch.setattr(backends, "open_backend", lambda *args: ScriptedBackend())
    out = tmp_path / "run"
    summary = run_suite(suite, model="anything", out_dir=out, progress=False)
    assert summary["model"] == "scripted-1"
    assert summary["backend"]["backend"] == "scripted"
    results = [
        json.loads(x) for x in (out / "results.jsonl").read_text().split("\n")[:-1]
    ]
    privileged = {make_case(pod_variants()[1]).id}
    assert {r["case_id"] for r in results if r["answer"] == "unsafe"} == privileged
    assert all(r["tokens"] == 7 for r in results)


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vllm is installed here"
)
def test_vllm_without_vllm_is_a_clean_error_before_anything_is_written(
    suite, tmp_path, capsys
):
    with pytest.raises(ModelError, match="needs the vllm package"):
        check_backend("vllm", "demo", {})
    out = tmp_path / "run"
    argv = ["run", "--suite", str(suite), "--model", "demo", "--out", str(out)]
    assert main([*argv, "--backend", "vllm"]) == 2
    assert "pip install vllm" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_backend_and_bad_budget_are_refused():
    with pytest.raises(InvalidArgument, match="backend='tgi'"):
        check_backend("tgi", "demo", {})
    with pytest.raises(InvalidArgument, match="max_batch_tokens"):
        check_backend("transformers", "demo", {"max_batch_tokens": 0})


def test_a_url_with_the_transformers_backend_points_at_openai(tmp_path):
    with pytest.raises(ModelError, match="--backend openai"):
        check_backend("transformers", "http://127.0.0.1:8000/v1", {})


def test_vllm_engine_options_reach_the_engine_from_the_command_line(
    suite, tmp_path, monkeypatch
):
    # A stand-in vllm module records what vllm.LLM was given; the run then
    # stops at the first scoring call, which is all this test needs.
    import sys
    import types

    from tinymodel import build_tiny_model

    given = {}

    class Engine:
        def __init__(self, model, **options):
            given.update(options, model=model)
            raise RuntimeError("stand-in engine: stop here")

    fake = types.ModuleType("vllm")
    fake.LLM = Engine
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(
        "generator.run.backends_vllm.check_vllm", lambda model: None, raising=True
    )
    monkeypatch.setattr(backends, "check_backend", lambda *args: None)
    monkeypatch.setattr("generator.run.runner.check_backend", lambda *args: None)
    model = build_tiny_model(tmp_path / "tiny")
    argv = ["run", "--suite", str(suite), "--model", str(model), "--backend", "vllm",
            "--out", str(tmp_path / "run"), "--dtype", "float32", "--enforce-eager",
            "--tensor-parallel-size", "2", "--no-progress"]  # fmt: skip
    with pytest.raises(RuntimeError, match="stand-in engine"):
        main(argv)
    assert given["dtype"] == "float32" and given["enforce_eager"] is True
    assert given["tensor_parallel_size"] == 2
    # Options not given are left to vLLM's own defaults.
    assert "gpu_memory_utilization" not in given and "data_parallel_size" not in given
