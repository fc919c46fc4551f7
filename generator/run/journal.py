"""A run's ``results.jsonl``: append-only, crash-safe, resumable.

Results are appended a batch at a time and each batch is flushed and
fsync'd before the next starts, so a run killed at any moment loses at most
the batch in flight. A kill can still cut the last write short; such a torn
last line (no newline at the end of the file) is cut off when the journal is
opened again, and its cases are run again. A broken line *before* the end is
not a crash artefact but an edit, and is an error.

Re-running into the same directory skips every case that already has a
result, so ``spotcheck run`` is also ``spotcheck resume``. Results of a
different task, model or template are refused rather than mixed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from generator.errors import SuiteError
from generator.records import Result, dumps_line

__all__ = ["Journal", "read_results", "write_json_atomic"]

logger = logging.getLogger(__name__)


class Journal:
    """The results file of one run directory, opened for appending.

    ``finished`` holds the case ids already answered; ``identity`` is the
    (task, model id, template id, template version) of the results in it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.finished: set[str] = set()
        self.identity: tuple[str, str, str, int] | None = None
        if self.path.exists():
            self._cut_torn_tail()
            for result in read_results(self.path):
                self.finished.add(result.case_id)
                self.identity = self.identity or _identity(result)

    def _cut_torn_tail(self) -> None:
        # Only the bytes after the last newline can be a half-written line.
        size = self.path.stat().st_size
        if size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            keep = _last_newline(handle, size)
            logger.warning(
                "%s: discarding a torn last line (%d bytes) from an interrupted run",
                self.path,
                size - keep,
            )
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())

    def check_identity(self, identity: tuple[str, str, str, int]) -> None:
        """Refuse to add results of another task/model/template to this run."""
        if self.identity is not None and self.identity != identity:
            task, model, template, version = self.identity
            raise SuiteError(
                f"{self.path} holds {task} results of model {model} with template "
                f"{template} v{version}; write this run to another --out directory"
            )

    def append(self, results: Iterable[Result]) -> None:
        """Write results as one batch and force them to disk."""
        batch = list(results)
        if not batch:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(dumps_line(result) for result in batch))
            handle.flush()
            os.fsync(handle.fileno())
        for result in batch:
            self.finished.add(result.case_id)
            self.identity = self.identity or _identity(result)


def _last_newline(handle: BinaryIO, end: int) -> int:
    """Offset just past the last newline before ``end``; 0 if there is none."""
    while end > 0:
        start = max(0, end - 65536)
        handle.seek(start)
        cut = handle.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _identity(result: Result) -> tuple[str, str, str, int]:
    return (
        result.task,
        result.model_id,
        result.template_id,
        result.template_version,
    )


def read_results(path: Path) -> Iterator[Result]:
    """Every result in a results file; SuiteError names a broken line."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Result.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise SuiteError(
                    f"{path}:{number}: not a result line ({exc}); delete that line "
                    "or the run directory"
                ) from None


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON beside ``path`` and rename it into place."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
