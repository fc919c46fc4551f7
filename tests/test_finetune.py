"""Fine-tuning on exported chats: tokenisation as the runner's, a loss that
learns, a checkpoint the runner loads, and clear errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from generator.errors import InvalidArgument
from generator.finetune import TrainSettings, finetune, load_chats, tokenize_chat
from tests.tinymodel import build_tiny_model, pod_variants

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _chat(pod: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You review manifests."},
        {"role": "user", "content": f"{pod}\nSAFE or UNSAFE?"},
        {"role": "assistant", "content": answer},
    ]


def _chats() -> list[list[dict[str, str]]]:
    # A label the tiny model can learn from the text: privileged is unsafe.
    return [
        _chat(pod, "UNSAFE\n- privileged" if "privileged: true" in pod else "SAFE")
        for pod in pod_variants()
    ]


def _answer_logprob(model_dir: Path, chat) -> float:
    import torch

    from generator.run.models import load_model

    loaded = load_model(str(model_dir))
    prompt, answer = tokenize_chat(loaded.tokenizer, chat)
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return sum(logp[i, t].item() for i, t in enumerate(answer))


def test_tokenization_is_the_runners(tiny):
    from generator.run.backends import TransformersBackend
    from generator.run.models import load_model

    loaded = load_model(str(tiny))
    backend = TransformersBackend(loaded)
    chat = _chat(pod_variants()[1], "UNSAFE")
    prompt, answer = tokenize_chat(loaded.tokenizer, chat)
    assert prompt == backend.prompt_ids(chat[:-1])
    assert answer == backend.option_ids(["UNSAFE"])[0]


def test_training_raises_the_right_answers_likelihood(tiny, tmp_path):
    chats = _chats()
    before = [_answer_logprob(tiny, c) for c in chats]
    settings = TrainSettings(epochs=8, batch_size=4, learning_rate=3e-3, bf16=False)
    seen = []
    summary = finetune(
        str(tiny),
        chats,
        tmp_path / "tuned",
        settings,
        progress=lambda *a: seen.append(a),
    )
    after = [_answer_logprob(tmp_path / "tuned", c) for c in chats]

    assert summary["examples"] == len(chats)
    assert summary["steps"] == len(seen) == 8 * math.ceil(len(chats) / 4)
    assert summary["last_loss"] < summary["first_loss"]
    assert sum(after) > sum(before) + 1.0
    marker = json.loads((tmp_path / "tuned" / "spotcheck-finetune.json").read_text())
    assert marker["settings"]["epochs"] == 8


def test_bf16_autocast_trains_too(tiny, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=8, bf16=True)
    summary = finetune(str(tiny), _chats(), tmp_path / "tuned", settings)
    assert math.isfinite(summary["last_loss"])


def test_long_examples_are_left_out_and_counted(tiny, tmp_path):
    chats = _chats() + [_chat("x " * 3000, "SAFE")]
    settings = TrainSettings(epochs=1, max_tokens=600, bf16=False)
    summary = finetune(str(tiny), chats, tmp_path / "tuned", settings)
    assert summary["skipped_too_long"] == 1
    assert summary["examples"] == len(chats) - 1


def test_refuses_a_non_empty_output_and_bad_settings(tiny, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgument, match="not empty"):
        finetune(str(tiny), _chats(), tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(InvalidArgument, match="epochs"):
        finetune(str(tiny), _chats(), tmp_path / "new", TrainSettings(epochs=0))
    with pytest.raises(InvalidArgument, match="empty"):
        finetune(str(tiny), [], tmp_path / "new")


def test_load_chats_reads_both_trl_shapes(tmp_path):
    chat = _chat("kind: Pod", "SAFE")
    path = tmp_path / "rows.jsonl"
    rows = [{"messages": chat}, {"prompt": chat[:-1], "completion": chat[-1:]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    assert load_chats(path) == [chat, chat]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"rows.jsonl:1: not JSON"),
        ('{"text": "x"}', r"rows.jsonl:1: expected a 'messages' list"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "assistant"),
    ],
)
def test_load_chats_names_the_bad_line(tmp_path, line, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InvalidArgument, match=message):
        load_chats(path)


def test_train_layers_changes_only_the_last_blocks(tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    settings = TrainSettings(epochs=2, learning_rate=3e-3, train_layers=1)
    summary = finetune(str(tiny), _chats(), tmp_path / "tuned", settings)
    before = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "tuned").state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(
        n.startswith(("model.layers.1.", "model.norm")) for n in changed
    )
    assert any(n.startswith("model.layers.1.") for n in changed)
    assert summary["settings"]["bf16"] in (True, False)  # resolved, not left None
    with pytest.raises(InvalidArgument, match="only 2 blocks"):
        finetune(str(tiny), _chats(), tmp_path / "x", TrainSettings(train_layers=3))


def test_bf16_is_used_only_where_the_hardware_has_it():
    # On a CPU without AVX-512 BF16 or AMX, torch emulates bf16 and a
    # training step takes over ten times longer than in fp32.
    from generator.finetune import fast_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("needs /proc/cpuinfo")
    flags = set(cpuinfo.read_text().split())
    if not flags & {"avx512_bf16", "amx_bf16"}:
        assert fast_bf16("cpu") is False
