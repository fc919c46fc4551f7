"""How a model is asked: the small interface every backend offers.

The runner, the verdict scorer and the repair generator speak only to a
``Backend``; which one runs the model is chosen once, by ``open_backend``:

* ``transformers`` (default): the model in this process, through
  ``generator.run.scoring`` (shared-prefix KV cache, all options in one
  pass), length-sorted batches under a token budget, and a batch size that
  halves on out-of-memory instead of ending the run;
* ``openai``: an OpenAI-compatible server at a URL (vLLM, TGI, llama.cpp,
  Ollama), see ``generator.run.backends_openai``;
* ``vllm``: the vLLM engine in this process, see
  ``generator.run.backends_vllm``.

A backend takes prompts as chat messages and answer options as text. Its
``score_options`` returns, per prompt and option, the log-probability of
each token of the option *followed by the end-of-turn token* (so the
options' lengths can be compared fairly, see ``generator.run.verdict``). A
backend that can only see the first answer token (a chat endpoint's
``top_logprobs``) says so with ``complete=False``; one that sees no
log-probabilities at all returns ``None``, and the caller generates and
parses instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from generator.errors import InvalidArgument, ModelError

if TYPE_CHECKING:
    from generator.run.models import LoadedModel
    from generator.run.scoring import OptionScorer

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_BATCH_TOKENS",
    "Backend",
    "Chat",
    "Generation",
    "OptionScores",
    "TransformersBackend",
    "check_backend",
    "is_out_of_memory",
    "open_backend",
]

logger = logging.getLogger(__name__)

BACKENDS = ("transformers", "openai", "vllm")

Chat = list[dict[str, str]]

# Padded tokens per forward pass. On a CPU the pass is compute-bound and
# bigger batches buy nothing; on a GPU this is what fills the device, and
# out-of-memory halves the rows from there.
DEFAULT_MAX_BATCH_TOKENS = 16384
_MAX_ROWS = 64
# Padded tokens a batch may add over its real ones. Padding is computed
# like any token: on the demo suite, batches of 8 in suite order were 1.9x
# their real size, which on a CPU (where batching buys nothing) is 1.9x the
# time. Sorted by length, rows of near-equal length still batch together.
_MAX_PADDING = 0.10
# A shared prefix shorter than this is not worth a cache of its own.
_MIN_PREFIX = 8
_MAX_PREFIXES = 16


@dataclass(frozen=True)
class OptionScores:
    """One prompt's options: per option, the log-prob of each token.

    ``complete``: the lists cover every token of the option and the
    end-of-turn token after it; otherwise each holds the first token only.
    ``prompt_tokens`` is the prompt's length in tokens (0 if unknown).
    """

    logprobs: list[list[float]]
    complete: bool = True
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Generation:
    """A generated answer and its length in tokens."""

    text: str
    tokens: int


class Backend(Protocol):
    """What the runner needs from a model, whoever runs it."""

    name: str
    model_id: str

    def describe(self) -> dict[str, Any]:
        """How the model runs, for run.json (backend, device, dtype, ...)."""
        ...

    def score_options(
        self, prompts: Sequence[Chat], options: Sequence[str]
    ) -> list[OptionScores] | None:
        """Per prompt, the options' token log-probs; None if unavailable."""
        ...

    def generate(
        self, prompts: Sequence[Chat], max_new_tokens: int
    ) -> list[Generation]:
        """A greedy answer per prompt, at most ``max_new_tokens`` long."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this model counts them (or an estimate)."""
        ...


def check_backend(name: str, model: str, options: dict[str, Any]) -> None:
    """Refuse a backend, model or option that cannot work, before any output.

    Loads nothing: a missing model, a malformed URL or an uninstalled
    engine is reported while the run directory is still untouched.
    """
    if name not in BACKENDS:
        raise InvalidArgument(f"backend={name!r} is not one of {', '.join(BACKENDS)}")
    budget = options.get("max_batch_tokens")
    if budget is not None and (
        not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
    ):
        raise InvalidArgument(f"max_batch_tokens={budget!r} must be a positive int")
    if name == "openai":
        from generator.run.backends_openai import check_url

        check_url(model)
    elif name == "vllm":
        from generator.run.backends_vllm import check_vllm

        check_vllm(model)
    else:
        from generator.run.models import resolve_model

        resolve_model(model)


def open_backend(name: str, model: str, options: dict[str, Any]) -> Backend:
    """Load or connect to ``model`` with backend ``name``.

    ``options`` are the backend's own; unknown ones are ignored by the
    backends that have no use for them (``device`` means nothing to a
    server), so one set of command-line options serves all three.
    """
    check_backend(name, model, options)
    if name == "openai":
        from generator.run.backends_openai import OpenAIBackend

        return OpenAIBackend.from_options(model, options)
    if name == "vllm":
        from generator.run.backends_vllm import VLLMBackend

        return VLLMBackend.from_options(model, options)
    from generator.run.models import load_model

    loaded = load_model(model, device=options.get("device"))
    return TransformersBackend(
        loaded,
        max_batch_tokens=options.get("max_batch_tokens") or DEFAULT_MAX_BATCH_TOKENS,
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure a smaller batch may avoid."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is there when models run
        pass
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "not enough memory" in text
    )


T = TypeVar("T")
R = TypeVar("R")


class _Batcher:
    """Length-sorted batches under a token budget, halving rows on OOM.

    A batch also stops growing when padding would exceed ``_MAX_PADDING``
    of its real tokens.

    ``max_rows`` starts at ``_MAX_ROWS`` and only ever goes down: once a
    batch of 16 ran out of memory, no later batch tries 16 again.
    """

    def __init__(self, max_batch_tokens: int, device: str):
        self.max_batch_tokens = max_batch_tokens
        self.max_rows = _MAX_ROWS
        self.device = device

    def run(
        self,
        items: Sequence[T],
        length: Callable[[T], int],
        work: Callable[[list[T]], list[R]],
    ) -> list[R]:
        """``work`` over batches of ``items``; results in the items' order."""
        order = sorted(range(len(items)), key=lambda i: length(items[i]))
        results: list[R | None] = [None] * len(items)
        start = 0
        while start < len(order):
            rows = self._rows(order[start:], lambda i: length(items[i]))
            chunk = order[start : start + rows]
            try:
                outputs = work([items[i] for i in chunk])
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._back_off(rows, max(length(items[i]) for i in chunk), exc)
                continue
            for i, output in zip(chunk, outputs, strict=True):
                results[i] = output
            start += rows
        return results  # type: ignore[return-value]

    def _rows(self, rest: Sequence[int], length: Callable[[int], int]) -> int:
        # Sorted ascending, so the last row taken is the widest: the padded
        # size of a batch of k rows is k times the k-th length.
        rows, real = 1, length(rest[0])
        while rows < min(len(rest), self.max_rows):
            width = length(rest[rows])
            padded = (rows + 1) * width
            if padded > self.max_batch_tokens or padded > (1 + _MAX_PADDING) * (
                real + width
            ):
                break
            rows, real = rows + 1, real + width
        return rows

    def _back_off(self, rows: int, width: int, exc: BaseException) -> None:
        if rows == 1:
            raise ModelError(
                f"out of memory on a single prompt of {width} tokens on "
                f"{self.device}: {exc}"
            ) from exc
        self.max_rows = max(1, rows // 2)
        logger.warning(
            "out of memory with %d rows of up to %d tokens; retrying with %d",
            rows,
            width,
            self.max_rows,
        )
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


class TransformersBackend:
    """A transformers causal LM in this process.

    Shared prompt prefixes are found, not declared: a prompt that starts
    with a known prefix reuses its KV cache; one that does not shares the
    longest start it has with a known prefix or with the last such prompt
    (less one token, which might merge with what follows), and that becomes
    a new prefix when it is at least ``_MIN_PREFIX`` tokens long. A prompt
    with no usable prefix is scored from scratch; the numbers agree up to
    float rounding either way.
    """

    name = "transformers"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ):
        self.loaded = loaded
        self.model_id = loaded.model_id
        self.batcher = _Batcher(max_batch_tokens, loaded.device)
        self._prefixes: list[tuple[int, ...]] = []
        self._sample: list[int] | None = None
        self._scorers: dict[tuple, OptionScorer] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.loaded.device,
            "dtype": self.loaded.dtype,
            "max_batch_tokens": self.batcher.max_batch_tokens,
        }

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, chat: Chat) -> list[int]:
        """Token ids of the chat prompt, ending with the assistant turn opener."""
        tokenizer = self.loaded.tokenizer
        text = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def option_ids(self, options: Sequence[str]) -> list[list[int]]:
        """Each option's tokens followed by the end-of-turn token."""
        tokenizer = self.loaded.tokenizer
        eot = tokenizer.eos_token_id
        return [tokenizer.encode(o, add_special_tokens=False) + [eot] for o in options]

    # --- scoring ---------------------------------------------------------------

    def score_options(
        self, prompts: Sequence[Chat], options: Sequence[str]
    ) -> list[OptionScores]:
        option_ids = self.option_ids(options)
        ids = [self.prompt_ids(chat) for chat in prompts]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, prompt in enumerate(ids):
            groups.setdefault(self._prefix_for(prompt), []).append(i)

        scores: list[OptionScores | None] = [None] * len(ids)
        for prefix, members in groups.items():
            scorer = self._scorer(prefix, option_ids)
            suffixes = [ids[i][len(prefix) :] for i in members]
            values = self.batcher.run(suffixes, len, scorer.score)
            for i, value in zip(members, values, strict=True):
                scores[i] = OptionScores(value, True, len(ids[i]))
        return scores  # type: ignore[return-value]

    def _scorer(
        self, prefix: tuple[int, ...], options: list[list[int]]
    ) -> OptionScorer:
        from generator.run.scoring import OptionScorer

        key = (prefix, tuple(map(tuple, options)))
        if key not in self._scorers:
            logger.debug("new scorer with a %d-token shared prefix", len(prefix))
            self._scorers[key] = OptionScorer(self.loaded.model, options, prefix)
        return self._scorers[key]

    def _prefix_for(self, prompt: list[int]) -> tuple[int, ...]:
        """The longest known prefix the prompt extends, learning new ones."""
        from generator.run.scoring import common_prefix

        for prefix in self._prefixes:
            if len(prompt) > len(prefix) and tuple(prompt[: len(prefix)]) == prefix:
                return prefix
        candidates = [list(p) for p in self._prefixes]
        if self._sample is not None:
            candidates.append(self._sample)
        best: list[int] = []
        for other in candidates:
            shared = common_prefix(other, prompt)[:-1]
            if len(shared) > len(best):
                best = shared
        self._sample = prompt
        if len(best) < _MIN_PREFIX:
            return ()
        learnt = tuple(best)
        if len(self._prefixes) >= _MAX_PREFIXES:
            dropped = self._prefixes.pop()
            self._scorers = {k: v for k, v in self._scorers.items() if k[0] != dropped}
        self._prefixes.append(learnt)
        self._prefixes.sort(key=len, reverse=True)
        return learnt

    # --- generation ------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Chat], max_new_tokens: int
    ) -> list[Generation]:
        tokenizer = self.loaded.tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        ids = [self.prompt_ids(chat) for chat in prompts]

        def work(batch: list[list[int]]) -> list[Generation]:
            return self._generate(batch, max_new_tokens)

        # A generated row costs its prompt and its answer.
        return self.batcher.run(ids, lambda p: len(p) + max_new_tokens, work)

    def _generate(
        self, batch: list[list[int]], max_new_tokens: int
    ) -> list[Generation]:
        import torch

        tokenizer = self.loaded.tokenizer
        pad = tokenizer.pad_token_id
        width = max(len(p) for p in batch)
        # Left padding keeps every prompt's end in the last column, where
        # generation continues.
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        device = self.loaded.model.device
        with torch.inference_mode():
            generated = self.loaded.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
        outputs = []
        for row in generated[:, width:]:
            new = [t for t in row.tolist() if t != pad]
            text = tokenizer.decode(new, skip_special_tokens=True)
            outputs.append(Generation(text, len(new)))
        return outputs
