"""Repair answers for an export: the oracle's own remediation, re-judged.

A repair example's answer is ``generator.remediate.remediate(case)``, the
fixed config, in the fenced block the repair template asks for. It is then
judged exactly as a model's repair is (``generator.run.repair``): a fix the
runner would call wrong must never become a training answer. What happens
to each repair failure is counted for the dataset card:

* ``exported``: the fix passed and became the answer;
* ``refused``: the remediation declined the case (``RemediationError`` or
  another ``SpotcheckError``, ``ValueError``, ``NotImplementedError``);
* ``failed_recheck``: the fix did not pass the repair judge;
* ``error``: the remediation raised anything else (a bug, logged loudly);
* ``not_unsafe``: the case was safe, there is nothing to repair;
* ``remediation_missing``: ``generator.remediate`` is not installed.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from generator.errors import SpotcheckError
from generator.records import Case

__all__ = ["Remediation"]

logger = logging.getLogger(__name__)

# The fenced block each format's repair template asks for.
FENCES = {"yaml": "yaml", "json": "json", "hcl": "hcl"}


class Remediation:
    """Repair answers from ``generator.remediate``, each re-judged.

    The module is imported on first use: a verdict-only export never needs
    it. ``counts`` says what happened to each repair failure.
    """

    def __init__(self) -> None:
        self.remediate: Any = None
        self.missing = False
        self.counts: Counter[str] = Counter()

    def fix(self, case: Case) -> str | None:
        """The fenced fix for ``case``, or None (counted) if there is none."""
        if case.truth.verdict != "unsafe":
            self.counts["not_unsafe"] += 1  # nothing to repair
            return None
        if not self._load():
            self.counts["remediation_missing"] += 1
            return None
        try:
            fixed = self.remediate(case)
        except (SpotcheckError, ValueError, NotImplementedError) as exc:
            logger.warning("export: case %s: remediation refused: %s", case.id, exc)
            fixed = None
        except Exception as exc:  # noqa: BLE001 - see below
            # A remediation bug: one case must not end an export of a whole
            # fuzz night, as one bad answer does not end a run
            # (run/repair.py); it is logged loudly and counted on the card.
            logger.warning("export: case %s: remediation failed: %r", case.id, exc)
            self.counts["error"] += 1
            return None
        if not fixed:
            self.counts["refused"] += 1
            return None

        # Judged exactly as a model's repair is: a fix the runner would
        # call wrong must not become a training answer.
        from generator.run.repair import judge_repair

        answer = f"```{FENCES.get(case.format, '')}\n{fixed.rstrip()}\n```"
        judgement = judge_repair(case, answer)
        if judgement.failure is not None:
            logger.warning(
                "export: case %s: remediation fails its re-check (%s: %s); skipped",
                case.id,
                judgement.failure,
                judgement.detail,
            )
            self.counts["failed_recheck"] += 1
            return None
        self.counts["exported"] += 1
        return answer

    def _load(self) -> bool:
        if self.remediate is None and not self.missing:
            try:
                from generator.remediate import remediate
            except ModuleNotFoundError as exc:
                if exc.name != "generator.remediate":
                    raise
                logger.warning(
                    "export: generator.remediate is not installed; repair "
                    "failures are skipped"
                )
                self.missing = True
            else:
                self.remediate = remediate
        return not self.missing
