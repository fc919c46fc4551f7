"""What the fuzz arms pull: grammar families and mutators, per domain.

Each domain offers the same four things to the loop, whatever its config
language:

* ``families()`` and ``mutators()``: the names of its arms;
* ``draw(family, count, seed, log)``: up to ``count`` grammar cases of one
  family, drawn with Hypothesis from ``seed`` (``generator.grammar.draw``)
  and judged by the oracle, as ``generate`` makes them;
* ``read(case)``: the config of an earlier case back as the mutators' model
  (a ``Manifest``, a ``Policy``, a netpol ``Scenario``, an ``SgModel``),
  or None when the reading does not keep its verdict;
* ``mutate(parent, model, mutator, seed, log)``: one neighbour of a failing
  case: the mutator applied once, then judged by the oracle.

Parents are read back from their text rather than kept as objects, so a
resumed fuzz mutates exactly what an uninterrupted one would: the text is
on disk, objects of an earlier process are not. Reading loses only the
spelling (a parent's YAML or JSON layout, an sg module's rule form), which
the oracle's verdict on the re-read config guards: a parent whose reading
judges differently is not mutated.

``log`` gathers, per operator, how often it was tried and applied (grammar
families apply operators too); the loop adds the cases and failures.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable
from typing import Any, Protocol

from generator.errors import SpotcheckError
from generator.records import Case

__all__ = ["OperatorLog", "Source", "open_source"]

logger = logging.getLogger(__name__)

OperatorLog = dict[str, dict[str, int]]


class Source(Protocol):
    """One domain's grammar families and mutators, as the fuzz loop uses them."""

    domain: str

    def families(self) -> tuple[str, ...]: ...

    def mutators(self) -> tuple[str, ...]: ...

    def draw(
        self, family: str, count: int, seed: int, log: OperatorLog
    ) -> list[Case]: ...

    def read(self, case: Case) -> Any | None: ...

    def mutate(
        self, parent: Case, model: Any, mutator: str, seed: int, log: OperatorLog
    ) -> Case | None: ...


def open_source(domain: str, *, question: str) -> Source:
    """The source of ``domain``; ``question`` is the k8s one (``pss:...``)."""
    if domain == "k8s":
        return _K8s(question)
    if domain == "iam":
        return _Iam()
    return _Network(domain)


def _record(log: OperatorLog, name: str, applied: bool) -> None:
    entry = log.setdefault(name, {"calls": 0, "applied": 0})
    entry["calls"] += 1
    entry["applied"] += int(applied)


def _record_trail(log: OperatorLog, trail: Iterable[tuple[str, Any]]) -> None:
    for name, result in trail:
        _record(log, name, result is not None)


def _apply(mutator: Any, model: Any, seed: int, log: OperatorLog) -> Any | None:
    """``mutator`` on ``model`` with its own seeded random source.

    A mutator that raises on a parent it was not written for (an unusual
    shape read back from text) counts as one that does not apply; the
    warning names it, so the bug is seen without stopping a night's run.
    """
    try:
        result = mutator(model, random.Random(seed))
    except (SpotcheckError, LookupError, TypeError, ValueError, AttributeError) as exc:
        logger.warning("fuzz: mutator %s failed on a parent: %r", mutator.name, exc)
        result = None
    _record(log, mutator.name, result is not None)
    return result


class _Catalogue:
    """A domain's families and mutators, by name (what the bandit's arms are)."""

    def __init__(self, families: Iterable[Any], mutators: Iterable[Any]) -> None:
        self._families = {family.name: family for family in families}
        self._mutators = {mutator.name: mutator for mutator in mutators}

    def families(self) -> tuple[str, ...]:
        return tuple(self._families)

    def mutators(self) -> tuple[str, ...]:
        return tuple(self._mutators)


# --- Kubernetes -----------------------------------------------------------------


class _K8s(_Catalogue):
    domain = "k8s"

    def __init__(self, question: str):
        from generator.families.k8s import FAMILIES
        from generator.mutate.k8s import MUTATORS
        from generator.oracle.k8s import parse_question

        self.question = question
        self.level, self.version = parse_question(question)
        super().__init__(FAMILIES, MUTATORS)

    def draw(self, family: str, count: int, seed: int, log: OperatorLog) -> list[Case]:
        from generator.families.k8s import Draft
        from generator.grammar.draw import draw_examples

        drafts = draw_examples(self._families[family].drafts(), count=count, seed=seed)
        cases = []
        for d in drafts:
            _record_trail(log, d.trail)
            case = self._case(Draft(d.family, d.start, d.trail, "grammar", None, seed))
            if case is not None:
                cases.append(case)
        return cases

    def _case(self, draft: Any) -> Case | None:
        from generator.families.k8s_build import Candidate, quick_rules, to_case

        rules = quick_rules(draft.manifest, self.level, self.version)
        if rules is None:
            return None
        verdict = "unsafe" if rules else "safe"
        text = draft.manifest.text()
        candidate = Candidate(draft.family, draft.family, verdict, rules, text, draft)
        return to_case(candidate, self.question)

    def read(self, case: Case) -> Any | None:
        from generator.config.k8s import load_documents
        from generator.families.k8s_build import quick_rules
        from generator.mutate.base import Manifest

        try:
            documents = load_documents(case.config, source=case.id)
        except SpotcheckError:
            return None
        manifest = Manifest(tuple(d for d in documents if d))
        rules = quick_rules(manifest, self.level, self.version)
        if rules is None or ("unsafe" if rules else "safe") != case.truth.verdict:
            return None
        return manifest

    def mutate(
        self, parent: Case, model: Any, mutator: str, seed: int, log: OperatorLog
    ) -> Case | None:
        from generator.families.k8s import Draft

        edit = self._mutators[mutator]
        result = _apply(edit, model, seed, log)
        if result is None:
            return None
        trail = ((mutator, result),)
        return self._case(Draft(edit.family, model, trail, "mutation", parent.id, seed))


# --- IAM ------------------------------------------------------------------------


class _Iam(_Catalogue):
    domain = "iam"

    def __init__(self) -> None:
        from generator.families.iam import FAMILIES
        from generator.mutate.iam import MUTATORS

        super().__init__(FAMILIES, MUTATORS)

    def draw(self, family: str, count: int, seed: int, log: OperatorLog) -> list[Case]:
        from generator.families.iam import IamDraft
        from generator.grammar.draw import draw_examples
        from generator.mutate.base import weighted_choice

        chosen = self._families[family]
        # A family is asked each of its questions by its weight, as in a suite.
        asked = tuple((q, w) for q, w in chosen.weights.items() if w)
        rnd = random.Random(seed)
        cases = []
        for d in draw_examples(chosen.drafts(), count=count, seed=seed):
            _record_trail(log, d.trail)
            question = weighted_choice(rnd, asked)
            draft = IamDraft(d.family, d.start, d.trail, "grammar", None, seed)
            case = self._case(draft, question)
            if case is not None:
                cases.append(case)
        return cases

    def _case(self, draft: Any, question: str) -> Case | None:
        from generator.families.iam_build import (
            IamCandidate,
            judge,
            kinds_for,
            to_iam_case,
        )

        if draft.policy.kind not in kinds_for(question):
            return None
        text = draft.policy.text()
        found, _ = judge(text, question)
        if found is None:
            return None
        candidate = IamCandidate(
            draft.family, draft.family, found.verdict, found.rules, text, draft,
            found, question,
        )  # fmt: skip
        return to_iam_case(candidate, question)

    def read(self, case: Case) -> Any | None:
        from generator.families.iam_build import judge
        from generator.grammar.iam_json import JsonStyle
        from generator.mutate.iam_base import Policy
        from generator.mutate.iam_seeds import kind_of

        try:
            document = json.loads(case.config)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        policy = Policy(document, JsonStyle("pretty-4"), kind_of(document))
        found, _ = judge(policy.text(), case.question)
        if found is None or found.verdict != case.truth.verdict:
            return None
        return policy

    def mutate(
        self, parent: Case, model: Any, mutator: str, seed: int, log: OperatorLog
    ) -> Case | None:
        from generator.families.iam import IamDraft

        edit = self._mutators[mutator]
        result = _apply(edit, model, seed, log)
        if result is None:
            return None
        trail = ((mutator, result),)
        draft = IamDraft(edit.family, model, trail, "mutation", parent.id, seed)
        return self._case(draft, parent.question)


# --- NetworkPolicy and security groups -------------------------------------------

_NETPOL_QUESTION = re.compile(r"netpol:from=([^,]+),to=([^,]+),port=(\S+)")
_SG_QUESTION = re.compile(r"(sg:open_ipv[46]):(\d+)/(tcp|udp)")


class _Network(_Catalogue):
    """netpol and sg, both built by ``generator.families.netpol_sg_build``."""

    def __init__(self, domain: str):
        if domain == "netpol":
            from generator.families.netpol_build import NETPOL as spec
        else:
            from generator.families.sg_build import SG as spec
        self.domain = domain
        self.spec = spec
        super().__init__(spec.families, spec.mutators)

    def draw(self, family: str, count: int, seed: int, log: OperatorLog) -> list[Case]:
        from generator.families.netpol_sg_build import Draft
        from generator.grammar.draw import draw_examples
        from generator.mutate.base import weighted_choice

        chosen = self._families[family]
        # One question kind per pull (a strategy is per kind), by the weights.
        kinds = tuple((kind, w) for kind, w in chosen.weights.items() if w)
        kind = weighted_choice(random.Random(seed), kinds)
        cases = []
        for model in draw_examples(chosen.base(kind), count=count, seed=seed):
            draft = Draft(family, model, (), "grammar", None, seed)
            case = self._case(draft, kind)
            if case is not None:
                cases.append(case)
        return cases

    def _case(self, draft: Any, kind: str) -> Case | None:
        from generator.families.netpol_sg_build import Candidate, judge, to_case

        text = self.spec.render(draft.model)
        question = self.spec.question(draft.model, kind)
        found, _ = judge(self.spec, text, question)
        if found is None:
            return None
        candidate = Candidate(
            draft.family, draft.family, found.verdict, found.rules, text, draft,
            found, question,
        )  # fmt: skip
        return to_case(self.spec, candidate)

    def read(self, case: Case) -> Any | None:
        from generator.families.netpol_sg_build import judge

        try:
            model = self._parse(case)
        except Exception as exc:  # noqa: BLE001 - YAML and HCL parsers' own errors
            logger.debug("fuzz: cannot read %s back: %r", case.id, exc)
            return None
        if model is None:
            return None
        found, _ = judge(self.spec, self.spec.render(model), case.question)
        if found is None or found.verdict != case.truth.verdict:
            return None
        return model

    def _parse(self, case: Case) -> Any | None:
        if self.domain == "netpol":
            import yaml

            from generator.grammar.netpol import Scenario

            asked = _NETPOL_QUESTION.fullmatch(case.question)
            if asked is None:
                return None
            documents = tuple(d for d in yaml.safe_load_all(case.config) if d)
            return Scenario(documents, asked[1], asked[2], asked[3])
        from generator.families.sg_build import read_seed

        asked = _SG_QUESTION.fullmatch(case.question)
        if asked is None:
            return None
        # The seed reader takes the asked port from a first-line comment.
        text = f"# question: {asked[2]}/{asked[3]}\n{case.config}"
        return read_seed(text, source=case.id)

    def mutate(
        self, parent: Case, model: Any, mutator: str, seed: int, log: OperatorLog
    ) -> Case | None:
        from generator.families.netpol_sg_build import Draft

        edit = self._mutators[mutator]
        result = _apply(edit, model, seed, log)
        if result is None:
            return None
        kind = _kind(parent.question)
        trail = ((mutator, result),)
        draft = Draft(edit.family, model, trail, "mutation", parent.id, seed)
        try:
            return self._case(draft, kind)
        except (SpotcheckError, LookupError, TypeError, ValueError) as exc:
            # The sg writer parses what it wrote; an edit it cannot write
            # is one that did not apply.
            logger.warning("fuzz: %s gave an unwritable config: %r", mutator, exc)
            return None


def _kind(question: str) -> str:
    """``netpol:reach`` of any netpol question, ``sg:open_ipv4`` of an sg one."""
    if question.startswith("netpol:"):
        return "netpol:reach"
    return question.rpartition(":")[0]
