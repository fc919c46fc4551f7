"""Where a fuzz round draws its cases: a bandit over arms.

An **arm** is one way of making cases, named ``DOMAIN:METHOD:NAME``: a
grammar family of a domain (``k8s:grammar:hostpath-escalation``) or a
mutator applied to cases the model already got wrong
(``k8s:mutation:add_host_path_mount``). A **pull** is one slot of a
round given to an arm. It pays 1 when it yields a case the model then
fails, and 0 when the model answers it correctly or when no case came out
at all (a mutator that does not apply, a duplicate of an earlier case): an
arm is worth the failures it finds per try, so an arm that seldom produces
anything sinks instead of keeping its optimistic prior forever.

Each slot is given by Thompson sampling (Thompson 1933; Chapelle and Li,
"An empirical evaluation of Thompson sampling", NIPS 2011): a failure rate
is drawn for every arm from Beta(failures + 1, pulls - failures + 1) and
the slot goes to the largest draw, so arms are tried about as often as
they are likely to be the best one. The model's weak spots are not
stationary in what the fuzz sees (neighbours of a found failure run dry),
and an arm left alone never updates its posterior, so with probability
``explore`` a slot instead goes to an arm drawn uniformly: every eligible
arm keeps at least ``explore / arms`` of the slots whatever its record.

Mutation arms feed on earlier failures and pay well by construction (a
failure's neighbours fail often), so they may take at most
``MAX_MUTATION_SHARE`` of a round: the rest keeps looking for new regions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

__all__ = [
    "EXPLORE",
    "MAX_MUTATION_SHARE",
    "ArmStats",
    "arm_key",
    "choose",
    "posterior_mean",
    "share_floor",
    "split_arm",
]

EXPLORE = 0.2
MAX_MUTATION_SHARE = 0.5


def arm_key(domain: str, method: str, name: str) -> str:
    """The arm's name: ``k8s:grammar:escalation``, ``iam:mutation:add_broad_deny``."""
    return f"{domain}:{method}:{name}"


def split_arm(key: str) -> tuple[str, str, str]:
    """(domain, method, name) of an arm's name."""
    domain, method, name = key.split(":", 2)
    return domain, method, name


@dataclass
class ArmStats:
    """What an arm did so far: slots given, cases made, answered, failed."""

    pulls: int = 0
    cases: int = 0
    answered: int = 0
    failures: int = 0

    @property
    def rate(self) -> float:
        """Failures per pull (0 before the first pull)."""
        return self.failures / self.pulls if self.pulls else 0.0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> ArmStats:
        keys = ("pulls", "cases", "answered", "failures")
        return cls(**{key: int(data.get(key, 0)) for key in keys})


def choose(
    arms: Sequence[str],
    stats: dict[str, ArmStats],
    slots: int,
    rnd: random.Random,
    *,
    limited: Collection[str] = (),
    limit: int | None = None,
    explore: float = EXPLORE,
) -> dict[str, int]:
    """How many of ``slots`` each arm gets, in ``arms`` order (absent: none).

    ``limited`` arms together get at most ``limit`` slots; once they have
    it, the others share the rest. The same ``rnd`` state, arms and stats
    give the same answer, which is what lets a resumed fuzz repeat the
    choices an uninterrupted one makes.
    """
    if not arms:
        return {}
    given = dict.fromkeys(arms, 0)
    taken = 0
    for _ in range(slots):
        open_arms = [
            arm for arm in arms if limit is None or taken < limit or arm not in limited
        ]
        if not open_arms:
            break
        if rnd.random() < explore:
            arm = rnd.choice(open_arms)
        else:
            arm = max(open_arms, key=lambda a: _draw(stats.get(a), rnd))
        given[arm] += 1
        taken += arm in limited
    return {arm: n for arm, n in given.items() if n}


def _draw(record: ArmStats | None, rnd: random.Random) -> float:
    # Beta(failures + 1, misses + 1): the uniform prior updated by each pull.
    record = record or ArmStats()
    misses = max(0, record.pulls - record.failures)
    return rnd.betavariate(record.failures + 1, misses + 1)


def posterior_mean(record: ArmStats) -> float:
    """The expected failures per pull under the Beta posterior."""
    return (record.failures + 1) / (record.pulls + 2)


def share_floor(arms: int, explore: float = EXPLORE) -> float:
    """The smallest expected share of slots any eligible arm gets."""
    return explore / arms if arms else math.nan
