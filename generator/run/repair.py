"""The repair task: the model rewrites an unsafe config; the oracle re-checks it.

IAM repairs are judged by ``_judge_iam_repair`` (JSON out of the answer,
the IAM oracle, and the intended access of ``generator.run.iam_intent``);
what follows describes Kubernetes repairs.

Only unsafe cases are asked. The answer is generated greedily, the YAML is
taken out of it (the first fenced block, else the first run of lines that
look like YAML) and judged on two counts:

* ``repair_broke_intent``: the repair must be the same workload. Its
  documents must keep their kind and name, and each container list
  (init, regular, ephemeral) the same container names with the same images.
  A model that "fixes" a privileged sidecar by deleting it has not repaired
  anything, so this is checked before safety.
* ``repair_still_unsafe``: the oracle still finds a violated rule.

Anything that cannot be read as a Kubernetes workload is ``unparseable``.
A model's output is data, never trusted: whatever it contains becomes a
recorded failure, not an exception.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generator.config.k8s import load_documents, workloads
from generator.errors import SpotcheckError
from generator.oracle.k8s import truth
from generator.prompts import PromptTemplate, render_case
from generator.records import Case, Result

__all__ = [
    "MAX_NEW_TOKENS",
    "RepairJudgement",
    "RepairGenerator",
    "extract_yaml",
    "judge_repair",
]

logger = logging.getLogger(__name__)

# A repair is the input manifest again with a few lines changed, so the
# answer budget follows the input's length, up to this cap.
MAX_NEW_TOKENS = 1024
_SLACK_TOKENS = 128

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*$", re.MULTILINE)
_YAML_START = re.compile(r"^(?:apiVersion|kind)\s*:", re.MULTILINE)
# A line that can belong to a block-YAML document: blank, indented, a list
# item, a document marker, a comment, or a top-level "key:".
_YAML_LINE = re.compile(r"^(?:\s*$|\s+\S|- |-$|---|\.\.\.|#|[\"']?[\w./-]+[\"']?\s*:)")


def extract_yaml(output: str) -> str | None:
    """The config text in a model answer, or None if there is none.

    A fenced block wins (```yaml, ```yml or a bare ```); a fence the model
    never closed (it ran out of tokens) yields the rest of the answer.
    Without a fence, the answer's first ``apiVersion:``/``kind:`` line starts
    the YAML, which runs until the first line that cannot be YAML (prose).
    """
    # Fences pair up in order: an opening one, then its closing one.
    fences = list(_FENCE.finditer(output))
    for i in range(0, len(fences), 2):
        opening = fences[i]
        end = fences[i + 1].start() if i + 1 < len(fences) else len(output)
        body = output[opening.end() + 1 : end].strip("\n")
        if opening[1].lower() in ("", "yaml", "yml") and body.strip():
            return body + "\n"

    start = _YAML_START.search(output)
    if start is None:
        return None
    lines = []
    for line in output[start.start() :].splitlines():
        if not _YAML_LINE.match(line):
            break
        lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


@dataclass(frozen=True)
class RepairJudgement:
    """The verdict on one repair: failure kind (None if good) and why."""

    answer: str | None
    failure: str | None
    detail: str


def judge_repair(case: Case, output: str) -> RepairJudgement:
    """Judge a model's repair of ``case`` from its raw output text."""
    if case.domain == "iam":
        return _judge_iam_repair(case, output)
    if case.domain in ("netpol", "sg"):
        # Each network domain judges its repairs in its own module, which
        # defines the access a repair must keep (generator/repair_<domain>).
        module = importlib.import_module(f"generator.repair_{case.domain}")
        return RepairJudgement(*module.judge_output(case, output))
    text = extract_yaml(output)
    if text is None:
        return RepairJudgement(None, "unparseable", "no YAML in the answer")

    # The oracle is exact on any input it accepts; what it refuses is not a
    # config. Other exceptions would be oracle bugs, but one bad answer must
    # not end an overnight run, so they are recorded and logged loudly.
    try:
        repaired = truth(text, case.question, source="<repair>")
        changes = _intent_changes(case.config, text)
    except SpotcheckError as exc:
        return RepairJudgement(text, "unparseable", str(exc))
    except Exception as exc:  # noqa: BLE001 - see comment above
        logger.warning("case %s: repair could not be judged: %r", case.id, exc)
        return RepairJudgement(text, "unparseable", f"cannot judge: {exc!r}")

    if changes:
        return RepairJudgement(text, "repair_broke_intent", "; ".join(changes))
    if repaired.verdict == "unsafe":
        rules = ", ".join(repaired.rules)
        return RepairJudgement(text, "repair_still_unsafe", f"still violates {rules}")
    return RepairJudgement(text, None, "")


def _judge_iam_repair(case: Case, output: str) -> RepairJudgement:
    """An IAM repair: the question must now be answered "no", and the intended
    access kept (``generator.run.iam_intent`` defines it)."""
    from generator.oracle.iam import Undecidable
    from generator.oracle.iam import truth as iam_truth
    from generator.run.iam_intent import extract_json, intent_lost

    text = extract_json(output)
    if text is None:
        return RepairJudgement(None, "unparseable", "no JSON policy in the answer")
    try:
        changes = intent_lost(case.config, text, case.question)
        repaired = iam_truth(text, case.question)
    except Undecidable as exc:
        # "depends" is not "no": the repair did not settle the question.
        return RepairJudgement(text, "repair_still_unsafe", f"undecidable: {exc}")
    except SpotcheckError as exc:
        return RepairJudgement(text, "unparseable", str(exc))
    except Exception as exc:  # noqa: BLE001 - as for Kubernetes repairs above
        logger.warning("case %s: repair could not be judged: %r", case.id, exc)
        return RepairJudgement(text, "unparseable", f"cannot judge: {exc!r}")

    if changes:
        return RepairJudgement(text, "repair_broke_intent", "; ".join(changes))
    if repaired.verdict == "unsafe":
        rules = ", ".join(repaired.rules)
        return RepairJudgement(text, "repair_still_unsafe", f"still allows {rules}")
    return RepairJudgement(text, None, "")


_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _intent(text: str) -> list[tuple[str, str, dict[str, list[tuple[str, str]]]]]:
    """Per workload: kind, name, and each container list's (name, image)s."""
    shape = []
    for index, document in enumerate(load_documents(text)):
        for workload in workloads(document, index=index):
            lists = {}
            for key in _CONTAINER_LISTS:
                entries = workload.spec.get(key) or []
                if not isinstance(entries, list):
                    entries = []
                lists[key] = [
                    (str(c.get("name")), str(c.get("image")))
                    for c in entries
                    if isinstance(c, dict)
                ]
            shape.append((workload.kind, workload.name, lists))
    return shape


def _intent_changes(original: str, repaired: str) -> list[str]:
    """What the repair changed that it was told to keep, in words."""
    before, after = _intent(original), _intent(repaired)
    if len(before) != len(after):
        return [f"{len(before)} workloads became {len(after)}"]
    changes = []
    for (kind, name, lists), (kind2, name2, lists2) in zip(before, after, strict=True):
        if (kind, name) != (kind2, name2):
            changes.append(f"{kind}/{name} became {kind2}/{name2}")
        for key in _CONTAINER_LISTS:
            old, new = dict(lists[key]), dict(lists2[key])
            lost = sorted(old.keys() - new.keys())
            added = sorted(new.keys() - old.keys())
            if lost:
                changes.append(f"{key} lost {', '.join(lost)}")
            if added:
                changes.append(f"{key} gained {', '.join(added)}")
            for container in sorted(old.keys() & new.keys()):
                if old[container] != new[container]:
                    changes.append(
                        f"{key} {container}: image {old[container]} became "
                        f"{new[container]}"
                    )
    return changes


class RepairGenerator:
    """Asks a model for repairs, greedily, a batch at a time.

    ``backend`` is any ``generator.run.backends.Backend`` (a ``LoadedModel``
    is wrapped in the transformers one).
    """

    def __init__(
        self,
        backend: Any,
        template: PromptTemplate,
        *,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ):
        from generator.run.models import LoadedModel

        if isinstance(backend, LoadedModel):
            from generator.run.backends import TransformersBackend

            backend = TransformersBackend(backend)
        self.backend = backend
        self.template = template
        self.max_new_tokens = max_new_tokens

    def settings(self) -> dict[str, Any]:
        """How repairs were generated, for run.json."""
        return {"decoding": "greedy", "max_new_tokens": self.max_new_tokens}

    def answer(self, cases: Sequence[Case]) -> list[Result]:
        """The runner's entry point: ``generate``."""
        return self.generate(cases)

    def generate(self, cases: Sequence[Case]) -> list[Result]:
        """One Result per case, in order."""
        started = time.monotonic()
        chats = [render_case(self.template, case) for case in cases]
        longest = max(self.backend.count_tokens(c.config) for c in cases)
        budget = min(self.max_new_tokens, longest + longest // 2 + _SLACK_TOKENS)
        answers = self.backend.generate(chats, budget)
        each = (time.monotonic() - started) / len(cases)
        return [
            self._result(case, answer.text, answer.tokens, each)
            for case, answer in zip(cases, answers, strict=True)
        ]

    def _result(self, case: Case, output: str, tokens: int, seconds: float) -> Result:
        judgement = judge_repair(case, output)
        return Result(
            case_id=case.id,
            task="repair",
            template_id=self.template.id,
            template_version=self.template.version,
            model_id=self.backend.model_id,
            output=output,
            answer=judgement.answer,
            correct=judgement.failure is None,
            failure=judgement.failure,
            tokens=tokens,
            seconds=seconds,
            detail=judgement.detail,
        )
