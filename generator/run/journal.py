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

Never a duplicate: a case already in the file is not appended again, and
while a journal is open it holds an exclusive ``flock`` on the file, so a
second ``spotcheck run`` into the same directory is refused instead of
answering the same cases beside the first. The kernel drops the lock when
its process dies, kill -9 included, so a crashed run never blocks a resume.
"""

from __future__ import annotations

import fcntl
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
    (task, model id) of the results in it and ``templates`` the version of
    each template they used (one per domain: a suite may mix domains).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.finished: set[str] = set()
        self.identity: tuple[str, str] | None = None
        self.templates: dict[str, int] = {}
        # One descriptor for the journal's life: it carries the lock, and
        # every batch goes out through it (O_APPEND: always at the end).
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise SuiteError(
                f"{self.path} is being written by another spotcheck run; wait "
                "for it to finish or write this run to another --out directory"
            ) from None
        try:
            _fsync_directory(self.path.parent)
            self._cut_torn_tail()
            for result in read_results(self.path):
                self.finished.add(result.case_id)
                self._note(result)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the lock; the journal cannot be appended to afterwards."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

    def check_identity(self, result: Result) -> None:
        """Refuse to add results of another task or model, or of another
        version of a template, to this run."""
        task, model = result.task, result.model_id
        template, version = result.template_id, result.template_version
        if self.identity not in (None, (task, model)):
            old_task, old_model = self.identity
            raise SuiteError(
                f"{self.path} holds {old_task} results of model {old_model}; "
                "write this run to another --out directory"
            )
        known = self.templates.get(template, version)
        if known != version:
            raise SuiteError(
                f"{self.path} holds results of template {template} v{known}, "
                f"not v{version}; write this run to another --out directory"
            )

    def _note(self, result: Result) -> None:
        self.identity = self.identity or (result.task, result.model_id)
        self.templates.setdefault(result.template_id, result.template_version)

    def append(self, results: Iterable[Result]) -> None:
        """Write results as one batch and force them to disk.

        A result for a case already in the journal is dropped with a
        warning: the first answer stands, as readers of the file assume.
        """
        batch = []
        for result in results:
            if result.case_id in self.finished:
                logger.warning(
                    "%s: case %s already answered", self.path, result.case_id
                )
                continue
            batch.append(result)
            self.finished.add(result.case_id)
        if not batch:
            return
        data = "".join(dumps_line(result) for result in batch).encode("utf-8")
        # os.write may write less than asked; a kill between two writes
        # leaves a torn last line, which the next open cuts off.
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        for result in batch:
            self._note(result)


def _fsync_directory(directory: Path) -> None:
    # A new file's directory entry is durable only once the directory is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
