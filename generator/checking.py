"""Running the oracles over user files, for ``spotcheck check``.

Turns files into one ``DocumentReport`` per judged workload, in file and
document order, and keeps bad input apart: a file that cannot be read or
judged yields a ``ConfigError`` for the caller to print, and the other files
are still checked.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from generator.config.k8s import MAX_BYTES, load_documents, workloads
from generator.errors import ConfigError
from generator.oracle.k8s import Evaluation, Finding, evaluate
from generator.oracle.k8s_policy import Version

__all__ = ["DocumentReport", "FileOutcome", "check_files", "read_text"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentReport:
    """One judged workload, in the shape of a ``check --json`` line.

    Only what is printed is kept, so reports cross process boundaries cheaply.
    """

    file: str
    index: int
    kind: str
    name: str
    verdicts: dict[str, str]
    findings: tuple[Finding, ...]

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Sent back from every worker of ``check --jobs``: arguments pickle
        # faster than a frozen dataclass's field state.
        fields = (self.kind, self.name, self.verdicts, self.findings)
        return DocumentReport, (self.file, self.index, *fields)

    @classmethod
    def of(cls, file: str, index: int, evaluation: Evaluation) -> DocumentReport:
        workload = evaluation.workload
        return cls(
            file,
            index,
            workload.kind,
            workload.name,
            dict(evaluation.verdicts),
            evaluation.findings,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "index": self.index,
            "domain": "k8s",
            "kind": self.kind,
            "name": self.name,
            "verdicts": dict(self.verdicts),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class FileOutcome:
    """What one file gave: its reports, what was skipped, or its error."""

    file: str
    reports: tuple[DocumentReport, ...] = ()
    skipped: tuple[str, ...] = ()  # the kind of each document without a pod spec
    error: ConfigError | None = None


def read_text(name: str) -> str:
    """The text of a file (``-`` is stdin), or a ConfigError saying why not."""
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("no such file; check the path", source=name) from None
    except IsADirectoryError:
        raise ConfigError("is a directory; pass the files in it", source=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=name) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_BYTES // 2**20} MiB; split it", source=name
        )
    if b"\0" in data:
        raise ConfigError("binary data, not a YAML or JSON manifest", source=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"byte {exc.start} is not UTF-8; save the file as UTF-8", source=name
        ) from None


# Below this many files a second process costs more than it saves.
PARALLEL_FROM = 64
# fork starts a worker in milliseconds with everything imported; spawn
# (the only way elsewhere) costs a fresh interpreter per worker.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def check_files(
    names: list[str], version: Version, *, jobs: int = 1
) -> Iterator[FileOutcome]:
    """Judge each file at ``version``; one outcome per file, in order.

    With ``jobs`` > 1 and enough files, files are judged in that many worker
    processes; the outcomes still come back in the order of ``names``.
    """
    if jobs > 1 and len(names) >= PARALLEL_FROM and "-" not in names:
        context = multiprocessing.get_context(_START_METHOD)
        with context.Pool(jobs) as pool:
            work = [(name, version) for name in names]
            # Few, large chunks: each round trip costs more than judging a file.
            chunk = max(32, len(work) // (4 * jobs))
            yield from pool.imap(_outcome, work, chunksize=chunk)
        return
    for name in names:
        yield _outcome((name, version))


def _outcome(work: tuple[str, Version]) -> FileOutcome:
    name, version = work
    try:
        return _check_file(name, version)
    except ConfigError as exc:
        logger.info("bad input: %s", exc)
        return FileOutcome(name, error=exc)


def _check_file(name: str, version: Version) -> FileOutcome:
    source = "<stdin>" if name == "-" else name
    text = read_text(name)
    reports, skipped = [], []
    documents = load_documents(text, source=source)
    for index, document in enumerate(documents):
        found = workloads(document, source=source, index=index)
        if not found and isinstance(document, dict):
            skipped.append(str(document.get("kind")))
        for workload in found:
            report = DocumentReport.of(source, index, evaluate(workload, version))
            reports.append(report)
    return FileOutcome(source, tuple(reports), tuple(skipped))
