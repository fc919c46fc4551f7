"""Seed manifests: realistic configs the mutators start from, verdict in the name.

``seeds/k8s/<name>-SAFE.yaml`` passes the restricted level at policy v1.37
and ``<name>-UNSAFE.yaml`` fails it, so ``ls seeds/k8s`` reads as a truth
table (the habit of checkov's ``-PASSED``/``-FAILED`` fixtures). The name is
a claim for people; a test holds every claim to the oracle, and every
mutated case gets its own verdict from the oracle, never from its seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.config.k8s import load_documents
from generator.errors import InvalidArgument

__all__ = ["SEEDS_DIR", "Seed", "load_seeds"]

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds" / "k8s"
_NAME = re.compile(r"(?P<stem>[a-z0-9][a-z0-9-]*)-(?P<verdict>SAFE|UNSAFE)\.yaml")


@dataclass(frozen=True)
class Seed:
    """One seed file: its stem, the verdict its name claims, text and documents."""

    stem: str
    claimed: str
    text: str
    documents: tuple[dict[str, Any], ...]


def load_seeds(directory: str | Path = SEEDS_DIR) -> tuple[Seed, ...]:
    """Every seed in ``directory``, sorted by file name.

    Raises ``InvalidArgument`` for a file whose name carries no verdict, so a
    seed cannot be added without saying what it is.
    """
    root = Path(directory)
    paths = sorted(root.glob("*.yaml"))
    if not paths:
        raise InvalidArgument(f"seeds directory {str(root)!r} holds no .yaml files")
    seeds = []
    for path in paths:
        match = _NAME.fullmatch(path.name)
        if not match:
            raise InvalidArgument(
                f"seed file {path.name!r} must be named <name>-SAFE.yaml or "
                "<name>-UNSAFE.yaml (lower-case name, verdict at restricted v1.37)"
            )
        text = path.read_text(encoding="utf-8")
        documents = tuple(d for d in load_documents(text, source=str(path)) if d)
        seeds.append(Seed(match["stem"], match["verdict"].lower(), text, documents))
    return tuple(seeds)
