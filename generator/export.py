"""Export what a model got wrong as fine-tuning data, with oracle-correct answers.

Inputs are run directories, or fuzz directories (``fuzz.json``; every
``rounds/*/run`` in it). Each failed case becomes one example:

* **verdict** runs: the user turn is the project's verdict prompt for the
  case (the same template the run used, so training and evaluation ask the
  same way), the assistant turn the oracle's answer: ``SAFE`` or ``UNSAFE``,
  then one line per violated rule with its field path and reason;
* **repair** runs: the user turn is the repair prompt, the assistant turn
  a minimal fix made by the oracle's own remediation
  (``generator.remediate``), in the fenced block the template asks for,
  and re-judged as the runner judges a model's repair (safe, intent kept).
  A case the remediation refuses, or whose fix does not pass, is skipped
  and counted.

Written to ``out_dir`` (format ``jsonl``, ``hf``, ``parquet``; default all):

```
README.md                               dataset card: sources, counts, how to load
export.json                             the same counts, machine-readable
messages/{train,test}.jsonl             {"messages": [system, user, assistant], ...}
prompt_completion/{train,test}.jsonl    {"prompt": [system, user],
                                         "completion": [assistant], ...}
hf/messages/, hf/prompt_completion/     DatasetDict(train, test), save_to_disk
parquet/<form>-<split>.parquet          the same rows, one file per form and split
```

Both forms are TRL's conversational shapes (``generator.export_write``);
every row also has ``case_id``, ``domain``, ``family``, ``task``,
``question``, ``label``, ``rules``, ``failure``, ``source``, ``cluster``,
``config_hash``, ``template``, ``model`` and ``run``.

Kept apart from evaluation: ``exclude_suites`` (suite or fuzz directories)
drops every case whose config is equal up to layout, or near-equal
(``generator.export_hash``), to a case of those suites. Within the export a
config is written once per question and task, near-equal copies included.
The train/test split holds out part of every cluster, and label balance is
chosen with ``balance`` and ``add_correct`` (``generator.export_select``).
Repair answers come from ``generator.export_repair``, the card from
``generator.export_card``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument
from generator.export_card import write_card
from generator.export_hash import config_fingerprint, near_fingerprint
from generator.export_repair import Remediation
from generator.export_select import (
    LABELS,
    CorrectPool,
    Entry,
    check_balance,
    cluster_key,
    correct_needed,
    keep_for_balance,
    split_lines,
)
from generator.export_write import (
    FORMS,
    SPLITS,
    JsonlWriter,
    datasets_module,
    save_datasets,
    write_splits,
)
from generator.prompts import load_template, render_case
from generator.records import Case
from generator.rundata import Run, iter_cases, load_run, run_dirs_of

__all__ = [
    "FORMATS",
    "answer_text",
    "config_fingerprint",
    "export_failures",
    "near_fingerprint",
]

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "hf", "parquet")
# The name DESIGN.md's command line gave the JSONL format first.
_ALIASES = {"chat-jsonl": "jsonl"}


def answer_text(case: Case) -> str:
    """The oracle-correct answer: the verdict, then one line per violation."""
    lines = [case.truth.verdict.upper()]
    for violation in case.truth.violations:
        where = f" at {violation.path}" if violation.path else ""
        lines.append(f"- {violation.rule}{where}: {violation.message}")
    return "\n".join(lines)


def export_failures(
    run_dirs: Iterable[Path],
    out_dir: Path,
    *,
    fmt: str | Iterable[str] = FORMATS,
    exclude_suites: Iterable[Path] = (),
    balance: str | bool = "none",
    add_correct: int = 0,
    test_fraction: float = 0.1,
) -> dict[str, Any]:
    """Write the failed cases of ``run_dirs`` to ``out_dir``; return the counts.

    ``run_dirs`` may name run or fuzz directories, ``exclude_suites`` suite
    or fuzz directories. Raises ``SuiteError`` for a run whose suite changed
    since the run, ``InvalidArgument`` for a bad option or when ``hf`` or
    ``parquet`` is asked for without the datasets package.
    """
    formats = _formats(fmt)
    balance = check_balance(balance, add_correct)
    if not 0 <= test_fraction < 1:
        raise InvalidArgument(f"test_fraction={test_fraction!r}: need 0 <= F < 1")
    datasets = datasets_module() if {"hf", "parquet"} & set(formats) else None
    runs = [load_run(d) for path in run_dirs for d in run_dirs_of(Path(path))]
    if not runs:
        raise InvalidArgument(
            "run_dirs is empty: name at least one run directory (or a fuzz "
            "directory with a finished round)"
        )
    suites = [s for path in exclude_suites for s in _suite_dirs_of(Path(path))]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Draft every row once, then choose: which to drop for balance, which
    # correct cases to add, which split each goes to. Only the small
    # entries stay in memory; the rows wait in the draft file.
    draft = _Draft(out_dir / "rows.jsonl.part", _excluded(suites))
    try:
        with draft:
            sources = [draft.add_failures(run) for run in runs]
            dropped, balanced = (
                keep_for_balance(draft.entries) if balance == "equal" else (set(), True)
            )
            counts = Counter(
                e.label
                for e in draft.entries
                if e.task == "verdict" and e.line not in dropped
            )
            need = correct_needed(counts, balance, add_correct)
            short = draft.add_correct(runs, need)
        kept = [e for e in draft.entries if e.line not in dropped]
        splits = split_lines(kept, test_fraction)
        writer = JsonlWriter(out_dir)
        tally = write_splits(draft.path, writer, splits)
    finally:
        draft.path.unlink(missing_ok=True)

    # The datasets are made from the JSONL files, which stay if asked for.
    written = {"jsonl": [str(p) for p in writer.paths.values()]}
    _clear(out_dir)
    if datasets is not None:
        written.update(save_datasets(datasets, out_dir, writer.paths, formats))
    if "jsonl" not in formats:
        for path in writer.paths.values():
            path.unlink()
        written["jsonl"] = []
        for form in FORMS:
            with contextlib.suppress(OSError):  # not empty: not only ours
                (out_dir / form).rmdir()

    summary: dict[str, Any] = {
        "out_dir": str(out_dir),
        "formats": list(formats),
        "files": {k: v for k, v in written.items() if k in formats},
        "runs": sources,
        "exclude_suites": [str(s) for s in suites],
        **draft.counts_summary(),
        "balance": balance,
        "balanced": balanced and not any(short.values()),
        "dropped_for_balance": len(dropped),
        "add_correct": add_correct,
        "correct_wanted": need,
        "correct_short": short,
        "test_fraction": test_fraction,
        **tally,
    }
    (out_dir / "export.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    write_card(out_dir / "README.md", summary)
    logger.info(
        "export: %d rows (%d train, %d test) to %s",
        summary["exported"],
        tally["splits"]["train"]["rows"],
        tally["splits"]["test"]["rows"],
        out_dir,
    )
    return summary


def _formats(fmt: str | Iterable[str]) -> tuple[str, ...]:
    wanted = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    wanted = tuple(dict.fromkeys(_ALIASES.get(f, f) for f in wanted))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise InvalidArgument(
            f"fmt={list(wanted)!r}: choose from {', '.join(FORMATS)} "
            "(chat-jsonl is jsonl)"
        )
    return wanted


# --- inputs -------------------------------------------------------------------


def _suite_dirs_of(path: Path) -> list[Path]:
    """A suite directory as itself, a fuzz directory as its rounds' suites."""
    if not (path / "fuzz.json").is_file():
        return [path]
    return sorted(
        p for p in path.glob("rounds/*/suite") if (p / "cases.jsonl").is_file()
    )


def _excluded(suites: list[Path]) -> tuple[set[str], set[str]]:
    """(exact, near-equal) fingerprints of every case of ``suites``.

    Only hashes of the evaluation suites are held, never their configs, and
    only the first 128 bits of each.
    """
    exact: set[str] = set()
    near: set[str] = set()
    for suite in suites:
        for case in iter_cases(suite):
            exact.add(config_fingerprint(case.config, case.format)[:32])
            near.add(near_fingerprint(case.domain, case.config, case.format)[:32])
    logger.info(
        "export: %d configs (%d near-equal classes) excluded", len(exact), len(near)
    )
    return exact, near


# --- drafting rows -----------------------------------------------------------------


class _Draft:
    """Rows as they are made, one JSON line each, with what selection needs."""

    def __init__(self, path: Path, excluded: tuple[set[str], set[str]]):
        self.path = path
        self.exact, self.near = excluded
        self.entries: list[Entry] = []
        self.counts: Counter[str] = Counter()
        self.seen: set[tuple[str, str, str]] = set()
        self.prompts = _Prompts()
        self.remedy = Remediation()

    def __enter__(self) -> _Draft:
        self.handle = open(self.path, "w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def add_failures(self, run: Run) -> dict[str, Any]:
        """Every failure of ``run``; returns a description of the run."""
        failed = 0
        for _, data, result in run.records():
            if result["correct"]:
                continue
            failed += 1
            self.counts["failures_seen"] += 1
            case = Case.from_dict(data)
            self.add(case, run, result["task"], result.get("failure") or "wrong")
        return _source(run, failed)

    def add_correct(self, runs: list[Run], need: dict[str, int]) -> dict[str, int]:
        """Correctly answered verdict cases, ``need`` of each label at most;
        returns how many of each label could not be found."""
        if not any(need.values()):
            return {label: 0 for label in LABELS}
        pool = CorrectPool(need)
        for index, run in enumerate(runs):
            for _, data, result in run.records():
                if result["correct"] and result["task"] == "verdict":
                    pool.offer(data["truth"]["verdict"], data["id"], index)
        short = {}
        for label in LABELS:
            taken = 0
            for case_id, index in pool.candidates(label):
                if taken == need[label]:
                    break
                taken += self.add(runs[index].case(case_id), runs[index], "verdict")
            short[label] = need[label] - taken
            self.counts[f"correct_added_{label}"] = taken
        if any(short.values()):
            logger.warning("export: too few correct cases to add: short %s", short)
        return short

    def add(self, case: Case, run: Run, task: str, failure: str | None = None) -> bool:
        """Draft ``case`` unless excluded, already drafted, or unrepairable."""
        source = "correct" if failure is None else "failure"
        near = near_fingerprint(case.domain, case.config, case.format)
        exact = config_fingerprint(case.config, case.format)[:32] in self.exact
        if exact or near[:32] in self.near:
            self.counts["excluded_exact" if exact else "excluded_near"] += 1
            return False
        if (near, case.question, task) in self.seen:
            self.counts[f"duplicates_{source}"] += 1
            return False

        if task == "repair":
            messages, template = self.prompts.messages(case, "repair")
            answer = self.remedy.fix(case)
            if answer is None:
                return False
        else:
            messages, template = self.prompts.messages(case, "verdict")
            answer = answer_text(case)
        self.seen.add((near, case.question, task))

        messages.append({"role": "assistant", "content": answer})
        row = {
            "messages": messages,
            "case_id": case.id,
            "domain": case.domain,
            "family": case.family,
            "task": task,
            "question": case.question,
            "label": case.truth.verdict,
            "rules": list(case.truth.rules),
            "failure": failure,
            "source": source,
            "cluster": cluster_key(
                case.domain, task, case.family, case.truth.verdict, case.truth.rules
            ),
            "config_hash": near,
            "template": template,
            "model": run.model,
            "run": str(run.run_dir),
        }
        self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.entries.append(
            Entry(
                len(self.entries), case.id, row["label"], task, source, near,
                row["cluster"],
            )
        )  # fmt: skip
        return True

    def counts_summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "failures_seen": c["failures_seen"],
            "excluded_exact": c["excluded_exact"],
            "excluded_near": c["excluded_near"],
            "excluded_by_suite": c["excluded_exact"] + c["excluded_near"],
            "duplicates": c["duplicates_failure"],
            "correct_added": {label: c[f"correct_added_{label}"] for label in LABELS},
            "repair": dict(sorted(self.remedy.counts.items())),
        }


class _Prompts:
    """The templates per domain and task, loaded once per export."""

    def __init__(self) -> None:
        self.templates: dict[tuple[str, str], Any] = {}

    def messages(self, case: Case, task: str) -> tuple[list[dict[str, str]], str]:
        template = self.templates.get((case.domain, task))
        if template is None:
            template = self.templates[case.domain, task] = load_template(
                case.domain, task
            )
        return render_case(template, case), f"{template.id}@{template.version}"


def _source(run: Run, failed: int) -> dict[str, Any]:
    return {
        "run": str(run.run_dir),
        "model": run.model,
        "task": run.task,
        "template": run.template,
        "suite": str(run.suite_dir),
        "suite_sha256": run.meta["suite_sha256"],
        "failures": failed,
    }


def _clear(out_dir: Path) -> None:
    """Remove what an earlier export wrote into ``out_dir`` and this one
    will not rewrite: a stale shard beside new ones, or the files of the
    one-dataset layout (``failures.jsonl``, a Dataset directly in ``hf/``),
    would be read as part of this export."""
    for form in FORMS:
        shutil.rmtree(out_dir / "hf" / form, ignore_errors=True)
        for split in SPLITS:
            (out_dir / "parquet" / f"{form}-{split}.parquet").unlink(missing_ok=True)
    (out_dir / "failures.jsonl").unlink(missing_ok=True)
    for old in ("state.json", "dataset_info.json", "data-*.arrow"):
        for path in (out_dir / "hf").glob(old):
            path.unlink()
