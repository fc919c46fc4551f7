"""The export in TRL's shapes: both conversational forms, every file format,
a chat template that renders them, and a split that keeps clusters apart."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
from fakeruns import answer, write_run, write_suite
from test_export import SAFE_POD

from generator.cli import main
from generator.export import export_failures
from generator.oracle.k8s import truth
from generator.records import Case, Origin, case_id

BASELINE = "pss:baseline:v1.37"


def pod(n: int, flaw: str) -> str:
    """A distinct pod (by hostname) with one kind of flaw, or none."""
    config = SAFE_POD + f"  hostname: h{n}\n"
    if flaw == "caps":
        config = config.replace("drop: [ALL]", "drop: [ALL]\n        add: [SYS_ADMIN]")
    elif flaw == "root":
        config = config.replace("runAsNonRoot: true", "runAsUser: 0")
    elif flaw == "hostnet":
        config += "  hostNetwork: true\n"
    return config


def asked(config: str, question: str) -> Case:
    return Case(
        id=case_id("k8s", question, config),
        domain="k8s",
        family="pod",
        origin=Origin("grammar"),
        format="yaml",
        config=config,
        question=question,
        truth=truth(config, question),
    )


@pytest.fixture(scope="module")
def two_question_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Forty pods in four clusters, each asked at restricted and at baseline
    (same config, two rows); the model gets every one wrong."""
    root = tmp_path_factory.mktemp("runs")
    configs = [
        pod(n, flaw) for n in range(10) for flaw in ("", "caps", "root", "hostnet")
    ]
    runs = []
    for name, question in (
        ("restricted", "pss:restricted:v1.37"),
        ("baseline", BASELINE),
    ):
        cases = [asked(c, question) for c in configs]
        suite = write_suite(root / f"suite-{name}", cases)
        wrong = [
            answer(c, "safe" if c.truth.verdict == "unsafe" else "unsafe")
            for c in cases
        ]
        runs.append(write_run(root / f"run-{name}", suite, wrong))
    return runs


@pytest.fixture(scope="module")
def export(two_question_runs: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("export") / "out"
    summary = export_failures(two_question_runs, out, test_fraction=0.3)
    return out, summary


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_forms_load_from_disk_in_trl_shapes(export) -> None:
    import datasets

    out, summary = export
    messages = datasets.load_from_disk(str(out / "hf" / "messages"))
    pairs = datasets.load_from_disk(str(out / "hf" / "prompt_completion"))

    for split in ("train", "test"):
        assert len(messages[split]) == len(pairs[split]) > 0
        assert len(messages[split]) == summary["splits"][split]["rows"]
        for chat, pair in zip(messages[split], pairs[split], strict=True):
            roles = [m["role"] for m in chat["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert all(set(m) == {"role", "content"} for m in chat["messages"])
            assert all(isinstance(m["content"], str) for m in chat["messages"])
            assert [m["role"] for m in pair["prompt"]] == ["system", "user"]
            assert [m["role"] for m in pair["completion"]] == ["assistant"]
            assert pair["prompt"] + pair["completion"] == chat["messages"]
            assert pair["case_id"] == chat["case_id"]


def test_jsonl_and_parquet_hold_the_same_rows(export) -> None:
    import pyarrow.parquet as pq

    out, _ = export
    for form in ("messages", "prompt_completion"):
        for split in ("train", "test"):
            rows = jsonl(out / form / f"{split}.jsonl")
            table = pq.read_table(out / "parquet" / f"{form}-{split}.parquet")
            assert table.to_pylist() == rows


def test_parquet_reads_back_with_datasets(export) -> None:
    import datasets

    out, summary = export
    path = out / "parquet" / "prompt_completion-train.parquet"
    data = datasets.Dataset.from_parquet(str(path))
    assert len(data) == summary["splits"]["train"]["rows"]
    assert data[0]["completion"][0]["role"] == "assistant"


def test_no_test_config_has_a_near_equal_in_train(export) -> None:
    out, _ = export
    splits_of = defaultdict(set)
    for split in ("train", "test"):
        for row in jsonl(out / "messages" / f"{split}.jsonl"):
            splits_of[row["config_hash"]].add(split)
    # Each config was asked twice (two rows, often two clusters): its rows
    # still go to one split.
    assert len(splits_of) == 40
    assert all(len(splits) == 1 for splits in splits_of.values())


def test_every_cluster_is_held_out_in_part(export) -> None:
    out, summary = export
    clusters = summary["clusters"]
    assert len(clusters) >= 4
    for key, counts in clusters.items():
        groups = len(
            {
                r["config_hash"]
                for split in ("train", "test")
                for r in jsonl(out / "messages" / f"{split}.jsonl")
                if r["cluster"] == key
            }
        )
        if groups >= 2:
            assert counts["test"] >= 1 and counts["train"] >= 1, key
    held = summary["splits"]["test"]["rows"] / summary["exported"]
    assert 0.2 <= held <= 0.45


def test_the_split_is_reproducible(two_question_runs, export, tmp_path: Path) -> None:
    out, _ = export
    export_failures(
        two_question_runs, tmp_path / "again", fmt="jsonl", test_fraction=0.3
    )
    for split in ("train", "test"):
        name = f"prompt_completion/{split}.jsonl"
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()


def test_chat_template_renders_both_forms_alike(export, tmp_path: Path) -> None:
    from tinymodel import build_tiny_model
    from transformers import AutoTokenizer

    out, _ = export
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    (chat,) = jsonl(out / "messages" / "test.jsonl")[:1]
    (pair,) = jsonl(out / "prompt_completion" / "test.jsonl")[:1]

    whole = tokenizer.apply_chat_template(chat["messages"], tokenize=False)
    prompt = tokenizer.apply_chat_template(
        pair["prompt"], tokenize=False, add_generation_prompt=True
    )
    assert whole.startswith(prompt)
    assert whole[len(prompt) :].startswith(pair["completion"][0]["content"])
    assert (
        tokenizer.apply_chat_template(
            pair["prompt"] + pair["completion"], tokenize=False
        )
        == whole
    )
    assert "<|im_start|>user\nHere is a Kubernetes manifest:" in whole
    # Byte-level tokens: the rendered chat survives encoding unchanged.
    ids = tokenizer.apply_chat_template(
        chat["messages"], tokenize=True, return_dict=True
    )["input_ids"]
    assert len(ids) > 100 and tokenizer.decode(ids) == whole


def test_cli_export_writes_the_layout_and_counts(
    two_question_runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = main(
        [
            "export", *map(str, two_question_runs), "--out", str(out),
            "--format", "jsonl", "--balance", "equal", "--test-fraction", "0.5",
        ]
    )  # fmt: skip

    assert status == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "export.json").read_text())
    assert f"{summary['exported']} examples" in printed
    assert summary["by_label"]["safe"] == summary["by_label"]["unsafe"]
    assert summary["balance"] == "equal" and summary["test_fraction"] == 0.5
    assert not (out / "hf").exists()
    assert (out / "README.md").is_file()


@pytest.mark.parametrize(
    "option", [["--test-fraction", "1"], ["--test-fraction", "x"], ["--balance", "x"]]
)
def test_cli_export_rejects_bad_options(
    two_question_runs, tmp_path: Path, option: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(two_question_runs[0]), "--out", str(tmp_path), *option])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_trl_trains_a_step_on_each_form(export, tmp_path: Path) -> None:
    """The export as TRL itself reads it: a conversational dataset, one
    SFTTrainer step on the tiny model. Needs trl (not a project dependency)."""
    trl = pytest.importorskip("trl")
    import datasets
    from tinymodel import build_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.data_utils import is_conversational

    out, _ = export
    model_dir = build_tiny_model(tmp_path / "tiny")
    for form in ("prompt_completion", "messages"):
        data = datasets.load_from_disk(str(out / "hf" / form))
        assert is_conversational(data["train"][0])
        trainer = trl.SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
            train_dataset=data["train"].select(range(4)),
            args=trl.SFTConfig(
                output_dir=str(tmp_path / form), max_steps=1,
                per_device_train_batch_size=2, report_to=[], use_cpu=True,
                save_strategy="no", max_length=1024, disable_tqdm=True,
            ),
        )  # fmt: skip
        loss = trainer.train().training_loss
        assert math.isfinite(loss) and loss > 0
