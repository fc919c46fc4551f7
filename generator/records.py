"""The records that travel through the pipeline.

A ``Case`` is made once by ``generate`` and never changes: the runner reads
it, the report groups by its tags, and the export takes its truth as the
answer. A ``Result`` is one model answer to one case. Both have exactly one
JSON form (``to_dict``/``from_dict``), which is a line of ``cases.jsonl`` or
``results.jsonl``; see DESIGN.md for the field list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Case",
    "FAILURE_KINDS",
    "Origin",
    "RELATIONS",
    "Result",
    "Truth",
    "Violation",
    "case_id",
    "dumps_line",
]

Verdict = Literal["safe", "unsafe"]
TagValue = str | int | bool

# How a sibling relates to its case: the same meaning written another way (the
# verdict and violated rules must not move), or the smallest edit that moves
# the verdict. A report measures whether the model's answer moves with them.
RELATIONS = ("same", "opposite")

# The ways a model can get a case wrong; a correct answer has no failure kind.
FAILURE_KINDS = (
    "missed_unsafe",
    "false_alarm",
    "unparseable",
    "repair_still_unsafe",
    "repair_broke_intent",
)


@dataclass(frozen=True)
class Violation:
    """One failed check: which rule, where in the config, and why."""

    rule: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "path": self.path, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        return cls(str(data["rule"]), str(data["path"]), str(data["message"]))


@dataclass(frozen=True)
class Truth:
    """The oracle's verdict on a case: unsafe exactly when a rule is violated."""

    verdict: Verdict
    violations: tuple[Violation, ...] = ()

    @property
    def rules(self) -> tuple[str, ...]:
        """The distinct violated rules, in first-seen order."""
        return tuple(dict.fromkeys(v.rule for v in self.violations))

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "violations": [v.to_dict() for v in self.violations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Truth:
        violations = tuple(Violation.from_dict(v) for v in data["violations"])
        return cls(data["verdict"], violations)


@dataclass(frozen=True)
class Origin:
    """How a case was made: by which method, from which parent, with what."""

    method: Literal["grammar", "mutation"]
    parent: str | None = None
    operators: tuple[str, ...] = ()
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parent": self.parent,
            "operators": list(self.operators),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Origin:
        return cls(
            data["method"],
            data.get("parent"),
            tuple(data.get("operators", ())),
            data.get("seed"),
        )


def case_id(domain: str, question: str, config: str) -> str:
    """A stable id: the domain, then a hash of what the model is asked."""
    digest = hashlib.sha256(f"{question}\0{config}".encode()).hexdigest()
    return f"{domain}-{digest[:16]}"


@dataclass(frozen=True)
class Case:
    """One generated config with its question and its ground truth."""

    id: str
    domain: str
    family: str
    origin: Origin
    format: Literal["yaml", "json", "hcl"]
    config: str
    question: str
    truth: Truth
    tags: dict[str, TagValue] = field(default_factory=dict)
    # Relation ("same" | "opposite") to the id of the sibling case in the same
    # suite; empty for a case with none, and then absent from the JSON form,
    # so suites without siblings keep the bytes they had before the field.
    siblings: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "domain": self.domain,
            "family": self.family,
            "origin": self.origin.to_dict(),
            "format": self.format,
            "config": self.config,
            "question": self.question,
            "truth": self.truth.to_dict(),
            "tags": dict(sorted(self.tags.items())),
        }
        if self.siblings:
            data["siblings"] = dict(sorted(self.siblings.items()))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(
            id=data["id"],
            domain=data["domain"],
            family=data["family"],
            origin=Origin.from_dict(data["origin"]),
            format=data["format"],
            config=data["config"],
            question=data["question"],
            truth=Truth.from_dict(data["truth"]),
            tags=dict(data.get("tags", {})),
            siblings=_siblings(data.get("siblings")),
        )


def _siblings(data: Any) -> dict[str, str]:
    """The siblings map of a case line; lines written before it have none."""
    if not data:
        return {}
    if not isinstance(data, dict):
        raise TypeError(f"siblings={data!r} must be an object of relation to id")
    unknown = sorted(set(data) - set(RELATIONS))
    if unknown:
        raise ValueError(f"siblings: unknown relations {unknown}; known: {RELATIONS}")
    return {relation: str(data[relation]) for relation in sorted(data)}


@dataclass(frozen=True)
class Result:
    """One model answer to one case, judged against the case's truth.

    ``answer`` is the parsed answer: ``"safe"``/``"unsafe"`` for the verdict
    task, the extracted config text for the repair task, ``None`` when nothing
    could be parsed. ``failure`` is one of ``FAILURE_KINDS`` or ``None``.
    """

    case_id: str
    task: Literal["verdict", "repair"]
    template_id: str
    template_version: int
    model_id: str
    output: str
    answer: str | None
    correct: bool
    failure: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "task": self.task,
            "template_id": self.template_id,
            "template_version": self.template_version,
            "model_id": self.model_id,
            "output": self.output,
            "answer": self.answer,
            "correct": self.correct,
            "failure": self.failure,
            "scores": self.scores,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            case_id=data["case_id"],
            task=data["task"],
            template_id=data["template_id"],
            template_version=int(data["template_version"]),
            model_id=data["model_id"],
            output=data["output"],
            answer=data.get("answer"),
            correct=bool(data["correct"]),
            failure=data.get("failure"),
            scores=dict(data.get("scores", {})),
            tokens=int(data.get("tokens", 0)),
            seconds=float(data.get("seconds", 0.0)),
            detail=data.get("detail", ""),
        )


def dumps_line(record: Case | Result) -> str:
    """The record's JSON Lines form: sorted keys, no spaces, one newline."""
    text = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))
    return text + "\n"
