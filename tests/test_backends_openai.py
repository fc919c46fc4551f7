"""The openai backend against a fake OpenAI-compatible server on 127.0.0.1.

The server answers from the same tiny model the transformers backend loads
(tests/tinymodel.py): ``/v1/completions`` with ``echo`` and ``logprobs``,
``/v1/chat/completions`` with ``logprobs``/``top_logprobs``, or, in its
"no log-probs" mode, a chat answer without them whose text is the label
the model scores higher (label + end-of-turn, summed). It can fail the
first requests with chosen statuses, to exercise the retry path.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tinymodel import SAFE_POD, build_tiny_model, make_case, pod_variants, write_suite

from generator.errors import InvalidArgument, ModelError
from generator.records import Result
from generator.run.backends_openai import OpenAIBackend, check_url
from generator.run.runner import run_suite

torch = pytest.importorskip("torch")


class FakeServer:
    """A threaded HTTP server speaking enough of the OpenAI API."""

    def __init__(self, model_dir: str, *, logprobs: bool = True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.logprobs = logprobs
        self.fail = []  # statuses to answer the next requests with
        self.requests = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"data": [{"id": "tiny", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "no such path"}})

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                with fake.lock:
                    fake.requests.append((self.path, body))
                    status = fake.fail.pop(0) if fake.fail else None
                    fake.in_flight += 1
                    fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay)
                    if status:
                        headers = {"Retry-After": "0"} if status == 429 else {}
                        self._send(status, {"error": {"message": "busy"}}, headers)
                    elif self.path == "/v1/completions":
                        self._send(200, fake.completions(body))
                    elif self.path == "/v1/chat/completions":
                        self._send(200, fake.chat(body))
                    else:
                        self._send(404, {"error": {"message": "no such path"}})
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the model's side --------------------------------------------------

    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        with self.model_lock, torch.inference_mode():
            logits = self.model(torch.tensor([ids])).logits[0].float()
        return torch.log_softmax(logits, dim=-1)

    def completions(self, body: dict) -> dict:
        prompts = body["prompt"]
        prompts = [prompts] if isinstance(prompts, str) else prompts
        choices = []
        for index, text in enumerate(prompts):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            logprobs = self._logprobs(ids)
            following = int(logprobs[-1].argmax())
            echoed = [None] + [logprobs[i - 1, t].item() for i, t in enumerate(ids)][1:]
            tokens = ids + [following]
            values = echoed + [logprobs[-1, following].item()]
            choice = {"index": index, "text": text, "finish_reason": "length"}
            if body.get("logprobs") is not None and self.logprobs:
                choice["logprobs"] = {
                    "tokens": self.tokenizer.convert_ids_to_tokens(tokens),
                    "token_logprobs": values if body.get("echo") else values[-1:],
                    "top_logprobs": None,
                    "text_offset": list(range(len(tokens))),
                }
            else:
                choice["logprobs"] = None
            choices.append(choice)
        return {"object": "text_completion", "choices": choices, "usage": {}}

    def _chat_ids(self, messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _label_score(self, ids: list[int], label: str) -> float:
        option = self.tokenizer.encode(label, add_special_tokens=False)
        option = option + [self.tokenizer.eos_token_id]
        logprobs = self._logprobs(ids + option)
        return sum(logprobs[len(ids) - 1 + j, t].item() for j, t in enumerate(option))

    def chat(self, body: dict) -> dict:
        ids = self._chat_ids(body["messages"])
        usage = {"prompt_tokens": len(ids), "completion_tokens": 1}
        if body.get("logprobs") and self.logprobs:
            last = self._logprobs(ids)[-1]
            top = torch.topk(last, body.get("top_logprobs") or 1)
            entries = [
                {"token": self.tokenizer.decode([int(t)]), "logprob": v.item()}
                for v, t in zip(top.values, top.indices, strict=True)
            ]
            content = [{**entries[0], "top_logprobs": entries}]
            message = {"role": "assistant", "content": entries[0]["token"]}
            logprobs = {"content": content}
        else:
            # The label the model finds likelier, as a chatty answer.
            safe, unsafe = (self._label_score(ids, x) for x in ("SAFE", "UNSAFE"))
            label = "UNSAFE" if unsafe > safe else "SAFE"
            message = {"role": "assistant", "content": f"{label}. It is {label}."}
            logprobs = None
        choice = {"index": 0, "message": message, "logprobs": logprobs}
        return {"object": "chat.completion", "choices": [choice], "usage": usage}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    texts = list(pod_variants())
    texts += [SAFE_POD.replace("name: web", f"name: web-{i}") for i in range(4)]
    return write_suite(tmp_path_factory.mktemp("suite"), [make_case(t) for t in texts])


@pytest.fixture(scope="module")
def local_results(suite, tiny_model, tmp_path_factory):
    """The transformers backend's results, per scoring rule."""

    def run(scoring: str) -> dict[str, Result]:
        out = tmp_path_factory.mktemp(f"local-{scoring}")
        run_suite(suite, model=tiny_model, out_dir=out, scoring=scoring, progress=False)
        return _results(out)

    return {rule: run(rule) for rule in ("calibrated_sum", "sum_eot")}


def _results(out) -> dict[str, Result]:
    lines = (out / "results.jsonl").read_text().splitlines()
    results = [Result.from_dict(json.loads(line)) for line in lines]
    assert len({r.case_id for r in results}) == len(results)
    return {r.case_id: r for r in results}


def _agree(got: dict[str, Result], want: dict[str, Result], *, scores: bool) -> None:
    assert got.keys() == want.keys()
    for case_id, expected in want.items():
        result = got[case_id]
        if scores:
            for key, value in expected.scores.items():
                assert result.scores[key] == pytest.approx(value, abs=1e-4), key
        if abs(expected.scores["decision"]) > 1e-3:
            assert result.answer == expected.answer, case_id


def _remote(suite, out, url, **options):
    backend_options = {"backoff": 0.01, **options.pop("backend_options", {})}
    return run_suite(
        suite,
        model=url,
        out_dir=out,
        backend="openai",
        backend_options=backend_options,
        progress=False,
        **options,
    )


def test_echoed_logprobs_give_the_transformers_scores(
    suite, tiny_model, tmp_path, local_results
):
    with FakeServer(tiny_model) as server:
        out = tmp_path / "remote"
        summary = _remote(
            suite, out, server.url, backend_options={"tokenizer": tiny_model}
        )
        assert {path for path, _ in server.requests} == {"/v1/completions"}
    _agree(_results(out), local_results["calibrated_sum"], scores=True)
    assert summary["backend"]["scoring"] == "completions+echo"
    assert summary["settings"]["rule"] == "calibrated_sum"
    assert summary["model"] == f"tiny@{server.url}"


def test_429_and_500_are_retried_and_the_run_completes(
    suite, tiny_model, tmp_path, local_results
):
    with FakeServer(tiny_model) as server:
        server.fail = [429, 500, 503]
        out = tmp_path / "remote"
        _remote(suite, out, server.url, backend_options={"tokenizer": tiny_model})
        assert not server.fail
    _agree(_results(out), local_results["calibrated_sum"], scores=True)


def test_a_server_that_keeps_failing_is_a_model_error(suite, tiny_model, tmp_path):
    with FakeServer(tiny_model) as server:
        backend = OpenAIBackend(server.url, retries=2, backoff=0.01)
        server.fail = [500] * 5
        with pytest.raises(ModelError, match="HTTP 500 after 3 tries"):
            backend.generate([[{"role": "user", "content": "hi"}]], 4)


def test_a_bad_request_is_not_retried(tiny_model):
    with FakeServer(tiny_model) as server:
        backend = OpenAIBackend(server.url, backoff=0.01)
        server.fail = [400]
        with pytest.raises(ModelError, match="HTTP 400 after 1 tries"):
            backend.generate([[{"role": "user", "content": "hi"}]], 4)


def test_without_logprobs_the_answer_is_generated_and_parsed(
    suite, tiny_model, tmp_path, local_results
):
    with FakeServer(tiny_model, logprobs=False) as server:
        out = tmp_path / "remote"
        summary = _remote(suite, out, server.url, scoring="sum_eot")
    results = _results(out)
    _agree(results, local_results["sum_eot"], scores=False)
    assert summary["settings"]["rule"] == "generated"
    assert summary["backend"]["logprobs"] is False
    assert all(r.output.startswith(r.answer.upper()) for r in results.values())


def test_chat_top_logprobs_score_the_first_answer_token(suite, tiny_model, tmp_path):
    with FakeServer(tiny_model) as server:
        out = tmp_path / "remote"
        summary = _remote(suite, out, server.url)
        bodies = [body for path, body in server.requests]
    assert all(b["logprobs"] and b["top_logprobs"] == 20 for b in bodies)
    assert summary["settings"]["rule"] == "calibrated_first"
    results = _results(out)
    assert all(r.answer in ("safe", "unsafe") for r in results.values())
    assert all(r.tokens > 0 for r in results.values())


def test_requests_run_concurrently_up_to_the_limit(tiny_model):
    with FakeServer(tiny_model) as server:
        server.delay = 0.05
        backend = OpenAIBackend(server.url, concurrency=3)
        chats = [[{"role": "user", "content": f"case {i}"}] for i in range(9)]
        answers = backend.generate(chats, 2)
    assert len(answers) == 9
    assert server.most_in_flight == 3


def test_repair_goes_through_the_chat_endpoint(suite, tiny_model, tmp_path):
    with FakeServer(tiny_model, logprobs=False) as server:
        out = tmp_path / "remote"
        _remote(suite, out, server.url, task="repair", max_new_tokens=8)
    results = _results(out)
    assert results and all(r.task == "repair" for r in results.values())


@pytest.mark.parametrize("url", ["demo", "127.0.0.1:8000", "ftp://x/v1", "http://"])
def test_the_model_must_be_an_http_url(url):
    with pytest.raises(InvalidArgument, match="--model URL"):
        check_url(url)


def test_a_url_without_a_path_gets_v1():
    assert check_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert check_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
