"""Running a model over a suite: ``spotcheck run``.

``run_suite`` streams ``SUITE_DIR/cases.jsonl`` one case at a time, asks the
model in batches, and appends each batch's Results to ``OUT/results.jsonl``
(see ``journal`` for the crash and resume rules). When it is done it writes
``OUT/run.json``: what ran (model, task, template, scoring), on what (the
suite's absolute path and the sha256 of its ``cases.jsonl`` and
``manifest.json``), and the counts. ``generator.rundata`` reads it back.

Which cases a task takes: ``verdict`` every case of a domain that has a
verdict template; ``repair`` only unsafe cases of a domain whose oracle can
re-check a repair (k8s, iam). ``limit`` keeps the first N such cases in suite
order, so re-running with the same limit resumes the same selection.

``shard=(i, n)`` keeps the cases whose id hashes to ``i`` of ``n`` (1-based:
``--shard 1/4`` ... ``4/4``): the first 8 bytes of the sha256 of the case id,
as a big-endian integer, modulo ``n`` equal to ``i - 1``. The split is taken
after ``limit``, so the ``n`` shards of one limit partition exactly the
cases an unsharded run with that limit answers, and a case keeps its shard
when the suite is reordered. Each shard writes its own run directory;
run.json records the shard, and resuming with another shard is refused.

Crash safety is ``journal``'s: each batch is fsync'd before the next starts,
a torn last line is cut off on resume, a case is never written twice, and a
second process writing to the same directory is refused. ``resume=True``
only adds the demand that there is a run to resume.

``Result.tokens`` counts the prompt for a verdict and the generated answer
for a repair; ``Result.seconds`` is the batch's time shared among its cases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.errors import InvalidArgument, SuiteError
from generator.prompts import PromptTemplate, load_template
from generator.records import Case, Result
from generator.run.backends import check_backend
from generator.run.journal import Journal, read_results, write_json_atomic
from generator.rundata import iter_cases

if TYPE_CHECKING:
    from generator.run.backends import Backend

__all__ = [
    "REPAIR_DOMAINS",
    "TASKS",
    "in_shard",
    "parse_shard",
    "resume_arguments",
    "run_suite",
]

logger = logging.getLogger(__name__)

TASKS = ("verdict", "repair")
# Domains whose oracle ``generator.run.repair`` can re-check a repair with.
REPAIR_DOMAINS = ("k8s", "iam", "netpol", "sg")


def run_suite(
    suite_dir: str | Path,
    *,
    model: str,
    out_dir: str | Path,
    task: str = "verdict",
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    scoring: str | None = None,
    max_new_tokens: int | None = None,
    device: str | None = None,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
    backend: str = "transformers",
    max_batch_tokens: int | None = None,
    backend_options: dict[str, Any] | None = None,
    opened: Any = None,
) -> dict[str, Any]:
    """Run ``model`` on a suite; write results.jsonl and run.json; return run.json.

    ``scoring`` names a verdict scoring rule (default: the measured one in
    ``generator.run.verdict``); ``max_new_tokens`` caps a repair's length;
    ``device`` overrides the default (CUDA in bf16 if present, else CPU fp32).
    ``shard`` and ``resume``: see the module docstring. ``backend`` is one
    of ``generator.run.backends.BACKENDS``; ``max_batch_tokens`` caps the
    padded tokens of one forward pass (local backends); ``backend_options``
    are the backend's own (``concurrency``, ``tokenizer``,
    ``tensor_parallel_size``, ...). ``opened`` is a backend already open on
    ``model`` to answer with instead of opening one (``fuzz`` keeps one open
    for all its rounds).
    """
    _check_arguments(model, task, limit, batch_size, scoring, max_new_tokens)
    _check_shard(shard)
    options = {
        **(backend_options or {}),
        "device": device,
        "max_batch_tokens": max_batch_tokens,
    }
    started = time.monotonic()
    suite = Path(suite_dir).resolve()
    out = Path(out_dir)
    if resume and not (out / "run.json").is_file():
        raise SuiteError(
            f"{out}: no run to resume (no run.json); start it without --resume"
        )
    manifest_sha, cases_sha = _suite_digests(suite)
    # A model that cannot be found is known before anything is written.
    check_backend(backend, model, options)

    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_run(out, cases_sha, task, shard)
    with Journal(out / "results.jsonl") as journal:
        return _run_into(
            journal,
            suite=suite,
            out=out,
            started=started,
            digests=(manifest_sha, cases_sha),
            previous=previous,
            task=task,
            model=model,
            limit=limit,
            shard=shard,
            batch_size=batch_size,
            progress=progress,
            options={
                "scoring": scoring,
                "max_new_tokens": max_new_tokens,
                "backend": backend,
                "backend_options": options,
                "opened": opened,
            },
        )


def _run_into(
    journal: Journal,
    *,
    suite: Path,
    out: Path,
    started: float,
    digests: tuple[str, str],
    previous: dict[str, Any],
    task: str,
    model: str,
    limit: int | None,
    shard: tuple[int, int] | None,
    batch_size: int,
    progress: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The body of ``run_suite`` once the journal is open (and locked)."""
    manifest_sha, cases_sha = digests

    # One streaming pass to count, so the progress bar knows its length.
    templates = _Templates(task)
    todo = sum(
        1 for _ in _selected(suite, task, limit, shard, templates, journal.finished)
    )
    logger.info(
        "run: %d cases to %s (%d already done) in %s",
        todo,
        task,
        len(journal.finished),
        out,
    )

    runner = _TaskRunner(task, model, templates, options)
    facts = {
        "suite": suite,
        "manifest_sha": manifest_sha,
        "cases_sha": cases_sha,
        "task": task,
        "runner": runner,
        "model": model,
        "templates": templates,
        "previous": previous,
        "limit": limit,
        "shard": shard,
        "batch_size": batch_size,
    }
    # run.json first, so a run killed half-way can still be reported and
    # resumed; it is rewritten with the final counts at the end.
    if not previous:
        early = _summary(out, **facts, new=0, seconds=0.0, status="running")
        write_json_atomic(out / "run.json", early)
    if todo:
        cases = _selected(suite, task, limit, shard, templates, journal.finished)
        _run_batches(runner, cases, journal, todo, batch_size, progress)

    seconds = time.monotonic() - started
    summary = _summary(out, **facts, new=todo, seconds=seconds, status="finished")
    write_json_atomic(out / "run.json", summary)
    return summary


def _check_arguments(
    model: Any,
    task: Any,
    limit: Any,
    batch_size: Any,
    scoring: Any,
    max_new_tokens: Any,
) -> None:
    if not isinstance(model, str) or not model:
        raise InvalidArgument(f"model={model!r} must be 'demo' or a local path")
    if task not in TASKS:
        raise InvalidArgument(f"task={task!r} must be one of {', '.join(TASKS)}")
    for name, value in (("limit", limit), ("max_new_tokens", max_new_tokens)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidArgument(f"{name}={value!r} must be a positive int or None")
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise InvalidArgument(f"batch_size={batch_size!r} must be a positive int")
    if scoring is not None:
        from generator.run.verdict import RULES

        if scoring not in RULES:
            raise InvalidArgument(
                f"scoring={scoring!r} is not a rule; known: {', '.join(RULES)}"
            )


def _suite_digests(suite: Path) -> tuple[str, str]:
    """sha256 of manifest.json and of cases.jsonl; SuiteError if unreadable."""
    digests = []
    for name in ("manifest.json", "cases.jsonl"):
        path = suite / name
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            raise SuiteError(
                f"{path}: missing; is {suite} a suite directory? "
                "(make one with `spotcheck generate`)"
            ) from None
        except OSError as exc:
            raise SuiteError(f"{path}: unreadable: {exc}") from None
        digests.append(digest.hexdigest())

    try:
        manifest = json.loads((suite / "manifest.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SuiteError(f"{suite / 'manifest.json'}: not JSON: {exc}") from None
    recorded = manifest.get("cases_sha256") if isinstance(manifest, dict) else None
    if not isinstance(recorded, str):
        raise SuiteError(
            f"{suite / 'manifest.json'}: records no cases_sha256, so the suite "
            "cannot be verified; regenerate it with `spotcheck generate`"
        )
    if recorded != digests[1]:
        raise SuiteError(
            f"{suite / 'cases.jsonl'}: its sha256 is not the one manifest.json "
            "records; the suite was edited after `spotcheck generate`"
        )
    return digests[0], digests[1]


def _check_shard(shard: Any) -> None:
    if shard is None:
        return
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
        and 1 <= shard[0] <= shard[1]
    )
    if not ok:
        raise InvalidArgument(
            f"shard={shard!r} must be (i, n) with 1 <= i <= n, e.g. (1, 4)"
        )


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` as ``(2, 4)``; InvalidArgument names the expected form."""
    index, sep, count = text.partition("/")
    try:
        shard = (int(index), int(count)) if sep else None
    except ValueError:
        shard = None
    if shard is None or not 1 <= shard[0] <= shard[1]:
        raise InvalidArgument(
            f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4 ... 4/4"
        )
    return shard


def in_shard(case_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether the case with this id belongs to ``shard`` (see module docstring)."""
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def resume_arguments(out_dir: str | Path) -> dict[str, Any]:
    """What a run directory's run.json says to pass to ``run_suite`` again.

    Lets ``spotcheck run --resume --out RUN_DIR`` go on without repeating
    the suite, model, task, limit, shard and backend.
    """
    path = Path(out_dir) / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(
            f"{out_dir}: no run to resume (no run.json); start it without --resume"
        ) from None
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: unreadable: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("suite"), str):
        raise SuiteError(f"{path}: names no suite; pass --suite and --model")
    shard = meta.get("shard")
    backend = meta.get("backend")
    return {
        "backend": backend.get("backend") if isinstance(backend, dict) else None,
        "suite_dir": meta["suite"],
        "model": meta.get("model_arg") or meta.get("model"),
        "task": meta.get("task", "verdict"),
        "limit": meta.get("limit"),
        "shard": tuple(shard) if isinstance(shard, list) else None,
    }


def _previous_run(
    out: Path, cases_sha: str, task: str, shard: tuple[int, int] | None
) -> dict[str, Any]:
    """The run.json already in ``out`` ({} if none), checked to be this suite's."""
    # Resuming is only meaningful on the same suite: otherwise old results
    # would be joined to cases they never answered.
    path = out / "run.json"
    if not path.exists():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: unreadable: {exc}") from None
    if isinstance(previous, dict) and previous.get("suite_sha256") not in (
        None,
        cases_sha,
    ):
        raise SuiteError(
            f"{out} holds a run on another suite ({previous.get('suite')}); "
            "write this run to another --out directory"
        )
    if isinstance(previous, dict) and previous.get("task") not in (None, task):
        raise SuiteError(
            f"{out} holds a {previous['task']} run; write the {task} run to "
            "another --out directory"
        )
    recorded = previous.get("shard") if isinstance(previous, dict) else None
    if isinstance(previous, dict) and "status" in previous:
        wanted = list(shard) if shard else None
        if recorded != wanted:

            def spell(value: Any) -> str:
                return "no shard" if not value else f"shard {value[0]}/{value[1]}"

            raise SuiteError(
                f"{out} holds a run of {spell(recorded)}; resume it with that "
                f"--shard or write {spell(wanted)} to another --out directory"
            )
    return previous if isinstance(previous, dict) else {}


class _Templates:
    """The task's template per domain, loaded once; None where there is none."""

    def __init__(self, task: str):
        self.task = task
        self.by_domain: dict[str, PromptTemplate | None] = {}

    def get(self, domain: str) -> PromptTemplate | None:
        if domain not in self.by_domain:
            try:
                self.by_domain[domain] = load_template(domain, self.task)
            except InvalidArgument as exc:
                logger.warning("skipping %s cases: %s", domain, exc)
                self.by_domain[domain] = None
        return self.by_domain[domain]

    def used(self) -> dict[str, dict[str, Any]]:
        return {
            domain: {"id": t.id, "version": t.version}
            for domain, t in sorted(self.by_domain.items())
            if t is not None
        }


def _selected(
    suite: Path,
    task: str,
    limit: int | None,
    shard: tuple[int, int] | None,
    templates: _Templates,
    finished: set[str],
) -> Iterator[Case]:
    """The task's cases in suite order, first ``limit`` of them, in ``shard``,
    not yet done."""
    taken = 0
    for case in iter_cases(suite):
        if limit is not None and taken >= limit:
            return
        if task == "repair" and (
            case.truth.verdict != "unsafe" or case.domain not in REPAIR_DOMAINS
        ):
            continue
        if templates.get(case.domain) is None:
            continue
        taken += 1
        if case.id not in finished and in_shard(case.id, shard):
            yield case


class _TaskRunner:
    """Opens the backend on first use and answers batches of one domain.

    Each domain gets its own worker (a ``VerdictScorer`` or a
    ``RepairGenerator``) around its template; both offer ``answer`` and
    ``settings``, so nothing below this class asks which task it is.
    """

    def __init__(
        self,
        task: str,
        model: str,
        templates: _Templates,
        options: dict[str, Any],
    ):
        self.task = task
        self.model_spec = model
        self.templates = templates
        self.options = options
        self.backend: Backend | None = options.get("opened")
        self.workers: dict[str, Any] = {}

    def __call__(self, domain: str, cases: list[Case]) -> list[Result]:
        return self._worker(domain).answer(cases)

    def _worker(self, domain: str) -> Any:
        if domain in self.workers:
            return self.workers[domain]
        from generator.run.backends import open_backend

        if self.backend is None:
            self.backend = open_backend(
                self.options["backend"],
                self.model_spec,
                self.options["backend_options"],
            )
        template = self.templates.get(domain)
        assert template is not None, "cases without a template are never selected"
        if self.task == "verdict":
            from generator.run.verdict import DEFAULT_RULE, VerdictScorer

            rule = self.options["scoring"] or DEFAULT_RULE
            worker: Any = VerdictScorer(self.backend, template, rule=rule)
        else:
            from generator.run.repair import MAX_NEW_TOKENS, RepairGenerator

            cap = self.options["max_new_tokens"] or MAX_NEW_TOKENS
            worker = RepairGenerator(self.backend, template, max_new_tokens=cap)
        self.workers[domain] = worker
        return worker

    def settings(self) -> dict[str, Any] | None:
        """How answers were obtained, for run.json; None if nothing ran."""
        merged: dict[str, Any] | None = None
        for worker in self.workers.values():
            settings = worker.settings()
            if merged is None:
                merged = settings
            elif "calibration" in settings:
                merged["calibration"].update(settings["calibration"])
        return merged


def _run_batches(
    runner: _TaskRunner,
    cases: Iterator[Case],
    journal: Journal,
    total: int,
    batch_size: int,
    progress: bool,
) -> None:
    """Answer cases a batch at a time; each batch reaches the disk before the next."""
    from tqdm import tqdm

    # Batches hold one domain each: every domain has its own template, and
    # the verdict scorer's prefix cache is per template.
    pending: dict[str, list[Case]] = {}
    with tqdm(
        total=total, disable=not progress, file=sys.stderr, unit="case", desc="run"
    ) as bar:

        def flush(domain: str) -> None:
            batch = pending.pop(domain)
            results = runner(domain, batch)
            # Known only once the model is loaded: refuse to mix runs.
            journal.check_identity(results[0])
            journal.append(results)
            bar.update(len(batch))
            for result in results:
                logger.debug(
                    "%s: %s (%s)", result.case_id, result.answer, result.failure or "ok"
                )

        for case in cases:
            pending.setdefault(case.domain, []).append(case)
            if len(pending[case.domain]) >= batch_size:
                flush(case.domain)
        for domain in list(pending):
            flush(domain)


def _summary(out: Path, **run: Any) -> dict[str, Any]:
    """run.json: what ran, on what, and how it went over every result so far."""
    counts: dict[str, Any] = {"total": 0, "correct": 0, "failures": {}}
    model_id = None
    results_path = out / "results.jsonl"
    seen: set[str] = set()
    for result in read_results(results_path) if results_path.exists() else ():
        # A line repeated by hand (or by a copy) counts once, as in report.
        if result.case_id in seen:
            continue
        seen.add(result.case_id)
        counts["total"] += 1
        counts["correct"] += result.correct
        if result.failure:
            failures = counts["failures"]
            failures[result.failure] = failures.get(result.failure, 0) + 1
        model_id = model_id or result.model_id

    # A resumed run that had nothing left to do loaded no model; what the
    # earlier invocation recorded still describes the results.
    previous: dict[str, Any] = run["previous"]
    runner: _TaskRunner = run["runner"]
    backend = runner.backend
    described = backend.describe() if backend else previous.get("backend") or {}
    templates = run["templates"].used() or previous.get("templates", {})
    summary: dict[str, Any] = {
        "model": backend.model_id if backend else model_id or run["model"],
        "model_arg": run["model"],
        "task": run["task"],
        "templates": templates,
        "template": next(iter(templates.values()), None),
        "suite": str(run["suite"]),
        "suite_sha256": run["cases_sha"],
        "manifest_sha256": run["manifest_sha"],
        "limit": run["limit"],
        "shard": list(run["shard"]) if run["shard"] else None,
        "batch_size": run["batch_size"],
        "status": run["status"],
        "counts": {**counts, "new": run["new"]},
        "seconds": round(run["seconds"], 3),
        "seconds_total": round(run["seconds"] + previous.get("seconds_total", 0), 3),
        "backend": described or None,
        "device": described.get("device"),
        "dtype": described.get("dtype"),
        "settings": runner.settings() or previous.get("settings"),
    }
    if counts["total"]:
        summary["accuracy"] = counts["correct"] / counts["total"]
    return summary
