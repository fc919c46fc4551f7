"""Reading a finished run: its run.json, the suite it ran on, and its results.

``report``, ``cluster`` and ``export`` all need the same thing: each result
of a run next to the case it answered. A run directory holds
``results.jsonl`` and ``run.json``; the cases live in the suite directory
that ``run.json`` names. Two rules shape this module:

* The suite must be the one the run saw. ``run.json`` records the sha256 of
  ``cases.jsonl``; a suite regenerated or edited since then would silently
  pair answers with other configs, so a mismatch is a ``SuiteError``.
* Nothing holds a whole run in memory. Results are joined to their case by
  seeking to the case's line: ``Run.records`` in one process, with an index
  of the suite's line offsets made on first need; ``scan_records`` in
  several, each reading a stretch of the suite's lines and fetching the
  results that answered them (one pass here notes where each result is).

A million-case suite is about 3 GB: the hash is one pass in large blocks,
and ids are read without parsing a line where it has the compact form
``dumps_line`` writes.

One run can span several directories, read as one ``Run`` by ``load_runs``:

* the shards of a sharded run (``spotcheck run --shard I/N``; run.json
  records ``"shard": [I, N]``), which must agree on N, the suite, task,
  model, template, limit and scoring rule; the run is finished once all N
  shards are there and finished;
* the rounds of a fuzz directory (one with ``fuzz.json``; its runs are
  ``rounds/*/run``, see ``run_dirs_of``), each on its own suite, which must
  agree on task, model, template and scoring rule.

Their suites are hashed (and indexed) once each, however many directories
ran on them. A case answered in two of the directories counts once, in the
first (shard or round order), as a case answered twice in one does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
from array import array
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
    "result_said",
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


@dataclass
class Run:
    """A run ready to stream: one run directory checked against its suite, or
    several read as one (a sharded run's shards, a fuzz directory's rounds).

    ``offsets`` maps a case id to the byte offset of its line in the suite's
    ``cases.jsonl`` (made when first needed, once per suite, in ``indexes``);
    ``meta`` is run.json as read. A run of several
    directories holds them in ``parts`` (shard or round order); its
    ``run_dir``, ``suite_dir`` and ``offsets`` are its first part's, its
    ``meta`` is run.json of the whole (see ``load_runs``), and ``name`` is
    what it was named by (the fuzz directory, or the shard directories).
    """

    run_dir: Path
    suite_dir: Path
    meta: dict[str, Any]
    indexes: _Indexes = field(repr=False, compare=False)
    parts: tuple[Run, ...] = field(default=(), repr=False)
    name: str = ""

    @property
    def offsets(self) -> dict[str, int]:
        """Case id -> byte offset of its line in the suite's cases.jsonl,
        found by one pass over the file the first time it is asked for."""
        return self.indexes.offsets(self.suite_dir / "cases.jsonl")

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
            for number, case, result in part._read(seen):
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
            yield from part._read(seen)

    def _read(
        self, seen: set[str]
    ) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
        """This directory's results, each with its case; a case in ``seen``
        (the ids read so far, added to here) is a repeat and left out."""
        results_path = self.run_dir / "results.jsonl"
        with open(self.suite_dir / "cases.jsonl", "rb") as cases:
            for number, result in _json_lines(results_path):
                case_id = _record(_case_id, result, results_path, number)
                if case_id in seen:
                    _warn_repeat(results_path, number, case_id)
                    continue
                seen.add(case_id)
                yield number, self._case(cases, case_id, number), result

    def case(self, case_id: str) -> Case:
        """One case of the run's suites, by id."""
        # An answered case was seen by the scan (``scan_records``): no index.
        part = next(
            (p for p in self.members if p._offset(case_id, seen_only=True) is not None),
            None,
        ) or next((p for p in self.members if case_id in p.offsets), self)
        path = part.suite_dir / "cases.jsonl"
        with open(path, "rb") as cases:
            data = part._case(cases, case_id, 0)
        try:
            return Case.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            number = _line_number(path, part._offset(case_id) or 0)
            raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None

    def _offset(self, case_id: str, *, seen_only: bool = False) -> int | None:
        cases_path = self.suite_dir / "cases.jsonl"
        offset = self.indexes.seen.get(cases_path, {}).get(case_id)
        if offset is None and not seen_only:
            offset = self.offsets.get(case_id)
        return offset

    def _case(self, cases: Any, case_id: str, number: int) -> dict[str, Any]:
        offset = self._offset(case_id)
        if offset is None:
            raise SuiteError(
                f"{self.run_dir / 'results.jsonl'}:{number}: case {case_id} is "
                f"not in suite {self.suite_dir}; the run belongs to another suite"
            )
        cases.seek(offset)
        path = self.suite_dir / "cases.jsonl"
        try:
            case = _loads(cases.readline())
        except ValueError:
            number = _line_number(path, offset)
            raise SuiteError(f"{path}:{number}: not a case line") from None
        if not isinstance(case, dict) or case.get("id") != case_id:
            # Only possible if the quick id scan in _index misread
            # a hand-written line; never pair an answer with another case.
            raise SuiteError(
                f"{self.suite_dir / 'cases.jsonl'}: the line indexed for case "
                f"{case_id} does not hold it; rewrite the suite's lines with "
                "spotcheck"
            )
        return case


def _warn_repeat(path: Path, number: int, case_id: str) -> None:
    logger.warning(
        "%s:%d: case %s answered again; keeping the first answer",
        path,
        number,
        case_id,
    )


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
        first.indexes,
        parts=tuple(parts),
        name=name,
    )


class _Indexes:
    """Each suite's sha256 and case offsets, each worked out once per file
    (offsets only when asked for) and shared by suites with equal contents
    (shards copied to several places)."""

    def __init__(self) -> None:
        self.digests: dict[Path, str] = {}
        self.by_digest: dict[str, dict[str, int]] = {}
        # Offsets of the cases a parallel scan paired, by suite file.
        self.seen: dict[Path, dict[str, int]] = {}

    def digest(self, cases_path: Path) -> str:
        key = cases_path.resolve()
        if key not in self.digests:
            self.digests[key] = _sha256(cases_path)
        return self.digests[key]

    def offsets(self, cases_path: Path) -> dict[str, int]:
        digest = self.digest(cases_path)
        if digest not in self.by_digest:
            self.by_digest[digest] = _index(cases_path)
        return self.by_digest[digest]


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

    digest = indexes.digest(cases_path)
    if digest != meta["suite_sha256"]:
        raise SuiteError(
            f"{run_dir}: suite {suite_dir} changed since the run: cases.jsonl "
            f"has sha256 {digest[:12]}…, run.json recorded "
            f"{str(meta['suite_sha256'])[:12]}…; restore that suite or run "
            "the model on the new one"
        )
    logger.info("run %s: suite %s", run_dir, suite_dir)
    return Run(run_dir, suite_dir, meta, indexes)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _index(path: Path) -> dict[str, int]:
    """The offset of each case line, by id, in one read of the file."""
    offsets: dict[str, int] = {}
    number = 0
    for offset, line in _lines(path):
        number += 1
        if line.strip():
            case_id = _quick_id(line, b'"id":"') or _parsed_id(line, path, number)
            if offsets.setdefault(case_id, offset) != offset:
                raise _twice(path, case_id)
    return offsets


def _twice(path: Path, case_id: str) -> SuiteError:
    return SuiteError(
        f"{path}: case {case_id} is on two lines; a suite holds each case "
        "once: regenerate it with `spotcheck generate`"
    )


def _lines(
    path: Path, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) from ``start`` to ``end``, read in
    large blocks (a million-line file in seconds, not a readline each)."""
    offset = start
    with open(path, "rb") as handle:
        handle.seek(start)
        while block := handle.read(
            1 << 24 if end is None else min(1 << 24, end - offset)
        ):
            if not block.endswith(b"\n"):
                block += handle.readline()
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            for line in lines:
                yield offset, line
                offset += len(line) + 1
            if end is not None and offset >= end:
                return


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
        case_id = json.loads(line)["id"]
    except (ValueError, KeyError, TypeError):
        raise SuiteError(f"{path}:{number}: not a case line") from None
    if not isinstance(case_id, str):
        raise SuiteError(f"{path}:{number}: not a case line (its id is no string)")
    return case_id


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, _loads(line)
            except ValueError as exc:
                # A run killed mid-write leaves a last line with no newline;
                # the runner redoes that case on resume, the report skips it.
                if not line.endswith(b"\n"):
                    _skip_torn(line, path, number)
                    return
                raise _not_json(line, path, number, exc) from None


def _not_json(line: bytes, path: Path | str, number: int, exc: Exception) -> SuiteError:
    """The error for a line that is no JSON; one that holds a bare CR most
    likely is several lines joined by old Mac line ends."""
    hint = ""
    if b"\r" in line.rstrip(b"\r\n"):
        hint = " (it holds a bare CR: convert the file's line endings to \\n)"
    return SuiteError(f"{path}:{number}: not JSON: {exc}{hint}")


def _skip_torn(line: bytes, path: Path, number: int) -> None:
    """Warn that a torn last line is skipped; a file whose lines end in a
    bare CR reads as one such line, and is an error rather than no lines."""
    if b"\r" in line.rstrip(b"\r"):
        raise SuiteError(
            f"{path}:{number}: lines end in a bare CR (\\r), not a newline: "
            "convert the file's line endings to \\n"
        )
    logger.warning("%s:%d: torn last line skipped", path, number)


# --- reading a run in parallel ---------------------------------------------------


class Accumulator(Protocol):
    def add(self, case: dict[str, Any], result: dict[str, Any]) -> None: ...


A = TypeVar("A", bound=Accumulator)

# What forked workers inherit: the run, the accumulator factory, its
# answers, and which parts ran on each suite file. Set only while a scan runs.
Shared = tuple[Run, Callable[[], Any], "_Answers", dict[Path, frozenset[int]]]
_SHARED: Shared | None = None

# Stretches of suite files one process reads: (cases.jsonl, first byte, end
# byte or None), whole lines each.
Task = list[tuple[Path, int, int | None]]
# What a process read of one stretch: the file, the answers it paired, their
# cases' offsets, and the ids of its other lines.
Piece = tuple[Path, array, array, list[str]]


def scan_records(
    run: Run, make: Callable[[], A], *, jobs: int = 1, min_bytes: int = 1 << 25
) -> list[A]:
    """Every (case, result) of the run (as ``Run.records`` reads them, a
    repeated answer left out) added to accumulators from ``make``.

    Returns one accumulator per process; the caller merges them, and must
    not depend on the order in which pairs arrive. With ``jobs`` > 1 and
    results of at least ``min_bytes`` in all (where the platform can fork),
    this process reads every result's id and place once, and ``jobs``
    forked processes each read a stretch of the suites' case lines, parse
    the cases that were answered and fetch their results: the large file
    (cases) is read once, in parallel, and no pass indexes it.
    """
    global _SHARED
    paths = [part.run_dir / "results.jsonl" for part in run.members]
    size = sum(path.stat().st_size for path in paths)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if jobs <= 1 or size < min_bytes or not can_fork:
        return [_scan_serially(run, make)]

    started = time.monotonic()
    answers = _Answers.of(run)
    owners: dict[Path, set[int]] = {}
    for index, part in enumerate(run.members):
        owners.setdefault(part.suite_dir / "cases.jsonl", set()).add(index)
    tasks = _tasks(list(owners), jobs)
    if not tasks:  # empty suites: any answer names a case they lack
        answers.check([])
        return [make()]
    logger.info("scan %s: %d answers, %d processes", run.label, len(answers), jobs)
    _SHARED = (run, make, answers, {k: frozenset(v) for k, v in owners.items()})
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(tasks), mp_context=context) as pool:
            done = list(pool.map(_scan_forked, tasks))
    finally:
        _SHARED = None
    logger.info("scan %s: read in %.1f s", run.label, time.monotonic() - started)
    pieces = [piece for _, done_pieces in done for piece in done_pieces]
    answers.check([hits for _, hits, _, _ in pieces])
    _check_once(pieces, answers)
    for path, hits, offsets, _ in pieces:
        seen = run.indexes.seen.setdefault(path, {})
        seen.update(zip(map(answers.ids.__getitem__, hits), offsets, strict=True))
    return [accumulator for accumulator, _ in done]


def _check_once(pieces: list[Piece], answers: _Answers) -> None:
    """No case id on two lines of one suite file (as the serial read's index
    finds); answered ones were checked by ``_Answers.check``."""
    others: dict[Path, list[str]] = {}
    for path, _, _, ids in pieces:
        others.setdefault(path, []).extend(ids)
    for path, ids in others.items():
        if not ids:
            continue
        paired = {answers.ids[k] for p, hits, _, _ in pieces if p == path for k in hits}
        seen: set[str] = set()
        for case_id in ids:
            if case_id in seen or case_id in paired:
                raise _twice(path, case_id)
            seen.add(case_id)


def _scan_serially(run: Run, make: Callable[[], A]) -> A:
    accumulator = make()
    seen: set[str] = set()
    for part in run.members:
        path = part.run_dir / "results.jsonl"
        for number, case, result in part._read(seen):
            _add(accumulator, case, result, path, number)
    return accumulator


def _add(accumulator: Any, case: dict, result: dict, path: Path, number: int) -> None:
    try:
        accumulator.add(case, result)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SuiteError(
            f"{path}:{number}: malformed record (or its case): {exc!r}"
        ) from None


class _Answers:
    """Where each answered case's first answer is: its number by case id, and
    per number the part (index into ``Run.members``), byte offset and line
    number of its result line."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.paths = [member.run_dir / "results.jsonl" for member in run.members]
        self.numbers: dict[str, int] = {}
        self.ids: list[str] = []
        self.part = array("i")
        self.offset = array("q")
        self.line = array("q")
        # With ``of(run, fields=True)``: per answer, what a report counts of
        # its result (``result_fields``).
        self.fields: list[tuple] = []

    def __len__(self) -> int:
        return len(self.part)

    @classmethod
    def of(cls, run: Run) -> _Answers:
        """One pass over every results.jsonl of the run, in part order."""
        answers = cls(run)
        for index, path in enumerate(answers.paths):
            size = path.stat().st_size
            for number, (offset, line) in enumerate(_lines(path), start=1):
                if not line or line.isspace():
                    continue
                # A last line with no newline may be torn: parse it to know.
                # So may a line past the size seen first: a runner still
                # writing appends while this reads.
                torn = offset + len(line) >= size
                case_id = None if torn else _top_level_id(line)
                if case_id is None:
                    case_id = _result_id(line, path, number, torn)
                    if case_id is None:
                        break
                if case_id in answers.numbers:
                    # The serial read parses every line: so must a repeat be.
                    _result_id(line, path, number, torn)
                    _warn_repeat(path, number, case_id)
                    continue
                answers.numbers[case_id] = len(answers.part)
                answers.ids.append(case_id)
                answers.part.append(index)
                answers.offset.append(offset)
                answers.line.append(number)
        return answers

    @classmethod
    def parsed(cls, run: Run, *, jobs: int = 1) -> _Answers:
        """As ``of``, with every result parsed and its ``result_fields``
        kept in ``fields``; stretches of the results files are read by
        ``jobs`` forked processes (where the platform forks)."""
        answers = cls(run)
        units = []
        for task in _tasks(answers.paths, jobs):
            for path, start, end in task:
                part = answers.paths.index(path)
                units.append((part, path, start, end, _line_number(path, start)))
        if len(units) > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(jobs, len(units)), mp_context=context) as pool:
                done = list(pool.map(_parsed_stretch, units))
        else:
            done = list(map(_parsed_stretch, units))
        for (part, path, *_), (ids, offsets, numbers, fields) in zip(
            units, done, strict=True
        ):
            if answers.numbers.keys().isdisjoint(ids) and len(set(ids)) == len(ids):
                # No repeats (a resumed run's): the stretch as it is.
                errors = [said for said in fields if isinstance(said, SuiteError)]
                if errors:
                    raise errors[0]
                first = len(answers)
                answers.numbers.update(
                    zip(ids, range(first, first + len(ids)), strict=True)
                )
                answers.ids += ids
                answers.part.extend(array("i", [part]) * len(ids))
                answers.offset += offsets
                answers.line += numbers
                answers.fields += fields
                continue
            for case_id, offset, number, said in zip(
                ids, offsets, numbers, fields, strict=True
            ):
                if case_id in answers.numbers:
                    _warn_repeat(path, number, case_id)
                    continue
                if isinstance(said, SuiteError):
                    raise said
                answers.numbers[case_id] = len(answers.part)
                answers.ids.append(case_id)
                answers.part.append(part)
                answers.offset.append(offset)
                answers.line.append(number)
                answers.fields.append(said)
        return answers

    def pair(self, case_id: str, parts: frozenset[int], handles: dict) -> Any:
        """(result, its path, its line) of a case answered in one of
        ``parts``, or None; ``handles`` keeps the results files open."""
        number = self.numbers.get(case_id)
        if number is None or self.part[number] not in parts:
            return None
        part = self.part[number]
        handle = handles.get(part)
        if handle is None:
            handle = handles[part] = open(self.paths[part], "rb")
        handle.seek(self.offset[number])
        line = handle.readline()
        try:
            result = _loads(line)
        except ValueError as exc:
            path = self.paths[part]
            raise _not_json(line, path, self.line[number], exc) from None
        return number, result, self.paths[part], self.line[number]

    def check(self, hits: list[array]) -> None:
        """Every answer was paired with exactly one case line."""
        counts = bytearray(len(self))
        for numbers in hits:
            for number in numbers:
                if counts[number]:
                    self._raise_twice(number)
                counts[number] = 1
        missing = counts.find(0)
        if missing >= 0:
            suite = self.run.members[self.part[missing]].suite_dir
            raise SuiteError(
                f"{self.paths[self.part[missing]]}:{self.line[missing]}: case "
                f"{self.ids[missing]} is not in suite {suite}; the run belongs "
                "to another suite"
            )

    def _raise_twice(self, number: int) -> None:
        suite = self.run.members[self.part[number]].suite_dir
        raise _twice(suite / "cases.jsonl", self.ids[number])


def _parsed_stretch(unit: tuple) -> tuple[list, array, array, list]:
    """Every result line of a stretch of a results file, parsed: their case
    ids, offsets, line numbers and ``result_fields`` (repeats included; a
    line whose fields are malformed has the error, raised if it counts)."""
    _, path, start, end, first = unit
    size = path.stat().st_size
    ids, offsets, numbers, fields = [], array("q"), array("q"), []
    interned: dict[tuple, tuple] = {}
    for number, (offset, line) in enumerate(_lines(path, start, end), start=first):
        if not line or line.isspace():
            continue
        # Torn, as in ``of``: a last line with no newline, or one written
        # since the size was read.
        result = _parsed_result(line, path, number, offset + len(line) >= size)
        if result is None:
            break
        ids.append(result["case_id"])
        offsets.append(offset)
        numbers.append(number)
        try:
            said = result_fields(result, path, number)
            fields.append(interned.setdefault(said, said))
        except SuiteError as exc:
            fields.append(exc)
    return ids, offsets, numbers, fields


def _top_level_id(line: bytes) -> str | None:
    """The quick id of a result line, trusted only where no object opens
    before it (a result line as the runner writes it starts with its
    answer, then its case id); else None, and the line is parsed."""
    at = line.find(b'"case_id":"')
    if at < 0 or line.find(b"{", 1, at) >= 0:
        return None
    return _quick_id(line, b'"case_id":"')


def _result_id(line: bytes, path: Path, number: int, torn: bool) -> str | None:
    """The case id of a result line the quick scan could not read; None for
    a torn last line (a run killed mid-write), which is skipped."""
    result = _parsed_result(line, path, number, torn)
    return None if result is None else _case_id(result)


def _parsed_result(
    line: bytes, path: Path, number: int, torn: bool
) -> dict[str, Any] | None:
    """A result line parsed, its case id checked; None for a torn last line
    (a run killed mid-write), which is skipped."""
    try:
        result = _loads(line)
        _case_id(result)
    except ValueError as exc:
        if torn:
            _skip_torn(line, path, number)
            return None
        raise _not_json(line, path, number, exc) from None
    except (KeyError, TypeError) as exc:
        raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None
    return result


def result_said(result: dict[str, Any]) -> tuple:
    """(task, answer, correct, failure) as a report counts them: an answer
    other than safe or unsafe is None, ``correct`` a bool; ValueError for a
    failure that is no string (KeyError, TypeError for other damage)."""
    answer = result.get("answer")
    said = (
        result["task"],
        answer if answer in ("safe", "unsafe") else None,
        bool(result["correct"]),
        result.get("failure"),
    )
    hash(said)
    if said[3] is not None and not isinstance(said[3], str):
        raise ValueError(f"failure={said[3]!r}: not a string")
    return said


def result_fields(result: dict[str, Any], path: Path, number: int) -> tuple:
    """``result_said``, its errors naming the results line."""
    try:
        return result_said(result)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise SuiteError(
            f"{path}:{number}: malformed record (or its case): {exc!r}"
        ) from None


def _tasks(suites: list[Path], jobs: int) -> list[Task]:
    """The suite files cut into ``jobs`` tasks of about equal bytes, at line
    starts."""
    sizes = [path.stat().st_size for path in suites]
    share = max(1, -(-sum(sizes) // jobs))
    tasks: list[Task] = [[]]
    room = share
    for path, size in zip(suites, sizes, strict=True):
        start = 0
        with open(path, "rb") as handle:
            while size - start > room:
                handle.seek(start + room)
                handle.readline()
                cut = handle.tell()  # past start: room is at least one byte
                tasks[-1].append((path, start, cut if cut < size else None))
                start = cut
                tasks.append([])
                room = share
        if start < size:
            tasks[-1].append((path, start, None))
            room -= size - start
    return [task for task in tasks if task]


def _scan_forked(task: Task) -> tuple[Any, list[Piece]]:
    """One task's case lines, each answered case with its result; per piece
    of the task, the answers paired, their cases' offsets, and the ids of
    the lines not paired (so that a case on two lines is found)."""
    assert _SHARED is not None
    run, make, answers, owners = _SHARED
    accumulator = make()
    pieces = []
    handles: dict[int, Any] = {}
    try:
        for path, start, end in task:
            parts, hits, offsets = owners[path], array("i"), array("q")
            others: list[str] = []
            for offset, line in _lines(path, start, end):
                if not line or line.isspace():
                    continue
                # Parsed whole at once: nearly every case of a run was
                # answered, and the id comes after the config in the line.
                paired = _paired(line, path, offset, answers, parts, handles)
                if isinstance(paired, str):
                    others.append(paired)
                    continue
                case, (number, result, results_path, line_number) = paired
                _add(accumulator, case, result, results_path, line_number)
                hits.append(number)
                offsets.append(offset)
            pieces.append((path, hits, offsets, others))
    finally:
        for handle in handles.values():
            handle.close()
    return accumulator, pieces


def _paired(line, path, offset, answers, parts, handles) -> Any:
    """(case, its answer) for an answered case line; the line's id if it is
    not answered here. As in the serial read, a line no answer names need
    only show its id; an answered one must be a case."""
    try:
        case = _loads(line)
        case_id = case["id"]
        paired = answers.pair(case_id, parts, handles)
    except (ValueError, KeyError, TypeError):
        case_id = _quick_id(line, b'"id":"')
        if case_id is None or answers.pair(case_id, parts, handles) is not None:
            number = _line_number(path, offset)
            raise SuiteError(f"{path}:{number}: not a case line") from None
        return case_id
    return case_id if paired is None else (case, paired)


def _line_number(path: Path, offset: int) -> int:
    """The number of the line at a byte offset, counted in blocks."""
    count = 1
    with open(path, "rb") as handle:
        while offset > 0 and (block := handle.read(min(offset, 1 << 24))):
            count += block.count(b"\n")
            offset -= len(block)
    return count


def _record(build: Any, data: dict[str, Any], path: Path, number: int) -> Any:
    try:
        return build(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None
