"""Reading a finished run: its run.json, the suite it ran on, and its results.

``report``, ``cluster`` and ``export`` all need the same thing: each result
of a run next to the case it answered. A run directory holds
``results.jsonl`` and ``run.json``; the cases live in the suite directory
that ``run.json`` names. Two rules shape this module:

* The suite must be the one the run saw. ``run.json`` records the sha256 of
  ``cases.jsonl``; a suite regenerated or edited since then would silently
  pair answers with other configs, so a mismatch is a ``SuiteError``.
* Nothing holds a whole run in memory. The one pass that hashes
  ``cases.jsonl`` also notes where each case's line starts, and results are
  joined to their case by seeking to that line.

A million-case suite is about 3 GB, so the hash runs in a thread beside the
pass that finds each line's id (without parsing the line when it has the
compact form ``dumps_line`` writes), and ``scan_pairs`` reads stretches of
``results.jsonl`` in parallel worker processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from generator.errors import SuiteError
from generator.records import Case, Result

__all__ = ["Run", "iter_cases", "load_run", "scan_records"]

logger = logging.getLogger(__name__)

# The keys downstream stages rely on; anything else in run.json is kept as is.
REQUIRED_RUN_KEYS = ("suite", "suite_sha256", "model", "task")


@dataclass
class Run:
    """One run directory, checked against its suite and ready to stream.

    ``offsets`` maps a case id to the byte offset of its line in the suite's
    ``cases.jsonl``; ``meta`` is run.json as read.
    """

    run_dir: Path
    suite_dir: Path
    meta: dict[str, Any]
    offsets: dict[str, int] = field(repr=False)

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def template(self) -> str | None:
        """The prompt template as ``id@version``, None if run.json has none.

        The runner writes ``"template": {"id", "version"}``; flat
        ``template_id``/``template_version`` keys are read too.
        """
        template = self.meta.get("template")
        if isinstance(template, dict) and "id" in template:
            return f"{template['id']}@{template.get('version')}"
        if "template_id" in self.meta:
            return f"{self.meta['template_id']}@{self.meta.get('template_version')}"
        return None

    def pairs(self) -> Iterator[tuple[Case, Result]]:
        """Each result of the run with its case, in results.jsonl order.

        A case answered twice (a resumed run that repeated a line) counts
        once: the first answer stands, as the runner wrote it first.
        """
        path = self.run_dir / "results.jsonl"
        for number, case, result in self.records():
            yield (
                _record(Case.from_dict, case, path, number),
                _record(Result.from_dict, result, path, number),
            )

    def records(
        self, stretch: tuple[int, int | None, int] = (0, None, 1), firsts=None
    ) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
        """``pairs`` as the JSON objects read, with the result's line number.

        Cheaper than building records, for passes over millions of results;
        a malformed record surfaces as KeyError or TypeError in the caller.
        ``stretch`` is (first byte, end byte or None, its first line number)
        of results.jsonl; ``firsts`` the line of each case's first answer,
        when other stretches are read elsewhere.
        """
        seen: set[str] = set()
        results_path = self.run_dir / "results.jsonl"
        with open(self.suite_dir / "cases.jsonl", "rb") as cases:
            for number, result in _json_lines(results_path, *stretch):
                case_id = _record(_case_id, result, results_path, number)
                again = (
                    case_id in seen
                    if firsts is None
                    else firsts.get(case_id, number) != number
                )
                if again:
                    logger.warning(
                        "%s:%d: case %s answered again; keeping the first answer",
                        results_path,
                        number,
                        case_id,
                    )
                    continue
                if firsts is None:
                    seen.add(case_id)
                yield number, self._case(cases, case_id, number), result

    def case(self, case_id: str) -> Case:
        """One case of the suite, by id."""
        with open(self.suite_dir / "cases.jsonl", "rb") as cases:
            path = self.suite_dir / "cases.jsonl"
            return _record(Case.from_dict, self._case(cases, case_id, 0), path, 0)

    def _case(self, cases: Any, case_id: str, number: int) -> dict[str, Any]:
        offset = self.offsets.get(case_id)
        if offset is None:
            raise SuiteError(
                f"{self.run_dir / 'results.jsonl'}:{number}: case {case_id} is "
                f"not in suite {self.suite_dir}; the run belongs to another suite"
            )
        cases.seek(offset)
        case = json.loads(cases.readline())
        if not isinstance(case, dict) or case.get("id") != case_id:
            # Only possible if the quick id scan in _hash_and_index misread
            # a hand-written line; never pair an answer with another case.
            raise SuiteError(
                f"{self.suite_dir / 'cases.jsonl'}: the line indexed for case "
                f"{case_id} does not hold it; rewrite the suite's lines with "
                "spotcheck"
            )
        return case


def _case_id(result: dict[str, Any]) -> str:
    case_id = result["case_id"]
    if not isinstance(case_id, str):
        raise TypeError(f"case_id={case_id!r} is not a string")
    return case_id


def load_run(run_dir: Path) -> Run:
    """Read ``run_dir/run.json`` and check the suite it names is unchanged.

    Raises ``SuiteError`` when a file is missing or unreadable, or when the
    suite's ``cases.jsonl`` no longer has the sha256 the run recorded.
    """
    run_dir = Path(run_dir)
    meta = _run_meta(run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise SuiteError(f"{run_dir}: no results.jsonl; is this a run directory?")

    # run.json stores an absolute path; a relative one is read from the run
    # directory so a copied run+suite pair still works.
    suite_dir = Path(meta["suite"])
    if not suite_dir.is_absolute():
        suite_dir = (run_dir / suite_dir).resolve()
    cases_path = suite_dir / "cases.jsonl"
    if not cases_path.is_file():
        raise SuiteError(
            f"{run_dir}: its suite {suite_dir} has no cases.jsonl; "
            "restore the suite the run was made from"
        )

    digest, offsets = _hash_and_index(cases_path)
    if digest != meta["suite_sha256"]:
        raise SuiteError(
            f"{run_dir}: suite {suite_dir} changed since the run: cases.jsonl "
            f"has sha256 {digest[:12]}…, run.json recorded "
            f"{str(meta['suite_sha256'])[:12]}…; restore that suite or run "
            "the model on the new one"
        )
    logger.info("run %s: suite %s, %d cases", run_dir, suite_dir, len(offsets))
    return Run(run_dir, suite_dir, meta, offsets)


def iter_cases(suite_dir: Path) -> Iterator[Case]:
    """Every case of a suite, streamed from its ``cases.jsonl``."""
    path = Path(suite_dir) / "cases.jsonl"
    if not path.is_file():
        raise SuiteError(f"{suite_dir}: no cases.jsonl; is this a suite directory?")
    for number, data in _json_lines(path):
        yield _record(Case.from_dict, data, path, number)


def _run_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{run_dir}: no run.json; is this a run directory?") from None
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise SuiteError(f"{path}: not a JSON object; rerun `spotcheck run`")
    missing = [key for key in REQUIRED_RUN_KEYS if key not in meta]
    if missing:
        raise SuiteError(f"{path}: missing keys {missing}; rerun `spotcheck run`")
    return meta


def _hash_and_index(path: Path) -> tuple[str, dict[str, int]]:
    """The file's sha256 and the offset of each case line, in one read.

    The hash is computed in a thread (hashlib releases the GIL on large
    blocks) while this one finds the ids.
    """
    digest = hashlib.sha256()
    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)

    def hash_blocks() -> None:
        while (block := blocks.get()) is not None:
            digest.update(block)

    hasher = threading.Thread(target=hash_blocks, daemon=True)
    hasher.start()
    offsets: dict[str, int] = {}
    offset, number = 0, 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                if not block.endswith(b"\n"):
                    block += handle.readline()
                blocks.put(block)
                lines = block.split(b"\n")
                if lines[-1] == b"":
                    lines.pop()
                for line in lines:
                    number += 1
                    if line.strip():
                        case_id = _quick_id(line, b'"id":"')
                        offsets[case_id or _parsed_id(line, path, number)] = offset
                    offset += len(line) + 1
    finally:
        blocks.put(None)
        hasher.join()
    return digest.hexdigest(), offsets


def _quick_id(line: bytes, key: bytes) -> str | None:
    """The id of a compact JSON line without parsing it, or None if unsure.

    In compact JSON ``"id":"`` can only be a key followed by its string
    value (a quote inside a string is escaped). When it occurs exactly once
    it is the top-level id; an escape in the value needs the real parser.
    """
    at = line.find(key)
    if at < 0 or line.find(key, at + 1) >= 0:
        return None
    start = at + len(key)
    end = line.find(b'"', start)
    value = line[start:end]
    if end < 0 or b"\\" in value:
        return None
    return value.decode("utf-8")


def _parsed_id(line: bytes, path: Path, number: int) -> str:
    try:
        return json.loads(line)["id"]
    except (ValueError, KeyError, TypeError):
        raise SuiteError(f"{path}:{number}: not a case line") from None


def _json_lines(
    path: Path, start: int = 0, stop: int | None = None, first: int = 1
) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        for number, line in enumerate(handle, start=first):
            if stop is not None and offset >= stop:
                return
            offset += len(line)
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                # A run killed mid-write leaves a last line with no newline;
                # the runner redoes that case on resume, the report skips it.
                if not line.endswith(b"\n"):
                    logger.warning("%s:%d: torn last line skipped", path, number)
                    return
                raise SuiteError(f"{path}:{number}: not JSON: {exc}") from None


# --- reading a run in parallel ---------------------------------------------------


class Accumulator(Protocol):
    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None: ...


A = TypeVar("A", bound=Accumulator)

# What forked workers inherit: the run, the accumulator factory, the line
# of each case's first answer. Set only while a scan runs.
_SHARED: tuple[Run, Callable[[], Any], dict[str, int]] | None = None


def scan_records(
    run: Run, make: Callable[[], A], *, jobs: int = 1, min_bytes: int = 1 << 25
) -> list[A]:
    """Every (case, result) of the run, as read (``Run.records``), added to
    accumulators from ``make``.

    Returns one accumulator per stretch of results.jsonl, in file order; the
    caller merges them. With ``jobs`` > 1 and a results file of at least
    ``min_bytes``, stretches are read by that many forked processes (where
    the platform can fork); otherwise by this one, as ``Run.pairs``.
    """
    global _SHARED
    path = run.run_dir / "results.jsonl"
    size = path.stat().st_size
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if jobs <= 1 or size < min_bytes or not can_fork:
        return [_scan_stretch((0, None, 1), run, make, None)]

    stretches, firsts = _stretches(path, jobs)
    logger.info("scan %s: %d stretches in %d processes", path, len(stretches), jobs)
    _SHARED = (run, make, firsts)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            return list(pool.map(_scan_forked, stretches))
    finally:
        _SHARED = None


def _scan_forked(stretch: tuple[int, int | None, int]) -> Any:
    assert _SHARED is not None
    return _scan_stretch(stretch, *_SHARED)


def _scan_stretch(stretch, run: Run, make: Callable[[], A], firsts) -> A:
    accumulator = make()
    path = run.run_dir / "results.jsonl"
    for number, case, result in run.records(stretch, firsts):
        try:
            accumulator.add(case, result)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SuiteError(
                f"{path}:{number}: malformed record (or its case): {exc!r}"
            ) from None
    return accumulator


def _stretches(
    path: Path, jobs: int
) -> tuple[list[tuple[int, int | None, int]], dict[str, int]]:
    """``jobs`` stretches of whole lines, and the line of each case's first
    answer (so a repeated answer is dropped whichever stretch holds it)."""
    size = path.stat().st_size
    cuts = [size * k // jobs for k in range(1, jobs)]
    stretches: list[tuple[int, int | None, int]] = []
    firsts: dict[str, int] = {}
    start, first, offset, number = 0, 1, 0, 0
    with open(path, "rb") as handle:
        for line in handle:
            number += 1
            if cuts and offset >= cuts[0]:
                stretches.append((start, offset, first))
                start, first = offset, number
                while cuts and offset >= cuts[0]:
                    cuts.pop(0)
            offset += len(line)
            case_id = _quick_id(line, b'"case_id":"')
            if case_id is None:
                try:
                    case_id = json.loads(line)["case_id"]
                except (ValueError, KeyError, TypeError):
                    continue  # the stretch's reader reports it, with its line
            firsts.setdefault(case_id, number)
    stretches.append((start, None, first))
    return stretches, firsts


def _record(build: Any, data: dict[str, Any], path: Path, number: int) -> Any:
    try:
        return build(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None
