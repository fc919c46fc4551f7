#!/usr/bin/env python3
"""Cross-check spotcheck's Kubernetes oracle against checkov, check by check.

    scripts/crosscheck_checkov.py --setup               # .venv-checkov (optional)
    scripts/crosscheck_checkov.py SUITE --out OUT       # OUT/crosscheck.{md,json}

checkov runs once, offline, over every case's config written to a temp dir.
Each checkov check id in MAPPING is paired with the closest PSS check (ids and
names read from checkov 3.3.30's check classes); a PSS check fails on the
checkov side if any id mapped to it failed. Every case where that differs
from the oracle's verdict for the check (at the case's policy version) is a
disagreement. BEHAVIOURS lists what checkov is known to do differently from
PSS; a disagreement is "peer wrong" when those explain it (a miss: every one
of the oracle's findings; a false alarm: the case), else "unclassified".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.config.k8s import Workload
from generator.oracle.k8s import CHECKS, Finding, evaluate_text, read_question

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-checkov"
MAPPING: dict[str, str] = {
    "CKV_K8S_16": "privileged",  # Container should not be privileged
    "CKV_K8S_17": "hostNamespaces",  # ... share the host process ID namespace
    "CKV_K8S_18": "hostNamespaces",  # ... share the host IPC namespace
    "CKV_K8S_19": "hostNamespaces",  # ... share the host network namespace
    "CKV_K8S_20": "allowPrivilegeEscalation",  # ... run with allowPrivilegeEsc.
    "CKV_K8S_23": "runAsNonRoot",  # Minimize the admission of root containers
    "CKV_K8S_25": "capabilities_restricted",  # ... containers with added capability
    "CKV_K8S_26": "hostPorts",  # Do not specify hostPort unless ... necessary
    "CKV_K8S_27": "hostPathVolumes",  # Do not expose the docker daemon socket
    "CKV_K8S_28": "capabilities_restricted",  # ... with the NET_RAW capability
    "CKV_K8S_31": "seccompProfile_restricted",  # seccomp docker/runtime default
    "CKV_K8S_37": "capabilities_restricted",  # ... with capabilities assigned
    "CKV_K8S_39": "capabilities_baseline",  # Do not use CAP_SYS_ADMIN
}
SPEC_KINDS = {"PodTemplate"}  # kinds CKV_K8S_17/18/19/23/27/31 never evaluate
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
BOOL_FIELDS = {
    "allowPrivilegeEscalation": ("allowPrivilegeEscalation",),
    "privileged": ("privileged",),
    "hostNamespaces": ("hostNetwork", "hostPID", "hostIPC"),
    "runAsNonRoot": ("runAsNonRoot",),
}


@dataclass(frozen=True)
class Ctx:
    """One disagreement: the case, the PSS check and both sides' evidence."""

    case: dict[str, Any]
    check: str
    version: tuple[int, int]
    workloads: list[Workload]
    findings: list[tuple[Workload, Finding]]
    peer_failed: tuple[str, ...]


Pred = Callable[[Ctx, Workload, "Finding | None"], bool]


def _loc(w: Workload, f: Finding | None) -> tuple[str, dict[str, Any]]:
    """("pod", spec) or (container list, container) where a finding sits."""
    m = re.match(r"\.(\w+)\[(\d+)\]", f.path[len(w.spec_path) :]) if f else None
    if m and m.group(1) in CONTAINER_LISTS:
        return m.group(1), w.spec[m.group(1)][int(m.group(2))]
    return "pod", w.spec


def _sc(obj: Any) -> dict[str, Any]:
    sc = obj.get("securityContext") if isinstance(obj, dict) else None
    return sc if isinstance(sc, dict) else {}


def _containers(w: Workload) -> list[dict[str, Any]]:
    return [c for k in CONTAINER_LISTS for c in w.spec.get(k) or [] if c]


def _uid_ok(obj: Any) -> bool:
    uid = _sc(obj).get("runAsUser")
    return isinstance(uid, int) and not isinstance(uid, bool) and uid >= 1


def _seccomp_types(w: Workload) -> list[Any]:
    objs = [w.spec, *_containers(w)]
    return [(_sc(o).get("seccompProfile") or {}).get("type") for o in objs]


def _yaml_bool(ctx: Ctx, w: Workload, f: Finding | None) -> bool:
    names = "|".join(BOOL_FIELDS.get(ctx.check, ()))
    rx = rf"^\s*(-\s+)?({names}):\s*[yYnN]\s*(#.*)?$"
    return bool(names) and re.search(rx, ctx.case["config"], re.M) is not None


@dataclass(frozen=True)
class Behaviour:
    """A documented way checkov differs from PSS, tested on the case's fields."""

    key: str
    checks: frozenset[str]
    miss: bool  # True: explains an oracle finding checkov does not report
    test: Pred
    reason: str  # the PSS rule checkov gets wrong


def _b(key: str, checks: str, miss: bool, test: Pred, reason: str) -> Behaviour:
    return Behaviour(key, frozenset(checks.split()), miss, test, reason)


YAML_WHY = (
    "checkov reads YAML with PyYAML, where y/n are truthy strings; the API "
    "server (go-yaml v2) reads y/Y/n/N as booleans"
)
PER_CONTAINER = (
    "privileged allowPrivilegeEscalation capabilities_restricted "
    "capabilities_baseline hostPorts runAsNonRoot seccompProfile_restricted"
)
BEHAVIOURS: tuple[Behaviour, ...] = (
    _b("ephemeral-containers", PER_CONTAINER, True,
       lambda c, w, f: _loc(w, f)[0] == "ephemeralContainers",
       "checkov never reads ephemeralContainers; PSS checks every container "
       "list (ephemeral ones when added through pods/ephemeralcontainers)"),
    _b("containers-only", "runAsNonRoot seccompProfile_restricted", True,
       lambda c, w, f: _loc(w, f)[0] == "initContainers",
       "CKV_K8S_23/31 read only spec.containers; PSS covers initContainers "
       "(sidecars included)"),
    _b("unsupported-kind", "hostNamespaces runAsNonRoot hostPathVolumes "
       "seccompProfile_restricted", True, lambda c, w, f: w.kind in SPEC_KINDS,
       "CKV_K8S_17/18/19/23/27/31 skip PodTemplate; PSA evaluates the "
       "template of every pod-template holder"),
    _b("container-wins", "runAsNonRoot", True,
       lambda c, w, f: _loc(w, f)[0] == "pod",
       "checkov lets container values override the pod; PSS judges every "
       "place a field is set, so pod runAsNonRoot: false fails on its own"),
    _b("uid-as-nonroot", "runAsNonRoot", True,
       lambda c, w, f: _uid_ok(_loc(w, f)[1]) or _uid_ok(w.spec),
       "CKV_K8S_23 accepts runAsUser > 0 instead of runAsNonRoot; PSS needs "
       "runAsNonRoot: true (pod or container), a non-zero UID does not do"),
    _b("substring-all", "capabilities_restricted", True,
       lambda c, w, f: any("ALL" in str(d) or "all" in str(d) for d in
                           (_sc(_loc(w, f)[1]).get("capabilities") or {})
                           .get("drop") or []),
       "CKV_K8S_28/37 accept any drop entry containing ALL or all (all, "
       "CAP_ALL); PSS requires the exact string ALL"),
    _b("pod-seccomp-shadows", "seccompProfile_restricted", True,
       lambda c, w, f: _seccomp_types(w)[0] == "RuntimeDefault",
       "CKV_K8S_31 passes on a pod-level RuntimeDefault without reading "
       "containers; PSS fails a container that sets another type"),
    _b("seccomp-annotation", "seccompProfile_restricted", True,
       lambda c, w, f: any("seccomp.security.alpha" in k for k in
                           (w.meta.get("annotations") or {})),
       "CKV_K8S_31 accepts the alpha seccomp annotation; from policy v1.19 "
       "PSS reads only the seccompProfile fields"),
    _b("docker-socket-only", "hostPathVolumes", True,
       lambda c, w, f: f is not None and f.path.endswith(".hostPath"),
       "CKV_K8S_27 flags only a hostPath to /var/run/docker.sock; PSS "
       "hostPathVolumes forbids every hostPath volume"),
    _b("sys-admin-only", "capabilities_baseline", True,
       lambda c, w, f: f is not None and ".add[" in f.path,
       "CKV_K8S_39 flags only an added SYS_ADMIN; PSS baseline allows only "
       "its default set, by exact name (NET_RAW, CAP_SYS_ADMIN, chown fail)"),
    _b("yaml-1.1", " ".join(BOOL_FIELDS), True, _yaml_bool, YAML_WHY),
    _b("yaml-1.1", " ".join(BOOL_FIELDS), False, _yaml_bool, YAML_WHY),
    _b("windows-as-linux", "allowPrivilegeEscalation capabilities_restricted "
       "seccompProfile_restricted", False,
       lambda c, w, f: c.version >= (1, 25)
       and (w.spec.get("os") or {}).get("name") == "windows",
       "checkov treats a Windows pod like Linux; from policy v1.25 PSS skips "
       "this check for spec.os.name: windows"),
    _b("ignores-hostusers", "runAsNonRoot", False,
       lambda c, w, f: c.version >= (1, 35) and w.spec.get("hostUsers") is False,
       "checkov ignores user namespaces; from policy v1.35 PSS skips "
       "runAsNonRoot for hostUsers: false"),
    _b("runtime-default-only", "seccompProfile_restricted", False,
       lambda c, w, f: "Localhost" in _seccomp_types(w),
       "CKV_K8S_31 accepts only RuntimeDefault; PSS also allows Localhost"),
    _b("fields-ignored-for-kind", "seccompProfile_restricted", False,
       lambda c, w, f: w.kind in ("ReplicationController", "CronJob"),
       "CKV_K8S_31 reads only annotations for ReplicationController and only "
       "pod-level fields for CronJob; PSS reads pod and container fields"),
    _b("any-added-cap", "capabilities_restricted", False,
       lambda c, w, f: "CKV_K8S_25" in c.peer_failed,
       "CKV_K8S_25 flags any added capability; PSS restricted allows adding "
       "NET_BIND_SERVICE"),
    _b("host-port-zero", "hostPorts", False,
       lambda c, w, f: any("hostPort" in p and not p["hostPort"] for x in
                           _containers(w) for p in x.get("ports") or []),
       "CKV_K8S_26 flags any hostPort key; PSS allows hostPort 0 (= unset)"),
)  # fmt: skip


def classify(ctx: Ctx, spot: str) -> tuple[str, list[str], list[str]]:
    """(classification, behaviour keys, reasons) for one disagreement."""
    hits: dict[str, str] = {}
    rules = [
        b for b in BEHAVIOURS if ctx.check in b.checks and b.miss == (spot == "fail")
    ]
    if spot == "fail":  # every finding must be invisible to checkov
        for w, f in ctx.findings:
            found = [b for b in rules if b.test(ctx, w, f)]
            if not found:
                return "unclassified", [], []
            hits.update((b.key, b.reason) for b in found[:1])
    else:  # checkov's failure must come from a known behaviour
        hits = {
            b.key: b.reason
            for b in rules
            if any(b.test(ctx, w, None) for w in ctx.workloads)
        }
    if not hits:
        return "unclassified", [], []
    return "peer wrong", list(hits), list(hits.values())


def crosscheck(cases: list[dict[str, Any]], peer: dict[str, Any]) -> dict[str, Any]:
    """Compare per-check verdicts; ``peer`` is checkov's JSON (kubernetes)."""
    failed: dict[str, dict[str, set[str]]] = {}
    names: dict[str, str] = {}
    for r in peer.get("results", {}).get("failed_checks", []):
        stem = Path(r["file_path"]).stem
        names[r["check_id"]] = r.get("check_name", "")
        pss = MAPPING.get(r["check_id"])
        if pss:
            failed.setdefault(stem, {}).setdefault(pss, set()).add(r["check_id"])
    rows, compared = [], 0
    for case in cases:
        version = read_question(case["question"]).version
        evaluations = evaluate_text(case["config"], version)
        ran = {c.id for c in CHECKS if c.since <= version}
        wls = [e.workload for e in evaluations]
        for check in sorted(set(MAPPING.values()) & ran):
            found = [(e.workload, f) for e in evaluations for f in e.findings]
            found = [(w, f) for w, f in found if f.rule == check]
            ids = tuple(sorted(failed.get(case["id"], {}).get(check, ())))
            spot, them = ("fail" if found else "pass"), ("fail" if ids else "pass")
            compared += 1
            if spot == them:
                continue
            ctx = Ctx(case, check, version, wls, found, ids)
            label, keys, reasons = classify(ctx, spot)
            rows.append({"id": case["id"], "family": case["family"],
                         "check": check, "spotcheck": spot, "checkov": them,
                         "checkov_ids": list(ids), "classification": label,
                         "behaviours": keys, "reasons": reasons,
                         "paths": [f.path for _, f in found]})  # fmt: skip
    unmapped = {i: n for i, n in sorted(names.items()) if i not in MAPPING}
    counts = Counter(
        f"{r['check']}|{r['spotcheck']}/{r['checkov']}|{r['classification']}"
        for r in rows
    )
    return {"cases": len(cases), "compared": compared, "mapping": MAPPING,
            "unmapped": unmapped,
            "counts": dict(sorted(counts.items())), "disagreements": rows}  # fmt: skip


def run_checkov(cases: list[dict[str, Any]], checkov: Path) -> dict[str, Any]:
    """Run checkov once, offline, over all configs; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="crosscheck-") as tmp:
        for case in cases:
            (Path(tmp) / f"{case['id']}.yaml").write_text(case["config"])
        cmd = [str(checkov), "-d", tmp, "--framework", "kubernetes"]
        cmd += ["--skip-download", "--compact", "--quiet", "-o", "json"]
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    if done.returncode not in (0, 1):
        raise SystemExit(f"checkov failed ({done.returncode}): {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    if isinstance(out, list):  # one report per framework
        out = next(r for r in out if r.get("check_type") == "kubernetes")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The summary counts, then every disagreement as one table row."""
    lines = [f"# checkov cross-check: {result['cases']} cases", ""]
    lines += [f"{len(result['disagreements'])} disagreements in {result['compared']}"
              " (case, PSS check) pairs.", ""]  # fmt: skip
    lines += ["| PSS check | spotcheck/checkov | classification | n |"]
    lines += ["|---|---|---|---:|"]
    for key, n in result["counts"].items():
        lines.append("| {} | {} | {} | {} |".format(*key.split("|"), n))
    by = Counter(k for r in result["disagreements"] for k in r["behaviours"])
    lines += ["", "| checkov behaviour | disagreements |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in by.most_common()]
    lines += [
        "",
        "| case | family | PSS check | spotcheck | checkov | class | reason |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for r in result["disagreements"]:
        them = f"{r['checkov']} ({', '.join(r['checkov_ids'])})".replace(" ()", "")
        why = "; ".join(
            f"{k}: {t}" for k, t in zip(r["behaviours"], r["reasons"], strict=True)
        )
        lines.append(
            f"| {r['id']} | {r['family']} | {r['check']} | {r['spotcheck']} "
            f"| {them} | {r['classification']} | {why or 'needs a human'} |"
        )
    lines += ["", "Unmapped checkov checks (PSS has no such rule):", ""]
    lines += [f"- {i}: {n}" for i, n in result["unmapped"].items()]
    alone = sorted({c.id for c in CHECKS} - set(MAPPING.values()))
    lines += ["", "PSS checks with no checkov counterpart: " + ", ".join(alone)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", nargs="?", type=Path, help="dir with cases.jsonl")
    ap.add_argument("--out", type=Path, default=Path("crosscheck-out"))
    ap.add_argument("--setup", action="store_true", help="create .venv-checkov")
    ap.add_argument("--checkov-json", type=Path, help="reuse a saved result")
    args = ap.parse_args(argv)
    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "checkov"]
        return subprocess.run(pip).returncode
    if args.suite is None:
        ap.error("give a suite directory (or --setup)")
    lines = (args.suite / "cases.jsonl").read_text().splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    if args.checkov_json:
        peer = json.loads(args.checkov_json.read_text())
    else:
        peer = run_checkov(cases, VENV / "bin" / "checkov")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checkov.json").write_text(json.dumps(peer))
    result = crosscheck(cases, peer)
    (args.out / "crosscheck.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "crosscheck.md").write_text(markdown(result))
    print("\n\n".join(markdown(result).split("\n\n")[1:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
