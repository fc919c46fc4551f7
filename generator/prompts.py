"""Prompt templates: loading, checking and rendering a Case into chat messages.

A template is a Jinja2 file ``templates/<domain>/<task>.jinja`` that opens
with a header comment naming it::

    {# spotcheck-template id=k8s-verdict version=1 #}

and defines two blocks, ``system`` and ``user``, one per chat message.
The id and version travel into every Result, so an exported fine-tuning row
or a report line can be traced to the exact prompt wording; bump the version
whenever the wording changes.

Templates are rendered in a sandbox with undefined variables as errors, and
every variable a template reads must be one the renderer provides: a typo
such as ``{{ polciy_version }}`` is refused at load time, by name, instead of
quietly rendering as an empty string into thousands of prompts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox

from generator.errors import InvalidArgument
from generator.records import Case

__all__ = [
    "BLOCKS",
    "COMMON_VARIABLES",
    "DOMAIN_VARIABLES",
    "TEMPLATES_DIR",
    "PromptTemplate",
    "case_variables",
    "load_template",
    "parse_template",
    "render_case",
]

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# One block per chat message, in message order.
BLOCKS = ("system", "user")

# What every case provides, and what each domain derives from its question.
COMMON_VARIABLES = frozenset({"config", "format", "question", "domain", "family"})
DOMAIN_VARIABLES: dict[str, frozenset[str]] = {
    "k8s": frozenset({"level", "policy_version"}),
    # iam:<what>: what is asked (privesc, admin or public).
    "iam": frozenset({"iam_question"}),
    # netpol:from=NS/POD,to=NS/POD,port=N/PROTO: the flow asked about.
    "netpol": frozenset({"netpol_from", "netpol_to", "netpol_port", "netpol_protocol"}),
    # sg:open_ipv4:22/tcp: the port, its protocol, and which internet.
    "sg": frozenset({"sg_port", "sg_protocol", "sg_ip_version"}),
}

_HEADER = re.compile(
    r"\A\s*\{#\s*spotcheck-template\s+id=(?P<id>[A-Za-z0-9._-]+)"
    r"\s+version=(?P<version>\d+)\s*#\}"
)


@dataclass(frozen=True)
class PromptTemplate:
    """A checked template: its id, version, and the compiled Jinja template."""

    id: str
    version: int
    domain: str
    source_name: str
    variables: frozenset[str]
    template: jinja2.Template

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """Chat messages (system, user) for these template variables."""
        missing = sorted(self.variables - variables.keys())
        if missing:
            raise InvalidArgument(
                f"{self.source_name}: no value for template variables "
                f"{', '.join(missing)}"
            )
        context = self.template.new_context(dict(variables))
        messages = []
        for role in BLOCKS:
            try:
                text = "".join(self.template.blocks[role](context))
            except jinja2.TemplateError as exc:
                raise InvalidArgument(f"{self.source_name}: {exc}") from exc
            messages.append({"role": role, "content": text.strip()})
        return messages


def _environment() -> jinja2.sandbox.SandboxedEnvironment:
    # The sandbox because templates are data a user may edit or download;
    # StrictUndefined because a silently empty variable is a broken prompt.
    return jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


def parse_template(source: str, *, name: str, domain: str) -> PromptTemplate:
    """Check and compile template text; InvalidArgument says what is wrong.

    ``name`` is used in messages (usually the file path); ``domain`` decides
    which variables exist.
    """
    header = _HEADER.match(source)
    if header is None:
        raise InvalidArgument(
            f"{name}: the first line must be "
            "'{# spotcheck-template id=<id> version=<integer> #}'"
        )
    version = int(header["version"])
    if version < 1:
        raise InvalidArgument(f"{name}: version must be 1 or more, got {version}")

    environment = _environment()
    try:
        tree = environment.parse(source)
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidArgument(f"{name}: line {exc.lineno}: {exc.message}") from exc

    # The block set is the message layout; anything else would be dropped.
    blocks = set(template.blocks)
    if blocks != set(BLOCKS):
        missing = ", ".join(sorted(set(BLOCKS) - blocks)) or "none"
        extra = ", ".join(sorted(blocks - set(BLOCKS))) or "none"
        raise InvalidArgument(
            f"{name}: a template defines exactly the blocks "
            f"{', '.join(BLOCKS)} (missing: {missing}; unknown: {extra})"
        )

    used = jinja2.meta.find_undeclared_variables(tree)
    known = COMMON_VARIABLES | DOMAIN_VARIABLES.get(domain, frozenset())
    unknown = sorted(used - known)
    if unknown:
        raise InvalidArgument(
            f"{name}: unknown template variables {', '.join(unknown)}; "
            f"known for domain {domain!r}: {', '.join(sorted(known))}"
        )
    return PromptTemplate(
        header["id"], version, domain, name, frozenset(used), template
    )


def load_template(
    domain: str, task: str, *, root: Path | None = None
) -> PromptTemplate:
    """The template for ``domain`` and ``task`` from ``root`` (``templates/``)."""
    path = (root or TEMPLATES_DIR) / domain / f"{task}.jinja"
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument(
            f"no {task} template for domain {domain!r}: {path} does not exist"
        ) from None
    template = parse_template(source, name=str(path), domain=domain)
    logger.debug("loaded template %s v%d from %s", template.id, template.version, path)
    return template


def case_variables(case: Case) -> dict[str, Any]:
    """The template variables a case provides."""
    variables: dict[str, Any] = {
        "config": case.config.rstrip("\n"),
        "format": case.format,
        "question": case.question,
        "domain": case.domain,
        "family": case.family,
    }
    if case.domain == "k8s":
        # Questions read pss:<level>:<version>, e.g. pss:restricted:v1.37.
        parts = case.question.split(":")
        if len(parts) != 3 or parts[0] != "pss":
            raise InvalidArgument(
                f"case {case.id}: question {case.question!r} is not "
                "pss:<level>:<version>"
            )
        variables["level"], variables["policy_version"] = parts[1], parts[2]
    elif case.domain == "iam":
        # Questions read iam:<what>, e.g. iam:privesc.
        what = case.question.partition(":")[2]
        if not case.question.startswith("iam:") or what not in _IAM_QUESTIONS:
            raise InvalidArgument(
                f"case {case.id}: question {case.question!r} is not one of "
                f"{', '.join('iam:' + q for q in _IAM_QUESTIONS)}"
            )
        variables["iam_question"] = what
    elif case.domain == "netpol":
        variables.update(_netpol_variables(case))
    elif case.domain == "sg":
        variables.update(_sg_variables(case))
    return variables


def _netpol_variables(case: Case) -> dict[str, str]:
    fields = dict(
        part.partition("=")[::2]
        for part in case.question.removeprefix("netpol:").split(",")
    )
    port, _, protocol = fields.get("port", "").partition("/")
    if not case.question.startswith("netpol:") or not {"from", "to"} <= set(fields):
        raise InvalidArgument(
            f"case {case.id}: question {case.question!r} is not "
            "netpol:from=NS/POD,to=NS/POD,port=N/PROTO"
        )
    return {
        "netpol_from": fields["from"],
        "netpol_to": fields["to"],
        "netpol_port": port,
        "netpol_protocol": (protocol or "tcp").upper(),
    }


def _sg_variables(case: Case) -> dict[str, str]:
    parts = case.question.split(":")
    if len(parts) != 3 or parts[0] != "sg" or parts[1] not in _SG_WHICH:
        raise InvalidArgument(
            f"case {case.id}: question {case.question!r} is not "
            "sg:open_ipv4:PORT/PROTO or sg:open_ipv6:PORT/PROTO"
        )
    port, _, protocol = parts[2].partition("/")
    return {
        "sg_port": port,
        "sg_protocol": (protocol or "tcp").upper(),
        "sg_ip_version": _SG_WHICH[parts[1]],
    }


_SG_WHICH = {"open_ipv4": "IPv4", "open_ipv6": "IPv6"}


_IAM_QUESTIONS = ("privesc", "admin", "public")


def render_case(template: PromptTemplate, case: Case) -> list[dict[str, str]]:
    """The chat messages asking ``case`` through ``template``."""
    return template.render(case_variables(case))
