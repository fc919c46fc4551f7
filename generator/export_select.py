"""Which exported rows train, which are held out, and how labels are balanced.

Every row of an export carries its config's near-equal fingerprint (its
*group*: ``export_hash.near_fingerprint``) and a *cluster* key. The cluster
is the kind of problem the row teaches, as a partition the split can use:
domain, task, case family, true verdict and the sorted violated rules, e.g.
``k8s/verdict/pod/unsafe:hostPath+privileged``. The report's clusters are
statistical slices of one run (they overlap, and a small run may have
none), so they cannot partition an export; this key is what those slices
are built from.

**Split.** Within each cluster, groups are ordered by a hash of their
fingerprint and the first ``held_out(n, fraction)`` go to ``test``: at
least one of every cluster with two groups or more, never all of them. A
cluster with one group stays in ``train``. All rows of a group (a
config failed in two runs, asked two questions, or near-equal copies) go
where the group goes, so no test config has a near-equal in train. The
hash makes the split reproducible and independent of run order.

**Balance.** Failures lean to one label, and training on them alone mostly
moves the decision threshold (research/finetune-feasibility.md). Only
verdict rows count; repair rows have one label by construction.

* ``none``: every failure.
* ``equal``: drop rows of the larger label, by case-id hash, down to the
  smaller label's count.
* ``fill``: keep every failure and add correctly answered cases of the
  smaller label, from the same runs, until the labels are even (or those
  cases run out).

``add_correct=N`` then adds N more correctly answered cases, each to the
label that has fewer rows. Added cases get the oracle's answer like any
other row and ``source: correct``.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from generator.errors import InvalidArgument

__all__ = [
    "BALANCES",
    "CorrectPool",
    "Entry",
    "cluster_key",
    "correct_needed",
    "held_out",
    "keep_for_balance",
    "split_lines",
]

logger = logging.getLogger(__name__)

BALANCES = ("none", "equal", "fill")
LABELS = ("unsafe", "safe")


@dataclass(frozen=True)
class Entry:
    """What selection needs of one drafted row (line ``line`` of the draft)."""

    line: int
    case_id: str
    label: str
    task: str
    source: str
    group: str
    cluster: str


def cluster_key(
    domain: str, task: str, family: str, verdict: str, rules: Iterable[str]
) -> str:
    """``domain/task/family/verdict`` and, for unsafe cases, ``:rule+rule``."""
    key = f"{domain}/{task}/{family}/{verdict}"
    rules = sorted(set(rules))
    return f"{key}:{'+'.join(rules)}" if rules else key


def check_balance(balance: str | bool, add_correct: int) -> str:
    """The balance mode by name (``True``/``False``: ``equal``/``none``)."""
    if balance is True or balance is False:
        balance = "equal" if balance else "none"
    if balance not in BALANCES:
        raise InvalidArgument(f"balance={balance!r}: choose from {', '.join(BALANCES)}")
    if not isinstance(add_correct, int) or add_correct < 0:
        raise InvalidArgument(f"add_correct={add_correct!r}: need a whole number >= 0")
    return balance


def rank(text: str) -> str:
    """The order used wherever rows are picked: a hash, not file order."""
    return hashlib.sha256(text.encode()).hexdigest()


def keep_for_balance(entries: list[Entry]) -> tuple[set[int], bool]:
    """Lines to drop so verdict rows have as many safe as unsafe (``equal``).

    Returns the dropped lines and whether balance was reached; it is not
    when every verdict row has one label (nothing would be left).
    """
    by_label: dict[str, list[tuple[str, int]]] = {label: [] for label in LABELS}
    for entry in entries:
        if entry.task == "verdict":
            by_label[entry.label].append((rank(entry.case_id), entry.line))
    smaller = min(len(lines) for lines in by_label.values())
    if smaller == 0:
        if any(by_label.values()):
            logger.warning(
                "export: every verdict failure has one label; cannot balance by "
                "dropping, keeping all. Use --balance fill to add the other label"
            )
        return set(), not any(by_label.values())
    dropped = set()
    for lines in by_label.values():
        dropped.update(line for _, line in sorted(lines)[smaller:])
    return dropped, True


def correct_needed(counts: Counter[str], balance: str, add: int) -> dict[str, int]:
    """How many correctly answered cases of each label to add."""
    need = {label: 0 for label in LABELS}
    if balance == "fill":
        larger = max(counts[label] for label in LABELS)
        for label in LABELS:
            need[label] = larger - counts[label]
    # Each extra case goes to the label with fewer rows (ties: unsafe first).
    for _ in range(add):
        label = min(LABELS, key=lambda lb: (counts[lb] + need[lb], LABELS.index(lb)))
        need[label] += 1
    return need


class CorrectPool:
    """The lowest-ranked correctly answered cases of each label, streamed.

    Keeps twice what is needed (and a few more) per label, since some of the
    candidates will turn out excluded or near-equal to a row already taken.
    """

    def __init__(self, need: dict[str, int]):
        self.need = need
        self.heaps: dict[str, list[tuple[str, str, int]]] = {lb: [] for lb in need}

    def offer(self, label: str, case_id: str, run_index: int) -> None:
        room = 2 * self.need.get(label, 0) + 8 if self.need.get(label) else 0
        if not room:
            return
        # Max-heap on rank by storing the rank's complement.
        key = _complement(rank(case_id))
        heap = self.heaps[label]
        if len(heap) < room:
            heapq.heappush(heap, (key, case_id, run_index))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, case_id, run_index))

    def candidates(self, label: str) -> list[tuple[str, int]]:
        """(case id, run index), lowest rank first."""
        return [(c, r) for _, c, r in sorted(self.heaps[label], reverse=True)]


def _complement(hexdigest: str) -> str:
    return hexdigest.translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))


def held_out(n: int, fraction: float) -> int:
    """Groups of an n-group cluster that go to test: about ``fraction`` of
    them, at least one when n >= 2, never all."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def split_lines(entries: list[Entry], fraction: float) -> dict[int, str]:
    """``train`` or ``test`` for each entry's line (see the module docstring)."""
    cluster_of: dict[str, str] = {}
    for entry in entries:
        cluster_of.setdefault(entry.group, entry.cluster)
    groups: dict[str, list[str]] = {}
    for group, cluster in cluster_of.items():
        groups.setdefault(cluster, []).append(group)
    test: set[str] = set()
    for members in groups.values():
        members.sort(key=rank)
        test.update(members[: held_out(len(members), fraction)])
    return {e.line: "test" if e.group in test else "train" for e in entries}
