"""Verdict scoring on a tiny random model: cache equals naive, batches agree."""

from __future__ import annotations

import pytest
from tinymodel import build_tiny_model, make_case, pod_variants

from generator.errors import ModelError
from generator.prompts import case_variables, load_template
from generator.run.backends import TransformersBackend, _Batcher
from generator.run.models import load_model
from generator.run.scoring import OptionScorer, common_prefix
from generator.run.verdict import LABELS, RULES, VerdictScorer

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    return load_model(str(directory), device="cpu")


@pytest.fixture(scope="module")
def cases():
    return [make_case(text) for text in pod_variants()]


def _naive(model, prompt: list[int], option: list[int]) -> list[float]:
    """Per-token log-probs of ``option`` after ``prompt``, one plain forward."""
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + option])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[len(prompt) - 1 + j, t].item() for j, t in enumerate(option)]


def test_common_prefix_stops_at_first_difference():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5], [1, 2]) == [1, 2]
    assert common_prefix([1], [2]) == []


def _backend(tiny, **options) -> TransformersBackend:
    return TransformersBackend(tiny, **options)


def _chats(cases) -> list:
    template = load_template("k8s", "verdict")
    return [template.render(case_variables(case)) for case in cases]


def test_prefix_cached_scores_equal_naive_forward_passes(tiny, cases):
    backend = _backend(tiny)
    chats = _chats(cases)
    options = backend.option_ids(LABELS)
    cached = backend.score_options(chats, LABELS)
    # The second prompt teaches the backend the template's shared start.
    assert backend._prefixes and len(backend._prefixes[0]) > 10

    for chat, scores in zip(chats, cached, strict=True):
        prompt = backend.prompt_ids(chat)
        assert scores.prompt_tokens == len(prompt) and scores.complete
        for option_ids, values in zip(options, scores.logprobs, strict=True):
            expected = _naive(tiny.model, prompt, option_ids)
            assert values == pytest.approx(expected, abs=1e-4)


def test_scorer_without_a_shared_prefix_agrees_with_the_cached_one(tiny, cases):
    backend = _backend(tiny)
    chats = _chats(cases[:3])
    prompts = [backend.prompt_ids(chat) for chat in chats]
    plain = OptionScorer(tiny.model, backend.option_ids(LABELS), ())
    for got, want in zip(
        plain.score(prompts), backend.score_options(chats, LABELS), strict=True
    ):
        for a, b in zip(got, want.logprobs, strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_prompt_that_does_not_start_with_the_prefix_is_scored_alone(tiny, cases):
    backend = _backend(tiny)
    chats = _chats(cases[:3])
    backend.score_options(chats, LABELS)
    # Another system message: the learnt prefix no longer applies.
    other = [{**chats[0][0], "content": "Zzz."}, *chats[0][1:]]
    scores = backend.score_options([other], LABELS)[0]
    prompt = backend.prompt_ids(other)
    expected = _naive(tiny.model, prompt, backend.option_ids(LABELS)[1])
    assert scores.logprobs[1] == pytest.approx(expected, abs=1e-4)


def test_a_small_token_budget_cuts_more_batches_with_the_same_scores(tiny, cases):
    chats = _chats(cases)
    wide = _backend(tiny).score_options(chats, LABELS)
    narrow = _backend(tiny, max_batch_tokens=64).score_options(chats, LABELS)
    for a, b in zip(wide, narrow, strict=True):
        for x, y in zip(a.logprobs, b.logprobs, strict=True):
            assert x == pytest.approx(y, abs=1e-4)


def test_out_of_memory_halves_the_rows_until_a_batch_fits():
    batcher = _Batcher(max_batch_tokens=10_000, device="cuda")
    sizes = []

    def work(batch):
        sizes.append(len(batch))
        if len(batch) > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate")
        return [item * 2 for item in batch]

    items = list(range(16, 0, -1))
    assert batcher.run(items, lambda item: 10, work) == [i * 2 for i in items]
    assert sizes == [16, 8, 4, 4, 4, 4]
    assert batcher.max_rows == 4  # remembered for later batches


def test_out_of_memory_in_the_model_gives_the_same_scores(tiny, cases, monkeypatch):
    chats = _chats(cases)
    want = _backend(tiny).score_options(chats, LABELS)
    score = OptionScorer.score

    def tight(self, suffixes):
        if len(suffixes) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return score(self, suffixes)

    monkeypatch.setattr(OptionScorer, "score", tight)
    backend = _backend(tiny)
    got = backend.score_options(chats, LABELS)
    assert backend.batcher.max_rows == 1
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a.logprobs, b.logprobs, strict=True):
            assert x == pytest.approx(y, abs=1e-4)


def test_out_of_memory_on_one_prompt_is_a_model_error(tiny, cases, monkeypatch):
    def never(self, suffixes):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried")

    monkeypatch.setattr(OptionScorer, "score", never)
    with pytest.raises(ModelError, match="single prompt"):
        _backend(tiny).score_options(_chats(cases[:2]), LABELS)


def test_other_errors_are_not_mistaken_for_out_of_memory(tiny, cases, monkeypatch):
    def broken(self, suffixes):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(OptionScorer, "score", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _backend(tiny).score_options(_chats(cases[:4]), LABELS)


def test_verdicts_do_not_depend_on_batch_size(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    one = [r for case in cases for r in scorer.judge([case])]
    four = [r for i in range(0, len(cases), 4) for r in scorer.judge(cases[i : i + 4])]
    for a, b in zip(one, four, strict=True):
        assert a.case_id == b.case_id
        for key in a.scores:
            assert a.scores[key] == pytest.approx(b.scores[key], abs=1e-4)
        if abs(a.scores["decision"]) > 1e-3:
            assert a.answer == b.answer


def test_uncalibrated_rule_picks_the_option_with_the_higher_score(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"), rule="sum_eot")
    for result in scorer.judge(cases):
        higher = (
            "unsafe"
            if result.scores["logp_unsafe"] > result.scores["logp_safe"]
            else "safe"
        )
        assert result.answer == higher
        assert result.scores["calibration"] == 0.0


def test_calibrated_decision_subtracts_the_content_free_margin(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    results = scorer.judge(cases)
    offsets = {r.scores["calibration"] for r in results}
    assert len(offsets) == 1 and offsets != {0.0}  # one question, one offset
    for r in results:
        s = r.scores
        label_margin = (s["logp_unsafe"] - s["eot_unsafe"]) - (
            s["logp_safe"] - s["eot_safe"]
        )
        assert s["decision"] == pytest.approx(label_margin - s["calibration"])
        assert r.answer == ("unsafe" if s["decision"] > 0 else "safe")


def test_wrong_verdicts_get_the_failure_kind_of_their_direction(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    for case, result in zip(cases, scorer.judge(cases), strict=True):
        assert result.correct == (result.answer == case.truth.verdict)
        if result.correct:
            assert result.failure is None
        elif case.truth.verdict == "unsafe":
            assert result.failure == "missed_unsafe"
        else:
            assert result.failure == "false_alarm"
        assert result.output in ("SAFE", "UNSAFE")
        assert result.tokens > 0


def test_rules_compare_unsafe_minus_safe():
    safe, unsafe = [-1.0, -2.0, -0.5], [-0.5, -0.5, -0.5, -3.0]
    assert RULES["sum"].margin(safe, unsafe) == pytest.approx(-1.5 - -3.0)
    assert RULES["sum_eot"].margin(safe, unsafe) == pytest.approx(-4.5 - -3.5)
    assert RULES["mean_eot"].margin(safe, unsafe) == pytest.approx(-4.5 / 4 - -3.5 / 3)
    assert RULES["first"].margin(safe, unsafe) == pytest.approx(0.5)
    assert RULES["calibrated_sum"].calibrated and not RULES["sum"].calibrated


def test_unknown_rule_is_refused(tiny):
    with pytest.raises(ValueError, match="unknown scoring rule"):
        VerdictScorer(tiny, load_template("k8s", "verdict"), rule="loudest")
