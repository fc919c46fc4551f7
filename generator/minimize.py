"""Minimal failing examples: shrink a cluster's failing case while it stays one.

A cluster says where a model fails; its smallest failing case still carries
everything the generator put in it. ``shrink_case`` removes what does not
matter, by delta debugging over the config tree (Zeller and Hildebrandt,
"Simplifying and isolating failure-inducing input", 2002, applied level by
level as in hierarchical delta debugging): at each mapping or list, top
down, it tries to drop all of its removable children at once, then halves,
quarters and single children, keeping every removal after which the
*shrink target* still holds. Strings are then tried as ``x``. What holds:

1. **The oracle's verdict**, recomputed on the shrunk text, is unchanged,
   and it finds no violated rule the original did not break (dropping a
   pod's seccompProfile to shrink it would add a violation and hide which
   one the model missed); a text the oracle cannot read or decide is no
   candidate.
2. **The case stays in the cluster**: ``truth=`` and ``rule=`` conditions
   are rechecked on the new truth, tag conditions on tags recomputed from
   the shrunk config (``generator.families``) where that is possible;
   ``family=`` and ``operator=`` name the case's provenance, which shrinking
   keeps. A tag the re-rendering itself changes (a flow-style spelling, say)
   cannot be held and is reported as unchecked.
3. **The model still fails the same way**, asked through ``judge`` (the
   run's model, template and scoring rule). It is asked last, since every
   answer costs a model call; ``max_calls`` bounds them.

The shape of a document is kept by never removing what makes it one: for
Kubernetes ``apiVersion``, ``kind``, ``metadata.name``, ``containers``
and its last item, each container's ``name`` and ``image``, each volume's
``name``, a hostPath's ``path``, and no candidate may gain the oracle's
``invalidField`` (a field of the wrong type); for IAM ``Version``,
``Statement`` and the last statement, and each statement's ``Effect``,
action, resource and principal elements (their last value too). Anything
else the oracle rejects is rejected with it. What only the API server
checks is not kept: names may repeat once shrunk to ``x``, a quantity may
read ``x``, a mount may lose its volume; the example is what the oracle
and the model were shown, not an object to apply. A config that is
neither YAML nor JSON (Terraform) is shrunk line by line instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument, SpotcheckError
from generator.records import Case, Truth, case_id
from generator.rundata import Run

__all__ = [
    "DEFAULT_MAX_CALLS",
    "AnswerCache",
    "Shrunk",
    "minimize_report",
    "model_judge",
    "nearest_passing",
    "shrink_case",
]

logger = logging.getLogger(__name__)

# Model calls per cluster. Most of the shrinking happens in the first
# dozen calls (whole subtrees go first); the demo model answers one in
# about a second on a CPU.
DEFAULT_MAX_CALLS = 60

# Oracle evaluations per model call allowed: the oracle is cheap, but a
# large config has thousands of candidate removals.
_ORACLE_PER_CALL = 20

# A judge answers cases as the run did: "safe", "unsafe" or None (no answer).
Judge = Callable[[Sequence[Case]], list[str | None]]
Tree = Any
Path_ = tuple[str | int, ...]


# --- answers, cached --------------------------------------------------------------


class AnswerCache:
    """A judge whose answers are kept by prompt, so asking twice costs nothing.

    ``key`` maps a case to what the model sees (the rendered prompt, plus the
    model and scoring rule); ``path``, when given, is a JSON Lines file the
    answers are appended to and read back from, so a second ``--minimize``
    of the same run asks the model nothing it was asked before.
    """

    def __init__(
        self, judge: Judge, key: Callable[[Case], str], path: Path | None = None
    ) -> None:
        self.judge, self.key, self.path = judge, key, path
        self.answers: dict[str, str | None] = {}
        self.hits = 0
        self.misses = 0
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                    self.answers[item["key"]] = item["answer"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line: that answer is asked again

    def __call__(self, cases: Sequence[Case]) -> list[str | None]:
        keys = [self.key(case) for case in cases]
        todo = [
            (k, c) for k, c in zip(keys, cases, strict=True) if k not in self.answers
        ]
        self.hits += len(cases) - len(todo)
        if todo:
            self.misses += len(todo)
            answers = self.judge([case for _, case in todo])
            new = dict(zip((k for k, _ in todo), answers, strict=True))
            self.answers.update(new)
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as handle:
                    for k, answer in new.items():
                        handle.write(json.dumps({"key": k, "answer": answer}) + "\n")
        return [self.answers[k] for k in keys]


def _failure(answer: str | None, verdict: str) -> str | None:
    """The verdict task's failure kind, as ``VerdictScorer`` judges it."""
    if answer is None:
        return "unparseable"
    if answer == verdict:
        return None
    return "missed_unsafe" if verdict == "unsafe" else "false_alarm"


# --- the shrink target ------------------------------------------------------------


@dataclass
class Shrunk:
    """The outcome of shrinking one case.

    ``config`` is the smallest text found (the original when nothing could
    go); ``model_calls`` the candidates the model was asked about (answers
    from the cache count: the number does not depend on what was cached),
    ``cache_hits`` how many of those the cache answered. ``checked`` and
    ``unchecked`` list the cluster's conditions by whether they were held.
    """

    case_id: str
    config: str
    truth: Truth
    model_calls: int
    cache_hits: int
    oracle_calls: int
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    reproduced: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "config": self.config,
            "rules": list(self.truth.rules),
            "model_calls": self.model_calls,
            "cache_hits": self.cache_hits,
            "oracle_calls": self.oracle_calls,
            "checked": self.checked,
            "unchecked": self.unchecked,
        }


class _Budget(Exception):
    """The model-call budget is spent."""


class _Target:
    """Whether a candidate config still is a failing case of the cluster."""

    def __init__(
        self,
        case: Case,
        kind: str,
        conditions: Sequence[tuple[str, Any]],
        judge: Judge,
        max_calls: int,
        form: _Form,
    ) -> None:
        self.case, self.kind, self.judge = case, kind, judge
        self.max_calls, self.form = max_calls, form
        self.calls = self.oracle_calls = 0
        self.best = case  # the smallest failing case found so far
        self.seen: set[str] = set()
        self.rules = [v for k, v in conditions if k == "rule"]
        self.truth = [v for k, v in conditions if k == "truth"]
        self.allowed = set(case.truth.rules)
        self.tags: list[tuple[str, Any]] = []
        self.checked: list[str] = []
        self.unchecked: list[str] = []

        # A tag condition is held only if re-rendering the unshrunk config
        # reproduces it: otherwise the spelling, not the content, carried it.
        own = form.tags(case, form.tree) if form.tree is not None else None
        for key, value in conditions:
            name = f"{key}={json.dumps(value).strip(chr(34))}"
            if key in ("rule", "truth"):
                self.checked.append(name)
            elif key == "operator" and value in form.respellings():
                # A comment or a flow style the shrunk text is written without.
                self.unchecked.append(f"{name} (a respelling, lost in re-rendering)")
            elif key in ("family", "operator"):
                self.checked.append(f"{name} (kept: provenance)")
            elif own is not None and own.get(key) == value:
                self.tags.append((key, value))
                self.checked.append(name)
            elif own is None:
                self.unchecked.append(f"{name} (no tags for this format)")
            else:
                self.unchecked.append(f"{name} (re-rendering changes it)")

    def holds(self, tree: Tree) -> Case | None:
        """The candidate as a Case if it is still in the cluster and failing."""
        text = self.form.render(tree)
        if text in self.seen:
            return None
        self.seen.add(text)
        if self.oracle_calls >= self.max_calls * _ORACLE_PER_CALL:
            raise _Budget
        self.oracle_calls += 1
        truth = _judge_truth(self.case, text)
        if truth is None or truth.verdict != self.case.truth.verdict:
            return None
        # No violation the original did not have: a pod that breaks three
        # more checks once shrunk no longer shows which one was missed (nor
        # gains the Kubernetes oracle's invalidField, a field of the wrong
        # type, which the API server would reject).
        if not set(truth.rules) <= self.allowed:
            return None
        if any(rule not in truth.rules for rule in self.rules):
            return None
        if any(verdict != truth.verdict for verdict in self.truth):
            return None
        tags = self.form.tags(self.case, tree) if self.tags else None
        if tags is not None and any(tags.get(k) != v for k, v in self.tags):
            return None
        candidate = replace(
            self.case,
            id=case_id(self.case.domain, self.case.question, text),
            config=text,
            truth=truth,
            tags=tags if tags is not None else self.case.tags,
        )
        if not self.fails(candidate):
            return None
        self.best = candidate
        return candidate

    def fails(self, case: Case) -> bool:
        if self.calls >= self.max_calls:
            raise _Budget
        self.calls += 1
        (answer,) = self.judge([case])
        return _failure(answer, case.truth.verdict) == self.kind


def _judge_truth(case: Case, text: str) -> Truth | None:
    """The oracle's truth for ``text`` under the case's question; None if it
    cannot say (unreadable, no pod spec, undecidable)."""
    try:
        if case.domain == "k8s":
            from generator.oracle.k8s import truth

            return truth(text, case.question)
        if case.domain == "iam":
            from generator.oracle.iam import truth as iam_truth

            return iam_truth(text, case.question)
    except (SpotcheckError, ValueError, TypeError, RecursionError):
        return None
    return None


# --- config forms: parse, render, tags, what must stay ------------------------------


class _Form:
    """How one case's config is read, written and tagged."""

    tree: Tree = None

    def render(self, tree: Tree) -> str:
        raise NotImplementedError

    def tags(self, case: Case, tree: Tree) -> dict[str, Any] | None:
        return None

    def keeps(self, path: Path_, node: Tree, child: str | int) -> bool:
        """Whether ``child`` of the node at ``path`` must stay."""
        return False

    def nonempty(self, path: Path_) -> bool:
        """Whether the list at ``path`` must keep one item."""
        return False

    def respellings(self) -> frozenset[str]:
        """Mutation operators whose edit lives only in how the text is
        written, which ``render`` does not keep."""
        return frozenset()


_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


class _K8sForm(_Form):
    """Kubernetes YAML: the documents, written back in plain block style."""

    def __init__(self, text: str) -> None:
        from generator.config.k8s import load_documents

        self.tree = [d for d in load_documents(text) if d is not None]

    def render(self, tree: Tree) -> str:
        from generator.config.k8s_yaml import render

        return render(tree)

    def tags(self, case: Case, tree: Tree) -> dict[str, Any] | None:
        from generator.config.k8s_yaml import Style
        from generator.families.k8s_tags import k8s_tags

        try:
            return k8s_tags(tuple(tree), Style(), **_provenance(case))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def keeps(self, path: Path_, node: Tree, child: str | int) -> bool:
        if len(path) == 1:  # a document's own top level
            return child in ("apiVersion", "kind", "metadata")
        if path[1:] == ("metadata",):
            return child == "name"
        if child == "containers" and isinstance(node, dict):
            return True
        # An item of a container or volume list: path ends with (list, index).
        parent = path[-2] if len(path) >= 2 else None
        if parent in _CONTAINER_LISTS:
            return child in ("name", "image")
        if parent == "volumes":
            return child == "name"
        return path[-1:] == ("hostPath",) and child == "path"

    def respellings(self) -> frozenset[str]:
        from generator.mutate.k8s_spelling import RESTYLING

        return RESTYLING

    def nonempty(self, path: Path_) -> bool:
        return bool(path) and path[-1] == "containers"


_IAM_ELEMENTS = frozenset(
    {"Effect", "Action", "NotAction", "Resource", "NotResource", "Principal",
     "NotPrincipal"}
)  # fmt: skip


class _IamForm(_Form):
    """An IAM policy document, written back in the case's JSON layout."""

    def __init__(self, case: Case) -> None:
        from generator.grammar.iam_json import JsonStyle

        self.tree = json.loads(case.config)
        if not isinstance(self.tree, dict):
            raise ValueError("not a policy object")
        try:
            self.style = JsonStyle(str(case.tags.get("json_layout", "pretty-4")))
        except InvalidArgument:
            self.style = JsonStyle()

    def render(self, tree: Tree) -> str:
        from generator.grammar.iam_json import render_policy

        return render_policy(tree, self.style)

    def tags(self, case: Case, tree: Tree) -> dict[str, Any] | None:
        from generator.families.iam_tags import iam_tags
        from generator.mutate.iam_base import Policy

        kind = str(case.tags.get("policy_kind", "identity"))
        try:
            policy = Policy(tree, self.style, kind)
            return iam_tags(policy, question=case.question, **_provenance(case))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def keeps(self, path: Path_, node: Tree, child: str | int) -> bool:
        if not path:
            return child in ("Version", "Statement")
        in_statement = path[0] == "Statement" and (
            len(path) == 1 or (len(path) == 2 and isinstance(path[1], int))
        )
        return in_statement and isinstance(node, dict) and child in _IAM_ELEMENTS

    def nonempty(self, path: Path_) -> bool:
        return path == ("Statement",) or (bool(path) and path[-1] in _IAM_ELEMENTS)


class _LineForm(_Form):
    """Any other text: a list of lines (delta debugging in its plain form)."""

    def __init__(self, text: str) -> None:
        self.tree = text.splitlines()

    def render(self, tree: Tree) -> str:
        return "\n".join(tree) + "\n"


def _provenance(case: Case) -> dict[str, Any]:
    return {
        "family": case.family,
        "method": str(case.tags.get("method", case.origin.method)),
        "operators": tuple(case.origin.operators),
        "seed_file": str(case.tags.get("seed_file", "")),
        "relation": str(case.tags.get("relation", "base")),
    }


def _form_of(case: Case) -> _Form:
    try:
        if case.domain == "k8s" and case.format == "yaml":
            return _K8sForm(case.config)
        if case.domain == "iam" and case.format == "json":
            return _IamForm(case)
    except (SpotcheckError, ValueError, TypeError, RecursionError) as exc:
        logger.info("minimize: %s read as lines: %s", case.id, exc)
    return _LineForm(case.config)


# --- shrinking -------------------------------------------------------------------


def shrink_case(
    case: Case,
    *,
    kind: str,
    conditions: Iterable[tuple[str, Any]] = (),
    judge: Judge,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> Shrunk:
    """The smallest config found that keeps ``case`` a failing case of the
    cluster (``kind``, ``conditions`` as ``(key, value)``).

    ``reproduced`` is False when the model no longer fails on the case as
    written (another model, or a nondeterministic backend); the config is
    then the original.
    """
    if max_calls < 1:
        raise InvalidArgument(f"max_calls={max_calls!r} must be at least 1")
    form = _form_of(case)
    target = _Target(case, kind, list(conditions), judge, max_calls, form)
    hits = getattr(judge, "hits", 0)
    reproduced = True
    try:
        reproduced = target.fails(case)
        tree = form.tree
        for step in (_remove_children, _simplify_strings) if reproduced else ():
            tree = step(tree, target, form)
    except _Budget:
        logger.info("minimize %s: budget of %d model calls spent", case.id, max_calls)
    return Shrunk(
        case_id=case.id,
        config=target.best.config,
        truth=target.best.truth,
        model_calls=target.calls,
        cache_hits=getattr(judge, "hits", 0) - hits,
        oracle_calls=target.oracle_calls,
        checked=target.checked,
        unchecked=target.unchecked,
        reproduced=reproduced,
    )


def _remove_children(tree: Tree, target: _Target, form: _Form) -> Tree:
    """Top down over the tree: at each container drop chunks of children,
    halving the chunk size (ddmin's complement step), until none can go.
    Returns the smallest tree kept (``target.best`` is its case)."""
    queue: deque[Path_] = deque([()])
    while queue:
        path = queue.popleft()
        node = _get(tree, path)
        removable = [
            child for child in _children(node) if not form.keeps(path, node, child)
        ]
        keep_one = isinstance(node, list) and form.nonempty(path)
        chunk = len(removable)
        while chunk >= 1 and removable:
            start = 0
            while start < len(removable):
                part = removable[start : start + chunk]
                if keep_one and len(part) >= len(node):
                    start += chunk
                    continue
                candidate = _without(tree, path, part)
                if target.holds(candidate) is not None:
                    tree = candidate
                    node = _get(tree, path)
                    # Indices past a removed list item moved down.
                    removable = _after_removal(removable, part, node)
                else:
                    start += chunk
            chunk //= 2
        queue.extend(path + (child,) for child in _children(node)
                     if isinstance(_get(tree, path + (child,)), dict | list))  # fmt: skip
    return tree


def _simplify_strings(tree: Tree, target: _Target, form: _Form) -> Tree:
    """Each string value longer than one character, tried as ``x``."""
    for path in list(_leaves(tree)):
        value = _get(tree, path)
        parent = _get(tree, path[:-1])
        if not isinstance(value, str) or len(value) <= 1 or isinstance(parent, list):
            continue
        if path[-1] in ("apiVersion", "kind", "Version", "Effect"):
            continue
        candidate = _set(tree, path, "x")
        if target.holds(candidate) is not None:
            tree = candidate
    return tree


def _children(node: Tree) -> list[str | int]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def _get(tree: Tree, path: Path_) -> Tree:
    for step in path:
        tree = tree[step]
    return tree


def _without(tree: Tree, path: Path_, children: list[str | int]) -> Tree:
    """A copy of ``tree`` with ``children`` of the node at ``path`` removed."""
    node = _get(tree, path)
    drop = set(children)
    if isinstance(node, dict):
        smaller: Tree = {k: v for k, v in node.items() if k not in drop}
    else:
        smaller = [v for i, v in enumerate(node) if i not in drop]
    return _set(tree, path, smaller)


def _set(tree: Tree, path: Path_, value: Tree) -> Tree:
    """A copy of ``tree`` with the node at ``path`` replaced (shared elsewhere)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: _set(tree[head], rest, value)}
    copy = list(tree)
    copy[head] = _set(tree[head], rest, value)  # type: ignore[index]
    return copy


def _after_removal(
    removable: list[str | int], removed: list[str | int], node: Tree
) -> list[str | int]:
    left = [c for c in removable if c not in set(removed)]
    if isinstance(node, dict):
        return left
    return [c - sum(r < c for r in removed) for c in left]  # type: ignore[operator]


def _leaves(tree: Tree, path: Path_ = ()) -> Iterable[Path_]:
    for child in _children(tree):
        value = tree[child]
        if isinstance(value, dict | list):
            yield from _leaves(value, path + (child,))
        else:
            yield path + (child,)


# --- the nearest passing case ----------------------------------------------------


def _lines(text: str) -> Counter[str]:
    return Counter(line.strip() for line in text.splitlines() if line.strip())


def nearest_passing(run: Run, configs: Sequence[tuple[str, str]]) -> list[dict | None]:
    """For each (domain, config), the run's correctly answered case of that
    domain closest to it, as ``{"case_id", "config", "distance"}``.

    Distance is the number of lines (stripped of indentation) in one text
    and not the other, counted with multiplicity: the size of the diff a
    reader sees. One pass over the run serves every config. Ties go to the
    shorter config, then the smaller id.
    """
    wanted = [(domain, _lines(text)) for domain, text in configs]
    best: list[tuple[int, int, str, str] | None] = [None] * len(configs)
    for case, result in run.pairs():
        if not result.correct:
            continue
        lines = None
        for i, (domain, mine) in enumerate(wanted):
            if case.domain != domain:
                continue
            lines = lines if lines is not None else _lines(case.config)
            distance = sum(((mine - lines) + (lines - mine)).values())
            key = (distance, len(case.config), case.id, case.config)
            if best[i] is None or key < best[i]:  # type: ignore[operator]
                best[i] = key
    return [
        None if b is None else {"case_id": b[2], "config": b[3], "distance": b[0]}
        for b in best
    ]


# --- a run's clusters ------------------------------------------------------------


def minimize_report(
    run: Run,
    report: dict[str, Any],
    judge: Judge,
    *,
    max_calls: int = DEFAULT_MAX_CALLS,
) -> None:
    """Fill ``minimal_example`` of each cluster and lead of a run's report.

    The shape (``report_html`` renders it)::

        {"config", "case_id" (the case shrunk), "rules", "model_calls",
         "cache_hits", "oracle_calls", "checked", "unchecked",
         "nearest_passing": {"case_id", "config", "distance"} or None}

    A cluster whose example the model no longer fails gets None and a
    ``minimal_example_note`` saying so.
    """
    items = [*report["clusters"], *report["leads"]]
    shrunk: dict[tuple, Shrunk] = {}
    for item in items:
        conditions = [(c["key"], c["value"]) for c in item["conditions"]]
        key = (item["kind"], item["example_case_id"], json.dumps(conditions))
        if key not in shrunk:
            case = run.case(item["example_case_id"])
            logger.info("minimize: %s (%s)", item["slice"], case.id)
            shrunk[key] = shrink_case(
                case,
                kind=item["kind"],
                conditions=conditions,
                judge=judge,
                max_calls=max_calls,
            )
        item["_shrunk"] = shrunk[key]

    reproduced = [item for item in items if item["_shrunk"].reproduced]
    domains = {item["example_case_id"]: run.case(item["example_case_id"]).domain
               for item in reproduced}  # fmt: skip
    nearest = nearest_passing(
        run,
        [(domains[i["example_case_id"]], i["_shrunk"].config) for i in reproduced],
    )
    passing = dict(zip((id(i) for i in reproduced), nearest, strict=True))
    for item in items:
        result = item.pop("_shrunk")
        if not result.reproduced:
            item["minimal_example"] = None
            item["minimal_example_note"] = (
                f"the model does not fail on {result.case_id} as written "
                "(another model, or answers that vary between calls)"
            )
            continue
        item["minimal_example"] = {
            **result.to_dict(),
            "nearest_passing": passing[id(item)],
        }


def model_judge(run: Run, model: str, *, device: str | None = None) -> AnswerCache:
    """The run's verdict task, asked of ``model`` as the run asked it: the
    same templates (refused if they changed since the run) and scoring rule.

    Answers are cached by prompt in ``RUN_DIR/minimize-cache.jsonl``.
    Depends on ``generator.run``: ``models.load_model`` and
    ``verdict.VerdictScorer(loaded, template, rule=...).judge(cases)``.
    """
    if run.task != "verdict":
        raise InvalidArgument(
            f"{run.run_dir}: --minimize shrinks verdict runs; this is a {run.task} run"
        )
    from generator.prompts import case_variables, load_template
    from generator.run.models import load_model, resolve_model
    from generator.run.verdict import DEFAULT_RULE, VerdictScorer

    settings = run.meta.get("settings") or {}
    rule = str(settings.get("rule") or DEFAULT_RULE)
    recorded = run.meta.get("templates") or {}
    source = resolve_model(model)
    loaded = None
    scorers: dict[str, VerdictScorer] = {}
    templates: dict[str, Any] = {}

    def template_of(domain: str) -> Any:
        if domain not in templates:
            template = load_template(domain, "verdict")
            want = recorded.get(domain)
            if want and (want.get("id"), want.get("version")) != (
                template.id,
                template.version,
            ):
                raise InvalidArgument(
                    f"{run.run_dir}: the run asked through template "
                    f"{want.get('id')}@{want.get('version')}, the checkout has "
                    f"{template.id}@{template.version}; minimize with the "
                    "checkout the run was made with"
                )
            templates[domain] = template
        return templates[domain]

    def judge(cases: Sequence[Case]) -> list[str | None]:
        nonlocal loaded
        if loaded is None:
            loaded = load_model(source, device=device)
        answers: list[str | None] = []
        for case in cases:
            if case.domain not in scorers:
                scorers[case.domain] = VerdictScorer(
                    loaded, template_of(case.domain), rule=rule
                )
            (result,) = scorers[case.domain].judge([case])
            answers.append(result.answer)
        return answers

    def key(case: Case) -> str:
        messages = template_of(case.domain).render(case_variables(case))
        text = json.dumps([source.model_id, rule, messages], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    return AnswerCache(judge, key, run.run_dir / "minimize-cache.jsonl")
