"""The guard: route a model's output to pass, review or block, by the oracles.

In production a model's answer that touches security-relevant configuration
goes to a human unless an exact check says it is safe. ``Guard.decide``
takes one output (free text: prose, fenced blocks, bare YAML/JSON/HCL) and,
optionally, the input config the model was asked about, and returns a
``Decision``:

1. find the config blocks in the text (``guard_text``);
2. read each one and run the matching oracle: Pod Security for workloads,
   the IAM oracle for policies, the security-group oracle for Terraform
   groups, NetworkPolicy validation and allow-all rules (``guard_judge``);
3. with an input, name every setting the output weakens (``guard_diff``);
4. give each finding the action the ``GuardPolicy`` names for its event;
   the decision is the strongest action (block > review > pass).

    from generator.guard import Guard
    decision = Guard().decide(model_text, input=original_manifest)
    decision.decision        # "pass" | "review" | "block"
    decision.to_dict()       # the JSON line `spotcheck guard` writes

One call per output; no model, no network; the same text always gets the
same decision; a ``Guard`` holds no mutable state, so threads may share one.
Nothing a model writes makes ``decide`` raise: text no reader accepts is a
finding, and a reader's bug becomes a ``review`` decision (logged).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from generator.guard_diff import weakenings
from generator.guard_judge import CATEGORIES, Contents, GuardFinding, read_block
from generator.guard_policy import GuardPolicy, strongest
from generator.guard_text import MAX_BLOCKS, Block, find_blocks

__all__ = ["CATEGORIES", "Decision", "Guard", "GuardFinding", "GuardPolicy"]

logger = logging.getLogger(__name__)

# Config text judged per output, all blocks together. Past it the rest is
# one "unparseable" finding: a 10 MB answer is not a config to deploy
# unread, and judging it would hold a serving thread for seconds.
MAX_JUDGED_CHARS = 1024 * 1024
_NO_OUTPUT = object()
_WARM_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Action": "iam:PassRole", "Resource": "*"}]}'
)
_WARM_GROUP = (
    'resource "aws_security_group" "g" {\n  ingress {\n    from_port = 22\n'
    '    to_port = 22\n    protocol = "tcp"\n    cidr_blocks = ["10.0.0.0/8"]\n'
    "  }\n}\n"
)


@dataclass(frozen=True)
class Decision:
    """What the guard says about one output, and why.

    ``bad_record`` marks a line of ``spotcheck guard``'s input that was not a
    usable record (not JSON, no ``output``): it is ``review`` whatever the
    policy says, and the command's exit status reports it.
    """

    id: Any
    decision: str
    categories: tuple[str, ...]
    findings: tuple[GuardFinding, ...]
    reason: str
    bad_record: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "decision": self.decision,
            "categories": list(self.categories),
            "findings": [f.to_dict() for f in self.findings],
            "reason": self.reason,
        }


class Guard:
    """Decides outputs by one ``GuardPolicy`` (the defaults when None)."""

    def __init__(self, policy: GuardPolicy | None = None):
        self.policy = policy or GuardPolicy()

    def decide(self, output: Any, input: Any = None, *, id: Any = None) -> Decision:
        """The decision on ``output``; ``input`` is the config it answers."""
        try:
            return self._decide(output, input, id)
        except Exception as exc:  # noqa: BLE001 - a bad output must not crash serving
            logger.warning("guard: output %r could not be judged: %r", id, exc)
            finding = GuardFinding(
                "unparseable", "", "guard-error", "",
                f"the guard could not judge this output: {exc!r}", None,
                strongest(["review", self.policy.action("unparseable")]),
            )  # fmt: skip
            return _decision(id, (), [finding], [])

    def warm_up(self) -> None:
        """Load what the first IAM and Terraform decisions would (the action
        catalogue, the HCL parser tables: about 0.5 s once per process), so
        that a serving path's first request is not the slow one."""
        self.decide(_WARM_POLICY)
        self.decide(_WARM_GROUP)

    def decide_line(self, line: str | bytes, *, number: int = 0) -> Decision:
        """The decision for one JSON Lines record ``{"id", "output", "input"?}``.

        A line that is not such a record gets ``review`` with ``id`` None (or
        the record's id, when only ``output`` is missing) and says why.
        """
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad(None, f"line {number} is not JSON ({_short(exc)})")
        if not isinstance(record, dict):
            return _bad(None, f"line {number} is not a JSON object")
        output = record.get("output", _NO_OUTPUT)
        if output is _NO_OUTPUT:
            return _bad(record.get("id"), f'line {number} has no "output" field')
        return self.decide(output, record.get("input"), id=record.get("id"))

    # ------------------------------------------------------------------------

    def _decide(self, output: Any, input: Any, id: Any) -> Decision:
        text = _as_text(output)
        if text is None:
            finding = self._finding(
                "unparseable", "not-text",
                f"output is {type(output).__name__}, not text",
            )  # fmt: skip
            return _decision(id, (), [finding], [])

        after = self._read(text, whole=False)
        if input is not None and after.judged:
            before_text = _as_text(input)
            if before_text and before_text.strip():
                before = self._read(before_text, whole=True)
                version = self.policy.pss_version
                for domain, rule, path, message in weakenings(before, after, version):
                    after.findings.append(
                        GuardFinding(
                            "weakened", domain, rule, path, message, None,
                            self.policy.action("weakened"),
                        )
                    )  # fmt: skip
        categories = tuple(c for c in CATEGORIES if c in after.categories)
        return _decision(id, categories, after.findings, after.judged)

    def _read(self, text: str, *, whole: bool) -> Contents:
        """Every block of ``text`` read into one ``Contents``.

        ``whole``: the text is an input config, which may be bare YAML that
        starts with no ``apiVersion`` line; without fences it is one block.
        """
        contents = Contents()
        blocks = find_blocks(text, limit=MAX_BLOCKS + 1)
        if whole and not any(b.shape == "fenced" for b in blocks):
            blocks = [Block(text, "", 1, "fenced")]
        budget = MAX_JUDGED_CHARS
        for index, block in enumerate(blocks):
            if index == MAX_BLOCKS or len(block.text) > budget:
                # Unread config text is not cleared, whatever it names.
                contents.findings.append(
                    self._finding(
                        "unparseable", "too-much",
                        f"blocks from {index} on were not judged: more than "
                        f"{MAX_BLOCKS} blocks or {MAX_JUDGED_CHARS:,} characters",
                        block=index,
                    )
                )  # fmt: skip
                break
            budget -= len(block.text)
            read_block(block, index, self.policy, contents)
        return contents

    def _finding(self, event: str, rule: str, message: str, *, block=None):
        return GuardFinding(
            event, "", rule, "", message, block, self.policy.action(event)
        )


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)  # a policy passed as a JSON object
    return None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _bad(id: Any, why: str) -> Decision:
    finding = GuardFinding("unparseable", "", "bad-record", "", why, None, "review")
    return Decision(id, "review", (), (finding,), f"review: {why}", bad_record=True)


def _decision(
    id: Any, categories: tuple[str, ...], findings: list[GuardFinding], judged
) -> Decision:
    decision = strongest([f.action for f in findings])
    return Decision(
        id, decision, categories, tuple(findings), _reason(decision, findings, judged)
    )


def _reason(decision: str, findings: list[GuardFinding], judged: list[str]) -> str:
    """One line a reviewer reads first: the first finding that decided it."""
    if decision != "pass":
        deciding = [f for f in findings if f.action == decision]
        first = deciding[0]
        where = f" at {first.path}" if first.path else ""
        more = len(deciding) - 1
        tail = f" (+{more} more {decision} finding{'s' * (more > 1)})" if more else ""
        return f"{decision}: {first.event}{where}: {first.message}{tail}"
    if not judged and not findings:
        return "pass: no security-relevant config in the output"
    shown = ", ".join(judged[:3]) + (
        f" and {len(judged) - 3} more" if len(judged) > 3 else ""
    )
    noted = f"; {len(findings)} finding(s) the policy lets pass" if findings else ""
    return f"pass: {shown} judged, nothing the policy acts on{noted}"


# Lines longer than this are not read into memory: such a record gets a
# "review" decision saying so, and the rest of the stream goes on.
MAX_LINE_BYTES = 64 * 1024 * 1024


def read_records(handle, *, max_bytes: int = MAX_LINE_BYTES):
    """(line number, bytes or None) for each line of a binary stream.

    None stands for a line longer than ``max_bytes``, which is skipped
    without being held; blank lines are skipped. Memory is one line.
    """
    number = 0
    while True:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := handle.readline(max_bytes)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        if line.strip():
            yield number, line


def decide_stream(guard: Guard, handle, write) -> dict[str, int]:
    """Decide every record of ``handle`` in order, ``write`` one JSON line each.

    Returns the count of each decision and of ``bad_record`` lines.
    """
    counts = {"pass": 0, "review": 0, "block": 0, "bad_record": 0}
    for number, line in read_records(handle):
        if line is None:
            decision = _bad(
                None, f"line {number} is longer than {MAX_LINE_BYTES:,} bytes"
            )
        else:
            decision = guard.decide_line(line, number=number)
        counts[decision.decision] += 1
        counts["bad_record"] += decision.bad_record
        write(json.dumps(decision.to_dict()) + "\n")
    return counts
