"""A tiny chat model and tiny suites for runner tests, built locally, no download.

The tokenizer is a byte-level BPE trained on a few manifests, wrapped with
ChatML specials and a SmolLM-style chat template; the model is a two-layer
Llama with random weights. It answers nonsense, which is all the runner's
mechanics (batching, caching, resuming) need.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from generator.oracle.k8s import truth
from generator.records import Case, Origin, case_id, dumps_line

QUESTION = "pss:restricted:v1.37"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SAFE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: app
    image: nginx:1.27
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop:
        - ALL
"""


def pod_variants() -> list[str]:
    """A handful of distinct pods, safe and unsafe, of varying length."""
    variants = [SAFE_POD]
    variants.append(
        SAFE_POD.replace("allowPrivilegeEscalation: false", "privileged: true")
    )
    variants.append(SAFE_POD.replace("runAsNonRoot: true", "runAsNonRoot: false"))
    variants.append(SAFE_POD + "  hostNetwork: true\n")
    variants.append(SAFE_POD.replace("name: web", "name: api").replace("1.27", "1.26"))
    host_path = "    hostPath:\n      path: /var/run/docker.sock\n"
    variants.append(SAFE_POD + "  volumes:\n  - name: sock\n" + host_path)
    variants.append(SAFE_POD.replace("RuntimeDefault", "Unconfined"))
    variants.append(
        SAFE_POD.replace("name: web", "name: worker-with-a-much-longer-name")
        + "  serviceAccountName: batch\n"
    )
    return variants


def make_case(text: str, family: str = "hand") -> Case:
    return Case(
        id=case_id("k8s", QUESTION, text),
        domain="k8s",
        family=family,
        origin=Origin("grammar"),
        format="yaml",
        config=text,
        question=QUESTION,
        truth=truth(text, QUESTION),
    )


def write_suite(directory: Path, cases: list[Case]) -> Path:
    """A suite directory as ``spotcheck generate`` lays it out."""
    directory.mkdir(parents=True, exist_ok=True)
    body = "".join(dumps_line(case) for case in cases)
    (directory / "cases.jsonl").write_text(body, encoding="utf-8")
    manifest = {
        "cases": len(cases),
        "cases_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "question": QUESTION,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def build_tiny_model(directory: Path) -> Path:
    """Save a tiny Llama chat model and its tokenizer into ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = pod_variants() * 4 + ["SAFE UNSAFE system user assistant Kubernetes"]
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    # A larger init than usual spreads the logits, so options differ clearly.
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
