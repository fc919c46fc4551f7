"""What every mutator works on, what it is, and the profile of how it did.

Words used across the mutate package:

* A **manifest** is the meaning of a config (its documents as plain dicts)
  plus the **style** it is spelled in. Mutators return a new manifest and
  never touch their input; the text the model sees is ``manifest.text()``.
* A **mutator** is a named edit with a one-scenario docstring. It returns
  ``None`` when it does not apply (no hostPath to swap, no init container
  to strip), which counts as a call but not an application.
* A **flip** is a step after which the oracle's verdict differs from the
  verdict before it. A mutator that ``keeps_meaning`` must never flip; the
  tests hold every spelling mutator to that.

The profile mirrors Hypothesis's per-pass shrink statistics: which
operators earn their keep (apply often, move verdicts) and which do not.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from generator.config.k8s_yaml import Style, render
from generator.grammar.k8s_parts import KINDS, pod_parts

__all__ = [
    "CONTAINER_LISTS",
    "Manifest",
    "Mutator",
    "Profile",
    "containers_in",
    "context_of",
    "weighted_choice",
]

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Manifest:
    """Documents (the meaning) and the style they are written in."""

    documents: tuple[dict[str, Any], ...]
    style: Style = Style()

    def text(self) -> str:
        return render(self.documents, self.style)

    def edit(self) -> tuple[Manifest, dict[str, Any], dict[str, Any], dict[str, Any]]:
        """A deep copy, with live references to its workload, pod meta and spec."""
        twin = Manifest(copy.deepcopy(self.documents), self.style)
        doc = twin.workload()
        meta, spec = pod_parts(doc)
        return twin, doc, meta, spec

    def workload(self) -> dict[str, Any]:
        """The first document that holds a pod spec (``kind: List`` items too)."""
        for doc in self.documents:
            items = doc.get("items") if doc.get("kind") == "List" else None
            for candidate in [doc, *(items or [])]:
                if isinstance(candidate, dict) and candidate.get("kind") in KINDS:
                    return candidate
        raise KeyError("no document holds a pod spec")

    def restyled(self, **changes: Any) -> Manifest:
        return Manifest(self.documents, replace(self.style, **changes))


MutatorFn = Callable[[Manifest, random.Random], "Manifest | None"]


@dataclass(frozen=True)
class Mutator:
    """A named edit; ``family`` is the input region its cases belong to."""

    name: str
    family: str
    fn: MutatorFn
    keeps_meaning: bool = False

    @property
    def scenario(self) -> str:
        return (self.fn.__doc__ or "").strip()

    def __call__(self, manifest: Manifest, rnd: random.Random) -> Manifest | None:
        return self.fn(manifest, rnd)


@dataclass
class Profile:
    """Per-mutator counts: calls, applications, and verdict flips."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, name: str, *, applied: bool, flipped: bool = False) -> None:
        entry = self.counts.setdefault(name, {"calls": 0, "applied": 0, "flips": 0})
        entry["calls"] += 1
        entry["applied"] += int(applied)
        entry["flips"] += int(applied and flipped)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(self.counts[name]) for name in sorted(self.counts)}


# --- helpers shared by the mutators -----------------------------------------


def containers_in(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(list key, container) for every container entry, init ones first."""
    for key in CONTAINER_LISTS:
        entries = spec.get(key)
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict):
                    yield key, entry


def context_of(container: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext, created empty if it has none."""
    sc = container.get("securityContext")
    if not isinstance(sc, dict):
        sc = container["securityContext"] = {}
    return sc


def weighted_choice(rnd: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    values = [value for value, _ in pairs]
    return rnd.choices(values, weights=[weight for _, weight in pairs])[0]
