"""Log-likelihood of fixed answer options, with a shared prompt prefix cached.

Scoring a verdict is reading, not writing: the model is asked how likely each
answer option (" SAFE", " UNSAFE", each followed by the end-of-turn token) is
after the prompt, and no text is generated. Three things make that cheap:

* Every prompt of a template starts with the same tokens (system message and
  the text before the config). Their keys and values are computed once and
  every batch starts from a copy of that cache.
* The per-case rest of the prompt runs once per case, left-padded so that all
  rows of a batch end in the same column; explicit position ids keep each
  row's positions contiguous after the prefix, so padding changes nothing but
  float rounding.
* All options of a case are then scored from that one prompt pass: the cache
  is repeated once per option and the options' tokens run as one short batch.

The result per case and option is the list of per-token log-probabilities;
how those become a verdict is ``generator.run.verdict``'s business.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

__all__ = ["OptionScorer", "common_prefix"]

logger = logging.getLogger(__name__)

# Any id works for padding: padded positions are masked out everywhere.
_PAD = 0


def common_prefix(*sequences: Sequence[int]) -> list[int]:
    """The longest list of ids every sequence starts with."""
    prefix: list[int] = []
    for column in zip(*sequences, strict=False):
        if any(token != column[0] for token in column):
            break
        prefix.append(column[0])
    return prefix


class OptionScorer:
    """Scores answer options after prompts that share a token prefix.

    ``options`` are the token ids of each answer (all tokens of the label and
    the closing end-of-turn token). ``prefix`` is the shared start of every
    prompt; prompts are passed to ``score`` without it. An empty prefix is
    allowed and means no cache is shared.
    """

    def __init__(
        self, model: Any, options: Sequence[Sequence[int]], prefix: Sequence[int]
    ):
        if not options or any(len(o) == 0 for o in options):
            raise ValueError("every option needs at least one token")
        self.model = model
        self.options = [list(o) for o in options]
        self.prefix = list(prefix)
        self._prefix_cache = self._encode_prefix() if self.prefix else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def _encode_prefix(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ids = torch.tensor([self.prefix], device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in out.cache.layers]

    def _batch_cache(self, rows: int) -> DynamicCache:
        # expand() makes views; the cache's first update concatenates them
        # into fresh tensors, so the shared prefix cache is never written.
        assert self._prefix_cache is not None
        data = [
            (k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
            for k, v in self._prefix_cache
        ]
        return DynamicCache(data, config=self.model.config)

    @torch.inference_mode()
    def score(self, suffixes: Sequence[Sequence[int]]) -> list[list[list[float]]]:
        """Per case, per option, the log-probability of each option token.

        ``suffixes`` are the prompts' token ids after the shared prefix; each
        must be non-empty so that the last prompt position is computed here.
        """
        if not suffixes:
            return []
        if any(len(s) == 0 for s in suffixes):
            raise ValueError("a prompt must extend past the shared prefix")
        first, cache, mask, ends = self._prompt_pass(suffixes)
        rest = self._option_pass(cache, mask, ends)

        scores = []
        for row in range(len(suffixes)):
            per_option = []
            for o, option in enumerate(self.options):
                logprobs = [first[row, option[0]].item()]
                logprobs.extend(rest[row][o])
                per_option.append(logprobs)
            scores.append(per_option)
        return scores

    def _prompt_pass(self, suffixes: Sequence[Sequence[int]]):
        """Run the prompts; return first-token log-probs, cache, mask, lengths."""
        rows, width = len(suffixes), max(len(s) for s in suffixes)
        start = len(self.prefix)
        ids = torch.full((rows, width), _PAD, dtype=torch.long)
        mask = torch.zeros((rows, start + width), dtype=torch.long)
        mask[:, :start] = 1
        # Pad rows get position `start`; they are masked, so any value works.
        positions = torch.full((rows, width), start, dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            pad = width - len(suffix)
            ids[row, pad:] = torch.tensor(suffix)
            mask[row, start + pad :] = 1
            positions[row, pad:] = torch.arange(start, start + len(suffix))

        cache = self._batch_cache(rows) if self._prefix_cache else DynamicCache()
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
        ends = [start + len(s) for s in suffixes]
        return first, out.cache, mask, ends

    def _option_pass(
        self, cache: DynamicCache, mask: torch.Tensor, ends: list[int]
    ) -> list[list[list[float]]]:
        """Log-probs of every option token after the first, per row and option."""
        rows, count = len(ends), len(self.options)
        width = max(len(o) for o in self.options) - 1
        if width == 0:
            # Single-token options are fully scored by the prompt pass.
            return [[[] for _ in range(count)] for _ in range(rows)]

        # Row r * count + o continues prompt r with option o, right-padded:
        # the padding comes after every real token, so causality hides it.
        cache.batch_repeat_interleave(count)
        ids = torch.full((rows * count, width), _PAD, dtype=torch.long)
        option_mask = torch.zeros((rows * count, width), dtype=torch.long)
        positions = torch.zeros((rows * count, width), dtype=torch.long)
        for r in range(rows):
            for o, option in enumerate(self.options):
                feed = option[:-1]
                i = r * count + o
                if feed:
                    ids[i, : len(feed)] = torch.tensor(feed)
                option_mask[i, : len(feed)] = 1
                positions[i] = torch.arange(ends[r], ends[r] + width)
        full_mask = torch.cat([mask.repeat_interleave(count, dim=0), option_mask], 1)

        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=full_mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()

        # Position j predicts option token j + 1.
        rest: list[list[list[float]]] = []
        for r in range(rows):
            per_option = []
            for o, option in enumerate(self.options):
                i = r * count + o
                values = [logprobs[i, j, t].item() for j, t in enumerate(option[1:])]
                per_option.append(values)
            rest.append(per_option)
        return rest
