"""The verdict task: is this config safe? Answered by scoring two labels.

The model is never asked to generate here. After the prompt, each answer
option (a label followed by the end-of-turn token) gets its per-token
log-probabilities from ``OptionScorer``, and a *scoring rule* turns the two
options' numbers into one decision score: above zero means UNSAFE.

Why a rule has to be chosen at all: the labels tokenise to different lengths
("SAFE" is two tokens, "UNSAFE" three, with or without a leading space), so a
plain sum of log-probabilities rewards the shorter label whatever the config
says, and adding the end-of-turn token, whose probability differs by label,
moves the bias rather than removing it. A small model's answer is then a
constant, not a judgement.

Contextual calibration (Zhao et al. 2021, "Calibrate before use") estimates
that label bias directly: the same template is asked about content-free
configs, and the mean margin the model gives them is subtracted from every
real margin. It is computed once per template and question, so a case's
score never depends on what else is in its batch or suite. The content-free
configs have the domain's document shape with every value masked; "N/A" or
an empty config is so unlike a manifest that it calibrates too far.

The choice, measured with ``scripts/measure_scoring.py`` on the demo model
(SmolLM2-135M-Instruct; 99 PSA conformance pods, 77 % unsafe, and 60
realistic pods, 50 %): every uncalibrated rule gives one answer to 92-100 %
of both sets, and calibrated on "N/A"-style inputs every rule still does so
for 91-100 % of one set. ``calibrated_sum`` (on masked manifests) with the
labels spelled without a leading space is the only rule whose UNSAFE share
stays between 25 % and 75 % on both sets (39 % and 37 %). No rule makes
this model a judge: balanced accuracy is 0.38-0.52 and AUC 0.41-0.59 for
all of them, so the choice is about not being one-sided; a model that has
learnt the task should spread its margins far wider than the offset. A
caveat: the masked-manifest calibration inputs were chosen after looking at
part of the same two sets, so these shares are not a held-out measurement. The
raw numbers are kept in ``Result.scores`` so any other rule can be applied
later: ``logp_safe``/``logp_unsafe`` sum all label tokens plus end-of-turn,
``eot_safe``/``eot_unsafe`` are the end-of-turn parts.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from generator.errors import ModelError
from generator.prompts import PromptTemplate, case_variables
from generator.records import Case, Result
from generator.run.backends import OptionScores
from generator.run.models import LoadedModel

__all__ = [
    "CONTENT_FREE_CONFIGS",
    "DEFAULT_RULE",
    "GENERIC_CONTENT_FREE",
    "LABELS",
    "RULES",
    "Rule",
    "VerdictScorer",
]

logger = logging.getLogger(__name__)

# The answer options, in (safe, unsafe) order. No leading space: the reply
# starts right after "<|im_start|>assistant\n", where a word starts bare.
LABELS = ("SAFE", "UNSAFE")


def _skeleton(value: str) -> str:
    return (
        f"apiVersion: {value}\nkind: {value}\nmetadata:\n  name: {value}\nspec: {value}"
    )


def _policy_skeleton(value: str) -> str:
    return (
        f'{{\n    "Version": "{value}",\n    "Statement": [\n        {{\n'
        f'            "Effect": "{value}",\n            "Action": "{value}",\n'
        f'            "Resource": "{value}"\n        }}\n    ]\n}}'
    )


# Configs that carry no information about safety, for calibration: the
# domain's document shape with every value masked. Shape matters: measured on
# the demo model, a content-free *manifest* puts the label bias near the
# middle of real manifests' margins, while "N/A" or "" sit far below them
# and calibrate everything to UNSAFE (scripts/measure_scoring.py).
CONTENT_FREE_CONFIGS: dict[str, tuple[str, ...]] = {
    "k8s": (_skeleton("xxx"), _skeleton("N/A"), _skeleton("...")),
    # An IAM policy's shape with every value masked, by the same reasoning;
    # not measured on the demo model yet (scripts/measure_scoring.py is k8s).
    "iam": (_policy_skeleton("xxx"), _policy_skeleton("N/A"), _policy_skeleton("...")),
}
GENERIC_CONTENT_FREE = ("N/A", "", "{}")

Margin = Callable[[Sequence[float], Sequence[float]], float]


@dataclass(frozen=True)
class Rule:
    """A way to compare the options: a margin (UNSAFE minus SAFE), and
    whether the content-free margin is subtracted from it."""

    name: str
    margin: Margin
    calibrated: bool
    description: str


def _sum(tokens: Sequence[float]) -> float:
    return math.fsum(tokens)


def _margin_sum(safe: Sequence[float], unsafe: Sequence[float]) -> float:
    # Label tokens only: the last entry of each option is the end-of-turn.
    return _sum(unsafe[:-1]) - _sum(safe[:-1])


def _margin_sum_eot(safe: Sequence[float], unsafe: Sequence[float]) -> float:
    return _sum(unsafe) - _sum(safe)


def _margin_mean_eot(safe: Sequence[float], unsafe: Sequence[float]) -> float:
    return _sum(unsafe) / len(unsafe) - _sum(safe) / len(safe)


def _margin_first(safe: Sequence[float], unsafe: Sequence[float]) -> float:
    # The labels' first tokens differ, so this is a single-token comparison.
    return unsafe[0] - safe[0]


_MARGINS: dict[str, tuple[Margin, str]] = {
    "sum": (_margin_sum, "summed log-prob of the label tokens"),
    "sum_eot": (_margin_sum_eot, "summed log-prob of label + end-of-turn"),
    "mean_eot": (_margin_mean_eot, "mean log-prob per token, label + end-of-turn"),
    "first": (_margin_first, "log-prob of the label's first token"),
}


def _rules() -> dict[str, Rule]:
    """Every margin, plain and calibrated."""
    rules = {}
    for name, (margin, text) in _MARGINS.items():
        rules[name] = Rule(name, margin, False, text)
        rules[f"calibrated_{name}"] = Rule(
            f"calibrated_{name}",
            margin,
            True,
            f"{text}, minus the same margin on content-free configs",
        )
    return rules


RULES: dict[str, Rule] = _rules()

DEFAULT_RULE = "calibrated_sum"

# Without log-probabilities the verdict is generated: a few tokens are
# enough for the label, and UNSAFE is tried first since it contains SAFE.
_ANSWER_TOKENS = 8
_LABEL_WORD = re.compile(r"\b(UNSAFE|SAFE)\b", re.IGNORECASE)


class VerdictScorer:
    """Judges cases of one template with one model by label log-likelihood.

    ``backend`` is any ``generator.run.backends.Backend`` (a ``LoadedModel``
    is wrapped in the transformers one). What it can measure decides how
    verdicts are reached, recorded in ``settings()["rule"]``:

    * every token of both options: ``rule`` as asked;
    * the first answer token only (a chat endpoint's ``top_logprobs``):
      the rule's ``first`` counterpart, calibrated if ``rule`` is;
    * no log-probabilities: the answer is generated and the first SAFE or
      UNSAFE in it taken (``generated``); none is ``unparseable``.
    """

    def __init__(
        self,
        backend: Any,
        template: PromptTemplate,
        *,
        rule: str = DEFAULT_RULE,
        labels: tuple[str, str] = LABELS,
    ):
        if rule not in RULES:
            raise ValueError(f"unknown scoring rule {rule!r}; known: {sorted(RULES)}")
        if isinstance(backend, LoadedModel):
            from generator.run.backends import TransformersBackend

            backend = TransformersBackend(backend)
        self.backend = backend
        self.template = template
        self.requested_rule = RULES[rule]
        self.rule = self.requested_rule
        self.labels = labels
        # "scored", "first" or "generated", fixed by the first answer.
        self.mode: str | None = None
        self._calibration: dict[tuple, float] = {}

    def _context_key(self, variables: dict) -> tuple:
        """What shapes a prompt besides the config: the other used variables."""
        used = self.template.variables - {"config"}
        return tuple(sorted((k, str(v)) for k, v in variables.items() if k in used))

    # --- raw scores ------------------------------------------------------------

    def _scores(self, variables: Sequence[dict]) -> list[OptionScores] | None:
        chats = [self.template.render(values) for values in variables]
        scores = self.backend.score_options(chats, self.labels)
        mode = "generated" if scores is None else self._scored_mode(scores)
        if self.mode is None:
            self.mode = mode
            if mode == "first":
                name = "calibrated_first" if self.rule.calibrated else "first"
                self.rule = RULES[name]
            if mode != "scored":
                logger.warning(
                    "%s gives %s; verdicts by %s",
                    self.backend.name,
                    "first-token log-probs only" if mode == "first" else "no log-probs",
                    self.rule.name if mode == "first" else "generated answers",
                )
        elif mode != self.mode:
            raise ModelError(
                f"{self.backend.name} changed what it returns mid-run "
                f"({self.mode} answers, then {mode}); restart the run"
            )
        return scores

    @staticmethod
    def _scored_mode(scores: Sequence[OptionScores]) -> str:
        return "scored" if all(s.complete for s in scores) else "first"

    def raw_scores(self, variables: Sequence[dict]) -> list[list[list[float]]]:
        """Per prompt: the (safe, unsafe) options' per-token log-probs."""
        scores = self._scores(variables)
        if scores is None:
            raise ModelError(f"{self.backend.name} returns no log-probabilities")
        return [s.logprobs for s in scores]

    def calibration(self, variables: dict) -> float:
        """The mean margin on content-free configs, per template context."""
        if not self.rule.calibrated or self.mode == "generated":
            return 0.0
        key = self._context_key(variables)
        if key not in self._calibration:
            texts = CONTENT_FREE_CONFIGS.get(variables["domain"], GENERIC_CONTENT_FREE)
            free = [{**variables, "config": text} for text in texts]
            scores = self._scores(free)
            if scores is None:
                return 0.0
            margins = [self.rule.margin(*s.logprobs) for s in scores]
            self._calibration[key] = math.fsum(margins) / len(margins)
            logger.info(
                "calibration margin %.3f (%s) for %s",
                self._calibration[key],
                self.rule.name,
                variables.get("question", "?"),
            )
        return self._calibration[key]

    def calibration_table(self) -> dict[str, float]:
        """Every calibration margin computed so far, by template context."""
        return {
            ",".join(f"{k}={v}" for k, v in key): margin
            for key, margin in sorted(self._calibration.items())
        }

    def settings(self) -> dict[str, Any]:
        """How verdicts were reached, for run.json."""
        if self.mode == "generated":
            return {
                "rule": "generated",
                "description": "the first SAFE or UNSAFE in a generated answer",
                "labels": list(self.labels),
                "calibration": {},
            }
        settings = {
            "rule": self.rule.name,
            "description": self.rule.description,
            "labels": list(self.labels),
            "calibration": self.calibration_table(),
        }
        if self.rule is not self.requested_rule:
            settings["requested_rule"] = self.requested_rule.name
        return settings

    # --- verdicts --------------------------------------------------------------

    def answer(self, cases: Sequence[Case]) -> list[Result]:
        """The runner's entry point: ``judge``."""
        return self.judge(cases)

    def judge(self, cases: Sequence[Case]) -> list[Result]:
        """One Result per case, in order."""
        started = time.monotonic()
        variables = [case_variables(case) for case in cases]
        offsets = [self.calibration(values) for values in variables]
        scores = self._scores(variables)
        if scores is None:
            return self._generated(cases, variables, started)
        each = (time.monotonic() - started) / max(len(cases), 1)
        return [
            self._result(case, score.logprobs, offset, score.prompt_tokens, each)
            for case, score, offset in zip(cases, scores, offsets, strict=True)
        ]

    def _generated(
        self, cases: Sequence[Case], variables: list[dict], started: float
    ) -> list[Result]:
        """Verdicts read from generated answers, for backends without log-probs."""
        chats = [self.template.render(values) for values in variables]
        answers = self.backend.generate(chats, _ANSWER_TOKENS)
        each = (time.monotonic() - started) / max(len(cases), 1)
        results = []
        for case, generation in zip(cases, answers, strict=True):
            found = _LABEL_WORD.search(generation.text)
            answer = None if found is None else found[1].lower()
            correct = answer == case.truth.verdict
            failure = None
            if answer is None:
                failure = "unparseable"
            elif not correct:
                failure = "missed_unsafe" if answer == "safe" else "false_alarm"
            results.append(
                Result(
                    case_id=case.id,
                    task="verdict",
                    template_id=self.template.id,
                    template_version=self.template.version,
                    model_id=self.backend.model_id,
                    output=generation.text,
                    answer=answer,
                    correct=correct,
                    failure=failure,
                    tokens=generation.tokens,
                    seconds=each,
                )
            )
        return results

    def _result(
        self,
        case: Case,
        options: list[list[float]],
        offset: float,
        tokens: int,
        seconds: float,
    ) -> Result:
        safe, unsafe = options
        decision = self.rule.margin(safe, unsafe) - offset
        answer = "unsafe" if decision > 0 else "safe"
        correct = answer == case.truth.verdict
        failure = None
        if not correct:
            failure = "missed_unsafe" if answer == "safe" else "false_alarm"
        return Result(
            case_id=case.id,
            task="verdict",
            template_id=self.template.id,
            template_version=self.template.version,
            model_id=self.backend.model_id,
            output=self.labels[answer == "unsafe"].strip(),
            answer=answer,
            correct=correct,
            failure=failure,
            scores={
                "logp_safe": math.fsum(safe),
                "logp_unsafe": math.fsum(unsafe),
                "eot_safe": safe[-1],
                "eot_unsafe": unsafe[-1],
                "calibration": offset,
                "decision": decision,
            },
            tokens=tokens,
            seconds=seconds,
        )
