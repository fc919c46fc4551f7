"""Judging a security-group repair: the port closed to the internet, the rest kept.

An sg case asks whether PORT/PROTO is open to the whole IPv4 (or IPv6)
internet (``sg:open_ipv4:22/tcp``); the repair task gives the model an
unsafe case and asks for the Terraform back with that closed.
``judge(case, text)`` decides, in this order:

* ``unparseable``: not HCL, or not exactly one security group.
* ``repair_broke_intent``: the **intended access** is lost. It is, exactly,
  every grant of the original that is not the internet:
  (1) each CIDR an original ingress grant lets in that is no wider than /8
  (IPv4) or /16 (IPv6) (a named range: an office, a VPC, a partner) is
  still let in, whole, for that grant's protocol at both ends of its port
  range (``-1``: TCP and UDP on the asked port);
  (2) each original grant that does not let the asked protocol and port in
  keeps every CIDR it had, world included (``443`` open to the world on a
  web group stays open);
  (3) every source security group id (``sg-...``) and a ``self`` grant
  (``self = true`` or a reference to the group itself) is still written.
* ``repair_still_unsafe``: the oracle still answers yes, or cannot decide
  ("depends" is not "closed").

``judge_output(case, output)`` does the same from a model's raw answer,
returning ``(text, failure, detail)`` as the runner's ``RepairJudgement``.
"""

from __future__ import annotations

import logging
import re

from generator.errors import SpotcheckError
from generator.records import Case

__all__ = ["extract_hcl", "judge", "judge_output"]

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*$", re.MULTILINE)
_START = re.compile(r"^(?:resource|variable|locals|data)\b", re.MULTILINE)
_SG_ID = re.compile(r"sg-[0-9a-f]{8,17}")
_SELF = re.compile(
    r"\bself\s*=\s*true\b|referenced_security_group_id\s*=\s*aws_security_group\."
)
_NARROW = {4: 8, 6: 16}


def extract_hcl(output: str) -> str | None:
    """The first ```hcl / ```terraform / ```tf (or bare ```) block of an
    answer, else the text from its first top-level block on."""
    fences = list(_FENCE.finditer(output))
    for i in range(0, len(fences), 2):
        opening = fences[i]
        end = fences[i + 1].start() if i + 1 < len(fences) else len(output)
        body = output[opening.end() + 1 : end].strip("\n")
        if opening[1].lower() in ("", "hcl", "terraform", "tf") and body.strip():
            return body + "\n"
    start = _START.search(output)
    return output[start.start() :].strip("\n") + "\n" if start else None


def _grants(text: str, source: str):
    from generator.config.terraform import load_module
    from generator.oracle.sg_rules import security_groups

    groups = security_groups(load_module(text, source=source))
    if len(groups) != 1:
        from generator.errors import InvalidArgument

        raise InvalidArgument(
            f"a repair holds one security group, this has {len(groups)}"
        )
    group = groups[0]
    return (group.inline or []) + group.attached


def _let_in(grants, protocol: str, port: int) -> list:
    return [n for g in grants if g.applies(protocol, port) for n in g.networks]


def _covered(network, networks) -> bool:
    mine = [n for n in networks if n.version == network.version]
    rest = [network]
    for hole in mine:
        rest = [piece for part in rest for piece in _minus(part, hole)]
    return not rest


def _minus(part, hole):
    if not part.overlaps(hole):
        return [part]
    if part.subnet_of(hole):
        return []
    return list(part.address_exclude(hole))


def _lost(case: Case, text: str) -> list[str]:
    asked = case.question.split(":")[2]
    port_text, _, protocol = asked.partition("/")
    port, protocol = int(port_text), protocol or "tcp"
    before = _grants(case.config, "<case>")
    after = _grants(text, "<repair>")
    lost: list[str] = []
    for grant in before:
        if grant.protocol is None or grant.invalid:
            continue
        if grant.protocol == "all":
            cells = [("tcp", port), ("udp", port)]
        elif grant.ports is not None:
            cells = [(grant.protocol, grant.ports[0]), (grant.protocol, grant.ports[1])]
        else:
            continue
        opens_asked = grant.applies(protocol, port)
        for network in grant.networks:
            narrow = network.prefixlen >= _NARROW[network.version]
            if opens_asked and not narrow:
                continue
            for proto, number in cells:
                if not _covered(network, _let_in(after, proto, number)):
                    lost.append(f"{network} on {proto}/{number}")
                    break
    ids = set(_SG_ID.findall(case.config)) - set(_SG_ID.findall(text))
    lost += [f"source group {i}" for i in sorted(ids)]
    if _SELF.search(case.config) and not _SELF.search(text):
        lost.append("the self grant")
    return lost


def judge(case: Case, text: str) -> tuple[str | None, str]:
    """``(failure kind or None, detail)`` for ``text`` as a repair of ``case``."""
    from generator.errors import Undecidable
    from generator.oracle.sg import truth

    try:
        lost = _lost(case, text)
        repaired = truth(text, case.question)
    except Undecidable as exc:
        return "repair_still_unsafe", f"undecidable: {exc}"
    except (SpotcheckError, ValueError) as exc:
        return "unparseable", str(exc)
    if lost:
        return "repair_broke_intent", "no longer lets in " + ", ".join(lost[:4])
    if repaired.verdict == "unsafe":
        return "repair_still_unsafe", f"{case.question.split(':')[2]} is still open"
    return None, ""


def judge_output(case: Case, output: str) -> tuple[str | None, str | None, str]:
    """``(repaired text, failure, detail)`` from a model's raw answer."""
    text = extract_hcl(output)
    if text is None:
        return None, "unparseable", "no Terraform in the answer"
    try:
        failure, detail = judge(case, text)
    except Exception as exc:  # noqa: BLE001 - one bad answer must not end a run
        logger.warning("case %s: repair could not be judged: %r", case.id, exc)
        return text, "unparseable", f"cannot judge: {exc!r}"
    return text, failure, detail
