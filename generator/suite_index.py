"""What a report needs of each case of a suite, read once per suite.

A report joins every result of a run with its case. At a million cases,
parsing the case lines is most of a report's time, and it is the same work
for every run on that suite: each checkpoint of a release, each shard, a run
and its baseline. The index keeps that work: per case line its id, byte
offset, config size, verdict and feature numbers (``CaseRows``), the case
values the report's counts use (family, violated rules) and its siblings.

It is stored in the cache directory (``$SPOTCHECK_CACHE/suites``, else
``~/.cache/spotcheck/suites``) under the suite's sha256, so a changed suite
never meets an old index, and a copy of a suite finds its original's. A
suite with any line that is not a whole case gets no index: the report then
reads it line by line, which gives the precise error for the line a result
needs, and tolerates the lines none does. The cache may be deleted at any
time; it is rebuilt when next needed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.cluster import CaseRows, case_key
from generator.rundata import Run, _Answers, _lines, _loads, _sha256, _tasks

__all__ = ["Joined", "SuiteIndex", "index_path", "join", "suite_index"]

logger = logging.getLogger(__name__)

# Raised when what an index holds, or how CaseRows numbers features, changes:
# an index of another version is rebuilt, never read.
INDEX_VERSION = 1

# What CaseRows.add needs of a result: the index is of cases only.
_NO_FAILURE = {"correct": True}
# What a case line can get wrong (as ``rundata._add`` catches).
_BAD_CASE = (KeyError, TypeError, ValueError, AttributeError)


@dataclass
class SuiteIndex:
    """One suite's case lines, in file order.

    ``keys[row]`` numbers the row's (verdict, family, violated rules) in
    ``key_table``; ``siblings`` holds the rows that have siblings.
    """

    rows: CaseRows
    offsets: np.ndarray
    keys: np.ndarray
    key_table: list[tuple[str, str, tuple[str, ...]]]
    siblings: dict[int, dict[str, Any]]

    def __len__(self) -> int:
        return len(self.rows)


def index_path(digest: str) -> Path:
    """Where the index of the suite whose cases.jsonl has this sha256 lives."""
    base = os.environ.get("SPOTCHECK_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "spotcheck"
    return root / "suites" / f"{digest}-v{INDEX_VERSION}.npz"


def suite_index(cases: Path, digest: str, *, jobs: int = 1) -> SuiteIndex | None:
    """The suite's index, from the cache or read now (and cached); None
    when a line of the suite is not a whole case or an id repeats, or the
    file no longer has the sha256 ``digest`` once read."""
    path = index_path(digest)
    if path.is_file():
        try:
            return _load(path)
        except Exception as exc:  # noqa: BLE001 - any damage: read the suite again
            logger.warning(
                "%s: unreadable suite index (%s); reading the suite again",
                path,
                type(exc).__name__,
            )
    started = time.monotonic()
    index = _build(cases, jobs)
    if index is None:
        return None
    # Filed under the sha256 the run checked: only if the bytes just read
    # still have it (a suite edited during the report must not poison it).
    if _sha256(cases) != digest:
        logger.warning("%s changed while it was read; no index made", cases)
        return None
    logger.info(
        "index of %s: %d cases in %.1f s", cases, len(index), time.monotonic() - started
    )
    try:
        _save(index, path)
    except OSError as exc:
        logger.info("%s: index not cached (%s)", path, exc)
    return index


@dataclass
class Joined:
    """A run's answers (``answers.fields`` per answer) and, per suite file,
    its index, the rows answered and the numbers of their answers."""

    answers: _Answers
    suites: list[tuple[SuiteIndex, np.ndarray, np.ndarray]]


def join(run: Run, *, jobs: int = 1) -> Joined | None:
    """Every answer of the run with its case's row in its suite's index;
    None when a suite has no index (see the module docstring). Raises
    SuiteError as ``scan_records`` does for an answer to a case the suite
    lacks."""
    owners: dict[Path, list[int]] = {}
    for number, member in enumerate(run.members):
        owners.setdefault(member.suite_dir / "cases.jsonl", []).append(number)
    indexes = {}
    for cases in owners:
        digest = run.indexes.digest(cases)
        index = suite_index(cases, digest, jobs=jobs)
        if index is None:
            return None
        indexes[cases] = (digest, index)
    answers = _Answers.parsed(run, jobs=jobs)

    parts = np.frombuffer(answers.part, dtype=np.int32)
    suites, hits = [], []
    for cases, members in owners.items():
        digest, index = indexes[cases]
        numbers = np.flatnonzero(np.isin(parts, members))
        position = dict(zip(index.rows.ids, range(len(index)), strict=True))
        rows = np.array(
            [position.get(answers.ids[n], -1) for n in numbers.tolist()],
            dtype=np.int64,
        )
        found = rows >= 0
        hits.append(numbers[found].tolist())
        # In suite order: the order rows come in changes nothing counted.
        ascending = np.argsort(rows[found], kind="stable")
        suites.append((index, rows[found][ascending], numbers[found][ascending]))
        # The suite's offsets as its index holds them, so that examples are
        # found with no pass over the file (``Run.case``).
        run.indexes.by_digest.setdefault(digest, _Offsets(position, index.offsets))
    answers.check(hits)  # every answer found its case, or the error says which
    return Joined(answers, suites)


class _Offsets(Mapping[str, int]):
    """Case id -> byte offset of its line, from an index."""

    def __init__(self, position: dict[str, int], offsets: np.ndarray) -> None:
        self.position, self.offsets = position, offsets

    def __getitem__(self, case_id: str) -> int:
        return int(self.offsets[self.position[case_id]])

    def __iter__(self) -> Iterator[str]:
        return iter(self.position)

    def __len__(self) -> int:
        return len(self.position)


# --- reading a suite ---------------------------------------------------------


def _build(cases: Path, jobs: int) -> SuiteIndex | None:
    """Every case line, in ``jobs`` forked processes where it pays."""
    tasks = _tasks([cases], jobs)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if len(tasks) <= 1 or not can_fork:
        parts = [_read(task) for task in tasks]
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(tasks), mp_context=context) as pool:
            parts = list(pool.map(_read, tasks))
    if any(part is None for part in parts):
        return None
    index = _merge(parts) if parts else _empty()
    if len(set(index.rows.ids)) != len(index):
        return None  # a case on two lines: the line-by-line read says so
    return index


def _read(task: list[tuple[Path, int, int | None]]) -> SuiteIndex | None:
    """One stretch of a suite file; None at its first line that is not a case."""
    rows, offsets, keys = CaseRows(), [], []
    table: dict[tuple, int] = {}
    siblings: dict[int, dict[str, Any]] = {}
    for path, start, end in task:
        for offset, line in _lines(path, start, end):
            if not line or line.isspace():
                continue
            try:
                case = _loads(line)
                rows.add(case, _NO_FAILURE)
                key = case_key(case)
                related = case.get("siblings")
                if not isinstance(case["id"], str) or not isinstance(
                    related or {}, dict
                ):
                    raise TypeError("an id or siblings of another type")
                if related:
                    siblings[len(offsets)] = related
            except _BAD_CASE:
                logger.info("%s: a line at byte %d is not a case", path, offset)
                return None
            offsets.append(offset)
            keys.append(table.setdefault(key, len(table)))
    return SuiteIndex(
        rows,
        np.array(offsets, dtype=np.int64),
        np.array(keys, dtype=np.int32),
        list(table),
        siblings,
    )


def _merge(parts: list[SuiteIndex]) -> SuiteIndex:
    """Stretches read in file order, as one index."""
    first = parts[0]
    table = {key: n for n, key in enumerate(first.key_table)}
    keys, siblings = [first.keys], dict(first.siblings)
    for part in parts[1:]:
        count = len(first.rows)
        first.rows.merge(part.rows)
        renumber = np.array(
            [table.setdefault(key, len(table)) for key in part.key_table],
            dtype=np.int32,
        )
        keys.append(renumber[part.keys] if len(part.keys) else part.keys)
        siblings.update((row + count, value) for row, value in part.siblings.items())
    offsets = np.concatenate([part.offsets for part in parts])
    return SuiteIndex(first.rows, offsets, np.concatenate(keys), list(table), siblings)


def _empty() -> SuiteIndex:
    empty = np.zeros(0, dtype=np.int64)
    return SuiteIndex(CaseRows(), empty, empty.astype(np.int32), [], {})


# --- the cache file ----------------------------------------------------------


def _save(index: SuiteIndex, path: Path) -> None:
    """Written beside its place and renamed into it: never half a file."""
    columns = index.rows.columns()
    meta = {
        "ids": columns["ids"],
        "verdicts": columns["verdicts"],
        "features": columns["features"],
        "key_table": index.key_table,
        "siblings": {str(row): value for row, value in index.siblings.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.stem, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(
                out,
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                sizes=columns["sizes"],
                flat=columns["flat"],
                ends=columns["ends"],
                offsets=index.offsets,
                keys=index.keys,
            )
        os.chmod(temporary, 0o644)  # a cache others on the machine may share
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path: Path) -> SuiteIndex:
    """An index as ``_save`` wrote it; any exception means a damaged file."""
    with np.load(path, allow_pickle=False) as data:
        meta = _loads(data["meta"].tobytes())
        columns = {name: data[name] for name in ("sizes", "flat", "ends")}
        offsets, keys = data["offsets"], data["keys"]
    columns.update(ids=meta["ids"], verdicts=meta["verdicts"])
    columns["features"] = meta["features"]
    table = [(v, f, tuple(rules)) for v, f, rules in meta["key_table"]]
    siblings = {int(row): value for row, value in meta["siblings"].items()}
    _check(columns, offsets, keys, table, siblings)
    rows = CaseRows.from_columns(columns)
    return SuiteIndex(rows, offsets, keys, table, siblings)


def _check(columns: dict, offsets, keys, table: list, siblings: dict) -> None:
    """Raise ValueError unless the columns fit together as ``_save`` left them."""
    count, flat, ends = len(columns["ids"]), columns["flat"], columns["ends"]
    fits = (
        all(isinstance(i, str) for i in columns["ids"])
        and len(set(columns["ids"])) == count
        and len(columns["verdicts"]) == len(columns["sizes"]) == len(ends) == count
        and len(offsets) == len(keys) == count
        and keys.dtype.kind == "i"
        and flat.dtype.kind == "i"
        and ends.dtype.kind == "i"
        and (count == 0 or 0 <= keys.min() <= keys.max() < len(table))
        and (len(flat) == 0 or 0 <= flat.min() <= flat.max() < len(columns["features"]))
        and bool(np.all(np.diff(ends, prepend=0) >= 0))
        and (count == 0 or int(ends[-1]) == len(flat))
        and all(0 <= row < count and isinstance(v, dict) for row, v in siblings.items())
    )
    if not fits:
        raise ValueError("columns that do not fit together")
