"""The fuzz bandit: it moves toward failing arms, keeps exploring, and repeats
itself exactly for the same seed and statistics."""

from __future__ import annotations

import random
from collections import Counter

from generator.fuzz.bandit import EXPLORE, ArmStats, choose, posterior_mean

ARMS = [f"k8s:grammar:family-{i}" for i in range(6)]
HOT = ARMS[4]
# A fake scorer: the chance that a case of each arm is answered wrongly.
FAILURE = {arm: 0.8 if arm == HOT else 0.1 for arm in ARMS}


def _fuzz(rounds: int, seed: int, slots: int = 32) -> list[dict[str, int]]:
    """Rounds of choices, each followed by fake results folded into the stats."""
    stats: dict[str, ArmStats] = {}
    outcomes = random.Random(seed + 1)
    history = []
    for number in range(rounds):
        picks = choose(ARMS, stats, slots, random.Random(f"{seed}:{number}"))
        history.append(picks)
        for arm, pulls in picks.items():
            record = stats.setdefault(arm, ArmStats())
            record.pulls += pulls
            record.failures += sum(
                outcomes.random() < FAILURE[arm] for _ in range(pulls)
            )
    return history


def test_choices_move_toward_the_arm_that_fails_most():
    history = _fuzz(rounds=30, seed=7)
    first = Counter(history[0])
    late = sum((Counter(picks) for picks in history[-10:]), Counter())
    assert sum(first.values()) == 32
    # Before any result every arm is alike; later the hot arm dominates.
    assert first[HOT] < 16
    assert late[HOT] / sum(late.values()) > 0.6


def test_every_arm_keeps_being_explored():
    history = _fuzz(rounds=30, seed=7)
    late = sum((Counter(picks) for picks in history[-10:]), Counter())
    floor = EXPLORE / len(ARMS) * 320
    for arm in ARMS:
        # At least a third of the exploration floor's expected share, each.
        assert late[arm] >= floor / 3, (arm, late[arm], floor)


def test_the_same_seed_and_statistics_give_the_same_choices():
    assert _fuzz(rounds=8, seed=3) == _fuzz(rounds=8, seed=3)
    assert _fuzz(rounds=8, seed=3) != _fuzz(rounds=8, seed=4)


def test_limited_arms_together_get_at_most_their_limit():
    # Mutation arms that always fail would take every slot without the cap.
    stats = {"k8s:mutation:m": ArmStats(pulls=100, failures=100)}
    arms = ["k8s:grammar:a", "k8s:grammar:b", "k8s:mutation:m"]
    picks = choose(
        arms, stats, 40, random.Random(0), limited={"k8s:mutation:m"}, limit=10
    )
    assert picks["k8s:mutation:m"] == 10
    assert sum(picks.values()) == 40


def test_an_arm_that_makes_nothing_sinks_below_an_untried_one():
    # Pulls that yielded no case count as misses: an arm is worth its
    # failures per try, so a mutator that never applies loses its prior.
    barren = ArmStats(pulls=20, cases=0, answered=0, failures=0)
    assert posterior_mean(barren) < posterior_mean(ArmStats())
