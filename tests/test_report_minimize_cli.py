"""`spotcheck report RUN --minimize` end to end, on a tiny local model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from tinymodel import build_tiny_model, make_case, pod_variants, write_suite

from generator.cli import main
from generator.oracle.k8s import truth
from generator.run import run_suite

pytest.importorskip("torch")

RULE = "calibrated_first"  # the rule under which this model misses a few


def variants() -> list[str]:
    texts = []
    for i, pod in enumerate(pod_variants()):
        for j in range(12):
            texts.append(pod.replace("name: app", f"name: app{j}")
                         .replace("image: nginx:1.27", f"image: nginx:1.{i}{j}"))  # fmt: skip
    return texts


def test_report_minimize_shrinks_a_cluster_with_the_runs_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_tiny_model(tmp_path / "model")
    cases = [make_case(text) for text in variants()]
    first = write_suite(tmp_path / "suite-a", cases)
    run_suite(first, model=str(model), out_dir=tmp_path / "a", progress=False,
              scoring=RULE)  # fmt: skip
    results = [json.loads(line) for line in open(tmp_path / "a" / "results.jsonl")]
    missed = {r["case_id"] for r in results if r["failure"] == "missed_unsafe"}
    assert len(missed) >= 3, "the tiny model should miss a few unsafe pods"

    # The same cases, tagged after the fact so the misses form a cluster:
    # the answers stay the model's own, only the suite's tags change.
    right = [r["case_id"] for r in results
             if r["correct"] and r["case_id"] not in missed]  # fmt: skip
    by_id = {c.id: c for c in cases}
    unsafe_right = [i for i in right if by_id[i].truth.verdict == "unsafe"]
    marked = missed | set(unsafe_right[: max(0, 10 - len(missed))])
    tagged = [replace(c, tags={"marked": c.id in marked}) for c in cases]
    suite = write_suite(tmp_path / "suite-b", tagged)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_bytes(
        (tmp_path / "a" / "results.jsonl").read_bytes()
    )
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    body = (suite / "cases.jsonl").read_bytes()
    meta.update(suite=str(suite), suite_sha256=hashlib.sha256(body).hexdigest())
    (run_dir / "run.json").write_text(json.dumps(meta))

    assert main(["report", str(run_dir), "--minimize", "--max-calls", "6",
                 "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    (cluster,) = [
        c for c in report["runs"][0]["clusters"] if c["slice"] == "marked=true"
    ]
    minimal = cluster["minimal_example"]
    assert minimal is not None, cluster.get("minimal_example_note")
    assert 1 <= minimal["model_calls"] <= 6
    assert minimal["case_id"] == cluster["example_case_id"]
    assert truth(minimal["config"], "pss:restricted:v1.37").verdict == "unsafe"
    # A random model's failure is fragile: the example may not shrink at
    # all in six calls (the fake-model tests pin how far shrinking goes).
    assert len(minimal["config"]) <= len(by_id[cluster["example_case_id"]].config)
    assert minimal["nearest_passing"]["case_id"] in right
    assert "marked=true (no tags" not in minimal["unchecked"]
    assert (run_dir / "minimize-cache.jsonl").is_file()

    # Again: every answer comes from the cache, the example is the same.
    assert main(["report", str(run_dir), "--minimize", "--max-calls", "6",
                 "--json"]) == 0  # fmt: skip
    again = capsys.readouterr()
    assert "0 model calls" in again.err
    (cluster_again,) = [c for c in json.loads(again.out)["runs"][0]["clusters"]
                        if c["slice"] == "marked=true"]  # fmt: skip
    assert cluster_again["minimal_example"]["config"] == minimal["config"]


def test_model_without_minimize_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path), "--model", "demo"]) == 2
