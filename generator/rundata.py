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
compact form ``dumps_line`` writes), and ``scan_records`` reads stretches of
``results.jsonl`` in parallel worker processes.

One run can span several directories, read as one ``Run`` by ``load_runs``:

* the shards of a sharded run (``spotcheck run --shard I/N``; run.json
  records ``"shard": [I, N]``), which must agree on N, the suite, task,
  model, template, limit and scoring rule; the run is finished once all N
  shards are there and finished;
* the rounds of a fuzz directory (one with ``fuzz.json``; its runs are
  ``rounds/*/run``, see ``run_dirs_of``), each on its own suite, which must
  agree on task, model, template and scoring rule.

Their suites are hashed and indexed once each, however many directories
ran on them. A case answered in two of the directories counts once, in the
first (shard or round order), as a case answered twice in one does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from generator.errors import InvalidArgument, SuiteError
from generator.records import Case, Result

__all__ = [
    "Run",
    "iter_cases",
    "load_run",
    "load_runs",
    "run_dirs_of",
    "scan_records",
]

logger = logging.getLogger(__name__)

try:  # A report reads a million case lines; orjson parses them ~3.5x faster.
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency
    _fast_loads = json.loads


def _loads(line: bytes) -> Any:
    """``json.loads``, fast: what orjson refuses (NaN, huge integers, lone
    surrogates, all of which Python's json reads) goes to json instead."""
    try:
        return _fast_loads(line)
    except ValueError:
        return json.loads(line)


# The keys downstream stages rely on; anything else in run.json is kept as is.
REQUIRED_RUN_KEYS = ("suite", "suite_sha256", "model", "task")

# (first byte, end byte or None, first line number) of a results.jsonl.
_WHOLE: tuple[int, int | None, int] = (0, None, 1)


@dataclass
class Run:
    """A run ready to stream: one run directory checked against its suite, or
    several read as one (a sharded run's shards, a fuzz directory's rounds).

    ``offsets`` maps a case id to the byte offset of its line in the suite's
    ``cases.jsonl``; ``meta`` is run.json as read. A run of several
    directories holds them in ``parts`` (shard or round order); its
    ``run_dir``, ``suite_dir`` and ``offsets`` are its first part's, its
    ``meta`` is run.json of the whole (see ``load_runs``), and ``name`` is
    what it was named by (the fuzz directory, or the shard directories).
    """

    run_dir: Path
    suite_dir: Path
    meta: dict[str, Any]
    offsets: dict[str, int] = field(repr=False)
    parts: tuple[Run, ...] = field(default=(), repr=False)
    name: str = ""

    @property
    def members(self) -> tuple[Run, ...]:
        """The run directories read, each as a Run: the parts, or this run."""
        return self.parts or (self,)

    @property
    def label(self) -> str:
        """The run as a reader should know it: its directory, or ``name``."""
        return self.name or str(self.run_dir)

    @property
    def suites(self) -> list[tuple[Path, str]]:
        """Each suite the run saw, with its sha256, once, in part order."""
        seen: dict[str, Path] = {}
        for part in self.members:
            seen.setdefault(str(part.meta["suite_sha256"]), part.suite_dir)
        return [(suite, digest) for digest, suite in seen.items()]

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
        """Each result of the run with its case, in results.jsonl order
        (part after part).

        A case answered twice (a resumed run that repeated a line) counts
        once: the first answer stands, as the runner wrote it first.
        """
        seen: set[str] = set()
        for part in self.members:
            path = part.run_dir / "results.jsonl"
            for number, case, result in part._read(_WHOLE, None, seen):
                yield (
                    _record(Case.from_dict, case, path, number),
                    _record(Result.from_dict, result, path, number),
                )

    def records(self) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
        """``pairs`` as the JSON objects read, with the result's line number.

        Cheaper than building records, for passes over millions of results;
        a malformed record surfaces as KeyError or TypeError in the caller.
        """
        seen: set[str] = set()
        for part in self.members:
            yield from part._read(_WHOLE, None, seen)

    def _read(
        self,
        stretch: tuple[int, int | None, int],
        firsts: dict[str, int] | None,
        seen: set[str],
    ) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
        """One directory's stretch of results.jsonl (first byte, end byte or
        None, its first line number), each result with its case.

        A repeated case is told by ``seen`` (the ids read so far, added to
        here) or, when other stretches are read elsewhere, by ``firsts``: the
        line of each case's first answer (0 when it is in an earlier part),
        and then ``seen`` is left alone.
        """
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
        """One case of the run's suites, by id."""
        part = next((p for p in self.members if case_id in p.offsets), self)
        path = part.suite_dir / "cases.jsonl"
        with open(path, "rb") as cases:
            return _record(Case.from_dict, part._case(cases, case_id, 0), path, 0)

    def _case(self, cases: Any, case_id: str, number: int) -> dict[str, Any]:
        offset = self.offsets.get(case_id)
        if offset is None:
            raise SuiteError(
                f"{self.run_dir / 'results.jsonl'}:{number}: case {case_id} is "
                f"not in suite {self.suite_dir}; the run belongs to another suite"
            )
        cases.seek(offset)
        case = _loads(cases.readline())
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


def run_dirs_of(path: Path) -> list[Path]:
    """The run directories under ``path``: ``[path]`` for a run directory; for
    a fuzz directory (one with ``fuzz.json``) its rounds' runs, sorted, that
    have a run.json (``DIR/rounds/0001/run``, ...)."""
    path = Path(path)
    if not (path / "fuzz.json").is_file():
        return [path]
    runs = [
        run for run in (path / "rounds").glob("*/run") if (run / "run.json").is_file()
    ]
    # By round number: past round 9999 the names outgrow their zero padding.
    return sorted(runs, key=lambda run: (_round_number(run.parent.name), run))


def _round_number(name: str) -> int:
    return int(name) if name.isdigit() else -1


def load_run(run_dir: Path) -> Run:
    """Read ``run_dir/run.json`` and check the suite it names is unchanged.

    A fuzz directory is read as the one run of its rounds (see
    ``load_runs``). Raises ``SuiteError`` when a file is missing or
    unreadable, or when the suite's ``cases.jsonl`` no longer has the sha256
    the run recorded.
    """
    run_dir = Path(run_dir)
    if (run_dir / "fuzz.json").is_file():
        (run,) = load_runs([run_dir])
        return run
    return _open_run(run_dir, _run_meta(run_dir), _Indexes())


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """The runs ``paths`` name, the directories of one run read as one.

    A run directory is a run of its own, except a shard's: every shard
    directory among ``paths`` belongs to one sharded run, which takes the
    place of its first-named shard. A fuzz directory is one run of its
    rounds. The directories of one run must agree (see the module
    docstring); ``InvalidArgument`` names two that do not, and what differs.
    Every run.json is read and checked before any suite is hashed.
    """
    # Which directories make which run, from their run.json alone.
    groups: list[tuple[str, str, list[tuple[Path, dict[str, Any]]]]] = []
    shards: list[tuple[Path, dict[str, Any]]] = []
    for path in map(Path, paths):
        if (path / "fuzz.json").is_file():
            rounds = [(d, _run_meta(d)) for d in run_dirs_of(path)]
            if not rounds:
                raise SuiteError(
                    f"{path}: fuzz directory without a round yet (no "
                    "rounds/*/run/run.json); report it after its first round"
                )
            groups.append(("fuzz", str(path), rounds))
            continue
        meta = _run_meta(path)
        if _shard_of(path, meta) is None:
            groups.append(("run", "", [(path, meta)]))
            continue
        # The first shard places the sharded run; later ones join it.
        if not shards:
            groups.append(("shards", "", shards))
        shards.append((path, meta))
    for kind, name, members in groups:
        if kind != "run":
            _check_parts(kind, name, members)

    indexes = _Indexes()
    runs = []
    for kind, name, members in groups:
        if kind == "shards":
            members = sorted(members, key=lambda m: _shard_of(*m) or (0, 0))
        parts = [_open_run(path, meta, indexes) for path, meta in members]
        runs.append(parts[0] if kind == "run" else _combined(kind, name, parts))
    return runs


def _shard_of(run_dir: Path, meta: dict[str, Any]) -> tuple[int, int] | None:
    """``(i, n)`` from run.json's ``"shard": [i, n]``; None for no shard."""
    shard = meta.get("shard")
    if shard is None:
        return None
    ok = (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
        and 1 <= shard[0] <= shard[1]
    )
    if not ok:
        raise SuiteError(
            f"{run_dir / 'run.json'}: shard={shard!r} is not [i, n] with "
            "1 <= i <= n; rerun the shard with `spotcheck run --shard I/N`"
        )
    return shard[0], shard[1]


def _check_parts(
    kind: str, name: str, members: list[tuple[Path, dict[str, Any]]]
) -> None:
    """Refuse directories that cannot be one run: a repeated shard, or a
    difference in what the answers depend on."""
    # Each value is checked against the first part that records it.
    known: dict[str, tuple[Any, Path]] = {}
    for path, meta in members:
        for what, value in _identity(kind, meta):
            if value is _UNKNOWN:
                continue
            first, where = known.setdefault(what, (value, path))
            if value != first:
                raise InvalidArgument(
                    f"{_parts_said(kind, name)}{where} and {path} are not one "
                    f"run: {what} differs ({first!r} vs {value!r}); " + _PARTS_FIX[kind]
                )
    if kind == "shards":
        owner: dict[int, Path] = {}
        for path, meta in members:
            index, count = _shard_of(path, meta) or (0, 0)
            if index in owner and owner[index].resolve() == path.resolve():
                raise InvalidArgument(f"{path} is named twice; name each shard once")
            if index in owner:
                raise InvalidArgument(
                    f"{owner[index]} and {path} are both shard {index}/{count} "
                    "of one run; give each shard once"
                )
            owner[index] = path


_PARTS_FIX = {
    "shards": "give the shards of one run only",
    "fuzz": "the rounds of one fuzz directory must share model, task and template",
}


def _parts_said(kind: str, name: str) -> str:
    return f"{name}: rounds " if kind == "fuzz" else "shards "


# A value a part does not record yet, so not compared (unlike None, which
# run.json uses for "no limit").
_UNKNOWN = object()


def _identity(kind: str, meta: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(what, value) for each thing the parts of one run share."""
    if kind == "shards":
        yield "shard count", meta["shard"][1]
        yield "suite sha256", meta["suite_sha256"]
        yield "limit", meta.get("limit")
    yield "task", meta["task"]
    yield "model", _answered_model(meta)
    yield "scoring rule", _rule(meta)
    # A template per domain: rounds on different suites may meet different
    # domains, but never two templates for one.
    for domain, template in _templates(meta).items():
        yield f"{domain} template".lstrip(), template


def _answered_model(meta: dict[str, Any]) -> Any:
    # Until its first answer, a run's run.json names the model as given on
    # the command line, not the model id it loaded: not comparable yet.
    counts = meta.get("counts")
    if meta.get("status") == "running" and isinstance(counts, dict):
        if not counts.get("total"):
            return _UNKNOWN
    return meta["model"]


def _rule(meta: dict[str, Any]) -> Any:
    settings = meta.get("settings")
    return settings.get("rule", _UNKNOWN) if isinstance(settings, dict) else _UNKNOWN


def _templates(meta: dict[str, Any]) -> dict[str, str]:
    """``id@version`` per domain (key ``""`` for a run that records one)."""
    spell = "{0[id]}@{0[version]}".format
    templates = meta.get("templates")
    if isinstance(templates, dict) and templates:
        return {
            str(domain): spell(t)
            for domain, t in templates.items()
            if isinstance(t, dict) and "id" in t and "version" in t
        }
    template = meta.get("template")
    if isinstance(template, dict) and "id" in template and "version" in template:
        return {"": spell(template)}
    return {}


# run.json keys that describe one directory's share, not the whole run.
_PART_KEYS = ("shard", "counts", "accuracy", "seconds", "seconds_total")


def _combined(kind: str, name: str, parts: list[Run]) -> Run:
    """The parts of a sharded run (in shard order) or of a fuzz directory (in
    round order) as one Run; its run.json is the first part's without the
    per-part keys, with the status of the whole, and:

    * ``parts``: the directories read;
    * shards: ``shards`` ``{"of": N, "present", "missing", "unfinished"}``
      (shard numbers), status ``finished`` only when all N shards are there
      and finished, else ``running`` (a shard is still running) or
      ``incomplete`` (shards are missing);
    * fuzz rounds: ``rounds``, the number of rounds; ``suite_sha256``, the
      sha256 of the rounds' distinct suite hashes, one a line in round order
      (the combined suite's identity; the suites themselves are in
      ``Run.suites``); status ``finished`` when every round is.
    """
    first = parts[0]
    meta = {k: v for k, v in first.meta.items() if k not in _PART_KEYS}
    # A part that has answered nothing yet records neither model id nor
    # settings: take them from one that has.
    answered = next(
        (p for p in parts if _answered_model(p.meta) is not _UNKNOWN), first
    )
    for key in ("model", "settings", "backend", "device", "dtype"):
        if key in answered.meta:
            meta[key] = answered.meta[key]
    templates: dict[str, Any] = {}
    for part in parts:
        recorded = part.meta.get("templates")
        templates.update(recorded if isinstance(recorded, dict) else {})
    meta["templates"] = dict(sorted(templates.items())) or first.meta.get("templates")
    meta["parts"] = [str(p.run_dir) for p in parts]
    unfinished = [p for p in parts if p.meta.get("status", "finished") != "finished"]

    if kind == "shards":
        present = [s[0] for p in parts if (s := _shard_of(p.run_dir, p.meta))]
        count = first.meta["shard"][1]
        missing = [i for i in range(1, count + 1) if i not in present]
        meta["shards"] = {
            "of": count,
            "present": present,
            "missing": missing,
            "unfinished": [p.meta["shard"][0] for p in unfinished],
        }
        status = "running" if unfinished else "incomplete" if missing else "finished"
        name = ", ".join(str(p.run_dir) for p in parts)
    else:
        digests = list(dict.fromkeys(str(p.meta["suite_sha256"]) for p in parts))
        if len(digests) > 1:
            joined = "".join(d + "\n" for d in digests).encode()
            meta["suite_sha256"] = hashlib.sha256(joined).hexdigest()
        meta["rounds"] = len(parts)
        status = "running" if unfinished else "finished"
    meta["status"] = status
    return Run(
        first.run_dir,
        first.suite_dir,
        meta,
        first.offsets,
        parts=tuple(parts),
        name=name,
    )


class _Indexes:
    """Each suite's sha256 and case offsets, worked out once per file and
    shared by suites with equal contents (shards copied to several places)."""

    def __init__(self) -> None:
        self.by_path: dict[Path, tuple[str, dict[str, int]]] = {}
        self.by_digest: dict[str, dict[str, int]] = {}

    def of(self, cases_path: Path) -> tuple[str, dict[str, int]]:
        key = cases_path.resolve()
        if key not in self.by_path:
            digest, offsets = _hash_and_index(cases_path)
            offsets = self.by_digest.setdefault(digest, offsets)
            self.by_path[key] = (digest, offsets)
        return self.by_path[key]


def _open_run(run_dir: Path, meta: dict[str, Any], indexes: _Indexes) -> Run:
    """One run directory, its suite checked to be the one it ran on."""
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

    digest, offsets = indexes.of(cases_path)
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
                yield number, _loads(line)
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

# A stretch read by one process: (part, first byte, end byte or None, first
# line number), the part being the index of a directory in ``Run.members``.
Stretch = tuple[int, int, int | None, int]

# What forked workers inherit: the run, the accumulator factory, and per
# part the line of each case's first answer. Set only while a scan runs.
_SHARED: tuple[Run, Callable[[], Any], list[dict[str, int]]] | None = None


def scan_records(
    run: Run, make: Callable[[], A], *, jobs: int = 1, min_bytes: int = 1 << 25
) -> list[A]:
    """Every (case, result) of the run, as read (``Run.records``), added to
    accumulators from ``make``.

    Returns one accumulator per stretch of the results, in file order (part
    after part); the caller merges them. With ``jobs`` > 1 and results of at
    least ``min_bytes`` in all, stretches are read by that many forked
    processes (where the platform can fork); otherwise by this one, as
    ``Run.pairs``.
    """
    global _SHARED
    paths = [part.run_dir / "results.jsonl" for part in run.members]
    size = sum(path.stat().st_size for path in paths)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if jobs <= 1 or size < min_bytes or not can_fork:
        return [_scan_stretch(None, run, make, [])]

    stretches, firsts = _stretches(paths, jobs)
    logger.info(
        "scan %s: %d stretches in %d processes", run.label, len(stretches), jobs
    )
    _SHARED = (run, make, firsts)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            return list(pool.map(_scan_forked, stretches))
    finally:
        _SHARED = None


def _scan_forked(stretch: Stretch) -> Any:
    assert _SHARED is not None
    return _scan_stretch(stretch, *_SHARED)


def _scan_stretch(
    stretch: Stretch | None,
    run: Run,
    make: Callable[[], A],
    firsts: list[dict[str, int]],
) -> A:
    """One stretch into a new accumulator; ``None``: the whole run."""
    accumulator = make()
    if stretch is None:
        seen: set[str] = set()
        reads = [(part, _WHOLE, None, seen) for part in run.members]
    else:
        index, *span = stretch
        reads = [(run.members[index], tuple(span), firsts[index], set())]
    for part, span, first_lines, repeated in reads:
        path = part.run_dir / "results.jsonl"
        for number, case, result in part._read(span, first_lines, repeated):
            try:
                accumulator.add(case, result)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise SuiteError(
                    f"{path}:{number}: malformed record (or its case): {exc!r}"
                ) from None
    return accumulator


def _stretches(
    paths: list[Path], jobs: int
) -> tuple[list[Stretch], list[dict[str, int]]]:
    """About ``jobs`` stretches of whole lines (one file's each) and, per
    file, the line of each case's first answer: 0 when an earlier file has
    it (so a repeated answer is dropped whichever stretch holds it)."""
    sizes = [path.stat().st_size for path in paths]
    total = sum(sizes)
    cuts = [total * k // jobs for k in range(1, jobs)]
    stretches: list[Stretch] = []
    firsts: list[dict[str, int]] = []
    owners: dict[str, int] = {}
    for index, (path, size) in enumerate(zip(paths, sizes, strict=True)):
        start, first, offset, number = 0, 1, 0, 0
        mine: dict[str, int] = {}
        with open(path, "rb") as handle:
            for line in handle:
                number += 1
                if cuts and offset >= cuts[0]:
                    if offset > start:
                        stretches.append((index, start, offset, first))
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
                mine.setdefault(case_id, number)
        stretches.append((index, start, None, first))
        # Cuts are offsets into this file: shift the rest to the next one.
        cuts = [cut - size for cut in cuts if cut > size]
        if len(paths) > 1:
            for case_id in mine:
                if owners.setdefault(case_id, index) != index:
                    mine[case_id] = 0
        firsts.append(mine)
    return stretches, firsts


def _record(build: Any, data: dict[str, Any], path: Path, number: int) -> Any:
    try:
        return build(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None
