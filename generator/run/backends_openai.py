"""The ``openai`` backend: a model behind an OpenAI-compatible HTTP server.

``--backend openai --model URL`` talks to vLLM, TGI, llama.cpp's server,
Ollama or anything else that speaks ``/v1/chat/completions`` and
``/v1/completions``; only the standard library is used. ``URL`` is the API
root (``http://127.0.0.1:8000/v1``; a URL without a path gets ``/v1``).
The served model is the first one ``GET /v1/models`` lists unless
``served_model`` names it. A bearer token is read from ``OPENAI_API_KEY``
when set.

How a verdict is scored depends on what the server gives:

1. With ``tokenizer`` (``demo`` or a local checkpoint of the served model),
   the chat is rendered here and each answer option is scored exactly as
   the transformers backend does it: ``/v1/completions`` with ``echo`` and
   ``logprobs`` over prompt + option + end-of-turn, reading the option's
   last tokens' log-probs. vLLM in fp32 agrees with transformers to ~1e-6.
2. Without it, ``/v1/chat/completions`` with ``logprobs`` and
   ``top_logprobs=20`` for one token: an option's score is the log-prob of
   the longest listed token that starts it (the lowest listed log-prob, an
   upper bound, when none does). That is a first-token comparison only.
3. A server that returns no log-probs at all: the caller generates a short
   answer and parses it.

Requests run ``concurrency`` at a time. A 429, a 5xx or a dropped
connection is retried up to ``retries`` times, waiting ``backoff * 2**n``
seconds (at most 60) scaled by a random factor in [0.5, 1.5) so that many
clients do not retry in step, or what the server's ``Retry-After`` asks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from generator.errors import InvalidArgument, ModelError
from generator.run.backends import Chat, Generation, OptionScores

__all__ = ["OpenAIBackend", "check_url"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_WAIT = 60.0
_TOP_LOGPROBS = 20
# Characters per token, to size a repair's answer without a tokenizer.
_CHARS_PER_TOKEN = 3

T = TypeVar("T")
R = TypeVar("R")


def check_url(model: str) -> str:
    """The API root for ``--model URL``; InvalidArgument if it is no URL."""
    parts = urllib.parse.urlsplit(model)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(
            f"--backend openai needs --model URL (e.g. http://127.0.0.1:8000/v1), "
            f"got {model!r}"
        )
    path = parts.path.rstrip("/") or "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class OpenAIBackend:
    """Answers from an OpenAI-compatible server (see the module docstring)."""

    name = "openai"

    def __init__(
        self,
        url: str,
        *,
        served_model: str | None = None,
        tokenizer: Any = None,
        concurrency: int = 4,
        retries: int = 6,
        backoff: float = 0.5,
        timeout: float = 300.0,
    ):
        self.base = check_url(url)
        self.tokenizer = tokenizer
        self.concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._api_key = os.environ.get("OPENAI_API_KEY")
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai")
        # None until the first answer says whether log-probs come back.
        self._logprobs: bool | None = None
        self.served_model = served_model or self._first_model()
        self.model_id = f"{self.served_model}@{self.base}"

    @classmethod
    def from_options(cls, url: str, options: dict[str, Any]) -> OpenAIBackend:
        tokenizer = options.get("tokenizer")
        if isinstance(tokenizer, str):
            from generator.run.models import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        known = ("served_model", "concurrency", "retries", "backoff", "timeout")
        chosen = {k: options[k] for k in known if options.get(k) is not None}
        return cls(url, tokenizer=tokenizer, **chosen)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "url": self.base,
            "served_model": self.served_model,
            "scoring": "completions+echo" if self.tokenizer else "chat",
            "logprobs": self._logprobs,
            "concurrency": self.concurrency,
            "device": None,
            "dtype": None,
        }

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text, add_special_tokens=False))
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    # --- HTTP ------------------------------------------------------------------

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON request, retried on overload and dropped connections."""
        url = self.base + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return json.loads(reply.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                if exc.code not in _RETRY_STATUS or attempt == self.retries:
                    raise ModelError(
                        f"{url}: HTTP {exc.code} after {attempt + 1} tries: {detail}"
                    ) from None
                wait = self._wait(attempt, exc.headers.get("Retry-After"))
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    raise ModelError(
                        f"{url}: no answer after {attempt + 1} tries: {exc}"
                    ) from None
                wait = self._wait(attempt, None)
                reason = str(exc)
            except ValueError as exc:
                raise ModelError(f"{url}: the reply is not JSON: {exc}") from None
            logger.info("%s: %s; retrying in %.2f s", url, reason, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(_MAX_WAIT, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date; fall back to the backoff
        return min(_MAX_WAIT, self.backoff * 2**attempt) * (0.5 + random.random())

    def _map(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``work`` over items, ``concurrency`` at a time, results in order."""
        return list(self._pool.map(work, items))

    def _first_model(self) -> str:
        listing = self._request("/models")
        try:
            return str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ModelError(
                f"{self.base}/models lists no model; pass served_model"
            ) from None

    # --- scoring ---------------------------------------------------------------

    def score_options(
        self, prompts: Sequence[Chat], options: Sequence[str]
    ) -> list[OptionScores] | None:
        if self._logprobs is False:
            return None
        if self.tokenizer is not None:
            scores = self._map(lambda chat: self._echo_scores(chat, options), prompts)
        else:
            scores = self._map(lambda chat: self._chat_scores(chat, options), prompts)
        if any(s is None for s in scores):
            if self._logprobs:
                raise ModelError(f"{self.base} stopped returning log-probs mid-run")
            logger.warning("%s returns no log-probs; answers are generated", self.base)
            self._logprobs = False
            return None
        self._logprobs = True
        return scores  # type: ignore[return-value]

    def _echo_scores(self, chat: Chat, options: Sequence[str]) -> OptionScores | None:
        """Exact option log-probs from /completions with echo (tokenizer known)."""
        tokenizer = self.tokenizer
        text = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )
        eot = tokenizer.eos_token
        texts = [text + option + eot for option in options]
        reply = self._request(
            "/completions",
            {
                "model": self.served_model,
                "prompt": texts,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 1,
            },
        )
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != len(options):
            raise ModelError(
                f"{self.base}/completions gave {len(choices)} choices for "
                f"{len(options)} prompts"
            )
        per_option = []
        for option, full, choice in zip(options, texts, choices, strict=True):
            logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
            if not logprobs:
                return None
            total = len(tokenizer(full, add_special_tokens=False)["input_ids"])
            count = len(tokenizer.encode(option, add_special_tokens=False)) + 1
            if len(logprobs) < total:
                raise ModelError(
                    f"{self.base} echoed {len(logprobs)} tokens of a {total}-token "
                    "prompt; is --tokenizer the served model's?"
                )
            per_option.append([float(x) for x in logprobs[total - count : total]])
        prompt_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return OptionScores(per_option, True, prompt_tokens)

    def _chat_scores(self, chat: Chat, options: Sequence[str]) -> OptionScores | None:
        """First-token option log-probs from /chat/completions top_logprobs."""
        reply = self._request(
            "/chat/completions",
            {
                "model": self.served_model,
                "messages": chat,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": _TOP_LOGPROBS,
            },
        )
        choice = (reply.get("choices") or [{}])[0]
        content = (choice.get("logprobs") or {}).get("content") or []
        top = content[0].get("top_logprobs") if content else None
        if not top:
            return None
        listed = [(str(e["token"]), float(e["logprob"])) for e in top]
        floor = min(logprob for _, logprob in listed)
        per_option = []
        for option in options:
            starts = [(len(t), lp) for t, lp in listed if t and option.startswith(t)]
            per_option.append([max(starts)[1] if starts else floor])
        usage = reply.get("usage") or {}
        return OptionScores(per_option, False, int(usage.get("prompt_tokens") or 0))

    # --- generation ------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Chat], max_new_tokens: int
    ) -> list[Generation]:
        def ask(chat: Chat) -> Generation:
            reply = self._request(
                "/chat/completions",
                {
                    "model": self.served_model,
                    "messages": chat,
                    "max_tokens": max_new_tokens,
                    "temperature": 0,
                },
            )
            choice = (reply.get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            usage = reply.get("usage") or {}
            tokens = usage.get("completion_tokens")
            return Generation(text, int(tokens or self.count_tokens(text)))

        return self._map(ask, prompts)
