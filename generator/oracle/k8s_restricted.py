"""The restricted checks of the Pod Security Standards.

One function per PSA check (kubernetes/pod-security-admission,
policy/check_<id>.go). See
https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
"""

from __future__ import annotations

from generator.oracle.k8s_baseline import SECCOMP_TYPES, proc_mount
from generator.oracle.k8s_pod import Finding, PodReader, shown
from generator.oracle.k8s_policy import (
    ALLOWED_VOLUME_SOURCES,
    USER_NAMESPACE_RELAXATION_SINCE,
    VOLUME_SOURCES,
    WINDOWS_EXEMPTION_SINCE,
    Version,
)


def _windows_exempt(pod: PodReader, version: Version) -> bool:
    # From v1.25, Linux-only controls skip pods that declare spec.os.name
    # windows; nothing else (nodeSelector, runtimeClass) counts as the OS.
    return version >= WINDOWS_EXEMPTION_SINCE and pod.is_windows()


def allow_privilege_escalation(pod: PodReader, version: Version) -> list[Finding]:
    # Unset means escalation allowed: the kubelet sets no_new_privs only for
    # an explicit false, so the field must be written out on every container.
    if _windows_exempt(pod, version):
        return []
    out = []
    for sc_path, sc in pod.container_contexts():
        path = f"{sc_path}.allowPrivilegeEscalation"
        value = pod.field(sc, "allowPrivilegeEscalation", bool, path)
        if value is not False:
            raw = sc.get("allowPrivilegeEscalation") if sc else None
            state = "true" if value else "unset" if raw is None else "not a boolean"
            out.append(
                Finding(
                    "allowPrivilegeEscalation",
                    "restricted",
                    path,
                    f"allowPrivilegeEscalation is {state}; it must be false",
                )
            )
    return out


def capabilities_restricted(pod: PodReader, version: Version) -> list[Finding]:
    if _windows_exempt(pod, version):
        return []
    out = []
    for sc_path, sc in pod.container_contexts():
        caps_path = f"{sc_path}.capabilities"
        caps = pod.field(sc, "capabilities", dict, caps_path)
        drops = [name for _, name in pod.strings(caps, "drop", f"{caps_path}.drop")]
        if "ALL" not in drops:
            out.append(
                Finding(
                    "capabilities_restricted",
                    "restricted",
                    f"{caps_path}.drop",
                    'capabilities.drop must contain "ALL" (exactly that spelling)',
                )
            )
        for path, name in pod.strings(caps, "add", f"{caps_path}.add"):
            if name != "NET_BIND_SERVICE":
                out.append(
                    Finding(
                        "capabilities_restricted",
                        "restricted",
                        path,
                        f"adds capability {name!r}; only NET_BIND_SERVICE may be added",
                    )
                )
    return out


def run_as_non_root(pod: PodReader, version: Version) -> list[Finding]:
    if version >= USER_NAMESPACE_RELAXATION_SINCE and pod.host_users_false():
        return []
    sc_path, sc = pod.pod_context()
    pod_value = pod.field(sc, "runAsNonRoot", bool, f"{sc_path}.runAsNonRoot")
    out = []
    if pod_value is False:
        out.append(
            Finding(
                "runAsNonRoot",
                "restricted",
                f"{sc_path}.runAsNonRoot",
                "pod sets runAsNonRoot=false",
            )
        )
    for c_path, c_sc in pod.container_contexts():
        path = f"{c_path}.runAsNonRoot"
        value = pod.field(c_sc, "runAsNonRoot", bool, path)
        if value is False:
            out.append(
                Finding("runAsNonRoot", "restricted", path, "runAsNonRoot=false")
            )
        elif value is None and pod_value is not True:
            out.append(
                Finding(
                    "runAsNonRoot",
                    "restricted",
                    path,
                    "runAsNonRoot is unset here and not true at pod level",
                )
            )
    return out


def run_as_user(pod: PodReader, version: Version) -> list[Finding]:
    if version >= USER_NAMESPACE_RELAXATION_SINCE and pod.host_users_false():
        return []
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        path = f"{sc_path}.runAsUser"
        if pod.field(sc, "runAsUser", int, path) == 0:
            out.append(Finding("runAsUser", "restricted", path, "runAsUser=0 (root)"))
    return out


def seccomp_restricted(pod: PodReader, version: Version) -> list[Finding]:
    if _windows_exempt(pod, version):
        return []
    out = []
    pod_set = False
    sc_path, sc = pod.pod_context()
    profile = pod.field(sc, "seccompProfile", dict, f"{sc_path}.seccompProfile")
    if profile is not None:
        path = f"{sc_path}.seccompProfile.type"
        kind = pod.field(profile, "type", str, path)
        if kind in SECCOMP_TYPES:
            pod_set = True
        else:
            out.append(_seccomp_message(path, kind))
    for c_path, c_sc in pod.container_contexts():
        profile_path = f"{c_path}.seccompProfile"
        profile = pod.field(c_sc, "seccompProfile", dict, profile_path)
        if profile is not None:
            path = f"{profile_path}.type"
            kind = pod.field(profile, "type", str, path)
            if kind not in SECCOMP_TYPES:
                out.append(_seccomp_message(path, kind))
        elif not pod_set:
            out.append(
                Finding(
                    "seccompProfile_restricted",
                    "restricted",
                    f"{profile_path}.type",
                    "no seccomp profile here or at pod level; "
                    "set RuntimeDefault or Localhost",
                )
            )
    return out


def _seccomp_message(path: str, kind: str | None) -> Finding:
    return Finding(
        "seccompProfile_restricted",
        "restricted",
        path,
        f"seccompProfile.type is {shown(kind)}; use RuntimeDefault or Localhost",
    )


def restricted_volumes(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for path, volume in pod.items(pod.spec, "volumes", f"{pod.spec_path}.volumes"):
        sources = [k for k in VOLUME_SOURCES if volume.get(k) is not None]
        # No source at all is defaulted to emptyDir by the API server.
        for source in sorted(s for s in sources if s not in ALLOWED_VOLUME_SOURCES):
            out.append(
                Finding(
                    "restrictedVolumes",
                    "restricted",
                    f"{path}.{source}",
                    f"volume {volume.get('name')!r} uses {source}; allowed: "
                    + ", ".join(sorted(ALLOWED_VOLUME_SOURCES)),
                )
            )
    return out


def proc_mount_restricted(pod: PodReader, version: Version) -> list[Finding]:
    return proc_mount(
        pod,
        version,
        rule="procMount_restricted",
        level="restricted",
        user_ns_relaxes=False,
    )
