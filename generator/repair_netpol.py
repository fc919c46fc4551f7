"""Judging a NetworkPolicy repair: the asked flow blocked, the rest kept.

A netpol case asks whether one flow gets through (``netpol:from=..,to=..,
port=..``); the repair task gives the model an unsafe case (the flow is
allowed) and asks for the YAML stream back with that flow blocked.
``judge(case, text)`` decides, in this order:

* ``unparseable``: the text is not a stream of Kubernetes objects the
  netpol reader accepts (invalid YAML, an invalid NetworkPolicy such as
  ``from: [{}]``), or the asked flow's pods are gone.
* ``repair_broke_intent``: the **intended access** is lost. It is, exactly:
  (1) the cluster model is unchanged: the same namespaces with the same
  labels, the same pods with the same labels, declared ports and IPs (a
  repair may only change NetworkPolicies; relabelling the destination out
  of reach is not a repair); and (2) every flow the original allows,
  except the asked one, is still allowed, over the cells (source pod,
  destination pod, port, protocol) where the port is one the destination
  declares (or the asked port, for other sources and destinations).
  Cells the oracle cannot decide in the original (``undecidable``) are not
  part of the intent; a cell allowed before and undecidable after is lost.
* ``repair_still_unsafe``: the oracle still allows the asked flow, or
  cannot decide it ("depends" is not "blocked").

``judge_output(case, output)`` does the same from a model's raw answer
(the YAML taken out of it), returning ``(text, failure, detail)`` as the
runner's ``RepairJudgement`` fields.
"""

from __future__ import annotations

import logging
import re

from generator.errors import SpotcheckError
from generator.records import Case

__all__ = ["extract_yaml", "intended_flows", "judge", "judge_output"]

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*$", re.MULTILINE)
_START = re.compile(r"^(?:apiVersion|kind)\s*:", re.MULTILINE)


def extract_yaml(output: str) -> str | None:
    """The first ```yaml (or bare ```) block of an answer, else the text from
    its first ``apiVersion:``/``kind:`` line on; None if there is neither."""
    fences = list(_FENCE.finditer(output))
    for i in range(0, len(fences), 2):
        opening = fences[i]
        end = fences[i + 1].start() if i + 1 < len(fences) else len(output)
        body = output[opening.end() + 1 : end].strip("\n")
        if opening[1].lower() in ("", "yaml", "yml") and body.strip():
            return body + "\n"
    start = _START.search(output)
    return output[start.start() :].strip("\n") + "\n" if start else None


def _model(cluster) -> tuple:
    namespaces = sorted((n.name, tuple(sorted(n.labels.items())))
                        for n in cluster.namespaces.values())  # fmt: skip
    pods = sorted((p.key, tuple(sorted(p.labels.items())), tuple(sorted(p.ports)),
                   str(p.ip), p.host_network) for p in cluster.pods.values())  # fmt: skip
    return tuple(namespaces), tuple(pods)


def intended_flows(config: str, question: str) -> dict[tuple[str, str, int, str], str]:
    """Every checked cell of ``config`` with its answer (yes/no/undecidable),
    the asked flow left out."""
    from generator.oracle.netpol import Endpoint, Traffic, answer, load, parse_question

    policies, cluster = load(config, source="<case>")
    asked, _ = parse_question(question.partition(":")[2], cluster)
    cells: dict[tuple[str, str, int, str], str] = {}
    for src in cluster.pods.values():
        for dst in cluster.pods.values():
            if src.key == dst.key:
                continue
            ports = {(p.number, p.protocol) for p in dst.ports}
            ports.add((asked.port, asked.protocol))
            for number, protocol in sorted(ports):
                cell = (src.key, dst.key, number, protocol)
                if (str(asked.src), str(asked.dst), asked.port, asked.protocol) == cell:
                    continue
                traffic = Traffic(
                    Endpoint(pod=src), Endpoint(pod=dst), protocol, number
                )
                cells[cell] = answer(policies, cluster, traffic).value
    return cells


def judge(case: Case, text: str) -> tuple[str | None, str]:
    """``(failure kind or None, detail)`` for ``text`` as a repair of ``case``."""
    from generator.errors import Undecidable
    from generator.oracle.netpol import load, truth

    try:
        _, before = load(case.config, source="<case>")
        _, after = load(text, source="<repair>")
    except SpotcheckError as exc:
        return "unparseable", str(exc)
    if _model(before) != _model(after):
        return (
            "repair_broke_intent",
            "the namespaces or pods changed; change policies only",
        )
    try:
        was = intended_flows(case.config, case.question)
        now = intended_flows(text, case.question)
        repaired = truth(text, case.question)
    except Undecidable as exc:
        return "repair_still_unsafe", f"undecidable: {exc}"
    except SpotcheckError as exc:
        return "unparseable", str(exc)
    lost = [
        cell for cell, value in was.items() if value == "yes" and now[cell] != "yes"
    ]
    if lost:
        shown = ", ".join(f"{s} -> {d} {p}/{proto}" for s, d, p, proto in lost[:3])
        more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
        return "repair_broke_intent", f"blocked flows it should keep: {shown}{more}"
    if repaired.verdict == "unsafe":
        return "repair_still_unsafe", "the asked flow is still allowed"
    return None, ""


def judge_output(case: Case, output: str) -> tuple[str | None, str | None, str]:
    """``(repaired text, failure, detail)`` from a model's raw answer."""
    text = extract_yaml(output)
    if text is None:
        return None, "unparseable", "no YAML in the answer"
    try:
        failure, detail = judge(case, text)
    except Exception as exc:  # noqa: BLE001 - one bad answer must not end a run
        logger.warning("case %s: repair could not be judged: %r", case.id, exc)
        return text, "unparseable", f"cannot judge: {exc!r}"
    return text, failure, detail
