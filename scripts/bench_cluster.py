#!/usr/bin/env python3
"""How long ``spotcheck report`` takes on a run of a million results.

    .venv/bin/python scripts/bench_cluster.py [--cases 1000000] [--keep DIR]

Builds a synthetic suite and two runs on it in a temporary directory (about
3.5 GB for a million cases: case lines shaped like the generator's, 36 tags
with the generator's cardinalities, a config of about 1.3 kB, violations,
operators), then runs ``spotcheck report RUN --json`` on each run in a child
process, exactly as a user would, and reads back its clusters. The two runs
stand for two checkpoints answering the same suite (a release suite is run
on many): the first report meets the suite new and indexes it
(``generator.suite_index``, kept in a cache the script makes its own); the
second is the timed figure, the report of a million results it has never
read, on a suite already indexed. (Runs with under 32 MB of results, about
90,000 cases here, are read without an index: both reports then parse the
case lines.) The model is simulated:

* it misses 80% of the unsafe cases tagged ``has_hostpath=true`` and
  ``ape=unset`` and 5% of the other unsafe ones (the planted cluster, which
  the report must find first);
* it raises false alarms on 30% of the safe ``yaml-spelling`` cases and 5%
  of the other safe ones.

Rows are assembled from pre-rendered JSON fragments (eight tag groups of 256
variants each and so on), so building is fast and nearly every row is a
distinct combination, as in a real suite. The first lines are checked to be
exactly what ``dumps_line`` writes for the parsed record.

Prints the build time, the first report's wall time, the larger peak RSS of
the two reports, then the second report's wall time as its last line,
``cluster_1e6_seconds: <n>`` (for another ``--cases``,
``cluster_seconds_<N>: <n>``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.records import Case, Result, dumps_line  # noqa: E402

# The generator's tags (generator/tags.py) with their cardinalities in real
# suites, in sorted key order; long value lists stand for the comma-joined
# combinations the generator writes (operators, volume sources, ...).
TAGS: list[tuple[str, list[object]]] = [
    ("ape", ["false"] * 5 + ["invalid", "true", "unset", "unset"]),
    ("apparmor", ["annotation", "both", "field", "none"]),
    ("capabilities_added", ["none"] * 20 + [f"CAP_{i}" for i in range(70)]),
    ("capability_spelling", ["cap-prefix", "exact", "lower", "mixed", "none"]),
    ("containers", [1, 2, 3]),
    ("documents", [1, 2]),
    ("drop_all", ["exact", "missing", "misspelled"]),
    ("ephemeral_containers", [0, 1, 2]),
    ("has_ephemeral", [False, True]),
    ("has_hostpath", [False, False, True]),
    ("has_init", [False, True]),
    ("has_sidecar", [False, True]),
    (
        "host_namespaces",
        ["none", "hostIPC", "hostNetwork", "hostPID", "hostNetwork,hostPID"],
    ),
    ("host_port", [False, True]),
    ("host_users", ["false", "true", "unset"]),
    ("hostpath_read_only", [False, True]),
    (
        "hostpath_target",
        ["none", "/", "/dev", "/etc", "/proc", "/sys", "/var/run/docker.sock"],
    ),
    ("init_containers", [0, 1, 2, 3, 4]),
    (
        "kind",
        [
            "CronJob",
            "DaemonSet",
            "Deployment",
            "Job",
            "Pod",
            "PodTemplate",
            "ReplicaSet",
        ],
    ),
    ("method", ["grammar", "mutation"]),
    ("operator_count", [0, 1, 2, 3, 4, 5]),
    ("os", ["linux", "unset", "windows"]),
    ("privileged", [False, True]),
    ("probe_host", [False, True]),
    ("proc_mount", ["Default", "Unmasked", "unset"]),
    ("run_as_non_root", ["false", "invalid", "true", "unset"]),
    ("run_as_non_root_level", ["both", "container", "pod", "unset"]),
    ("run_as_user", ["non-root", "root", "unset"]),
    ("seccomp_level", ["both", "container", "pod", "unset"]),
    ("seccomp_type", ["Localhost", "RuntimeDefault", "Unconfined", "unset"]),
    ("seed_file", [""] + [f"seed-{i}" for i in range(24)]),
    ("selinux", ["none", "set"]),
    ("size", ["long", "medium", "short"]),
    ("sysctls", [0, 1, 2, 3]),
    ("volume_sources", ["emptyDir"] * 20 + [f"csi,vol{i}" for i in range(200)]),
    ("yaml_style", ["block"] * 5 + [f"style-{i}" for i in range(32)]),
]
# Tag groups drawn as one fragment each; ape and has_hostpath (the planted
# cluster) are groups of their own so nothing else is tied to them.
GROUPS = [["ape"], TAGS[1:9], ["has_hostpath"], TAGS[10:16], TAGS[16:22],
          TAGS[22:28], TAGS[28:32], TAGS[32:]]  # fmt: skip
FAMILIES = [
    "apparmor-selinux", "capability-spelling", "ephemeral-containers",
    "escalation", "host-namespaces", "hostpath-escalation", "inheritance",
    "init-containers", "mixed", "seccomp", "single-check", "sysctls",
    "user-namespaces", "volumes", "windows", "workload-kinds", "yaml-spelling",
]  # fmt: skip
RULES = [
    "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted",
    "hostNamespaces", "hostProbesAndHostLifecycle", "privileged",
    "windowsHostProcess", "seLinuxOptions", "runAsUser", "hostPorts",
    "procMount_restricted", "sysctls", "appArmorProfile",
]  # fmt: skip
OPERATORS = [f"mutator_{i}" for i in range(43)]
VARIANTS = 256


def fragment(rng: random.Random, group: list) -> tuple[str, dict]:
    """One variant of a tag group: its JSON text and its values."""
    if isinstance(group[0], str):  # a single tag named by key
        group = [t for t in TAGS if t[0] == group[0]]
    values = {key: rng.choice(pool) for key, pool in group}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))[1:-1]
    return text, values


def config_text(rng: random.Random, number: int) -> str:
    """A manifest-shaped config of about 1.3 kB with characters HTML escapes."""
    lines = ["apiVersion: v1", "kind: Pod", "metadata:", f"  name: web-{number}"]
    lines += ["  annotations:", '    note: "a < b && c > d"', "spec:", "  containers:"]
    for c in range(rng.randint(2, 4)):
        lines += [
            f"    - name: c{c}",
            f"      image: registry/app:{rng.randint(1, 99)}",
        ]
        lines += ["      securityContext:", "        runAsNonRoot: true"]
        lines += ["        capabilities:", "          drop: [ALL]"]
        lines += [f"      args: ['--level={rng.random():.6f}', \"--x=&y\"]"]
    while sum(len(line) + 1 for line in lines) < 1200:
        lines.append(f"  # padding {rng.getrandbits(64):016x}")
    return "\n".join(lines) + "\n"


class Pools:
    """Pre-rendered pieces of case and result lines."""

    def __init__(self, rng: random.Random) -> None:
        self.groups = [[fragment(rng, g) for _ in range(VARIANTS)] for g in GROUPS]
        self.configs = [json.dumps(config_text(rng, i))[:-1] for i in range(VARIANTS)]
        self.families = [json.dumps(f) for f in FAMILIES]
        # Extra violated rules (zero to two) and mutation chains (zero to three).
        self.rules = [rng.sample(RULES, rng.choice([0, 0, 0, 1, 2]))
                      for _ in range(VARIANTS)]  # fmt: skip
        self.operators = []
        for _ in range(VARIANTS):
            ops = rng.sample(OPERATORS, rng.randint(0, 3))
            method = "mutation" if ops else "grammar"
            origin = {"method": method, "operators": ops, "parent": None, "seed": 7}
            self.operators.append(
                json.dumps(origin, sort_keys=True, separators=(",", ":"))
            )


def violation(rule: str) -> dict[str, str]:
    return {"message": f"{rule} is not allowed <here> & \"there\"",
            "path": f"spec.containers[0].{rule}", "rule": rule}  # fmt: skip


RESULT = {
    "answer": None, "case_id": None, "correct": None, "detail": "",
    "failure": None, "model_id": "synthetic@1", "output": None,
    "scores": {"calibration": 0.30212205, "decision": 0.15096414,
               "logp_safe": -17.80265921, "logp_unsafe": -14.63447702},
    "seconds": 0.5, "task": "verdict", "template_id": "k8s-verdict",
    "template_version": 1, "tokens": 212,
}  # fmt: skip


def result_parts() -> dict[tuple[str, str], tuple[str, str]]:
    """(truth, answer) -> the result line split around its case id."""
    parts = {}
    for truth in ("safe", "unsafe"):
        for said in ("safe", "unsafe"):
            wrong = said != truth
            failure = (
                ("missed_unsafe" if truth == "unsafe" else "false_alarm")
                if wrong
                else None
            )
            data = {**RESULT, "answer": said, "case_id": "@CASE@", "correct": not wrong,
                    "failure": failure, "output": said.upper()}  # fmt: skip
            text = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
            head, tail = text.split("@CASE@")
            parts[truth, said] = (head, tail)
    return parts


def build(out: Path, count: int, seed: int) -> tuple[list[Path], int]:
    """Write SUITE/cases.jsonl and two runs on it (RUN/ and RUN-B/, each
    results.jsonl and run.json: two checkpoints of one simulated model);
    return the runs and the planted cluster's size."""
    rng = random.Random(seed)
    pools = Pools(rng)
    results_parts = result_parts()
    suite, runs = out / "suite", [out / "run", out / "run-b"]
    suite.mkdir(parents=True)
    for run in runs:
        run.mkdir(parents=True)
    digest = hashlib.sha256()
    planted = 0
    cases_file = open(suite / "cases.jsonl", "w", encoding="utf-8")
    results_files = [open(run / "results.jsonl", "w", encoding="utf-8") for run in runs]
    case_lines: list[str] = []
    result_lines: list[list[str]] = [[] for _ in runs]
    bits = rng.getrandbits
    for row in range(count):
        r = bits(64)
        picks = [(r >> (8 * g)) & 0xFF for g in range(len(GROUPS))]
        tags = [pools.groups[g][p] for g, p in enumerate(picks)]
        ape, hostpath = tags[0][1]["ape"], tags[2][1]["has_hostpath"]
        extra = pools.rules[bits(8)]
        rules = (["restrictedVolumes"] if hostpath else []) + (
            ["allowPrivilegeEscalation"] if ape != "false" else []
        ) + extra  # fmt: skip
        verdict = "unsafe" if rules else "safe"
        family = bits(8) % len(FAMILIES)
        case_id = f"k8s-{row:016x}"
        truth = json.dumps({"verdict": verdict, "violations": [violation(x) for x in rules]},
                           sort_keys=True, separators=(",", ":"))  # fmt: skip
        case_lines.append(
            f'{{"config":{pools.configs[bits(8)]}# row {row}\\n","domain":"k8s",'
            f'"family":{pools.families[family]},"format":"yaml","id":"{case_id}",'
            f'"origin":{pools.operators[bits(8)]},"question":"pss:restricted:v1.37",'
            f'"tags":{{{",".join(t[0] for t in tags)}}},"truth":{truth}}}\n'
        )

        # The simulated model, answering on its own for each checkpoint.
        cluster = verdict == "unsafe" and hostpath and ape == "unset"
        planted += cluster
        for lines in result_lines:
            if verdict == "unsafe":
                wrong = rng.random() < (0.8 if cluster else 0.05)
            else:
                wrong = rng.random() < (
                    0.3 if FAMILIES[family] == "yaml-spelling" else 0.05
                )
            said = (
                verdict if not wrong else ("safe" if verdict == "unsafe" else "unsafe")
            )
            head, tail = results_parts[verdict, said]
            lines.append(head + case_id + tail)

        if len(case_lines) == 10_000 or row == count - 1:
            text = "".join(case_lines)
            digest.update(text.encode())
            cases_file.write(text)
            case_lines.clear()
            for handle, lines in zip(results_files, result_lines, strict=True):
                handle.write("".join(lines))
                lines.clear()
    cases_file.close()
    for handle in results_files:
        handle.close()

    meta = {"suite": str(suite), "suite_sha256": digest.hexdigest(),
            "model": "synthetic@1", "task": "verdict",
            "template": {"id": "k8s-verdict", "version": 1}, "status": "finished"}  # fmt: skip
    for run in runs:
        (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    _check_canonical(suite / "cases.jsonl", runs[0] / "results.jsonl")
    return runs, planted


def _check_canonical(cases: Path, results: Path) -> None:
    """The synthetic lines are exactly what the pipeline itself writes."""
    for path, record in ((cases, Case), (results, Result)):
        with open(path, encoding="utf-8") as handle:
            for _, line in zip(range(200), handle, strict=False):
                assert dumps_line(record.from_dict(json.loads(line))) == line, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build here and keep the files")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        out = args.keep or Path(tmp)
        started = time.perf_counter()
        run_dirs, planted = build(out, args.cases, args.seed)
        size = sum(p.stat().st_size for p in out.rglob("*.jsonl"))
        print(f"built {args.cases} cases and two runs' results ({size / 1e9:.2f} GB) "
              f"in {time.perf_counter() - started:.1f} s; "
              f"{planted} in the planted cluster")  # fmt: skip

        # The reports as a user runs them, each in a child process so that
        # peak RSS is the report's and not the builder's; a cache of their
        # own, so the first report meets the suite new.
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "SPOTCHECK_CACHE": str(out / "cache")}  # fmt: skip
        first, outputs = None, []
        for run_dir in run_dirs:
            command = [
                sys.executable,
                "-c",
                "import sys; from generator.cli import main; sys.exit(main())",
                "report",
                str(run_dir),
                "--json",
            ]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                  env=env)  # fmt: skip
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            first = seconds if first is None else first
            outputs.append(done.stdout)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"first report on the new suite (indexes it): {first:.1f} s")
    for output in outputs:
        _check_planted(output, planted)
    print(f"peak_rss_mib: {peak:.0f} (the larger of the two reports)")
    label = "1e6" if args.cases == 1_000_000 else str(args.cases)
    print(f"cluster_{label}_seconds: {seconds:.1f}" if label == "1e6"
          else f"cluster_seconds_{label}: {seconds:.1f}")  # fmt: skip
    return 0


def _check_planted(output: str, planted: int) -> None:
    """The report found the planted cluster, with exactly its cases."""
    run = json.loads(output)["runs"][0]
    clusters = run["clusters"]
    for c in clusters[:5]:
        print(f"cluster: {c['kind']} {c['slice']} rate {c['failure_rate']} "
              f"support {c['support']} lift {c['lift']}")  # fmt: skip
    # Found, with exactly its cases. On a run this large a broad slice
    # holding it (has_hostpath=true) has an even smaller p-value and can
    # rank above it; the search orders clusters by evidence.
    planted_names = {
        "ape=unset & has_hostpath=true",
        "ape=unset & rule=restrictedVolumes",
    }
    found = [c for c in clusters if c["kind"] == "missed_unsafe"
             and planted_names & {c["slice"], *c["equivalent"]}]  # fmt: skip
    assert found, [c["slice"] for c in clusters]
    assert found[0]["support"] == planted, (found[0]["support"], planted)
    print(f"report {run['run']}: {run['cases']} results, {len(clusters)} clusters")


if __name__ == "__main__":
    sys.exit(main())
