"""Kubernetes case families: named regions of the input space, as strategies.

A family starts from a grammar draw (usually a hardened workload, which
passes restricted) and moves it along one dimension with named operators,
so each region holds near misses on both sides of the verdict. Each family
below opens with a comment listing the space it covers. The list is
explicit and ordered; suite selection and the manifest follow its order.

Steps are ``(percent, ((operator, weight), ...))``: with that chance, one
operator drawn by weight is applied. Operators are the mutators of
``generator.mutate.k8s``, called with a ``random.Random`` seeded from a
Hypothesis draw, so one catalogue of edits serves grammar and seed cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from generator.grammar.k8s import workloads
from generator.grammar.pools import weighted
from generator.mutate.base import Manifest
from generator.mutate.k8s import mutator_named

__all__ = ["FAMILIES", "Draft", "Family", "Step"]

Step = tuple[int, tuple[tuple[str, int], ...]]


@dataclass(frozen=True)
class Draft:
    """A candidate case before the oracle: its family, manifest and history.

    ``trail`` holds ``(operator, manifest after it or None if it did not
    apply)`` for every attempted operator; ``start`` is the manifest before
    the first one. The suite replays it to profile verdict flips.
    """

    family: str
    start: Manifest
    trail: tuple[tuple[str, Manifest | None], ...]
    method: str = "grammar"
    parent: str | None = None
    seed: int | None = None
    seed_file: str = ""

    @property
    def manifest(self) -> Manifest:
        applied = [m for _, m in self.trail if m is not None]
        return applied[-1] if applied else self.start

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(name for name, m in self.trail if m is not None)


@dataclass(frozen=True)
class Family:
    """A named region: a base workload strategy and the steps that move it."""

    name: str
    weight: int
    base: Callable[[], st.SearchStrategy[dict]]
    steps: tuple[Step, ...] = ()

    def drafts(self) -> st.SearchStrategy[Draft]:
        return _drafts(self)


@st.composite
def _drafts(draw, family: Family) -> Draft:
    start = Manifest((draw(family.base()),))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    current, trail = start, []
    for percent, choices in family.steps:
        if draw(st.integers(0, 99)) >= percent:
            continue
        name = draw(weighted(choices))
        result = mutator_named(name)(current, rnd)
        trail.append((name, result))
        current = result or current
    return Draft(family.name, start, tuple(trail))


def _hardened(**kwargs) -> Callable[[], st.SearchStrategy[dict]]:
    return lambda: workloads(hardened=True, **kwargs)


_ESCALATION = (
    ("drop_escalation_guard", 4),
    ("enable_privilege_escalation", 2),
    ("add_bare_init_container", 2),
    ("hoist_container_field_to_pod", 1),
    ("grant_privileged", 1),
)
_SPELLINGS = (
    ("shuffle_keys", 2),
    ("write_flow_style", 2),
    ("quote_keys", 1),
    ("share_context_by_anchor", 2),
    ("spell_booleans", 2),
    ("indent_like_kubectl", 1),
    ("add_misleading_comment", 1),
)

FAMILIES: tuple[Family, ...] = (
    # hostpath-escalation: the motivating region. Hardened workloads of every
    # kind gain a hostPath mount (each grammar target: /, /etc, /proc,
    # docker.sock, kubelet dirs; read-write, read-only, subPath), sometimes
    # after a native sidecar joins, then one escalation state: all false
    # (hostPath alone fails), unset on one (init) container, true, privileged,
    # or false only at pod level. Near misses swap the hostPath for a
    # look-alike allowed source (emptyDir, PVC, only a name).
    Family(
        "hostpath-escalation",
        18,
        _hardened(),
        (
            (30, (("add_native_sidecar", 1),)),
            (100, (("add_host_path_mount", 1),)),
            (50, _ESCALATION),
            (55, (("swap_host_path_for_lookalike", 1),)),
        ),
    ),
    # escalation: allowPrivilegeEscalation alone, with no hostPath: unset on
    # one container, true, privileged, the false hoisted to pod level.
    Family("escalation", 6, _hardened(), ((55, _ESCALATION),)),
    # inheritance: pod versus container level for runAsNonRoot, runAsUser and
    # seccompProfile; pushed down past init containers, lifted up, flipped
    # (pod false, containers true), root at pod level under non-root
    # containers, container-only fields hoisted to the pod.
    Family(
        "inheritance",
        8,
        _hardened(),
        (
            (35, (("add_native_sidecar", 1), ("add_bare_init_container", 1))),
            (
                90,
                (
                    ("push_run_as_non_root_down", 3),
                    ("lift_run_as_non_root_up", 3),
                    ("flip_run_as_non_root", 2),
                    ("run_as_root", 2),
                    ("push_seccomp_down", 2),
                    ("hoist_container_field_to_pod", 1),
                ),
            ),
        ),
    ),
    # capability-spelling: ALL vs all/All/CAP_ALL in drop; CHOWN vs chown vs
    # CAP_CHOWN, NET_BIND_SERVICE vs CAP_NET_BIND_SERVICE, SYS_ADMIN in add.
    Family(
        "capability-spelling",
        6,
        _hardened(),
        ((85, (("respell_capability", 3), ("grant_capability", 2))),),
    ),
    # init-containers: classic init containers copied without a context,
    # native sidecars (restartPolicy Always) with one, then maybe one of
    # them loses its escalation guard.
    Family(
        "init-containers",
        6,
        _hardened(),
        (
            (100, (("add_native_sidecar", 3), ("add_bare_init_container", 2))),
            (30, (("drop_escalation_guard", 1),)),
        ),
    ),
    # ephemeral-containers: kubectl debug shells on hardened Pods, with and
    # without a copied securityContext.
    Family(
        "ephemeral-containers",
        3,
        _hardened(kinds=("Pod",)),
        ((85, (("add_debug_container", 1),)),),
    ),
    # windows: spec.os.name windows (drawn or set), with Linux-only checks
    # violated (exempt from v1.25) or runAsNonRoot/hostProcess (never exempt).
    Family(
        "windows",
        5,
        _hardened(),
        (
            (70, (("set_windows_os", 1),)),
            (
                65,
                (
                    ("grant_capability", 2),
                    ("enable_privilege_escalation", 2),
                    ("unconfine_seccomp", 1),
                    ("flip_run_as_non_root", 1),
                    ("run_as_windows_host_process", 1),
                    ("run_as_root", 1),
                ),
            ),
        ),
    ),
    # workload-kinds: every pod-template kind, kind: List, multi-document
    # streams with a Service or ConfigMap, with and without one violation.
    Family(
        "workload-kinds",
        5,
        _hardened(),
        (
            (
                100,
                (
                    ("wrap_in_workload", 3),
                    ("wrap_in_list", 1),
                    ("add_companion_document", 2),
                ),
            ),
            (
                50,
                (
                    ("drop_escalation_guard", 1),
                    ("add_host_path_mount", 1),
                    ("share_host_namespace", 1),
                    ("run_as_root", 1),
                ),
            ),
        ),
    ),  # fmt: skip
    # volumes: every allowed source, a volume with only a name, forbidden
    # inline sources (nfs, iscsi, gitRepo, cloud disks), sources stripped.
    Family(
        "volumes",
        5,
        _hardened(),
        (
            (55, (("mount_forbidden_volume", 3), ("add_host_path_mount", 1))),
            (25, (("strip_volume_source", 1),)),
        ),
    ),
    # host-namespaces: hostNetwork/hostPID/hostIPC, hostPort, probe and
    # lifecycle hosts (loopback included).
    Family(
        "host-namespaces",
        5,
        _hardened(),
        (
            (
                55,
                (
                    ("share_host_namespace", 2),
                    ("publish_host_port", 2),
                    ("point_probe_at_host", 2),
                ),
            ),
        ),
    ),  # fmt: skip
    # seccomp: Unconfined at either level, the pod profile removed or pushed
    # down past init and debug containers; Localhost and RuntimeDefault; the
    # alpha annotation, read only by policies up to v1.18.
    Family(
        "seccomp",
        5,
        _hardened(),
        (
            (30, (("add_native_sidecar", 1),)),
            (
                70,
                (
                    ("unconfine_seccomp", 2),
                    ("push_seccomp_down", 2),
                    ("annotate_seccomp_unconfined", 1),
                ),
            ),
        ),
    ),
    # apparmor-selinux: beta annotations and fields, allowed and not;
    # SELinux types, users, roles and levels.
    Family(
        "apparmor-selinux",
        4,
        _hardened(),
        ((100, (("set_apparmor_profile", 1), ("set_selinux_options", 1))),),
    ),
    # sysctls: names in and out of the v1.37 safe set.
    Family(
        "sysctls",
        3,
        _hardened(),
        ((100, (("add_sysctl", 1),)), (30, (("add_sysctl", 1),))),
    ),
    # user-namespaces: hostUsers false with root uid, runAsNonRoot false and
    # unmasked /proc (relaxed for identity checks, never for procMount).
    Family(
        "user-namespaces",
        4,
        _hardened(os="linux"),
        (
            (60, (("disable_host_users", 1),)),
            (
                70,
                (
                    ("run_as_root", 2),
                    ("flip_run_as_non_root", 1),
                    ("unmask_proc_mount", 1),
                ),
            ),
        ),
    ),  # fmt: skip
    # yaml-spelling: one meaning in many spellings (key order, flow, JSON,
    # quoted keys, anchors and merge keys, yes/no booleans, kubectl indent,
    # comments), and two traps: a guard commented out, "false" quoted.
    Family(
        "yaml-spelling",
        6,
        _hardened(),
        (
            (100, _SPELLINGS),
            (50, _SPELLINGS),
            (35, (("comment_out_field", 1), ("quote_boolean", 1))),
        ),
    ),
    # mixed: the loose grammar with nothing steered: unset, null, true, false
    # and string booleans; every pool at its full weights.
    Family("mixed", 6, lambda: workloads(hardened=False)),
)
