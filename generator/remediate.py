"""The oracle's own remediation: a minimal fix for an unsafe case, re-checked.

``remediate(case)`` returns the case's config text, fixed, in the case's
own format (YAML for k8s and netpol, JSON for iam, HCL for sg). It is the
training answer ``export`` gives for a repair task, so it must be right by
the same judge a model's repair faces: before it is returned it is checked
by the domain's oracle (the question must now be answered "safe") and by
``generator.run.repair.judge_repair`` (the intent kept), and anything that
fails either raises ``RemediationError``. An unverified fix is never
returned.

"Minimal" means each domain changes only what the oracle's findings point
at and keeps everything else of the text (names, images, unrelated fields,
comments and order where the edit allows); each domain module says exactly
what it changes:

* ``remediate_k8s``: Pod Security Standards at the question's level and
  version, edit by edit at the findings' field paths;
* ``remediate_iam``: the fewest escalating grants removed (privesc,
  admin), or the public statements fenced by a condition (public);
* ``remediate_netpol``: the asked flow blocked by one added NetworkPolicy
  or a narrowed ipBlock, every other flow kept;
* ``remediate_sg``: the internet ranges taken out of the grants that open
  the asked port.

A case that is already safe is returned unchanged: it needs no fix, and
remediating a fix again gives the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from generator.errors import RemediationError, SpotcheckError
from generator.records import Case, Truth

__all__ = ["FENCES", "remediate", "verify"]

logger = logging.getLogger(__name__)

# How a fix is handed to the repair judge: as a model would write it, in a
# fenced block, so the judge reads exactly the returned text (an unfenced
# manifest whose apiVersion is not its first line would be cut short).
FENCES = {"yaml": "yaml", "json": "json", "hcl": "hcl"}


def remediate(case: Case) -> str:
    """The fixed config of ``case``; ``RemediationError`` if there is none."""
    if case.truth.verdict == "safe":
        verify(case, case.config)
        return case.config
    fixed = _fixer(case.domain)(case)
    verify(case, fixed)
    logger.debug("case %s: fixed", case.id)
    return fixed


def _fixer(domain: str) -> Callable[[Case], str]:
    # Imported on demand: each domain's oracle stack is heavy (IAM loads the
    # action catalogue) and a run of one domain needs only its own.
    if domain == "k8s":
        from generator.remediate_k8s import remediate_k8s

        return remediate_k8s
    if domain == "iam":
        from generator.remediate_iam import remediate_iam

        return remediate_iam
    if domain == "netpol":
        from generator.remediate_netpol import remediate_netpol

        return remediate_netpol
    if domain == "sg":
        from generator.remediate_sg import remediate_sg

        return remediate_sg
    raise RemediationError(f"case domain {domain!r} has no remediation")


def verify(case: Case, fixed: str) -> None:
    """Raise ``RemediationError`` unless ``fixed`` is safe and keeps the intent."""
    try:
        truth = oracle_truth(case, fixed)
    except SpotcheckError as exc:
        raise RemediationError(f"{case.id}: the fix cannot be judged: {exc}") from None
    if truth.verdict != "safe":
        rules = ", ".join(truth.rules)
        raise RemediationError(f"{case.id}: the fix still violates {rules}")

    from generator.run.repair import judge_repair

    fence = FENCES[case.format]
    judgement = judge_repair(case, f"```{fence}\n{fixed.rstrip(chr(10))}\n```\n")
    if judgement.failure is not None:
        raise RemediationError(
            f"{case.id}: the repair judge refuses the fix ({judgement.failure}: "
            f"{judgement.detail})"
        )
    if (judgement.answer or "").strip() != fixed.strip():
        raise RemediationError(f"{case.id}: the judge read another text than the fix")


def oracle_truth(case: Case, text: str) -> Truth:
    """The domain oracle's truth for ``text`` asked ``case.question``."""
    if case.domain == "k8s":
        from generator.oracle.k8s import truth

        return truth(text, case.question, source="<fix>")
    if case.domain == "iam":
        from generator.oracle.iam import truth

        return truth(text, case.question)
    if case.domain == "netpol":
        from generator.oracle.netpol import truth

        return truth(text, case.question)
    from generator.oracle.sg import truth

    return truth(text, case.question)
