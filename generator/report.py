"""The report on a run: how often the model lets an unsafe config through, and where.

The headline is the missed-unsafe rate (unsafe configs the model called safe,
over all unsafe configs): the number a release gate cares about, because a
missed unsafe config is what ships. Accuracy, false alarms and unparseable
answers follow; then accuracy per failed check and per case family, the
confusion table, and the failure clusters of ``cluster``. On a suite with
siblings (``Case.siblings``), a consistency section says how often the
model's answer stays put across a respelling and moves across a verdict flip.

``build_report`` makes a plain dict (the ``--json`` output, keys in a fixed
order) in one streaming pass per run; ``format_report`` renders it as
Markdown for the terminal. Every rate carries its Wilson 95% interval, since
a rate over 40 unsafe cases is a much vaguer claim than one over 4,000.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from generator.cluster import (
    CaseRows,
    case_key,
    find_slices,
    search_rows,
    slice_counts,
)
from generator.errors import InvalidArgument
from generator.records import RELATIONS
from generator.rundata import Run, load_runs, result_said, scan_records
from generator.stats import newcombe_interval, wilson_interval
from generator.suite_index import join

__all__ = [
    "REPORT_VERSION",
    "build_report",
    "compare_runs",
    "format_report",
    "leads_said",
    "rate",
    "unfinished_note",
]

logger = logging.getLogger(__name__)

# Bumped when the report dict changes shape, so scripts can tell.
# 2: each run has "consistency" (None on a suite without siblings).
# 3: each cluster and lead has "example" (the smallest failing case, with its
#    config) and "minimal_example" (None until a shrinker fills it in).
# 4: "comparison" entries hold "rates", "per_family" and "clusters" (new,
#    fixed, persisting) with Newcombe intervals; "baseline" with --compare;
#    each run has "templates"; clusters are listed by effect within a kind;
#    "minimal_example" is filled by ``report --minimize``.
# 5: each run has "guard": for repair runs, what ``spotcheck guard`` (default
#    policy) would have done with each output; None for verdict runs.
# 6: a run may be several directories read as one (shards, fuzz rounds):
#    each run has "parts" (its directories), "shards" (None, or which of N
#    are there) and "suites" (each suite with its sha256); "status" may be
#    "incomplete" (shards missing); "suite" and "suite_sha256" of a run on
#    several suites name them all (see ``generator.rundata.load_runs``).
REPORT_VERSION = 6

ANSWERS = ("unsafe", "safe", "unparseable")


def rate(numerator: int, denominator: int) -> dict[str, Any]:
    """A proportion with its Wilson 95% interval; value None when 0/0."""
    if denominator == 0:
        return {"value": None, "interval": None, "count": 0, "of": 0}
    low, high = wilson_interval(numerator, denominator)
    return {
        "value": round(numerator / denominator, 4),
        "interval": [round(low, 4), round(high, 4)],
        "count": numerator,
        "of": denominator,
    }


class _Tally:
    """The counts a report needs, filled while the results stream past.

    Per row only the few values the counts depend on are counted, as one
    key (a million-case run has a few thousand distinct keys); ``settle``
    turns them into the counters below once every row is in.
    """

    def __init__(self) -> None:
        self.truth: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.correct = 0
        self.confusion: dict[str, Counter[str]] = {t: Counter() for t in ANSWERS[:2]}
        self.rules: dict[str, Counter[str]] = defaultdict(Counter)
        self.families: dict[str, Counter[str]] = defaultdict(Counter)
        # Only cases with siblings are remembered: (answer, correct) by id,
        # and each pair once as (relation, lower id, higher id).
        self.linked: dict[str, tuple[str | None, bool]] = {}
        self.pairs: set[tuple[str, str, str]] = set()
        self._keys: Counter[tuple] = Counter()

    def merge(self, other: _Tally) -> None:
        """Add the rows of another stretch of the same run."""
        self._keys.update(other._keys)
        self.linked.update(other.linked)
        self.pairs |= other.pairs

    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None:
        """One case and its result, as their JSON objects (``to_dict``)."""
        verdict, family, rules = case_key(case)
        task, answer, correct, failure = result_said(result)
        self._keys[verdict, correct, failure, answer, task, family, rules] += 1

        # A repair is judged on its own config, so only verdicts are compared.
        siblings = case.get("siblings")
        if siblings and task == "verdict":
            self._link(case["id"], siblings, answer, correct)

    def settle(self) -> None:
        """The counters from the rows counted so far (once, after merging)."""
        for key, count in self._keys.items():
            truth, correct, failure, answer, task, family, rules = key
            self.truth[truth] += count
            self.correct += correct * count
            if not correct and failure:
                self.failures[failure] += count
            if task == "verdict":
                self.confusion[truth][answer or "unparseable"] += count

            # Per check: a case with several violations counts once for each.
            outcome = "correct" if correct else "wrong"
            for rule in rules:
                self.rules[rule]["cases"] += count
                self.rules[rule][outcome] += count
            counts = self.families[family]
            counts["cases"] += count
            counts[outcome] += count
            counts[truth] += count
            if not correct and failure:
                counts[failure] += count
        self._keys.clear()

    def add_joined(self, index: Any, rows: Any, fields: list[tuple]) -> None:
        """The answered ``rows`` of a suite index (``generator.suite_index``),
        each with its result's (task, answer, correct, failure): the counts
        ``add`` makes of the same cases and results."""
        table = index.key_table
        codes = index.keys[rows].tolist()
        for (code, said), count in Counter(zip(codes, fields, strict=True)).items():
            verdict, family, rules = table[code]
            task, answer, correct, failure = said
            self._keys[verdict, correct, failure, answer, task, family, rules] += count
        ids = index.rows.ids
        for row, (task, answer, correct, _) in zip(rows.tolist(), fields, strict=True):
            siblings = index.siblings.get(row)
            if siblings and task == "verdict":
                self._link(ids[row], siblings, answer, correct)

    def _link(self, case_id: str, siblings: dict, answer: Any, correct: bool) -> None:
        self.linked[case_id] = (answer, correct)
        for relation, other in siblings.items():
            if other == case_id:
                continue  # a case is no sibling of its own
            low, high = sorted((case_id, str(other)))
            self.pairs.add((relation, low, high))


class _Part:
    """What one process collects from its stretch of a run."""

    def __init__(self) -> None:
        self.tally = _Tally()
        self.rows = CaseRows()

    @classmethod
    def joined(cls, run: Run, jobs: int) -> _Part | None:
        """The run's answers joined with its suites' indexes, or None where a
        suite has none (``generator.suite_index``)."""
        found = join(run, jobs=jobs)
        if found is None:
            return None
        part = cls()
        for index, rows, numbers in found.suites:
            fields = list(map(found.answers.fields.__getitem__, numbers.tolist()))
            part.tally.add_joined(index, rows, fields)
            failures = [None if said[2] else said[3] for said in fields]
            picked = index.rows.select(rows, failures)
            if len(part.rows):
                part.rows.merge(picked)
            else:
                part.rows = picked
        return part

    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None:
        self.tally.add(case, result)
        self.rows.add(case, result)


class _Counts(_Part):
    """A part without cluster rows, for callers that need only the rates."""

    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None:
        self.tally.add(case, result)


def build_report(
    run_dirs: Sequence[Path] | Sequence[Run],
    *,
    jobs: int | None = None,
    clusters: bool = True,
    compare: Path | Sequence[Path] | Run | None = None,
    allow_different: bool = False,
    minimize: Callable[[Run, dict[str, Any]], None] | None = None,
    **cluster_options: Any,
) -> dict[str, Any]:
    """The report on each run, plus a comparison when there are several.

    ``run_dirs`` are run directories, shard directories and fuzz
    directories, read as runs by ``generator.rundata.load_runs`` (all the
    shards named are one run; a fuzz directory is one run), or runs already
    loaded. Raises ``SuiteError`` for a run whose suite changed since it was
    made, ``InvalidArgument`` for directories that cannot be one run.
    ``cluster_options`` go to ``find_clusters`` (``min_support``, ``alpha``...).
    ``jobs`` processes read a large run (default: one per CPU); the report
    is the same for any number. ``clusters=False`` skips the cluster search
    (``clusters`` and ``leads`` are then empty), for callers such as the gate
    that need only the rates.

    ``compare`` names a baseline run (a directory, or the directories of one
    run): each run is compared with it (its own report is not included,
    only a summary under ``baseline``). Without it, several runs are each
    compared with the first. Runs on different suites or templates are
    refused with ``InvalidArgument`` unless ``allow_different``; runs of
    different tasks are never compared.
    ``minimize`` is called with each run and its report dict after the
    cluster search (``generator.minimize`` fills ``minimal_example``).
    """
    if not run_dirs:
        raise InvalidArgument("run_dirs is empty: name at least one run directory")
    jobs = jobs or os.cpu_count() or 1
    logical = _runs_of(run_dirs)
    baseline = None if compare is None else _baseline_of(compare)
    comparing = baseline is not None or len(logical) > 1
    runs = []
    for run in logical:
        made, rows = _run_report(
            run, cluster_options, jobs, clusters, keep_rows=comparing
        )
        if minimize is not None:
            minimize(run, made)
        runs.append((made, rows))
    report: dict[str, Any] = {"report_version": REPORT_VERSION, "runs": []}
    report["runs"] = [made for made, _ in runs]
    if baseline is not None:
        base, base_rows = _run_report(
            baseline, cluster_options, jobs, clusters, keep_rows=True
        )
        report["baseline"] = {key: base[key] for key in _BASELINE_KEYS}
        pairs = [((base, base_rows), other) for other in runs]
    else:
        pairs = [(runs[0], other) for other in runs[1:]]
    if pairs:
        report["comparison"] = [
            compare_runs(*before, *after, allow_different=allow_different)
            for before, after in pairs
        ]
    return report


# What a report says of a baseline run it does not report in full.
_BASELINE_KEYS = (
    "run", "suite", "suite_sha256", "model", "task", "template", "status",
    "parts", "shards", "cases",
)  # fmt: skip


def _runs_of(items: Sequence[Path] | Sequence[Run]) -> list[Run]:
    """Runs as given, or read from their directories (``load_runs``)."""
    if all(isinstance(item, Run) for item in items):
        return list(items)  # type: ignore[arg-type]
    return load_runs(Path(item) for item in items)  # type: ignore[arg-type]


def _baseline_of(compare: Path | Sequence[Path] | Run) -> Run:
    """The one run ``compare`` names."""
    if isinstance(compare, Run):
        return compare
    paths = [compare] if isinstance(compare, str | Path) else list(compare)
    runs = load_runs(Path(path) for path in paths)
    if len(runs) != 1:
        raise InvalidArgument(
            f"the baseline (--compare) names {len(runs)} runs "
            f"({'; '.join(r.label for r in runs)}); it must be one run: a run "
            "directory, the shards of one sharded run, or a fuzz directory"
        )
    return runs[0]


def _cluster_settings(options: dict[str, Any]) -> dict[str, Any]:
    """find_clusters' defaults overlaid with ``options``, to print with the report."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(find_slices).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise InvalidArgument(
            f"unknown cluster options {unknown}; known: {sorted(defaults)}"
        )
    return {**defaults, **options}


def _run_report(
    run: Run,
    cluster_options: dict[str, Any],
    jobs: int,
    with_clusters: bool,
    *,
    keep_rows: bool = False,
) -> tuple[dict[str, Any], CaseRows | None]:
    """The run's report dict and (``keep_rows``) its cluster rows, which a
    comparison needs to count another run's slices in this one."""
    settings = _cluster_settings(cluster_options)
    parts = _read(run, with_clusters, jobs)
    tally, rows = parts[0].tally, parts[0].rows
    for part in parts[1:]:
        tally.merge(part.tally)
        rows.merge(part.rows)
    tally.settle()
    clusters, leads = search_rows(rows, **settings) if with_clusters else ([], [])
    total = sum(tally.truth.values())
    unsafe, safe = tally.truth["unsafe"], tally.truth["safe"]
    logger.info("report %s: %d results, %d clusters", run.label, total, len(clusters))

    rates = _rates(tally, run.task)
    # The headline is the failure that lets an unsafe config through: a
    # verdict of safe, or a repair that is not a safe config at all.
    headline = "repair_not_safe" if run.task == "repair" else "missed_unsafe"
    suites = run.suites
    report = {
        "run": run.label,
        "suite": str(suites[0][0]) if len(suites) == 1 else _suites_said(suites),
        "suite_sha256": run.meta["suite_sha256"],
        "model": run.model,
        "task": run.task,
        "template": run.template,
        # Per domain, as run.json has it (None for runs that record one).
        "templates": run.meta.get("templates"),
        # "running" when the run was stopped before it finished, or
        # "incomplete" when shards are missing: its rates cover only the
        # cases answered so far.
        "status": run.meta.get("status", "finished"),
        "parts": [str(part.run_dir) for part in run.members],
        "shards": run.meta.get("shards"),
        "suites": [{"suite": str(s), "suite_sha256": d} for s, d in suites],
        "cases": total,
        "truth": {"unsafe": unsafe, "safe": safe},
        "headline": {"metric": headline, **rates[headline]},
        "rates": rates,
        "failures": {kind: tally.failures[kind] for kind in sorted(tally.failures)},
        "confusion": _confusion(tally) if run.task == "verdict" else None,
        "consistency": _consistency(tally),
        "per_rule": _breakdown(tally.rules, "rule", run.task),
        "per_family": _breakdown(tally.families, "family", run.task),
        "cluster_settings": settings,
        "guard": _guard_section(run) if run.task == "repair" else None,
        "clusters": [_with_example(run, c.to_dict()) for c in clusters],
        "leads": [_with_example(run, c.to_dict()) for c in leads],
    }
    return report, rows if keep_rows and with_clusters else None


# A run whose results hold at least this many bytes is joined with its
# suites' indexes (made on first use, kept in the cache) rather than read
# with each answered case line parsed: a million-case report's main cost.
INDEX_MIN_BYTES = 1 << 25


def _read(run: Run, with_clusters: bool, jobs: int) -> list[_Part]:
    """What the report counts, from indexes where that pays, else by a scan."""
    size = sum((m.run_dir / "results.jsonl").stat().st_size for m in run.members)
    if with_clusters and size >= INDEX_MIN_BYTES:
        part = _Part.joined(run, jobs)
        if part is not None:
            return [part]
    return scan_records(run, _Part if with_clusters else _Counts, jobs=jobs)


def _suites_said(suites: list[tuple[Path, str]]) -> str:
    return f"{suites[0][0]} … {suites[-1][0]} ({len(suites)} suites)"


# How a repair's outcome reads as an output the guard saw: a repair the
# oracle still finds unsafe is an unsafe output, a correct one a safe one.
_GUARD_OUTCOMES = {
    "repair_still_unsafe": "unsafe",
    None: "safe",
    "repair_broke_intent": "broke_intent",
    "unparseable": "unparseable",
}


def _guard_section(run: Run) -> dict[str, Any]:
    """What the guard would have done with each repair the model wrote.

    Recall: the unsafe outputs (repairs the oracle still finds unsafe) it
    blocks or sends to review. Needless review: the safe outputs (correct
    repairs) it sends to a human all the same. Each output is decided with
    its case's config as the input, as a serving path would.
    """
    from generator.guard import Guard

    guard = Guard()
    counts = {
        kind: dict.fromkeys(("pass", "review", "block"), 0)
        for kind in dict.fromkeys(_GUARD_OUTCOMES.values())
    }
    missed: list[str] = []
    for _, case, result in run.records():
        kind = _GUARD_OUTCOMES.get(result.get("failure"), "unparseable")
        output = result.get("output")
        decision = guard.decide(
            output if isinstance(output, str) else "", case["config"]
        )
        counts[kind][decision.decision] += 1
        if kind == "unsafe" and decision.decision == "pass" and len(missed) < 20:
            missed.append(case["id"])
    unsafe, safe = counts["unsafe"], counts["safe"]
    return {
        "policy": guard.policy.to_dict(),
        "by_outcome": counts,
        "recall": rate(unsafe["review"] + unsafe["block"], sum(unsafe.values())),
        "blocked": rate(unsafe["block"], sum(unsafe.values())),
        "needless_review": rate(safe["review"] + safe["block"], sum(safe.values())),
        "missed": missed,
    }


def _with_example(run: Run, cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster with its example case's config, for readers of the JSON.

    ``minimal_example`` is for a shrinker to fill in
    (``generator.minimize.minimize_report`` gives its shape): the shrunk
    config, the model calls the shrinking took, and the passing case
    closest to it, which the HTML page shows as a diff.
    """
    case = run.case(cluster["example_case_id"])
    cluster["example"] = {
        "case_id": case.id,
        "family": case.family,
        "truth": case.truth.verdict,
        "rules": list(case.truth.rules),
        "config": case.config,
    }
    cluster["minimal_example"] = None
    return cluster


def _rates(counts: _Tally | Counter[str], task: str) -> dict[str, dict[str, Any]]:
    """The rates a task is judged by, each over the cases it can happen to."""
    if isinstance(counts, _Tally):
        failures, total = counts.failures, sum(counts.truth.values())
        correct, unsafe, safe = (
            counts.correct,
            counts.truth["unsafe"],
            counts.truth["safe"],
        )
    else:
        failures, total = counts, counts["cases"]
        correct, unsafe, safe = counts["correct"], counts["unsafe"], counts["safe"]
    rates = {"accuracy": rate(correct, total)}
    if task == "repair":
        # An answer with no config in it is no repair: it counts as not safe.
        not_safe = failures["repair_still_unsafe"] + failures["unparseable"]
        rates["repair_not_safe"] = rate(not_safe, total)
        rates["repair_still_unsafe"] = rate(failures["repair_still_unsafe"], total)
        rates["repair_broke_intent"] = rate(failures["repair_broke_intent"], total)
    else:
        rates["missed_unsafe"] = rate(failures["missed_unsafe"], unsafe)
        rates["false_alarm"] = rate(failures["false_alarm"], safe)
    rates["unparseable"] = rate(failures["unparseable"], total)
    return rates


def _confusion(tally: _Tally) -> dict[str, dict[str, int]]:
    """Truth (rows) against the model's answer (columns)."""
    return {
        truth: {answer: tally.confusion[truth][answer] for answer in ANSWERS}
        for truth in ("unsafe", "safe")
    }


def _consistency(tally: _Tally) -> dict[str, dict[str, Any]] | None:
    """Per relation: pairs answered on both sides, and how often they agree.

    ``consistent`` is, for ``same`` pairs, the share answered alike, and for
    ``opposite`` pairs the share whose answer flips as the truth does (both
    right, or both wrong). A pair with an unparseable side counts in
    ``unparseable``; one whose other side the run did not reach (``--limit``)
    in ``incomplete``. None when the run saw no case with siblings.
    """
    if not tally.pairs:
        return None
    out: dict[str, dict[str, Any]] = {}
    for relation in RELATIONS:
        counts: Counter[str] = Counter()
        for rel, low, high in tally.pairs:
            if rel != relation:
                continue
            if low not in tally.linked or high not in tally.linked:
                counts["incomplete"] += 1
                continue
            (first, first_ok), (second, second_ok) = (
                tally.linked[low],
                tally.linked[high],
            )
            if first is None or second is None:
                counts["unparseable"] += 1
                continue
            counts["pairs"] += 1
            counts["consistent"] += (first == second) == (relation == "same")
            counts["both_correct"] += first_ok and second_ok
        out[relation] = {
            "pairs": counts["pairs"],
            "consistent": rate(counts["consistent"], counts["pairs"]),
            "both_correct": rate(counts["both_correct"], counts["pairs"]),
            "unparseable": counts["unparseable"],
            "incomplete": counts["incomplete"],
        }
    return out


def _breakdown(
    groups: dict[str, Counter[str]], name: str, task: str
) -> list[dict[str, Any]]:
    """Accuracy per group, worst first, so the weak spots lead the table.

    Families also get the task's failure rates; rules need none, since every
    case with a violated rule is unsafe and so every miss there is the same.
    """
    rows = []
    for key, counts in groups.items():
        row: dict[str, Any] = {
            name: key,
            "cases": counts["cases"],
            "correct": counts["correct"],
            "accuracy": rate(counts["correct"], counts["cases"])["value"],
        }
        if name == "family":
            rates = _rates(counts, task)
            row.update((k, v) for k, v in rates.items() if k != "accuracy")
        rows.append(row)
    rows.sort(key=lambda r: (r["accuracy"], -r["cases"], r[name]))
    return rows


def compare_runs(
    base: dict[str, Any],
    base_rows: CaseRows | None,
    other: dict[str, Any],
    other_rows: CaseRows | None,
    *,
    allow_different: bool = False,
) -> dict[str, Any]:
    """How ``other`` moved against ``base``: rates, families and clusters.

    Every change is after minus before with Newcombe's 95% interval. Clusters
    are matched by failure kind and conditions (any spelling of one equal to
    any spelling of the other): ``new`` are clusters of ``other`` only,
    ``fixed`` of ``base`` only, ``persisting`` of both. A cluster of one run
    is counted in the other run's cases when its rows are given, so a fixed
    cluster still shows how often its slice fails now.
    """
    delta: dict[str, Any] = {"run": other["run"], "against": base["run"]}
    # Rates of different tasks measure different things: never compared.
    if base["task"] != other["task"]:
        delta["not_comparable"] = "different task"
        return delta
    differences = [
        what
        for what, differs in (
            ("suite", base["suite_sha256"] != other["suite_sha256"]),
            ("template", _templates(base) != _templates(other)),
        )
        if differs
    ]
    if differences and not allow_different:
        raise InvalidArgument(
            f"refusing to compare {other['run']} with {base['run']}: different "
            f"{' and '.join(differences)} ({_what_differs(base, other, differences)})"
            "; their rates measure different inputs or prompts. Pass "
            "--allow-different (allow_different=True) to compare anyway"
        )
    delta["differences"] = differences
    delta["models"] = {"before": base["model"], "after": other["model"]}

    delta["rates"] = {
        metric: _change(before, other["rates"][metric])
        for metric, before in base["rates"].items()
        if metric in other["rates"]
    }
    delta["per_family"] = _family_changes(base, other)
    delta["clusters"] = _cluster_changes(base, base_rows, other, other_rows)
    return delta


def _templates(run: dict[str, Any]) -> Any:
    return run.get("templates") or run["template"]


def _what_differs(
    base: dict[str, Any], other: dict[str, Any], differences: list[str]
) -> str:
    said = []
    if "suite" in differences:
        said.append(
            f"suite sha256 {base['suite_sha256'][:12]} vs {other['suite_sha256'][:12]}"
        )
    if "template" in differences:
        said.append(f"templates {_templates(base)} vs {_templates(other)}")
    return "; ".join(said)


def _side(count: int, of: int) -> dict[str, Any]:
    return {"value": round(count / of, 4) if of else None, "count": count, "of": of}


def _change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Two rates (dicts with count and of) and the change with its interval."""
    b, a = _side(before["count"], before["of"]), _side(after["count"], after["of"])
    interval = newcombe_interval((b["count"], b["of"]), (a["count"], a["of"]))
    change = None
    if b["value"] is not None and a["value"] is not None:
        change = round(a["count"] / a["of"] - b["count"] / b["of"], 4)
    return {
        "before": b,
        "after": a,
        "change": change,
        "interval": None if interval is None else [round(v, 4) for v in interval],
    }


def _family_changes(base: dict[str, Any], other: dict[str, Any]) -> list[dict]:
    """Each family's failure rates before and after (families of either run)."""
    metrics = [m for m in base["rates"] if m not in ("accuracy", "unparseable")]
    befores = {r["family"]: r for r in base["per_family"]}
    afters = {r["family"]: r for r in other["per_family"]}
    empty = {"count": 0, "of": 0}
    rows = []
    for family in sorted(befores.keys() | afters.keys()):
        for metric in metrics:
            before = befores.get(family, {}).get(metric, empty)
            after = afters.get(family, {}).get(metric, empty)
            if before["of"] or after["of"]:
                rows.append({"family": family, "metric": metric,
                             **_change(before, after)})  # fmt: skip
    return rows


def _spellings(cluster: dict[str, Any]) -> set[frozenset[str]]:
    """Every name of a cluster's slice, each as its set of conditions."""
    names = [cluster["slice"], *cluster.get("equivalent", ())]
    return {frozenset(name.split(" & ")) for name in names}


def _matching(cluster: dict[str, Any], others: list[dict[str, Any]]) -> dict | None:
    names = _spellings(cluster)
    for other in others:
        if other["kind"] == cluster["kind"] and names & _spellings(other):
            return other
    return None


def _cluster_changes(
    base: dict[str, Any],
    base_rows: CaseRows | None,
    other: dict[str, Any],
    other_rows: CaseRows | None,
) -> dict[str, list[dict[str, Any]]]:
    """New, fixed and persisting clusters, each with its failure rate on both
    sides where it can be counted."""

    def counts(cluster: dict[str, Any], rows: CaseRows | None) -> dict | None:
        if rows is None:
            return None
        conditions = [(c["key"], c["value"]) for c in cluster["conditions"]]
        support, failures = slice_counts(rows, cluster["kind"], conditions)
        return {"count": failures, "of": support}

    def entry(cluster, before, after, status_key, status) -> dict[str, Any]:
        item: dict[str, Any] = {
            "kind": cluster["kind"],
            "slice": cluster["slice"],
            "conditions": cluster["conditions"],
        }
        if before is not None and after is not None:
            item.update(_change(before, after))
        else:
            item.update(before=before, after=after, change=None, interval=None)
        if status_key:
            item[status_key] = status
        return item

    def own(cluster: dict[str, Any]) -> dict[str, int]:
        return {"count": cluster["failures"], "of": cluster["support"]}

    def standing(cluster: dict[str, Any], run: dict[str, Any]) -> str:
        return "lead" if _matching(cluster, run["leads"]) else "none"

    out: dict[str, list[dict[str, Any]]] = {"new": [], "fixed": [], "persisting": []}
    for cluster in other["clusters"]:
        match = _matching(cluster, base["clusters"])
        if match is None:
            before = counts(cluster, base_rows)
            out["new"].append(entry(cluster, before, own(cluster), "was",
                                    standing(cluster, base)))  # fmt: skip
        else:
            out["persisting"].append(entry(cluster, own(match), own(cluster), "", ""))
    for cluster in base["clusters"]:
        if _matching(cluster, other["clusters"]) is None:
            after = counts(cluster, other_rows)
            out["fixed"].append(entry(cluster, own(cluster), after, "now",
                                      standing(cluster, other)))  # fmt: skip
    return out


# --- Markdown -----------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown: headline first, then tables, then clusters."""
    parts = [_format_run(run) for run in report["runs"]]
    if report.get("comparison"):
        parts.append(_format_comparison(report["comparison"]))
    return "\n\n".join(parts) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _span(interval: list[float] | None) -> str:
    if interval is None:
        return "n/a"
    return f"{100 * interval[0]:.1f}–{100 * interval[1]:.1f}%"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


_LABELS = {
    "accuracy": "accuracy",
    "missed_unsafe": "missed unsafe (unsafe called safe)",
    "false_alarm": "false alarms (safe called unsafe)",
    "unparseable": "unparseable answers",
    "repair_not_safe": "repairs not safe (still unsafe, or no config)",
    "repair_still_unsafe": "repairs still unsafe",
    "repair_broke_intent": "repairs that broke the config's intent",
}


_SHORT = {
    "missed_unsafe": "missed unsafe",
    "false_alarm": "false alarms",
    "repair_not_safe": "not safe",
    "repair_still_unsafe": "still unsafe",
    "repair_broke_intent": "broke intent",
}


def _format_run(run: dict[str, Any]) -> str:
    head = run["headline"]
    out = [
        f"# spotcheck report: {run['run']}",
        "",
        f"model `{run['model']}` · task {run['task']} · {templates_said(run)} · "
        f"{run['cases']} cases "
        f"({run['truth']['unsafe']} unsafe, {run['truth']['safe']} safe) · suite "
        f"{run['suite']} (sha256 {run['suite_sha256'][:12]})",
        "",
        *([_parts_said(run), ""] if len(run.get("parts") or ()) > 1 else []),
        *(
            [f"**Unfinished run**: {unfinished_note(run)}.", ""]
            if run["status"] != "finished"
            else []
        ),
        f"**{_LABELS[head['metric']].capitalize()}: {_pct(head['value'])}** "
        f"({head['count']} of {head['of']}; 95% interval {_span(head['interval'])})",
        "",
    ]
    rows = [
        [
            _LABELS[name],
            _pct(r["value"]),
            _span(r["interval"]),
            f"{r['count']}/{r['of']}",
        ]
        for name, r in run["rates"].items()
    ]
    out += _table(["metric", "rate", "95% interval", "count"], rows)

    if run["confusion"]:
        out += ["", "## Confusion (rows: truth, columns: model answer)", ""]
        rows = [[t, *run["confusion"][t].values()] for t in run["confusion"]]
        out += _table(["truth \\ answer", *ANSWERS], rows)

    if run.get("consistency"):
        out += ["", "## Consistency across siblings", ""]
        out += _format_consistency(run["consistency"])

    out += ["", "## Per check (cases failing the rule)", ""]
    rows = [
        [f"`{r['rule']}`", r["cases"], r["correct"], _pct(r["accuracy"])]
        for r in run["per_rule"]
    ]
    out += _table(["rule", "cases", "correct", "accuracy"], rows) if rows else ["none"]

    # The family table shows the task's own failure rates beside accuracy.
    out += ["", "## Per family", ""]
    shown = [k for k in run["rates"] if k not in ("accuracy", "unparseable")]
    rows = [
        [r["family"], r["cases"], _pct(r["accuracy"]), *(_ratio(r[k]) for k in shown)]
        for r in run["per_family"]
    ]
    labels = [_SHORT[k] for k in shown]
    out += _table(["family", "cases", "accuracy", *labels], rows)

    if run.get("guard"):
        out += _format_guard(run["guard"])

    out += ["", "## Failure clusters", ""]
    out += _format_clusters(run["clusters"], run["cluster_settings"]["alpha"])
    if run["leads"]:
        out += ["", "### Leads: not clusters", ""]
        alpha = run.get("cluster_settings", {}).get("alpha", 0.05)
        out += [leads_said(run["leads"], alpha, bool(run["clusters"])), ""]
        out += _slice_table(run["leads"], with_q=True)
    out += _format_minimal(run)
    return "\n".join(out)


def leads_said(leads: list[dict[str, Any]], alpha: float, clusters: bool) -> str:
    """Why the leads are not clusters, in words that fit the ones listed
    (their q-values as the report prints them: rounded up, 3 digits)."""
    weak = [lead for lead in leads if lead["q_value"] > alpha]
    said = []
    if weak:
        said.append(
            f"Slices that fail more often than the rest but, with q above "
            f"{alpha:g}, do not survive the correction for testing every "
            "slice; run more cases to confirm or dismiss them."
        )
    if len(weak) < len(leads):
        said.append(
            f"{'Those' if weak else 'Slices'} with q at or below {alpha:g} are "
            "significant on their own, but "
            + (
                "what would set them apart from the clusters (failing more "
                "than each cluster or larger slice holding them, and on the "
                "cases the clusters leave out)"
                if clusters
                else "what would make them a problem of their own (failing "
                "more than each larger slice holding them)"
            )
            + " does not survive the correction."
        )
    return " ".join(said)


def templates_said(run: dict[str, Any]) -> str:
    """``template ID@V``, or for a run over several domains each domain's
    template (a mixed suite asks each domain with its own)."""
    templates = run.get("templates")
    if isinstance(templates, dict) and len(templates) > 1:
        return "templates " + ", ".join(
            f"{t['id']}@{t['version']}" if isinstance(t, dict) and "id" in t else str(t)
            for t in templates.values()
        )
    return f"template {run.get('template') or 'unknown'}"


def unfinished_note(run: dict[str, Any]) -> str:
    """What a run's report covers while it is not finished: the cases so far,
    and for a sharded run the shards missing or still running."""
    note = f"{run['cases']} cases answered so far"
    shards = run.get("shards")
    if shards:
        count = shards["of"]
        for key, said in (("missing", "missing"), ("unfinished", "still running")):
            if shards[key]:
                listed = ", ".join(f"{i}/{count}" for i in shards[key])
                note += f"; shard{'s' * (len(shards[key]) > 1)} {listed} {said}"
    return note


def _parts_said(run: dict[str, Any]) -> str:
    """Which directories a run of several was read from."""
    parts = run["parts"]
    shards = run.get("shards")
    if shards:
        return (
            f"Sharded run: shards {', '.join(map(str, shards['present']))} of "
            f"{shards['of']} ({', '.join(parts)})."
        )
    return f"{len(parts)} runs read as one ({parts[0]} … {parts[-1]})."


_GUARD_ROWS = {
    "unsafe": "unsafe (repair still unsafe)",
    "safe": "safe (correct repair)",
    "broke_intent": "broke intent",
    "unparseable": "unparseable",
}


def _format_guard(guard: dict[str, Any]) -> list[str]:
    """The guard section: recall on unsafe outputs, needless reviews."""
    recall, needless = guard["recall"], guard["needless_review"]
    out = ["", "## Guard on the model's outputs (default policy)", ""]
    out += [
        f"`spotcheck guard` would have blocked or sent to review "
        f"**{recall['count']} of {recall['of']} unsafe outputs** (recall "
        f"{_pct(recall['value'])}, 95% interval {_span(recall['interval'])}; "
        f"blocked {guard['blocked']['count']}), and sent {needless['count']} of "
        f"{needless['of']} safe outputs to a human needlessly "
        f"({_pct(needless['value'])}).",
        "",
    ]
    rows = [
        [_GUARD_ROWS[kind], sum(c.values()), c["pass"], c["review"], c["block"]]
        for kind, c in guard["by_outcome"].items()
    ]
    out += _table(["output", "count", "pass", "review", "block"], rows)
    if guard["missed"]:
        out += ["", "Unsafe outputs it let pass: " + ", ".join(guard["missed"])]
    return out


def _format_minimal(run: dict[str, Any]) -> list[str]:
    """Each cluster's and lead's minimal example, when ``--minimize`` ran."""
    out: list[str] = []
    for label, items in (("Cluster", run["clusters"]), ("Lead", run["leads"])):
        for i, c in enumerate(items, start=1):
            minimal = c.get("minimal_example")
            if not minimal and not c.get("minimal_example_note"):
                continue
            out += ["", f"### Minimal example: {label.lower()} {i} `{c['slice']}`", ""]
            if not minimal:
                out.append(f"Not shrunk: {c['minimal_example_note']}.")
                continue
            out.append(
                f"Shrunk from `{minimal['case_id']}` in {minimal['model_calls']} "
                f"model calls; held: {', '.join(minimal['checked']) or 'verdict'}"
                + (
                    f"; not checkable: {', '.join(minimal['unchecked'])}"
                    if minimal["unchecked"]
                    else ""
                )  # fmt: skip
            )
            out += ["", "```", minimal["config"].rstrip("\n"), "```"]
            passing = minimal.get("nearest_passing")
            if passing:
                out.append(f"Nearest passing case: `{passing['case_id']}` "
                           f"({passing['distance']} lines differ).")  # fmt: skip
    return out


_RELATION_LABELS = {
    "same": "same meaning, same answer",
    "opposite": "opposite verdict, answer flips",
}


def _format_consistency(consistency: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        [
            _RELATION_LABELS[relation],
            c["pairs"],
            _pct(c["consistent"]["value"]),
            _span(c["consistent"]["interval"]),
            _pct(c["both_correct"]["value"]),
            c["unparseable"],
        ]
        for relation, c in consistency.items()
    ]
    header = ["pairs", "answered", "consistent", "95% interval", "both correct"]
    lines = _table([*header, "unparseable"], rows)
    return [
        "A same-meaning sibling is the case respelled; an opposite one is the "
        "smallest edit that moves the verdict.",
        "",
        *lines,
    ]


def _ratio(r: dict[str, Any]) -> str:
    return f"{_pct(r['value'])} ({r['count']}/{r['of']})" if r["of"] else "–"


def _format_clusters(clusters: list[dict[str, Any]], alpha: float) -> list[str]:
    if not clusters:
        return [
            "No slice of the cases fails significantly more often than the run "
            f"as a whole (false discovery rate {alpha:g})."
        ]
    return _slice_table(clusters, with_q=False)


def _slice_table(clusters: list[dict[str, Any]], *, with_q: bool) -> list[str]:
    rows = [
        [
            i, c["kind"], _slice_cell(c), c["support"],
            f"{_pct(c['failure_rate'])} ({c['failures']})", f"{c['lift']:.1f}×",
            _span(c["interval"]), *([f"{c['q_value']:.3g}"] if with_q else []),
            f"`{c['example_case_id']}`",
        ]
        for i, c in enumerate(clusters, start=1)
    ]  # fmt: skip
    header = ["#", "kind", "slice", "cases", "fail rate", "lift", "95% interval"]
    header += ["q"] if with_q else []
    return _table([*header, "smallest failing case"], rows)


def _slice_cell(cluster: dict[str, Any]) -> str:
    # One other spelling is enough to tell the reader which check it is.
    also = cluster["equivalent"][:1]
    return f"`{cluster['slice']}`" + "".join(f" (also `{a}`)" for a in also)


def _format_comparison(deltas: list[dict[str, Any]]) -> str:
    out = ["# Comparison"]
    for d in deltas:
        out += ["", f"## {d['run']} against {d['against']}", ""]
        if "not_comparable" in d:
            out.append(f"Not compared: {d['not_comparable']}.")
            continue
        models = d["models"]
        out.append(f"models: `{models['before']}` → `{models['after']}`")
        if d["differences"]:
            out.append(
                f"**Compared although the {' and '.join(d['differences'])} "
                "differ** (--allow-different): changes mix the model with the "
                "inputs or prompts."
            )
        out += ["", "Changes are after minus before, with Newcombe's 95% interval.", ""]
        rows = [[_LABELS[m], *_change_cells(c)] for m, c in d["rates"].items()]
        out += _table(["metric", "before", "after", "change", "95% interval"], rows)

        for status, title in _CLUSTER_STATUS.items():
            items = d["clusters"][status]
            out += ["", f"### {title} ({len(items)})", ""]
            if not items:
                out.append("none")
                continue
            rows = [
                [c["kind"], f"`{c['slice']}`", *_change_cells(c),
                 *([c[_STANDING[status]]] if status in _STANDING else [])]
                for c in items
            ]  # fmt: skip
            header = ["kind", "slice", "before", "after", "change", "95% interval"]
            extra = {"new": "before: was", "fixed": "now"}.get(status)
            out += _table(header + ([extra] if extra else []), rows)

        out += ["", "### Per family", ""]
        rows = [
            [r["family"], _SHORT.get(r["metric"], r["metric"]), *_change_cells(r)]
            for r in d["per_family"]
        ]
        header = ["family", "metric", "before", "after", "change", "95% interval"]
        out += _table(header, rows) if rows else ["none"]
    return "\n".join(out)


_CLUSTER_STATUS = {
    "new": "New clusters",
    "fixed": "Fixed clusters",
    "persisting": "Persisting clusters",
}
# What a new cluster was before, and what a fixed one is now: a lead or none.
_STANDING = {"new": "was", "fixed": "now"}


def _change_cells(change: dict[str, Any]) -> list[str]:
    """before, after, change in points, and the change's interval."""

    def side(rate: dict[str, Any] | None) -> str:
        if rate is None:
            return "not counted"
        return f"{_pct(rate['value'])} ({rate['count']}/{rate['of']})"

    points = change["change"]
    interval = change["interval"]
    return [
        side(change["before"]),
        side(change["after"]),
        "n/a" if points is None else f"{100 * points:+.1f} pts",
        "n/a" if interval is None else
        f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f} pts",
    ]  # fmt: skip
