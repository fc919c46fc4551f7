"""IAM seed policies: realistic documents the mutators start from.

``seeds/iam/<name>-SAFE.json`` or ``<name>-UNSAFE.json``; the verdict in the
name answers the seed's *home question*: ``iam:privesc`` for an identity
policy, ``iam:public`` for a resource or trust policy. Names are claims for
people; a test holds every claim to the oracle, and every mutated case
gets its own verdict from the oracle, never from its seed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from generator.errors import InvalidArgument
from generator.grammar.iam_json import JsonStyle
from generator.mutate.iam_base import Policy, statements_of

__all__ = ["HOME_QUESTIONS", "IAM_SEEDS_DIR", "IamSeed", "load_iam_seeds", "kind_of"]

IAM_SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "iam"
_NAME = re.compile(r"(?P<stem>[a-z0-9][a-z0-9-]*)-(?P<verdict>SAFE|UNSAFE)\.json")
HOME_QUESTIONS = {
    "identity": "iam:privesc",
    "resource": "iam:public",
    "trust": "iam:public",
}
_TRUST_ACTIONS = (
    "sts:assumerole",
    "sts:assumerolewithwebidentity",
    "sts:assumerolewithsaml",
    "sts:tagsession",
    "sts:setsourceidentity",
)


@dataclass(frozen=True)
class IamSeed:
    """One seed file: stem, claimed verdict for its home question, text, policy."""

    stem: str
    claimed: str
    text: str
    policy: Policy

    @property
    def question(self) -> str:
        return HOME_QUESTIONS[self.policy.kind]


def kind_of(document: dict) -> str:
    """identity (no Principal), trust (principals may only assume), or resource.

    The generator's own reading, used to pick which mutators and questions
    fit a document; the oracle reads the kind again from the text.
    """
    statements = statements_of(document)
    if not any("Principal" in s or "NotPrincipal" in s for s in statements):
        return "identity"
    actions = [
        a.lower()
        for s in statements
        for a in (
            s.get("Action") if isinstance(s.get("Action"), list) else [s.get("Action")]
        )
        if isinstance(a, str)
    ]
    if (
        actions
        and all(a in _TRUST_ACTIONS for a in actions)
        and not any("Resource" in s for s in statements)
    ):
        return "trust"
    return "resource"


def load_iam_seeds(directory: str | Path = IAM_SEEDS_DIR) -> tuple[IamSeed, ...]:
    """Every seed in ``directory``, sorted by file name."""
    root = Path(directory)
    paths = sorted(root.glob("*.json"))
    if not paths:
        raise InvalidArgument(f"seeds directory {str(root)!r} holds no .json files")
    seeds = []
    for path in paths:
        match = _NAME.fullmatch(path.name)
        if not match:
            raise InvalidArgument(
                f"seed file {path.name!r} must be named <name>-SAFE.json or "
                "<name>-UNSAFE.json (lower-case name, verdict for its home question)"
            )
        text = path.read_text(encoding="utf-8")
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(
                f"seed file {path.name!r} is not JSON: {exc}"
            ) from None
        policy = Policy(document, JsonStyle("pretty-4"), kind_of(document))
        seeds.append(IamSeed(match["stem"], match["verdict"].lower(), text, policy))
    return tuple(seeds)
