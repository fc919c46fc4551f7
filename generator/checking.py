"""Running the oracles over user files, for ``spotcheck check``.

Turns files into one ``DocumentReport`` per judged workload or policy, in
file and document order, and keeps bad input apart: a file that cannot be
read or judged yields a ``ConfigError`` for the caller to print, and the
other files are still checked.

Which oracle judges a file is decided by its content, not its name: a JSON
object with a ``Statement`` key is an IAM policy document; a ``.tf`` file is
Terraform, judged for its IAM policies and security groups (checking_tf,
the files of one directory together); anything else is read as Kubernetes
YAML or JSON. When some Kubernetes file holds a NetworkPolicy, or a netpol
question or ``--cluster`` is given, a last pass (checking_netpol) reads the
policies, namespaces and pods of all of them; files without NetworkPolicies
cost nothing more than a substring test.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from generator.config.k8s import MAX_BYTES, load_documents, workloads
from generator.errors import ConfigError
from generator.oracle.k8s import Evaluation, evaluate
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
    findings: tuple[Any, ...]  # each has to_dict(); the oracle's own type
    domain: str = "k8s"
    question: str = ""  # sg and netpol: the question asked, as given
    expect: str = ""  # netpol: the answer the question expects, if any

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Sent back from every worker of ``check --jobs``: arguments pickle
        # faster than a frozen dataclass's field state.
        fields = (self.kind, self.name, self.verdicts, self.findings, self.domain)
        extra = (self.question, self.expect) if self.question else ()
        return DocumentReport, (self.file, self.index, *fields, *extra)

    def fails(self, level: str) -> bool:
        """Whether this report makes ``check`` exit 1.

        A workload fails when it fails ``level``. A policy or security group
        fails on any answer but "no": "depends"/"undecidable" means the file
        alone cannot show it safe, and a gate that lets an unproven config
        through is not a gate. Reachability is a question, not a violation:
        a netpol answer fails only when undecidable or not what ``expect``
        says.
        """
        if self.domain == "k8s":
            return self.verdicts[level] == "fail"
        if self.domain == "netpol":
            allowed = self.verdicts.get("allowed")
            return allowed == "undecidable" or bool(
                self.expect and allowed != self.expect
            )
        return any(answer != "no" for answer in self.verdicts.values())

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
        data = {
            "file": self.file,
            "index": self.index,
            "domain": self.domain,
            "kind": self.kind,
            "name": self.name,
            "verdicts": dict(self.verdicts),
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.question:
            data["question"] = self.question
        if self.expect:
            data["expect"] = self.expect
        return data


@dataclass(frozen=True)
class FileOutcome:
    """What one file gave: its reports, what was skipped, or its error."""

    file: str
    reports: tuple[DocumentReport, ...] = ()
    skipped: tuple[str, ...] = ()  # the kind of each document without a pod spec
    error: ConfigError | None = None
    kube: bool = False  # read as Kubernetes documents (the netpol pass reads it)
    has_netpol: bool = False  # its text names NetworkPolicy


def _policy_json(text: str, source: str) -> Any:
    """The IAM policy in ``text`` when it is a policy document, else None.

    Only a JSON object whose keys include ``Statement`` and neither ``kind``
    nor ``apiVersion`` counts; a Kubernetes object written as JSON goes on to
    the Kubernetes reader. Text that names a Statement but is not valid JSON
    gets the IAM reader's error, which says where.
    """
    head = text.lstrip()[:1]
    if head != "{" or '"Statement"' not in text:
        return None
    from generator.config.iam import load_policy, looks_like_policy

    try:
        data = json.loads(text)
    except ValueError:
        data = None  # load_policy below says where and why
    if isinstance(data, dict) and ("kind" in data or "apiVersion" in data):
        return None
    if data is not None and not looks_like_policy(data):
        return None
    # Parsed again by the IAM reader: it refuses repeated keys, which
    # json.loads silently resolves to the last one.
    return load_policy(text, source=source)


_stdin: list[bytes] = []  # stdin, once read: the netpol pass reads it again


def read_text(name: str) -> str:
    """The text of a file (``-`` is stdin), or a ConfigError saying why not."""
    try:
        if name == "-":
            if not _stdin:
                _stdin.append(sys.stdin.buffer.read(MAX_BYTES + 1))
            data = _stdin[0]
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
    names: list[str],
    version: Version,
    *,
    jobs: int = 1,
    sg_questions: tuple[Any, ...] = (),
    netpol_questions: tuple[str, ...] = (),
    cluster: str | None = None,
) -> Iterator[FileOutcome]:
    """Judge each file at ``version``; one outcome per file, in order.

    With ``jobs`` > 1 and enough files, files are judged in that many worker
    processes; the outcomes still come back in the order of ``names``, except
    that the ``.tf`` files of one directory come together, at the first of
    them. ``sg_questions`` are ``oracle.sg.Question``s (default: any port);
    the netpol pass (``netpol_questions``, ``cluster``) comes last.
    """
    work = [(item, version, sg_questions) for item in _work_items(names)]
    kube: list[str] = []
    netpol = bool(netpol_questions or cluster)
    if jobs > 1 and len(names) >= PARALLEL_FROM and "-" not in names:
        context = multiprocessing.get_context(_START_METHOD)
        with context.Pool(jobs) as pool:
            # Few, large chunks: each round trip costs more than judging a file.
            chunk = max(32, len(work) // (4 * jobs))
            for outcomes in pool.imap(_outcomes, work, chunksize=chunk):
                for outcome in outcomes:
                    kube += [outcome.file] if outcome.kube else []
                    netpol = netpol or outcome.has_netpol
                    yield outcome
    else:
        for item in work:
            for outcome in _outcomes(item):
                kube += [outcome.file] if outcome.kube else []
                netpol = netpol or outcome.has_netpol
                yield outcome
    if netpol:
        from generator.checking_netpol import check_netpol

        files = ["-" if f == "<stdin>" else f for f in kube]
        yield from check_netpol(files, netpol_questions, cluster)


def _work_items(names: list[str]) -> list[str | tuple[str, ...]]:
    """File names, with the ``.tf`` files of a directory as one tuple."""
    if not any(name.endswith(".tf") for name in names):
        return list(names)
    from generator.checking_tf import terraform_groups

    groups = {g[0]: tuple(dict.fromkeys(g)) for g in terraform_groups(
        [n for n in names if n.endswith(".tf")]
    )}  # fmt: skip
    items: list[str | tuple[str, ...]] = []
    for name in names:
        if not name.endswith(".tf"):
            items.append(name)
        elif name in groups:
            items.append(groups.pop(name))
    return items


def _outcomes(work: tuple[Any, Version, tuple[Any, ...]]) -> list[FileOutcome]:
    item, version, sg_questions = work
    if isinstance(item, tuple):
        from generator.checking_tf import check_terraform_files
        from generator.oracle.sg import ANY

        return check_terraform_files(item, sg_questions or (ANY,))
    return [_outcome((item, version))]


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
    policy = _policy_json(text, source)
    if policy is not None:
        from generator.checking_iam import check_policy

        return FileOutcome(source, check_policy(policy, source))
    reports, skipped = [], []
    documents = load_documents(text, source=source)
    for index, document in enumerate(documents):
        found = workloads(document, source=source, index=index)
        if not found and isinstance(document, dict):
            skipped.append(str(document.get("kind")))
        for workload in found:
            report = DocumentReport.of(source, index, evaluate(workload, version))
            reports.append(report)
    # NetworkPolicies are judged by the netpol pass, not skipped.
    has_netpol = "NetworkPolicy" in text
    if has_netpol:
        skipped = [kind for kind in skipped if kind != "NetworkPolicy"]
    return FileOutcome(
        source, tuple(reports), tuple(skipped), kube=True, has_netpol=has_netpol
    )
