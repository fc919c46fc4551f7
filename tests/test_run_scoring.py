"""Verdict scoring on a tiny random model: cache equals naive, batches agree."""

from __future__ import annotations

import pytest
from tinymodel import build_tiny_model, make_case, pod_variants

from generator.prompts import case_variables, load_template
from generator.run.models import load_model
from generator.run.scoring import OptionScorer, common_prefix
from generator.run.verdict import RULES, VerdictScorer

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


def test_prefix_cached_scores_equal_naive_forward_passes(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    variables = [case_variables(case) for case in cases]
    prompts = [scorer.prompt_ids(values) for values in variables]
    assert len(scorer._scorer_for(variables[0]).prefix) > 10

    cached = scorer.raw_scores(variables)
    for prompt, options in zip(prompts, cached, strict=True):
        for option_ids, scores in zip(scorer.options, options, strict=True):
            expected = _naive(tiny.model, prompt, option_ids)
            assert scores == pytest.approx(expected, abs=1e-4)


def test_scorer_without_a_shared_prefix_agrees_with_the_cached_one(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    variables = [case_variables(case) for case in cases[:3]]
    prompts = [scorer.prompt_ids(values) for values in variables]
    plain = OptionScorer(tiny.model, scorer.options, ())
    for got, want in zip(
        plain.score(prompts), scorer.raw_scores(variables), strict=True
    ):
        for a, b in zip(got, want, strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_prompt_that_does_not_start_with_the_prefix_is_scored_alone(tiny, cases):
    scorer = VerdictScorer(tiny, load_template("k8s", "verdict"))
    variables = [case_variables(case) for case in cases[:2]]
    prompts = [scorer.prompt_ids(values) for values in variables]
    # Change the first token: the shared prefix cache no longer applies.
    prompts[1] = [prompts[1][1]] + prompts[1][1:]
    scores = scorer.raw_scores(variables, prompts)
    expected = _naive(tiny.model, prompts[1], scorer.options[1])
    assert scores[1][1] == pytest.approx(expected, abs=1e-4)


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
