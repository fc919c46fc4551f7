"""Seed manifests: the verdict in each file name is the oracle's verdict."""

from __future__ import annotations

import pytest

from generator.config.k8s import workloads
from generator.errors import InvalidArgument
from generator.mutate.seeds import SEEDS_DIR, load_seeds
from generator.oracle.k8s import truth

SEEDS = load_seeds()


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.stem)
def test_the_verdict_in_each_seed_name_agrees_with_the_oracle(seed):
    assert truth(seed.text, "pss:restricted:v1.37").verdict == seed.claimed


def test_seeds_cover_both_verdicts_and_every_workload_kind():
    assert {s.claimed for s in SEEDS} == {"safe", "unsafe"}
    kinds = {w.kind for s in SEEDS for d in s.documents for w in workloads(d)}
    assert kinds == {
        "Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
        "ReplicationController", "Job", "CronJob", "PodTemplate",
    }  # fmt: skip
    assert 15 <= len(SEEDS) <= 30


def test_a_seed_without_a_verdict_in_its_name_is_refused(tmp_path):
    (tmp_path / "web.yaml").write_text(
        (SEEDS_DIR / "restricted-pod-SAFE.yaml").read_text()
    )
    with pytest.raises(InvalidArgument, match="web.yaml"):
        load_seeds(tmp_path)
