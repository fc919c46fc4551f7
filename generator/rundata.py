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
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import SuiteError
from generator.records import Case, Result

__all__ = ["Run", "iter_cases", "load_run"]

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
        seen: set[str] = set()
        results_path = self.run_dir / "results.jsonl"
        with open(self.suite_dir / "cases.jsonl", "rb") as cases:
            for number, data in _json_lines(results_path):
                result = _record(Result.from_dict, data, results_path, number)
                if result.case_id in seen:
                    logger.warning(
                        "%s:%d: case %s answered again; keeping the first answer",
                        results_path,
                        number,
                        result.case_id,
                    )
                    continue
                seen.add(result.case_id)
                yield self._case(cases, result.case_id, number), result

    def _case(self, cases: Any, case_id: str, number: int) -> Case:
        offset = self.offsets.get(case_id)
        if offset is None:
            raise SuiteError(
                f"{self.run_dir / 'results.jsonl'}:{number}: case {case_id} is "
                f"not in suite {self.suite_dir}; the run belongs to another suite"
            )
        cases.seek(offset)
        data = json.loads(cases.readline())
        return Case.from_dict(data)


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
    """The file's sha256 and the offset of each case line, in one read."""
    digest = hashlib.sha256()
    offsets: dict[str, int] = {}
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            digest.update(line)
            if line.strip():
                # Only the id is needed here; the rest is parsed on demand.
                try:
                    offsets[json.loads(line)["id"]] = offset
                except (ValueError, KeyError, TypeError):
                    raise SuiteError(f"{path}:{number}: not a case line") from None
            offset += len(line)
    return digest.hexdigest(), offsets


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                # A run killed mid-write leaves a last line with no newline;
                # the runner redoes that case on resume, the report skips it.
                if not line.endswith("\n"):
                    logger.warning("%s:%d: torn last line skipped", path, number)
                    return
                raise SuiteError(f"{path}:{number}: not JSON: {exc}") from None


def _record(build: Any, data: dict[str, Any], path: Path, number: int) -> Any:
    try:
        return build(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SuiteError(f"{path}:{number}: malformed record: {exc!r}") from None
