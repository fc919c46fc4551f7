"""Mutators over security-context fields: escalation, identity, capabilities, LSMs.

Each docstring is the one scenario the mutator exists for. The rules they
probe are the Pod Security Standards as PSA applies them
(https://kubernetes.io/docs/concepts/security/pod-security-standards/;
shared/research/k8s-pss.md): every place a field is set is judged alone,
container-only fields written at pod level are never read, and names are
matched exactly.
"""

from __future__ import annotations

import random
from typing import Any

from generator.grammar.k8s import APPARMOR_PREFIX, default_grammar
from generator.mutate.base import Manifest, containers_in, context_of, weighted_choice

__all__ = [
    "annotate_seccomp_unconfined",
    "drop_escalation_guard",
    "enable_privilege_escalation",
    "flip_run_as_non_root",
    "grant_capability",
    "grant_privileged",
    "hoist_container_field_to_pod",
    "lift_run_as_non_root_up",
    "push_run_as_non_root_down",
    "push_seccomp_down",
    "respell_capability",
    "run_as_root",
    "set_apparmor_profile",
    "set_selinux_options",
    "unconfine_seccomp",
    "unmask_proc_mount",
]


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    """Read-only view of a container's securityContext ({} when absent)."""
    sc = container.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _pool(name: str) -> tuple[tuple[Any, int], ...]:
    return default_grammar().pools[name]


# --- privilege escalation ---------------------------------------------------


def drop_escalation_guard(m: Manifest, rnd: random.Random) -> Manifest | None:
    """An init container loses ``allowPrivilegeEscalation: false`` while every
    app container keeps it; unset means escalation allowed, so restricted fails."""
    twin, _, _, spec = m.edit()
    guarded = [
        (key, c)
        for key, c in containers_in(spec)
        if _sc(c).get("allowPrivilegeEscalation") is False
    ]
    if not guarded:
        return None
    inits = [c for key, c in guarded if key == "initContainers"]
    target = rnd.choice(inits or [c for _, c in guarded])
    del target["securityContext"]["allowPrivilegeEscalation"]
    return twin


def enable_privilege_escalation(m: Manifest, rnd: random.Random) -> Manifest | None:
    """One container says ``allowPrivilegeEscalation: true``, the others false."""
    twin, _, _, spec = m.edit()
    target = rnd.choice([c for _, c in containers_in(spec)])
    context_of(target)["allowPrivilegeEscalation"] = True
    return twin


def grant_privileged(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A CSI node plugin container becomes ``privileged: true``; escalation is
    then true by definition, and the API refuses it next to an explicit false."""
    twin, _, _, spec = m.edit()
    target = rnd.choice([c for key, c in containers_in(spec) if key == "containers"])
    sc = context_of(target)
    sc["privileged"] = True
    sc["allowPrivilegeEscalation"] = True
    return twin


_CONTAINER_ONLY = (
    "allowPrivilegeEscalation",
    "capabilities",
    "privileged",
    "procMount",
)


def hoist_container_field_to_pod(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``allowPrivilegeEscalation: false`` moves from every container up to
    ``spec.securityContext``; PodSecurityContext has no such field, so PSA
    never sees it and the containers are unset."""
    twin, _, _, spec = m.edit()
    entries = [c for _, c in containers_in(spec)]
    present = [f for f in _CONTAINER_ONLY if any(f in _sc(c) for c in entries)]
    if not present:
        return None
    name = rnd.choice(present)
    value = next(_sc(c)[name] for c in entries if name in _sc(c))
    for c in entries:
        _sc(c).pop(name, None)
    spec.setdefault("securityContext", {})[name] = value
    return twin


# --- identity: runAsNonRoot and runAsUser -----------------------------------


def push_run_as_non_root_down(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``runAsNonRoot: true`` moves from the pod to each app container, but not
    to the init containers, which are then unset with no pod value to lean on."""
    twin, _, _, spec = m.edit()
    pod_sc = spec.get("securityContext")
    if not isinstance(pod_sc, dict) or pod_sc.get("runAsNonRoot") is not True:
        return None
    del pod_sc["runAsNonRoot"]
    for key, c in containers_in(spec):
        if key == "containers":
            context_of(c)["runAsNonRoot"] = True
    return twin


def lift_run_as_non_root_up(m: Manifest, rnd: random.Random) -> Manifest | None:
    """Containers' ``runAsNonRoot: true`` is replaced by one pod-level true,
    which stands in for every unset container: the verdict should not move."""
    twin, _, _, spec = m.edit()
    holders = [c for _, c in containers_in(spec) if _sc(c).get("runAsNonRoot") is True]
    if not holders:
        return None
    for c in holders:
        del c["securityContext"]["runAsNonRoot"]
    spec.setdefault("securityContext", {})["runAsNonRoot"] = True
    return twin


def flip_run_as_non_root(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod says ``runAsNonRoot: false`` and every container says true; at
    runtime the containers win, but PSA fails the pod-level false on its own."""
    twin, _, _, spec = m.edit()
    spec.setdefault("securityContext", {})["runAsNonRoot"] = False
    for _, c in containers_in(spec):
        context_of(c)["runAsNonRoot"] = True
    return twin


def run_as_root(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``runAsUser: 0`` at pod level while containers set their own non-zero
    uid: an explicit 0 anywhere fails, even if overridden (v1.23+)."""
    twin, _, _, spec = m.edit()
    if rnd.random() < 0.5:
        spec.setdefault("securityContext", {})["runAsUser"] = 0
    else:
        target = rnd.choice([c for _, c in containers_in(spec)])
        context_of(target)["runAsUser"] = 0
    return twin


# --- capabilities -----------------------------------------------------------


def _variant(name: str, rnd: random.Random) -> str:
    # A canonical name gets a spelling PSA does not accept; a variant is
    # corrected back, so this mutator moves verdicts both ways.
    if name == name.upper() and not name.startswith("CAP_"):
        return rnd.choice([name.lower(), f"CAP_{name}", name.capitalize()])
    return name.upper().removeprefix("CAP_")


def respell_capability(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``drop: [ALL]`` becomes ``drop: [all]`` (or ``add: [CHOWN]`` becomes
    ``CAP_CHOWN``): runtimes accept both, PSA matches names exactly."""
    twin, _, _, spec = m.edit()
    sites = []
    for _, c in containers_in(spec):
        caps = _sc(c).get("capabilities")
        for key in ("drop", "add"):
            names = caps.get(key) if isinstance(caps, dict) else None
            if isinstance(names, list):
                sites += [(names, i) for i, n in enumerate(names) if isinstance(n, str)]
    if not sites:
        return None
    names, i = rnd.choice(sites)
    names[i] = _variant(names[i], rnd)
    return twin


def grant_capability(m: Manifest, rnd: random.Random) -> Manifest | None:
    """One container adds a capability from the grammar's pool: NET_BIND_SERVICE
    is the only one restricted allows, NET_RAW or SYS_ADMIN fail."""
    twin, _, _, spec = m.edit()
    target = rnd.choice([c for _, c in containers_in(spec)])
    caps = context_of(target).setdefault("capabilities", {})
    name = weighted_choice(rnd, _pool("capabilities_add"))
    adds = caps.setdefault("add", [])
    if name in adds:
        return None
    adds.append(name)
    return twin


# --- seccomp, AppArmor, SELinux, /proc ----------------------------------------


def unconfine_seccomp(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The debug container gets ``seccompProfile: Unconfined`` while the pod
    says RuntimeDefault; or the pod-level profile is dropped altogether."""
    twin, _, _, spec = m.edit()
    pod_sc = spec.get("securityContext")
    if rnd.random() < 0.3 and isinstance(pod_sc, dict) and "seccompProfile" in pod_sc:
        del pod_sc["seccompProfile"]
        return twin
    target = rnd.choice([c for _, c in containers_in(spec)])
    context_of(target)["seccompProfile"] = {"type": "Unconfined"}
    return twin


def push_seccomp_down(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod-level RuntimeDefault profile is copied onto the app containers
    only; init and debug containers are left with no profile anywhere."""
    twin, _, _, spec = m.edit()
    pod_sc = spec.get("securityContext")
    if not isinstance(pod_sc, dict) or "seccompProfile" not in pod_sc:
        return None
    profile = pod_sc.pop("seccompProfile")
    for key, c in containers_in(spec):
        if key == "containers":
            context_of(c)["seccompProfile"] = dict(profile)
    return twin


_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"


def annotate_seccomp_unconfined(m: Manifest, rnd: random.Random) -> Manifest | None:
    """An old chart keeps ``seccomp.security.alpha.kubernetes.io/pod: unconfined``
    beside a RuntimeDefault field: policies up to v1.18 read only the
    annotation, later ones only the field."""
    twin, _, meta, spec = m.edit()
    annotations = meta.setdefault("annotations", {})
    if rnd.random() < 0.5:
        annotations[_SECCOMP_POD] = "unconfined"
    else:
        target = rnd.choice([c for _, c in containers_in(spec)])
        annotations[_SECCOMP_CONTAINER + target["name"]] = "unconfined"
    return twin


def set_apparmor_profile(m: Manifest, rnd: random.Random) -> Manifest | None:
    """An AppArmor profile appears as the beta annotation or the field:
    ``unconfined`` fails baseline, ``runtime/default``/``Localhost`` pass."""
    twin, _, meta, spec = m.edit()
    target = rnd.choice([c for _, c in containers_in(spec)])
    if rnd.random() < 0.5:
        value = weighted_choice(rnd, _pool("apparmor_annotations"))
        meta.setdefault("annotations", {})[APPARMOR_PREFIX + target["name"]] = value
    else:
        kind = weighted_choice(rnd, _pool("apparmor_types"))
        profile = {"type": kind}
        if kind == "Localhost":
            profile["localhostProfile"] = "k8s-apparmor-example"
        context_of(target)["appArmorProfile"] = profile
    return twin


def set_selinux_options(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``seLinuxOptions.type: spc_t`` (super-privileged) on one container, or
    a harmless ``container_t`` with a level; user and role must stay empty."""
    twin, _, _, spec = m.edit()
    options: dict[str, Any] = {"type": weighted_choice(rnd, _pool("selinux_types"))}
    if rnd.random() < 0.3:
        options["user"] = weighted_choice(rnd, _pool("selinux_users"))
    if rnd.random() < 0.3:
        options["level"] = weighted_choice(rnd, _pool("selinux_levels"))
    if rnd.random() < 0.4:
        spec.setdefault("securityContext", {})["seLinuxOptions"] = options
    else:
        target = rnd.choice([c for _, c in containers_in(spec)])
        context_of(target)["seLinuxOptions"] = options
    return twin


def unmask_proc_mount(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A build container sets ``procMount: Unmasked`` inside a user namespace
    (``hostUsers: false``): baseline allows it from v1.35, restricted never."""
    twin, _, _, spec = m.edit()
    target = rnd.choice([c for _, c in containers_in(spec)])
    context_of(target)["procMount"] = "Unmasked"
    if rnd.random() < 0.6 and (spec.get("os") or {}).get("name") != "windows":
        spec["hostUsers"] = False
    return twin
