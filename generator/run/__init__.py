"""Stage 3: ask the model under test about every case of a suite.

``runner.run_suite`` is the entry point; ``backends`` is the one interface
to a model (transformers here, ``backends_openai`` for a server,
``backends_vllm`` for the vLLM engine); ``models`` finds and loads local
models; ``verdict`` and ``scoring`` score the SAFE/UNSAFE labels; ``repair``
generates and re-checks repairs; ``journal`` keeps results.jsonl crash-safe.
torch and transformers are imported only when a model is actually needed.
"""

from __future__ import annotations

from generator.run.runner import run_suite

__all__ = ["run_suite"]
