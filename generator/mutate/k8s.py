"""The Kubernetes mutators, as one explicit list, and the few that fit nowhere else.

``MUTATORS`` is the whole catalogue in the order reports print it; there is
no registry and no import-time side effect, so adding a mutator means adding
a line here, and the contract tests pick it up from this list. Each entry
names its family (the input region its cases belong to) and whether it
keeps the meaning (a pure respelling, which must never move a verdict).

``harden_workload`` is the odd one out: it is the fix a reviewer would ask
for, used as a prelude so that mutations of unsafe seeds can land on both
sides of the verdict.
"""

from __future__ import annotations

import random

from generator.grammar.k8s import APPARMOR_PREFIX, default_grammar
from generator.mutate import k8s_security as sec
from generator.mutate import k8s_shape as shape
from generator.mutate import k8s_spelling as spelling
from generator.mutate.base import (
    Manifest,
    Mutator,
    containers_in,
    context_of,
    weighted_choice,
)

__all__ = [
    "MUTATORS",
    "add_sysctl",
    "disable_host_users",
    "harden_workload",
    "mutator_named",
]

_GOOD_SECCOMP = ("RuntimeDefault", "Localhost")


def harden_workload(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A reviewer's fix for a Deployment with no securityContext: every container
    gets ``allowPrivilegeEscalation: false`` and ``drop: [ALL]``, the pod
    ``runAsNonRoot: true`` and RuntimeDefault; hostPath volumes stay."""
    twin, _, meta, spec = m.edit()
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        spec.pop(key, None)
    pod_sc = spec.get("securityContext")
    if not isinstance(pod_sc, dict):
        pod_sc = spec["securityContext"] = {}
    for key in ("sysctls", "seLinuxOptions", "appArmorProfile", "windowsOptions"):
        pod_sc.pop(key, None)
    if pod_sc.get("runAsUser") == 0:
        del pod_sc["runAsUser"]
    pod_sc["runAsNonRoot"] = True
    # A Windows pod may not carry Linux-only fields (API validation); the
    # restricted checks that read them skip it anyway.
    windows = (spec.get("os") or {}).get("name") == "windows"
    if (
        not windows
        and (pod_sc.get("seccompProfile") or {}).get("type") not in _GOOD_SECCOMP
    ):
        pod_sc["seccompProfile"] = {"type": "RuntimeDefault"}
    for _, c in containers_in(spec):
        _harden_container(c, windows)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for key in [k for k in annotations if str(k).startswith(APPARMOR_PREFIX)]:
            del annotations[key]
    return None if twin.documents == m.documents else twin


def _harden_container(c: dict, windows: bool) -> None:
    sc = context_of(c)
    for key in ("privileged", "procMount", "seLinuxOptions", "appArmorProfile",
                "windowsOptions"):  # fmt: skip
        sc.pop(key, None)
    _unhost_probes(c)
    if windows:
        for key in ("allowPrivilegeEscalation", "capabilities", "seccompProfile",
                    "runAsUser"):  # fmt: skip
            sc.pop(key, None)
        if sc.get("runAsNonRoot") is False:
            del sc["runAsNonRoot"]
        return
    sc["allowPrivilegeEscalation"] = False
    if sc.get("runAsNonRoot") is not True:
        sc.pop("runAsNonRoot", None)
    if sc.get("runAsUser") == 0:
        del sc["runAsUser"]
    if (sc.get("seccompProfile") or {}).get("type") not in _GOOD_SECCOMP:
        sc.pop("seccompProfile", None)
    old = sc.get("capabilities") if isinstance(sc.get("capabilities"), dict) else {}
    caps: dict = {"drop": ["ALL"]}
    if "NET_BIND_SERVICE" in (old.get("add") or ()):
        caps["add"] = ["NET_BIND_SERVICE"]
    sc["capabilities"] = caps


def _unhost_probes(c: dict) -> None:
    for port in c.get("ports") or ():
        if isinstance(port, dict):
            port.pop("hostPort", None)
    handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    handlers += list((c.get("lifecycle") or {}).values())
    for handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            body = handler.get(action) if isinstance(handler, dict) else None
            if isinstance(body, dict):
                body.pop("host", None)


def add_sysctl(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod sets ``net.core.somaxconn`` (unsafe: not namespaced safely) or
    ``net.ipv4.tcp_notsent_lowat`` (safe only from policy v1.37)."""
    twin, _, _, spec = m.edit()
    pod_sc = spec.setdefault("securityContext", {})
    name = weighted_choice(rnd, default_grammar().pools["sysctls"])
    entries = pod_sc.setdefault("sysctls", [])
    if any(isinstance(e, dict) and e.get("name") == name for e in entries):
        return None
    entries.append({"name": name, "value": "1"})
    return twin


def disable_host_users(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod opts into a user namespace with ``hostUsers: false``; from v1.35
    runAsNonRoot and runAsUser no longer apply, so uid 0 inside is allowed."""
    twin, _, _, spec = m.edit()
    if (
        spec.get("hostUsers") is False
        or (spec.get("os") or {}).get("name") == "windows"
    ):
        return None
    spec["hostUsers"] = False
    return twin


def _m(fn, family: str, *, keeps_meaning: bool = False) -> Mutator:
    return Mutator(fn.__name__, family, fn, keeps_meaning)


MUTATORS: tuple[Mutator, ...] = (
    # hostpath-escalation: the motivating region and its near misses
    _m(shape.add_host_path_mount, "hostpath-escalation"),
    _m(shape.swap_host_path_for_lookalike, "hostpath-escalation"),
    _m(sec.drop_escalation_guard, "escalation"),
    _m(sec.enable_privilege_escalation, "escalation"),
    _m(sec.grant_privileged, "escalation"),
    _m(harden_workload, "escalation"),
    # inheritance: pod-level versus container-level fields
    _m(sec.hoist_container_field_to_pod, "inheritance"),
    _m(sec.push_run_as_non_root_down, "inheritance"),
    _m(sec.lift_run_as_non_root_up, "inheritance"),
    _m(sec.flip_run_as_non_root, "inheritance"),
    _m(sec.run_as_root, "inheritance"),
    _m(sec.respell_capability, "capability-spelling"),
    _m(sec.grant_capability, "capability-spelling"),
    _m(sec.unconfine_seccomp, "seccomp"),
    _m(sec.push_seccomp_down, "seccomp"),
    _m(sec.annotate_seccomp_unconfined, "seccomp"),
    _m(sec.set_apparmor_profile, "apparmor-selinux"),
    _m(sec.set_selinux_options, "apparmor-selinux"),
    _m(sec.unmask_proc_mount, "user-namespaces"),
    _m(disable_host_users, "user-namespaces"),
    _m(add_sysctl, "sysctls"),
    _m(shape.mount_forbidden_volume, "volumes"),
    _m(shape.strip_volume_source, "volumes"),
    _m(shape.add_bare_init_container, "init-containers"),
    _m(shape.add_native_sidecar, "init-containers"),
    _m(shape.add_debug_container, "ephemeral-containers"),
    _m(shape.wrap_in_workload, "workload-kinds", keeps_meaning=True),
    _m(shape.wrap_in_list, "workload-kinds", keeps_meaning=True),
    _m(shape.add_companion_document, "workload-kinds", keeps_meaning=True),
    _m(shape.set_windows_os, "windows"),
    _m(shape.run_as_windows_host_process, "windows"),
    _m(shape.share_host_namespace, "host-namespaces"),
    _m(shape.publish_host_port, "host-namespaces"),
    _m(shape.point_probe_at_host, "host-namespaces"),
    # yaml-spelling: same meaning, other text; then the two spelling traps
    _m(spelling.shuffle_keys, "yaml-spelling", keeps_meaning=True),
    _m(spelling.write_flow_style, "yaml-spelling", keeps_meaning=True),
    _m(spelling.quote_keys, "yaml-spelling", keeps_meaning=True),
    _m(spelling.share_context_by_anchor, "yaml-spelling", keeps_meaning=True),
    _m(spelling.spell_booleans, "yaml-spelling", keeps_meaning=True),
    _m(spelling.indent_like_kubectl, "yaml-spelling", keeps_meaning=True),
    _m(spelling.add_misleading_comment, "yaml-spelling", keeps_meaning=True),
    _m(spelling.comment_out_field, "yaml-spelling"),
    _m(spelling.quote_boolean, "yaml-spelling"),
)

_BY_NAME = {m.name: m for m in MUTATORS}


def mutator_named(name: str) -> Mutator:
    """The mutator called ``name``; ``KeyError`` lists the known names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no mutator {name!r}; known: {', '.join(_BY_NAME)}") from None
