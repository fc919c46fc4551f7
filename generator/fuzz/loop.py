"""The fuzz loop: generate, run, score, cluster, reweight; crash-safe.

``run_fuzz`` works in rounds. Round N:

1. **choose**: the bandit (``generator.fuzz.bandit``) gives the round's
   slots to arms: grammar families of every domain, and mutators of the
   domains that already have failing cases to mutate;
2. **generate**: each arm makes its cases (``generator.fuzz.sources``):
   grammar draws, or neighbours of earlier failures; every case is judged
   by the oracle, and one whose id an earlier round (or this one) already
   holds is dropped;
3. **write** ``rounds/NNNN/suite``: an ordinary suite directory, written
   beside and renamed into place, so it is either whole or absent;
4. **run** the model on it into ``rounds/NNNN/run`` with the ordinary
   runner (``generator.run.runner.run_suite``), whose journal forces each
   batch to disk;
5. **fold** the results into the arms', families' and operators' counts
   and the failing cases into the parents of later mutations; rewrite
   ``fuzz.json`` atomically; profile.json every round; report.md (with
   the failure clusters over every round) every ``report_every`` rounds
   and at the end.

The model is loaded by each round's run; ``generator.run.runner`` has no
way yet to be handed an open backend (see ``_answer``).

Durability follows from the order. fuzz.json only ever describes whole
rounds. A kill during step 4 leaves the suite on disk and the run's
journal holding every finished batch: the resume runs the rest of that
suite through the runner's own resume. A kill before step 3 completed
leaves no suite: the resume makes it again, and gets the same one, since a
round depends only on the state fuzz.json holds, the round number, and
the earlier rounds' files (parents and taken ids are read back from
them). So nothing is lost beyond the batch in flight, and no case is
answered twice.

Stopping: before each round, the budget is checked: ``hours`` of elapsed
time summed over every session (saved with each round; a kill loses the
time since the last save), or ``cases`` answered in all (the last round is
cut to fit). Ctrl-C saves the elapsed time and leaves the rest as a kill
would.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument, SuiteError
from generator.fuzz.bandit import (
    MAX_MUTATION_SHARE,
    ArmStats,
    arm_key,
    choose,
    split_arm,
)
from generator.fuzz.sources import OperatorLog, Source, open_source
from generator.fuzz.state import (
    FuzzState,
    load_state,
    merged_params,
    save_state,
)
from generator.fuzz.summary import top_lines, write_outputs
from generator.records import Case, Result, dumps_line

__all__ = ["DEFAULT_ROUND_SIZE", "DOMAINS", "REPORT_EVERY", "run_fuzz"]

logger = logging.getLogger(__name__)

DOMAINS = ("k8s", "iam", "netpol", "sg")
DEFAULT_ROUND_SIZE = 32
REPORT_EVERY = 5
MAX_ROUND_SIZE = 100_000
# Tries per mutation slot: a mutator that does not apply to one parent
# may apply to another, and a neighbour may already be taken.
MUTATION_TRIES = 3
# Rounds in a row without a new answered case before the fuzz gives up
# instead of spinning (a --cases budget would otherwise never be reached).
MAX_IDLE_ROUNDS = 5

_DEFAULTS = {
    "backend": "transformers",
    "task": "verdict",
    "domains": ["k8s"],
    "seed": 0,
    "round_size": DEFAULT_ROUND_SIZE,
    # As generate: pinned rather than latest, so verdicts keep their meaning.
    "question": "pss:restricted:v1.37",
    "batch_size": 8,
    "max_batch_tokens": None,
    "scoring": None,
    "backend_options": {},
}


def run_fuzz(
    out_dir: str | Path,
    *,
    model: str | None = None,
    domains: tuple[str, ...] | None = None,
    seed: int | None = None,
    round_size: int | None = None,
    task: str | None = None,
    level: str | None = None,
    pss_version: str | None = None,
    backend: str | None = None,
    hours: float | None = None,
    cases: int | None = None,
    resume: bool = False,
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    scoring: str | None = None,
    backend_options: dict[str, Any] | None = None,
    report_every: int = REPORT_EVERY,
    progress: bool = True,
) -> dict[str, Any]:
    """Fuzz ``model`` into ``out_dir`` until the budget is spent; return a summary.

    A directory that already holds fuzz.json is resumed: options left None
    are taken from it, and an option that makes the fuzz what it is (model,
    backend, task, domains, question, seed, round size) must not differ.
    ``resume=True`` only adds the demand that there is a fuzz to resume.
    ``hours`` and ``cases`` are the budget (at least one, on a new fuzz);
    a resume may give a new one. ``level`` and ``pss_version`` make the
    Kubernetes question (default ``pss:restricted:v1.37``, as ``generate``).
    """
    out = Path(out_dir)
    question = None
    if level is not None or pss_version is not None:
        question = f"pss:{level or 'restricted'}:{pss_version or 'v1.37'}"
    given = {
        "model": model,
        "backend": backend,
        "task": task,
        "domains": list(dict.fromkeys(domains)) if domains else None,
        "question": question,
        "seed": seed,
        "round_size": round_size,
        "batch_size": batch_size,
        "max_batch_tokens": max_batch_tokens,
        "scoring": scoring,
        "backend_options": {
            k: v for k, v in (backend_options or {}).items() if v is not None
        }
        or None,
    }
    budget = _budget(hours, cases)
    _check_report_every(report_every)
    state = _open_state(out, given, budget, resume)
    _check_backend(state.params)
    fuzz = _Fuzz(out, state)
    return fuzz.go(report_every=report_every, progress=progress)


def _budget(hours: Any, cases: Any) -> dict[str, Any] | None:
    """The budget given (None: none given); InvalidArgument for a bad one."""
    if hours is None and cases is None:
        return None
    if hours is not None and (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not 0 < hours < math.inf
    ):
        raise InvalidArgument(f"--hours {hours!r}: give a positive number, e.g. 8")
    if cases is not None and (
        isinstance(cases, bool) or not isinstance(cases, int) or cases < 1
    ):
        raise InvalidArgument(f"--cases {cases!r}: give a positive whole number")
    return {"hours": hours, "cases": cases}


def _check_report_every(report_every: Any) -> None:
    if isinstance(report_every, bool) or not isinstance(report_every, int):
        raise InvalidArgument(f"report_every={report_every!r} must be an int >= 1")
    if report_every < 1:
        raise InvalidArgument(f"report_every={report_every!r} must be an int >= 1")


def _open_state(
    out: Path, given: dict[str, Any], budget: dict[str, Any] | None, resume: bool
) -> FuzzState:
    """The state to go on from: fuzz.json's, or a new one from ``given``."""
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"--out {out}: is a file; name a directory")
    state = load_state(out)
    if state is None:
        if resume:
            raise SuiteError(
                f"{out}: no fuzz to resume (no fuzz.json); start it without --resume"
            )
        if (out / "rounds").exists():
            raise SuiteError(
                f"{out}: holds rounds/ but no fuzz.json; fuzz into another --out"
            )
        params = {**_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
        _check_params(params)
        if budget is None:
            raise InvalidArgument("fuzz needs a budget: --hours H or --cases N")
        return FuzzState(params=params, budget=budget)
    state.params = merged_params(out, state.params, given)
    _check_params(state.params)
    if budget is not None:
        state.budget = budget
    state.status = "running"
    return state


def _check_params(params: dict[str, Any]) -> None:
    from generator.oracle.k8s import parse_question
    from generator.run.runner import TASKS

    if not isinstance(params.get("model"), str) or not params["model"]:
        raise InvalidArgument("fuzz needs --model: demo, a local path, or a URL")
    unknown = [d for d in params["domains"] if d not in DOMAINS]
    if unknown or not params["domains"]:
        raise InvalidArgument(
            f"--domain {' '.join(unknown) or '(none)'}: known domains are "
            f"{', '.join(DOMAINS)}"
        )
    if params["task"] not in TASKS:
        raise InvalidArgument(f"--task {params['task']}: use {' or '.join(TASKS)}")
    size = params["round_size"]
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgument(f"--round-size {size!r}: give a whole number")
    if not 1 <= size <= MAX_ROUND_SIZE:
        raise InvalidArgument(f"--round-size {size}: use 1 ... {MAX_ROUND_SIZE:,}")
    parse_question(params["question"])


def _check_backend(params: dict[str, Any]) -> None:
    # A model that cannot be found is known before anything is written.
    from generator.run.backends import check_backend

    options = {**params["backend_options"], "max_batch_tokens": None}
    check_backend(params["backend"], params["model"], options)
    for key in ("batch_size", "max_batch_tokens"):
        value = params[key]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidArgument(f"{key}={value!r} must be a positive int")


def derive_seed(seed: int, *parts: Any) -> int:
    """A 32-bit seed for one part of a fuzz, stable across processes."""
    text = ":".join([str(seed), *map(str, parts)])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def arm_of(case: Case) -> str:
    """The arm that made ``case``: its grammar family or its one mutator."""
    if case.origin.method == "mutation":
        return arm_key(case.domain, "mutation", case.origin.operators[0])
    return arm_key(case.domain, "grammar", case.family)


class _Fuzz:
    """One session of a fuzz: the state, the sources, what the rounds hold."""

    def __init__(self, out: Path, state: FuzzState):
        self.out = out
        self.state = state
        self.params = state.params
        self.sources: dict[str, Source] = {
            d: open_source(d, question=self.params["question"])
            for d in self.params["domains"]
        }
        # Read back from the finished rounds: what a new round must not
        # repeat, and which failures it may mutate.
        self.taken: set[str] = set()
        self.parents: dict[str, list[Case]] = {d: [] for d in self.sources}
        self.models: dict[str, Any] = {}
        self.backend: Any = None  # opened by the first round that runs
        self.clusters: list[dict[str, Any]] | None = None
        self.started = time.monotonic()
        self.elapsed_before = state.elapsed

    # --- the loop ---------------------------------------------------------------

    def go(self, *, report_every: int, progress: bool) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        with _locked(self.out):
            return self._go(report_every, progress)

    def _go(self, report_every: int, progress: bool) -> dict[str, Any]:
        from tqdm import tqdm

        self._restore()
        save_state(self.out, self.state)
        if self.state.rounds:
            self._report()
        cases_budget = self.state.budget.get("cases")
        with tqdm(
            total=cases_budget, initial=self.state.answered, disable=not progress,
            file=sys.stderr, unit="case", desc="fuzz", dynamic_ncols=True,
        ) as bar:  # fmt: skip
            try:
                self._show(bar)
                idle = 0
                while (size := self._next_size()) > 0:
                    before = self.state.answered
                    self._round(self.state.rounds + 1, size)
                    idle = idle + 1 if self.state.answered == before else 0
                    if idle == MAX_IDLE_ROUNDS:
                        raise SuiteError(
                            f"{self.out}: {idle} rounds in a row made no new "
                            "case; the domains' spaces look exhausted for this "
                            "task; stop here or fuzz more domains"
                        )
                    bar.update(self.state.answered - bar.n)
                    if self.state.rounds % report_every == 0:
                        self._report()
                    self._show(bar)
            except KeyboardInterrupt:
                self.state.status = "interrupted"
                self._save()
                raise
        self.state.status = "finished"
        self._save()
        if self.state.rounds:
            self._report()
        return self._summary()

    def _next_size(self) -> int:
        """The next round's size; 0 when the budget is spent."""
        budget, state = self.state.budget, self.state
        # A round whose suite is on disk is finished whatever the budget
        # says now: its answers so far are in the directory already.
        pending = self.out / "rounds" / f"{state.rounds + 1:04d}" / "suite"
        if (pending / "manifest.json").is_file():
            return self.params["round_size"]
        if (
            budget.get("hours") is not None
            and self._elapsed() >= budget["hours"] * 3600
        ):
            return 0
        size = self.params["round_size"]
        if budget.get("cases") is not None:
            size = min(size, budget["cases"] - state.answered)
        return max(size, 0)

    def _elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _save(self) -> None:
        self.state.elapsed = self._elapsed()
        save_state(self.out, self.state)

    def _round(self, number: int, size: int) -> None:
        round_dir = self.out / "rounds" / f"{number:04d}"
        suite = round_dir / "suite"
        if (suite / "manifest.json").is_file():
            cases, meta = _read_suite(suite)
            logger.info(
                "fuzz: round %d: finishing its run (%d cases)", number, len(cases)
            )
        else:
            cases, meta = self._make_round(number, size)
            _write_suite(suite, cases, meta)
        results = self._answer(suite, round_dir / "run")
        self._fold(cases, meta, results)
        self.state.rounds = number
        self._save()
        write_outputs(self.out, self.state, None)

    def _answer(self, suite: Path, run_dir: Path) -> list[Result]:
        from generator.run.journal import read_results
        from generator.run.runner import run_suite

        p = self.params
        if self.backend is None:
            from generator.run.backends import open_backend

            # One model for every round: loading it is seconds per round.
            options = {
                **p["backend_options"],
                "max_batch_tokens": p["max_batch_tokens"],
            }
            self.backend = open_backend(p["backend"], p["model"], options)
        run_suite(
            suite,
            model=p["model"],
            out_dir=run_dir,
            task=p["task"],
            batch_size=p["batch_size"],
            progress=False,
            scoring=p["scoring"],
            backend=p["backend"],
            max_batch_tokens=p["max_batch_tokens"],
            backend_options=p["backend_options"],
            opened=self.backend,
        )
        return list(read_results(run_dir / "results.jsonl"))

    # --- making a round ---------------------------------------------------------

    def _make_round(self, number: int, size: int) -> tuple[list[Case], dict]:
        """The round's cases and what its manifest says of how they were made."""
        seed = self.params["seed"]
        rnd = random.Random(derive_seed(seed, "round", number))
        grammar = [
            arm_key(d, "grammar", family)
            for d, source in self.sources.items()
            for family in source.families()
        ]
        mutation = [
            arm_key(d, "mutation", name)
            for d, source in self.sources.items()
            if self.parents[d]
            for name in source.mutators()
        ]
        picks = choose(
            grammar + mutation, self.state.arms, size, rnd,
            limited=set(mutation), limit=math.floor(size * MAX_MUTATION_SHARE),
        )  # fmt: skip
        log: OperatorLog = {}
        taken = set(self.taken)
        cases: list[Case] = []
        made: Counter[str] = Counter()
        for arm, wanted in picks.items():
            arm_seed = derive_seed(seed, "round", number, arm)
            for case in self._pull(arm, wanted, arm_seed, log):
                if case.id in taken or not self._fits(case):
                    continue
                taken.add(case.id)
                cases.append(case)
                made[arm] += 1
                if made[arm] == wanted:
                    break
        logger.info(
            "fuzz: round %d: %d cases from %d arms", number, len(cases), len(picks)
        )
        meta = {
            "round": number,
            "seed": derive_seed(seed, "round", number),
            "picks": picks,
            "made": dict(made),
            "operators": dict(sorted(log.items())),
        }
        return cases, meta

    def _fits(self, case: Case) -> bool:
        # The repair task answers unsafe cases only: a safe one would never
        # be answered, and the budget counts answers.
        return self.params["task"] != "repair" or case.truth.verdict == "unsafe"

    def _pull(
        self, arm: str, wanted: int, seed: int, log: OperatorLog
    ) -> Iterator[Case]:
        domain, method, name = split_arm(arm)
        source = self.sources[domain]
        if method == "grammar":
            # A few spare draws: Hypothesis revisits simple examples.
            yield from source.draw(name, wanted + max(2, wanted // 4), seed, log)
            return
        rnd = random.Random(seed)
        parents = self.parents[domain]
        for attempt in range(MUTATION_TRIES * wanted):
            parent = parents[rnd.randrange(len(parents))]
            model = self._read(source, parent)
            if model is None:
                continue
            case = source.mutate(parent, model, name, derive_seed(seed, attempt), log)
            if case is not None:
                yield case

    def _read(self, source: Source, parent: Case) -> Any:
        if parent.id not in self.models:
            self.models[parent.id] = source.read(parent)
        return self.models[parent.id]

    # --- folding results in -----------------------------------------------------

    def _fold(self, cases: list[Case], meta: dict, results: list[Result]) -> None:
        """Add one finished round to the counts, parents and taken ids."""
        state = self.state
        for arm, pulls in meta["picks"].items():
            state.arms.setdefault(arm, ArmStats()).pulls += pulls
        for name, entry in meta["operators"].items():
            counts = _operator(state, name)
            counts["calls"] += entry["calls"]
            counts["applied"] += entry["applied"]
        answers = {result.case_id: result for result in results}
        # In id order, as the suite file has them: a resumed fuzz reads
        # them back in that order, and the parents' order steers mutation.
        for case in sorted(cases, key=lambda c: c.id):
            self.taken.add(case.id)
            result = answers.get(case.id)
            failed = result is not None and not result.correct
            arm = state.arms.setdefault(arm_of(case), ArmStats())
            arm.cases += 1
            arm.answered += result is not None
            arm.failures += failed
            family = state.families.setdefault(
                f"{case.domain}/{case.family}",
                {"cases": 0, "answered": 0, "failures": 0},
            )
            operators = [
                _operator(state, op) for op in dict.fromkeys(case.origin.operators)
            ]
            for counts in (family, *operators):
                counts["cases"] += 1
                counts["answered"] += result is not None
                counts["failures"] += failed
            if result is None:
                continue
            state.answered += 1
            state.truth[case.truth.verdict] += 1
            if failed:
                state.failures += 1
                state.failure_kinds[result.failure or "wrong"] += 1
                self.parents[case.domain].append(case)

    def _restore(self) -> None:
        """Read the finished rounds back: taken ids and parents.

        The counts in fuzz.json already hold these rounds; they are read
        into a scratch state, which must agree with them (a check that the
        directory was not edited behind the fuzz's back).
        """
        scratch = FuzzState(params=self.params, budget={})
        real, self.state = self.state, scratch
        try:
            for number in range(1, real.rounds + 1):
                round_dir = self.out / "rounds" / f"{number:04d}"
                cases, meta = _read_suite(round_dir / "suite")
                results = _read_results(round_dir / "run")
                self._fold(cases, meta, results)
        finally:
            self.state = real
        if (scratch.answered, scratch.failures) != (real.answered, real.failures):
            raise SuiteError(
                f"{self.out}: its rounds hold {scratch.answered} answers and "
                f"{scratch.failures} failures, fuzz.json {real.answered} and "
                f"{real.failures}; the directory was changed; fuzz into another --out"
            )
        # A torn suite of the next round (written, not yet renamed) is redone.
        partial = self.out / "rounds" / f"{real.rounds + 1:04d}" / "suite.partial"
        if partial.exists():
            shutil.rmtree(partial)
        later = self.out / "rounds" / f"{real.rounds + 2:04d}"
        if later.exists():
            raise SuiteError(
                f"{later}: exists but fuzz.json has {real.rounds} rounds; the "
                "directory was changed; fuzz into another --out"
            )

    # --- progress and reports -----------------------------------------------------

    def _report(self) -> None:
        """Refresh report.md: ``spotcheck report`` of the fuzz directory, which
        reads every round's run as one run, under the fuzz's own summary."""
        from generator.report import build_report

        report = build_report([self.out])
        (run,) = report["runs"]
        self.clusters = run["clusters"]
        write_outputs(self.out, self.state, report)

    def _show(self, bar: Any) -> None:
        state = self.state
        rate = state.failures / state.answered if state.answered else 0.0
        top = "; ".join(top_lines(state, self.clusters))
        bar.set_postfix_str(
            f"round {state.rounds}, failures {state.failures} ({rate:.0%})"
            + (f", top: {top}" if top else "")
        )

    def _summary(self) -> dict[str, Any]:
        state = self.state
        return {
            "out": str(self.out),
            "status": state.status,
            "rounds": state.rounds,
            "answered": state.answered,
            "failures": state.failures,
            "elapsed_seconds": round(state.elapsed, 1),
            "top": top_lines(state, self.clusters),
            "clusters": len(self.clusters or []),
        }


def _operator(state: FuzzState, name: str) -> dict[str, int]:
    return state.operators.setdefault(
        name, {"calls": 0, "applied": 0, "cases": 0, "answered": 0, "failures": 0}
    )


# --- round files ------------------------------------------------------------------


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/fuzz.lock`` for a session: a second fuzz into the same
    directory would make the same round twice. The kernel drops the lock
    when the process dies, kill -9 included, so a crash never blocks a
    resume."""
    fd = os.open(out / "fuzz.lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SuiteError(
                f"{out} is being fuzzed by another spotcheck process; wait for it "
                "or fuzz into another --out"
            ) from None
        yield
    finally:
        os.close(fd)


def _write_suite(suite: Path, cases: list[Case], meta: dict[str, Any]) -> None:
    """The round's suite, written beside and renamed: whole or absent."""
    partial = suite.with_name("suite.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    body = "".join(dumps_line(c) for c in sorted(cases, key=lambda c: c.id))
    counts: dict[str, Counter[str]] = {
        k: Counter() for k in ("family", "verdict", "method")
    }
    for case in cases:
        counts["family"][case.family] += 1
        counts["verdict"][case.truth.verdict] += 1
        counts["method"][case.origin.method] += 1
    manifest = {
        "domains": sorted({c.domain for c in cases}),
        "cases": len(cases),
        "cases_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "seed": meta["seed"],
        "fuzz": meta,
    }
    _write_synced(partial / "cases.jsonl", body)
    _write_synced(
        partial / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )
    os.replace(partial, suite)
    _fsync_directory(suite.parent)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_suite(suite: Path) -> tuple[list[Case], dict[str, Any]]:
    from generator.rundata import iter_cases

    try:
        manifest = json.loads((suite / "manifest.json").read_text(encoding="utf-8"))
        meta = manifest["fuzz"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SuiteError(f"{suite}: not a fuzz round's suite ({exc!r})") from None
    return list(iter_cases(suite)), meta


def _read_results(run_dir: Path) -> list[Result]:
    from generator.run.journal import read_results

    path = run_dir / "results.jsonl"
    return list(read_results(path)) if path.exists() else []
