"""Fixing a Kubernetes workload so it passes its Pod Security question.

The fix is driven by the oracle's findings, never by a second reading of
the standard: each round evaluates every workload (``oracle.k8s.evaluate``,
the question's checks only), turns each finding into the smallest edit at
its field path, and repeats until nothing fails (a later round sees what an
earlier edit uncovered, e.g. a wrong-typed ``securityContext`` removed, then
the fields restricted needs written into a new one). The edits, per check
(https://kubernetes.io/docs/concepts/security/pod-security-standards/):

* ``invalidField``: a quoted boolean or number becomes the value it spells
  (``"false"`` → ``false``), an annotation value becomes text, a null or
  non-object list entry is dropped (the repair judge counts containers by
  their mapping entries), anything else is removed (unset), and the next
  round fills in what the level requires. A pod with no container at all
  is refused: adding one would change the workload.
* Host namespaces, ``privileged``, ``hostProcess``, and
  ``allowPrivilegeEscalation`` are written as ``false``; ``runAsNonRoot``
  as ``true``; ``runAsUser: 0`` becomes 1000 (any non-root id passes; 1000
  is the one upstream's own passing fixtures use); ``procMount`` becomes
  ``Default``; an SELinux ``type`` becomes ``container_t`` and a ``user`` or
  ``role`` is removed.
* Capabilities: each added name the level forbids is removed; at
  restricted, ``ALL`` is appended to ``drop`` (created where missing).
* Seccomp and AppArmor: a bad or missing profile type becomes
  ``RuntimeDefault`` (a ``localhostProfile`` left beside it is removed), and
  an annotation ``runtime/default``, each at the place the finding names:
  a container without a profile gets one on the container, so the edit
  stays under the finding's path.
* A forbidden volume source is replaced, in place and under the same
  volume name, by ``emptyDir: {}``: mounts keep working and the judge keeps
  the containers and images; a ``hostPort`` or a probe ``host`` is removed;
  an unsafe sysctl entry is removed.

An edit that would leave ``capabilities``, ``seLinuxOptions``, an ``add``
list or ``sysctls`` empty removes the emptied field instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from typing import Any

from generator.config.k8s import load_documents, workloads
from generator.errors import RemediationError
from generator.oracle.k8s import evaluate, read_question
from generator.oracle.k8s_pod import INVALID, Finding
from generator.oracle.k8s_policy import VOLUME_SOURCES
from generator.records import Case
from generator.remediate_yaml import (
    MISSING,
    Append,
    Delete,
    Edit,
    Rename,
    Set,
    apply,
    get,
    rewrite,
    unshared,
)

__all__ = ["MAX_ROUNDS", "finding_paths", "remediate_k8s"]

logger = logging.getLogger(__name__)

# Each round can only uncover fields under the ones it fixed; three rounds
# are the deepest seen (wrong type → unset → required value), five is slack.
MAX_ROUNDS = 5
NON_ROOT_UID = 1000

_BOOL_FIELDS = frozenset(
    "hostNetwork hostPID hostIPC hostUsers privileged allowPrivilegeEscalation "
    "runAsNonRoot hostProcess".split()
)
_INT_FIELDS = frozenset({"runAsUser", "hostPort"})
# go-yaml v2's boolean words, as generator.config.k8s reads them.
_TRUE = frozenset("y Y yes Yes YES true True TRUE on On ON".split())
_FALSE = frozenset("n N no No NO false False FALSE off Off OFF".split())
# Fields an edit may leave empty; then the field itself goes.
_PRUNED = frozenset({"capabilities", "seLinuxOptions", "add", "drop", "sysctls"})
_STEP = re.compile(r"\[([^\]]*)\]|([^.\[]+)")


def remediate_k8s(case: Case) -> str:
    """The fixed YAML of a Kubernetes case (see the module docstring)."""
    asked = read_question(case.question)
    documents = [unshared(d) for d in load_documents(case.config, source=case.id)]
    edits: list[Edit] = []
    for _ in range(MAX_ROUNDS):
        found = _findings(documents, asked)
        if not found:
            return rewrite(case.config, edits, documents)
        # A wrong-typed field hides what the checks would say of it: fix the
        # types first, then look again.
        invalid = [f for f in found if f[1].rule == INVALID]
        round_edits = _plan(documents, invalid or found)
        if not round_edits:
            rules = ", ".join(sorted({f.rule for _, f in found}))
            raise RemediationError(f"{case.id}: no edit fixes {rules}")
        edits += round_edits
    raise RemediationError(f"{case.id}: still failing after {MAX_ROUNDS} rounds")


def _findings(documents: list[Any], asked) -> list[tuple[int, Finding]]:
    found = []
    for index, document in enumerate(documents):
        for workload in workloads(document, index=index):
            evaluation = evaluate(workload, asked.version)
            found += [(index, f) for f in evaluation.findings if f.rule in asked.rules]
    return found


def finding_paths(document: Any, path: str) -> tuple[str | int, ...]:
    """A finding's dotted path as keys and indexes of ``document``.

    ``spec.containers[0].securityContext`` → ("spec", "containers", 0, ...);
    a bracket is an index where the value there is a list, else a key (an
    annotation name, which may hold dots).
    """
    steps: list[str | int] = []
    value = document
    for match in _STEP.finditer(path):
        bracket, name = match.groups()
        step: str | int = name if name is not None else bracket
        if bracket is not None and isinstance(value, list) and bracket.isdigit():
            step = int(bracket)
        steps.append(step)
        value = get(value, (step,)) if value is not MISSING else MISSING
    return tuple(steps)


# --- planning one round -------------------------------------------------------------


def _plan(documents: list[Any], found: list[tuple[int, Finding]]) -> list[Edit]:
    """The edits for one round's findings, made on ``documents`` as planned."""
    edits: list[Edit] = []
    dropped: dict[tuple[int, tuple], set[int]] = defaultdict(set)
    volumes: dict[tuple[int, tuple], list[str]] = defaultdict(list)
    for doc, finding in found:
        path = finding_paths(documents[doc], finding.path)
        action = _edit_for(documents[doc], doc, path, finding)
        if isinstance(action, tuple):
            what, target = action
            if what == "drop":
                dropped[(doc, target[:-1])].add(target[-1])
            else:
                volumes[(doc, target[:-1])].append(target[-1])
        else:
            edits += _make(documents, action)
    for (doc, volume), sources in volumes.items():
        edits += _fix_volume(documents, doc, volume, sources)
    # Whole list entries last, deepest list first and highest index first
    # (in _drop_entries), so the paths still to use stay valid.
    for (doc, parent), indexes in sorted(dropped.items(), key=lambda d: -len(d[0][1])):
        edits += _drop_entries(documents, doc, parent, indexes)
    return edits


def _make(documents: list[Any], edit: Edit) -> list[Edit]:
    """Make one edit; a repeated deletion is skipped, an emptying one widened."""
    if isinstance(edit, Delete):
        if get(documents[edit.doc], edit.path) is MISSING:
            return []
        edit = Delete(edit.doc, _pruned(documents[edit.doc], edit.path))
    apply(documents, edit)
    return [edit]


def _pruned(document: Any, path: tuple) -> tuple:
    """The path to delete so that no pruned field is left empty."""
    while len(path) > 1:
        parent = get(document, path[:-1])
        key = path[-2]
        if not (isinstance(key, str) and key in _PRUNED and len(parent) == 1):
            break
        path = path[:-1]
    return path


def _edit_for(document: Any, doc: int, path: tuple, finding: Finding):
    """One edit, or ("drop", entry path) to remove a list entry, or
    ("volume", source path) for a forbidden volume source."""
    rule, last = finding.rule, path[-1]
    value = get(document, path)
    if rule == INVALID:
        return _retype(document, doc, path, finding)
    if rule in ("hostNamespaces", "privileged", "windowsHostProcess"):
        return Set(doc, path, False)
    if rule == "allowPrivilegeEscalation":
        return Set(doc, path, False)
    if rule == "runAsNonRoot":
        return Set(doc, path, True)
    if rule == "runAsUser":
        return Set(doc, path, NON_ROOT_UID)
    if rule in ("procMount", "procMount_restricted"):
        return Set(doc, path, "Default")
    if rule in ("capabilities_baseline", "capabilities_restricted"):
        if isinstance(last, int):
            return ("drop", path)
        if isinstance(value, list):
            return Append(doc, path, "ALL")
        return Set(doc, path, ["ALL"])
    if rule in ("hostPathVolumes", "restrictedVolumes"):
        return ("volume", path)
    if rule in ("hostPorts", "hostProbesAndHostLifecycle"):
        return Delete(doc, path)
    if rule == "sysctls":
        # sysctls[i].name: the whole entry goes, its value means nothing alone.
        return ("drop", path[:-1])
    if rule == "seLinuxOptions":
        return Set(doc, path, "container_t") if last == "type" else Delete(doc, path)
    if rule in ("appArmorProfile", "seccompProfile_baseline"):
        if len(path) > 1 and path[-2] == "annotations":
            return Set(doc, path, "runtime/default")
        return _profile(document, doc, path)
    if rule == "seccompProfile_restricted":
        return _profile(document, doc, path)
    raise RemediationError(f"no fix is known for check {rule!r} at {finding.path}")


def _profile(document: Any, doc: int, path: tuple) -> Edit:
    """``type: RuntimeDefault`` at ``path``; a stale localhostProfile goes."""
    profile = get(document, path[:-1])
    if isinstance(profile, dict) and "localhostProfile" in profile:
        rest = {k: v for k, v in profile.items() if k != "localhostProfile"}
        rest["type"] = "RuntimeDefault"
        return Set(doc, path[:-1], rest)
    return Set(doc, path, "RuntimeDefault")


def _retype(document: Any, doc: int, path: tuple, finding: Finding):
    """The edit for a value of the wrong JSON type (see the module docstring)."""
    if "at least one container" in finding.message:
        raise RemediationError(
            f"{finding.path}: a pod without containers cannot be fixed without "
            "adding one, which changes the workload"
        )
    value, last = get(document, path), path[-1]
    if isinstance(last, int):
        return ("drop", path)
    if len(path) > 1 and path[-2] == "annotations":
        # map[string]string: the value as JSON writes it ("true", "8080").
        return Set(doc, path, value if isinstance(value, str) else json.dumps(value))
    if isinstance(value, str) and last in _BOOL_FIELDS:
        if value.strip() in _TRUE | _FALSE:
            return Set(doc, path, value.strip() in _TRUE)
    if isinstance(value, str) and last in _INT_FIELDS:
        if re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            return Set(doc, path, int(value.strip()))
    return Delete(doc, path)


def _fix_volume(documents, doc: int, volume: tuple, sources: list[str]) -> list[Edit]:
    """Forbidden sources go; the first becomes ``emptyDir`` if none is left."""
    entry = get(documents[doc], volume)
    bad = list(dict.fromkeys(sources))
    others = [k for k in entry if k in VOLUME_SOURCES and k not in bad]
    edits: list[Edit] = []
    for position, source in enumerate(bad):
        if position == 0 and not others:
            edits.append(Rename(doc, (*volume, source), "emptyDir", {}))
        else:
            edits.append(Delete(doc, (*volume, source)))
        apply(documents, edits[-1])
    return edits


def _drop_entries(documents, doc: int, parent: tuple, indexes: set[int]) -> list:
    """Remove list entries; a pruned list left empty is removed whole."""
    entries = get(documents[doc], parent)
    if len(indexes) >= len(entries) and parent[-1] in _PRUNED:
        edit = Delete(doc, _pruned(documents[doc], parent))
        apply(documents, edit)
        return [edit]
    edits = []
    for index in sorted(indexes, reverse=True):
        edits.append(Delete(doc, (*parent, index)))
        apply(documents, edits[-1])
    return edits
