"""Fine-tune a local chat model on exported examples, on CPU or GPU.

This is the last step of the loop that ``spotcheck export`` feeds: train the
model under test on its own failures with oracle-correct answers, then run it
again. It is deliberately small (full fine-tuning with AdamW, no new
dependency); teams with a training stack load the export into TRL instead.

Each example is a chat whose last message is the assistant's answer. The
prompt is tokenised exactly as the runner tokenises it (the chat template
with the generation prompt, then the answer's tokens and the end-of-turn
token), so the label tokens the runner scores are the ones trained. The loss
is the per-example sum of cross-entropy over the answer and end-of-turn
tokens, averaged over the batch; prompt tokens are masked out.

Settings follow what research/finetune-feasibility.md measured on the demo
model on 2 CPU cores: learning rate 1e-4, batch 8, three epochs, linear
warm-up over 6 % of the steps then linear decay to zero (the class bias swings
during training and settles only as the rate decays, so judge the model at
the end of the schedule), gradient clipping at 1.0, and batches grouped by
length so padding stays small. bf16 autocast (fp32 master weights) is used
where the hardware computes in bf16: a GPU that supports it, or a CPU with
AVX-512 BF16 or AMX, where it was 2.4x faster than fp32. Without them, as on
an AVX2-only CPU, torch emulates bf16 and a step took over ten times longer
than in fp32 (measured), so fp32 is used there.

``train_layers=N`` trains only the last N transformer blocks and the final
norm (embeddings and the tied output layer stay as they are): the backward
pass then stops N blocks down, which on a CPU without fast bf16 is what
makes a fine-tune of the demo model fit in minutes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument, ModelError

__all__ = ["TrainSettings", "fast_bf16", "finetune", "load_chats", "tokenize_chat"]

logger = logging.getLogger(__name__)

Chat = list[dict[str, str]]

# The marker a finished checkpoint directory gets last, with the settings.
_MARKER = "spotcheck-finetune.json"


@dataclass(frozen=True)
class TrainSettings:
    """What the training loop needs to know; defaults as measured (see above)."""

    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 8
    warmup_fraction: float = 0.06
    max_grad_norm: float = 1.0
    max_tokens: int = 1024
    seed: int = 0
    bf16: bool | None = None  # None: where the hardware has fast bf16
    train_layers: int | None = None  # None: every parameter


def load_chats(path: Path) -> list[Chat]:
    """Chats from a JSONL file of ``messages`` or ``prompt``/``completion`` rows.

    Both TRL conversational shapes are read; a row's chat is its prompt
    messages followed by its completion messages.
    """
    chats = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"{path}:{number}: not JSON ({exc.msg}); each line must be "
                    "one exported example"
                ) from None
            chats.append(_chat_of(row, f"{path}:{number}"))
    return chats


def _chat_of(row: Any, where: str) -> Chat:
    if isinstance(row, dict) and isinstance(row.get("messages"), list):
        chat = row["messages"]
    elif isinstance(row, dict) and isinstance(row.get("completion"), list):
        chat = list(row.get("prompt") or []) + row["completion"]
    else:
        raise InvalidArgument(
            f"{where}: expected a 'messages' list or 'prompt' and 'completion' "
            "lists (the conversational forms spotcheck export writes)"
        )
    if not chat or not all(isinstance(m, dict) for m in chat):
        raise InvalidArgument(f"{where}: the chat has no messages")
    if chat[-1].get("role") != "assistant":
        raise InvalidArgument(f"{where}: the last message must be the assistant's")
    return [{"role": m["role"], "content": m["content"]} for m in chat]


def tokenize_chat(tokenizer: Any, chat: Chat) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) as the runner would see them.

    The answer ids end with the end-of-turn token, as the runner's options do.
    """
    text = tokenizer.apply_chat_template(
        chat[:-1], add_generation_prompt=True, tokenize=False
    )
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    answer = tokenizer.encode(chat[-1]["content"], add_special_tokens=False)
    return prompt, answer + [tokenizer.eos_token_id]


def finetune(
    model: str,
    chats: Sequence[Chat],
    out_dir: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (``demo`` or a local checkpoint) on ``chats``.

    Writes an ordinary checkpoint directory (weights, config, tokenizer) to
    ``out_dir``, usable as ``spotcheck run --model OUT_DIR``; it is written
    beside and renamed into place, so a killed training leaves nothing
    half-written there. ``progress(step, steps, loss)`` is called per step.
    Returns a summary: examples, steps, losses, seconds.
    """
    import torch

    from generator.run.models import load_model

    _check_settings(settings)
    if not chats:
        raise InvalidArgument("no training examples: the export is empty")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidArgument(
            f"{out_dir}: exists and is not empty; name a new directory"
        )
    torch.manual_seed(settings.seed)
    loaded = load_model(model)
    if settings.bf16 is None:
        settings = replace(settings, bf16=fast_bf16(loaded.device))
    network, tokenizer = loaded.model, loaded.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    examples, skipped = _encode(tokenizer, chats, settings.max_tokens)
    if not examples:
        raise InvalidArgument(
            f"every example is longer than max_tokens={settings.max_tokens}"
        )
    started = time.monotonic()
    losses = _train(network, examples, settings, loaded.device, progress, torch)
    seconds = time.monotonic() - started

    summary = {
        "model": loaded.model_id,
        "examples": len(examples),
        "skipped_too_long": skipped,
        "steps": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": _mean(losses[-max(1, len(losses) // 10) :]),
        "seconds": round(seconds, 1),
        "settings": asdict(settings),
    }
    _save(network, tokenizer, out_dir, summary)
    logger.info(
        "finetune: %d examples, %d steps in %.0f s -> %s",
        len(examples), len(losses), seconds, out_dir,
    )  # fmt: skip
    return summary


def _check_settings(settings: TrainSettings) -> None:
    for name in ("epochs", "batch_size", "max_tokens", "train_layers"):
        value = getattr(settings, name)
        if name == "train_layers" and value is None:
            continue
        if not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name}={value!r} must be a positive integer")
    if not settings.learning_rate > 0:
        raise InvalidArgument(f"learning_rate={settings.learning_rate!r} must be > 0")
    if not 0 <= settings.warmup_fraction < 1:
        raise InvalidArgument(
            f"warmup_fraction={settings.warmup_fraction!r} must be in [0, 1)"
        )


def _encode(
    tokenizer: Any, chats: Iterable[Chat], max_tokens: int
) -> tuple[list[tuple[list[int], int]], int]:
    """(token ids, answer start) per example; too-long ones are counted out."""
    examples, skipped = [], 0
    for chat in chats:
        prompt, answer = tokenize_chat(tokenizer, chat)
        if len(prompt) + len(answer) > max_tokens:
            skipped += 1
            continue
        examples.append((prompt + answer, len(prompt)))
    if skipped:
        logger.warning(
            "finetune: %d examples longer than %d tokens left out", skipped, max_tokens
        )
    return examples, skipped


def _batches(
    examples: list[tuple[list[int], int]], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """One epoch's batches of example indices, grouped by length.

    Shuffle, sort by length inside chunks of eight batches, then shuffle the
    batches: little padding, yet no fixed order across epochs.
    """
    order = list(range(len(examples)))
    rng.shuffle(order)
    chunk = batch_size * 8
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(examples[i][0]))
        batches.extend(
            part[i : i + batch_size] for i in range(0, len(part), batch_size)
        )
    rng.shuffle(batches)
    return batches


def _train(network, examples, settings, device, progress, torch) -> list[float]:
    """The training loop; returns the loss of every step."""
    rng = random.Random(settings.seed)
    epochs = [
        _batches(examples, settings.batch_size, rng) for _ in range(settings.epochs)
    ]
    steps = sum(len(e) for e in epochs)
    warmup = max(1, round(steps * settings.warmup_fraction))
    trained = _trainable(network, settings.train_layers)
    optimizer = torch.optim.AdamW(trained, lr=settings.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _rate(step, warmup, steps)
    )
    autocast = _autocast(torch, device, settings.bf16)

    network.train()
    losses: list[float] = []
    try:
        for batch in (b for epoch in epochs for b in epoch):
            inputs, labels, mask = _pad(examples, batch, device, torch)
            with autocast:
                loss = _answer_loss(network, inputs, labels, mask, torch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, settings.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if progress is not None:
                progress(len(losses), steps, losses[-1])
    finally:
        network.eval()
    return losses


def _trainable(network, layers: int | None) -> list:
    """The parameters to train: all, or the last ``layers`` blocks and the
    final norm (the rest frozen, so no gradient flows below them)."""
    if layers is None:
        return [p for p in network.parameters() if p.requires_grad]
    blocks = getattr(network.base_model, "layers", None)
    if blocks is None:
        raise InvalidArgument(
            f"train_layers={layers}: this model has no list of transformer "
            "blocks (base_model.layers); train every parameter instead"
        )
    if layers > len(blocks):
        raise InvalidArgument(
            f"train_layers={layers}: the model has only {len(blocks)} blocks"
        )
    network.requires_grad_(False)
    chosen = list(blocks[len(blocks) - layers :])
    norm = getattr(network.base_model, "norm", None)
    if norm is not None:
        chosen.append(norm)
    for module in chosen:
        module.requires_grad_(True)
    return [p for module in chosen for p in module.parameters()]


def fast_bf16(device: str) -> bool:
    """Whether ``device`` computes in bf16 natively (see the module notes)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _rate(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (steps - step) / max(1, steps - warmup))


def _autocast(torch, device: str, bf16: bool):
    import contextlib

    if not bf16:
        return contextlib.nullcontext()
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(device_type=kind, dtype=torch.bfloat16)


def _pad(examples, batch, device, torch):
    """Right-padded ids, labels (-100 outside answers) and attention mask."""
    rows = [examples[i] for i in batch]
    width = max(len(ids) for ids, _ in rows)
    inputs = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, start) in enumerate(rows):
        inputs[row, : len(ids)] = torch.tensor(ids)
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
        mask[row, : len(ids)] = 1
    return inputs.to(device), labels.to(device), mask.to(device)


def _answer_loss(network, inputs, labels, mask, torch):
    """Per-example summed cross-entropy of the answer tokens, batch mean.

    A sum, not a token mean: a long explanation should not dilute the
    label's own tokens, which come first in every answer. The output layer
    runs only where an answer token is predicted (about a fifth of the
    compute over a whole prompt, measured on the demo model).
    """
    hidden = network.base_model(input_ids=inputs, attention_mask=mask)[0]
    target = labels[:, 1:]
    where = target != -100
    logits = network.get_output_embeddings()(hidden[:, :-1][where]).float()
    per_token = torch.nn.functional.cross_entropy(
        logits, target[where], reduction="none"
    )
    rows = where.nonzero()[:, 0]
    per_example = torch.zeros(labels.size(0), device=logits.device)
    per_example = per_example.index_add(0, rows, per_token)
    return per_example.mean()


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _save(network, tokenizer, out_dir: Path, summary: dict[str, Any]) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    try:
        network.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        (temp / _MARKER).write_text(json.dumps(summary, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked before training
        os.rename(temp, out_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the checkpoint to {out_dir}: {exc}") from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
