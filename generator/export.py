"""Export a run's failures as fine-tuning data with oracle-correct answers.

Each failed case becomes one chat example: the system and user turns are the
verdict prompt for the case (the project's verdict template, so training and
evaluation ask the same way), and the assistant turn is the oracle's answer,
``SAFE`` or ``UNSAFE`` followed by each violated rule with its field path and
reason. Repair-task failures are exported the same way: the verdict, with the
violations that a repair had to fix.

Written to the output directory:

* ``failures.jsonl``: one ``{"messages": [...], "case_id", "family", "rules",
  ...}`` object per line (format ``chat-jsonl``);
* ``hf/``: the same rows as a ``datasets`` Dataset, ``save_to_disk`` layout
  (format ``hf``);
* ``README.md``: a dataset card (sources, counts by label and rule, caveats).

Kept apart from evaluation: ``exclude_suites`` drops every case whose
normalised config (layout, comments and key order ignored) equals one in
those suites, so a model trained on the export is not then graded on the
same configs. research/finetune-feasibility.md measured why the card warns
about label mix: failures lean to one label, and training on them moves the
decision threshold more than it improves the model. ``balance=True`` keeps
as many safe as unsafe examples.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from generator.config.k8s import load_documents
from generator.errors import ConfigError, InvalidArgument
from generator.export_card import write_card
from generator.prompts import load_template, render_case
from generator.records import Case, Result
from generator.rundata import Run, iter_cases, load_run

__all__ = ["FORMATS", "answer_text", "config_fingerprint", "export_failures"]

logger = logging.getLogger(__name__)

FORMATS = ("chat-jsonl", "hf")


def config_fingerprint(config: str, fmt: str = "yaml") -> str:
    """A hash equal for configs that differ only in layout, comments, key order.

    YAML and JSON are parsed the way the API server reads them and hashed as
    canonical JSON; text that does not parse (and HCL) is hashed with runs of
    whitespace collapsed, which still catches re-indented copies.
    """
    canonical = None
    if fmt in ("yaml", "json"):
        try:
            documents = [d for d in load_documents(config) if d is not None]
            canonical = json.dumps(
                documents, sort_keys=True, separators=(",", ":"), default=str
            )
        except (ConfigError, TypeError, ValueError):
            canonical = None
    if canonical is None:
        canonical = " ".join(config.split())
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_text(case: Case) -> str:
    """The oracle-correct answer: the verdict, then one line per violation."""
    lines = [case.truth.verdict.upper()]
    for violation in case.truth.violations:
        where = f" at {violation.path}" if violation.path else ""
        lines.append(f"- {violation.rule}{where}: {violation.message}")
    return "\n".join(lines)


class _Prompts:
    """The verdict template per domain, loaded once per export."""

    def __init__(self) -> None:
        self.templates: dict[str, Any] = {}

    def messages(self, case: Case) -> tuple[list[dict[str, str]], str]:
        template = self.templates.get(case.domain)
        if template is None:
            template = self.templates[case.domain] = load_template(
                case.domain, "verdict"
            )
        return render_case(template, case), f"{template.id}@{template.version}"


def _formats(fmt: str | Iterable[str]) -> tuple[str, ...]:
    wanted = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise InvalidArgument(f"fmt={list(wanted)!r}: choose from {', '.join(FORMATS)}")
    return wanted


def export_failures(
    run_dirs: Iterable[Path],
    out_dir: Path,
    *,
    fmt: str | Iterable[str] = FORMATS,
    exclude_suites: Iterable[Path] = (),
    balance: bool = False,
) -> dict[str, Any]:
    """Write the failed cases of ``run_dirs`` to ``out_dir``; return the counts.

    A case that failed in several runs, or whose config equals an exported
    one up to layout, is written once. Raises ``SuiteError`` for a run whose
    suite changed since the run, ``InvalidArgument`` for a bad ``fmt`` or
    when format ``hf`` is asked for without the datasets package.
    """
    formats = _formats(fmt)
    datasets = _datasets() if "hf" in formats else None
    exclude_suites = [Path(s) for s in exclude_suites]
    runs = [load_run(Path(d)) for d in run_dirs]
    if not runs:
        raise InvalidArgument("run_dirs is empty: name at least one run directory")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Only hashes of the evaluation suites are held, never their configs.
    excluded = set()
    for suite in exclude_suites:
        excluded.update(
            config_fingerprint(c.config, c.format) for c in iter_cases(suite)
        )
    logger.info("export: %d configs excluded by suite", len(excluded))

    draft = out_dir / "failures.jsonl.part"
    jsonl = out_dir / "failures.jsonl"
    try:
        counts, labels, sources = _write_draft(runs, excluded, draft)
        keep, balanced = _balance(labels) if balance else (None, None)
        tally = _finish(draft, jsonl, keep)
    finally:
        draft.unlink(missing_ok=True)
    if datasets is not None:
        _save_hf(datasets, jsonl, out_dir / "hf")
    if "chat-jsonl" not in formats:
        jsonl.unlink()

    summary: dict[str, Any] = {
        "out_dir": str(out_dir),
        "formats": list(formats),
        "runs": sources,
        "exclude_suites": [str(s) for s in exclude_suites],
        "failures_seen": counts["failures_seen"],
        "excluded_by_suite": counts["excluded_by_suite"],
        "duplicates": counts["duplicates"],
        "balance": balance,
        "balanced": balanced,
        "dropped_for_balance": len(labels) - tally["exported"],
        **tally,
    }
    write_card(out_dir / "README.md", summary)
    logger.info("export: %d examples to %s", summary["exported"], out_dir)
    return summary


def _write_draft(
    runs: list[Run], excluded: set[str], draft: Path
) -> tuple[Counter[str], list[tuple[str, str]], list[dict[str, Any]]]:
    """Stream every run's failures into ``draft``, one chat row per line.

    Returns the drop counts, the (label, case id) of each line written (all
    that balancing needs) and a description of each source run.
    """
    counts: Counter[str] = Counter()
    labels: list[tuple[str, str]] = []
    sources = []
    seen: set[tuple[str, str]] = set()
    prompts = _Prompts()
    with open(draft, "w", encoding="utf-8") as handle:
        for run in runs:
            failed = 0
            for case, result in run.pairs():
                if result.correct:
                    continue
                failed += 1
                counts["failures_seen"] += 1

                # Layout-blind identity: an eval config re-indented is still it.
                fingerprint = config_fingerprint(case.config, case.format)
                if fingerprint in excluded:
                    counts["excluded_by_suite"] += 1
                    continue
                if (fingerprint, case.question) in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add((fingerprint, case.question))

                row = _row(case, result, prompts)
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                labels.append((case.truth.verdict, case.id))
            sources.append(_source(run, failed))
    return counts, labels, sources


def _row(case: Case, result: Result, prompts: _Prompts) -> dict[str, Any]:
    messages, template = prompts.messages(case)
    messages.append({"role": "assistant", "content": answer_text(case)})
    return {
        "messages": messages,
        "case_id": case.id,
        "family": case.family,
        "rules": list(case.truth.rules),
        "label": case.truth.verdict,
        "failure": result.failure or "wrong",
        "question": case.question,
        "template": template,
        "model": result.model_id,
    }


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


def _balance(labels: list[tuple[str, str]]) -> tuple[set[int] | None, bool]:
    """Line numbers to keep for as many safe as unsafe examples.

    Which lines of the larger label stay is decided by a hash of the case id:
    reproducible, and unrelated to file order (which follows the suite).
    """
    by_label: dict[str, list[tuple[str, int]]] = {"safe": [], "unsafe": []}
    for line, (label, case_id) in enumerate(labels):
        digest = hashlib.sha256(case_id.encode()).hexdigest()
        by_label.setdefault(label, []).append((digest, line))
    smaller = min(len(lines) for lines in by_label.values())
    if not labels:
        return None, True
    if smaller == 0:
        logger.warning(
            "export: every failure has one label; cannot balance, keeping all. "
            "Add correct examples of the other label before training on this"
        )
        return None, False
    keep = set()
    for lines in by_label.values():
        keep.update(line for _, line in sorted(lines)[:smaller])
    return keep, True


def _finish(draft: Path, final: Path, keep: set[int] | None) -> dict[str, Any]:
    """Move the kept lines to the final file and count them by label and rule."""
    by_label: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    by_failure: Counter[str] = Counter()
    with (
        open(draft, encoding="utf-8") as src,
        open(final, "w", encoding="utf-8") as dst,
    ):
        for number, line in enumerate(src):
            if keep is not None and number not in keep:
                continue
            dst.write(line)
            row = json.loads(line)
            by_label[row["label"]] += 1
            by_failure[row["failure"]] += 1
            by_rule.update(row["rules"])
    return {
        "exported": sum(by_label.values()),
        "by_label": {label: by_label[label] for label in ("unsafe", "safe")},
        "by_failure": dict(sorted(by_failure.items())),
        "by_rule": dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise InvalidArgument(
            "format hf needs the datasets package: pip install 'spotcheck[model]', "
            "or export with --format chat-jsonl only"
        ) from None
    # One small shard is written in a blink; its progress bars are noise.
    datasets.disable_progress_bars()
    return datasets


def _save_hf(datasets: Any, jsonl: Path, target: Path) -> None:
    """The exported rows as a Dataset in ``save_to_disk`` layout."""
    with open(jsonl, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    # An explicit schema: with no rows, or only SAFE ones, inference would
    # give the rules column no type. Lists are spelled [feature], which
    # datasets 3 and 4+ both read as a list (Sequence of a dict is not).
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "messages": [{"role": string, "content": string}],
            "case_id": string,
            "family": string,
            "rules": [string],
            "label": string,
            "failure": string,
            "question": string,
            "template": string,
            "model": string,
        }
    )
    # Column-wise, so an export with no rows still gets every column; and at
    # least one shard, since load_from_disk cannot read a zero-shard save.
    columns = {name: [row[name] for row in rows] for name in features}
    dataset = datasets.Dataset.from_dict(columns, features=features)
    dataset.save_to_disk(str(target), num_shards=1 if not rows else None)
