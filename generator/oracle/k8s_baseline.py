"""The baseline checks of the Pod Security Standards.

One function per PSA check (kubernetes/pod-security-admission,
policy/check_<id>.go); each returns the findings for one pod at one policy
version. See
https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline
"""

from __future__ import annotations

from generator.oracle.k8s_pod import Finding, PodReader, shown
from generator.oracle.k8s_policy import (
    BASELINE_CAPABILITIES,
    SECCOMP_FIELDS_SINCE,
    SELINUX_TYPES,
    SYSCTLS,
    USER_NAMESPACE_RELAXATION_SINCE,
    Version,
    in_force,
)


def host_namespaces(pod: PodReader, version: Version) -> list[Finding]:
    # Sharing the node's network, PID or IPC namespace breaks isolation.
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        path = f"{pod.spec_path}.{key}"
        if pod.field(pod.spec, key, bool, path):
            out.append(Finding("hostNamespaces", "baseline", path, f"{key}=true"))
    return out


def privileged(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for sc_path, sc in pod.container_contexts():
        path = f"{sc_path}.privileged"
        if pod.field(sc, "privileged", bool, path):
            out.append(Finding("privileged", "baseline", path, "privileged=true"))
    return out


def capabilities_baseline(pod: PodReader, version: Version) -> list[Finding]:
    # Only the container runtime's default set may be added, spelled exactly.
    out = []
    for sc_path, sc in pod.container_contexts():
        caps_path = f"{sc_path}.capabilities"
        caps = pod.field(sc, "capabilities", dict, caps_path)
        for path, name in pod.strings(caps, "add", f"{caps_path}.add"):
            if name not in BASELINE_CAPABILITIES:
                out.append(
                    Finding(
                        "capabilities_baseline",
                        "baseline",
                        path,
                        f"adds capability {name!r}, which is not in the default set "
                        "(names are exact and upper-case, without CAP_)",
                    )
                )
    return out


def host_path_volumes(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for path, volume in pod.items(pod.spec, "volumes", f"{pod.spec_path}.volumes"):
        if volume.get("hostPath") is not None:
            out.append(
                Finding(
                    "hostPathVolumes",
                    "baseline",
                    f"{path}.hostPath",
                    f"volume {volume.get('name')!r} mounts a hostPath",
                )
            )
    return out


def host_ports(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for path, container in pod.containers():
        for port_path, port in pod.items(container, "ports", f"{path}.ports"):
            host_port = pod.field(port, "hostPort", int, f"{port_path}.hostPort")
            if host_port:
                out.append(
                    Finding(
                        "hostPorts",
                        "baseline",
                        f"{port_path}.hostPort",
                        f"hostPort={host_port}; only 0 (unset) is allowed",
                    )
                )
    return out


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")


def host_probes(pod: PodReader, version: Version) -> list[Finding]:
    # A probe or hook with a host can make the kubelet reach any address,
    # loopback included; only the pod's own IP (host unset) is allowed.
    out = []
    for path, container in pod.containers():
        life_path = f"{path}.lifecycle"
        lifecycle = pod.field(container, "lifecycle", dict, life_path)
        places = [(container, p, f"{path}.{p}") for p in _PROBES]
        places += [(lifecycle, h, f"{life_path}.{h}") for h in _HOOKS]
        for owner, key, handler_path in places:
            handler = pod.field(owner, key, dict, handler_path)
            if handler is None:
                continue
            for action in ("httpGet", "tcpSocket"):
                action_path = f"{handler_path}.{action}"
                body = pod.field(handler, action, dict, action_path)
                host = pod.field(body, "host", str, f"{action_path}.host")
                if host:
                    out.append(
                        Finding(
                            "hostProbesAndHostLifecycle",
                            "baseline",
                            f"{action_path}.host",
                            f"host={host!r}; probes and hooks must leave host unset",
                        )
                    )
    return out


_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def apparmor(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for key, value in sorted(pod.annotations().items()):
        if not key.startswith(_APPARMOR_PREFIX):
            continue
        ok = value in ("", "runtime/default") or value.startswith("localhost/")
        if not ok:
            out.append(
                Finding(
                    "appArmorProfile",
                    "baseline",
                    f"{pod.meta_path}.annotations[{key}]",
                    f"AppArmor annotation {value!r}; use runtime/default or "
                    "localhost/<profile>",
                )
            )
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        profile_path = f"{sc_path}.appArmorProfile"
        profile = pod.field(sc, "appArmorProfile", dict, profile_path)
        if profile is None:
            continue
        kind = pod.field(profile, "type", str, f"{profile_path}.type")
        if kind not in ("RuntimeDefault", "Localhost"):
            out.append(
                Finding(
                    "appArmorProfile",
                    "baseline",
                    f"{profile_path}.type",
                    f"appArmorProfile.type is {shown(kind)}; "
                    "use RuntimeDefault or Localhost",
                )
            )
    return out


def selinux(pod: PodReader, version: Version) -> list[Finding]:
    allowed = in_force(SELINUX_TYPES, version)
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        opts_path = f"{sc_path}.seLinuxOptions"
        opts = pod.field(sc, "seLinuxOptions", dict, opts_path)
        if opts is None:
            continue
        kind = pod.field(opts, "type", str, f"{opts_path}.type") or ""
        if kind not in allowed:
            out.append(
                Finding(
                    "seLinuxOptions",
                    "baseline",
                    f"{opts_path}.type",
                    f"seLinuxOptions.type={kind!r}; allowed: "
                    + ", ".join(sorted(t for t in allowed if t)),
                )
            )
        for key in ("user", "role"):
            value = pod.field(opts, key, str, f"{opts_path}.{key}")
            if value:
                out.append(
                    Finding(
                        "seLinuxOptions",
                        "baseline",
                        f"{opts_path}.{key}",
                        f"seLinuxOptions.{key}={value!r}; it must not be set",
                    )
                )
    return out


def proc_mount(pod: PodReader, version: Version, *, rule: str, level: str,
                user_ns_relaxes: bool) -> list[Finding]:  # fmt: skip
    # From v1.35 an unmasked /proc is harmless to the node inside a user
    # namespace, so baseline allows it when hostUsers is explicitly false.
    if (
        user_ns_relaxes
        and version >= USER_NAMESPACE_RELAXATION_SINCE
        and pod.host_users_false()
    ):
        return []
    out = []
    for sc_path, sc in pod.container_contexts():
        path = f"{sc_path}.procMount"
        value = pod.field(sc, "procMount", str, path)
        if value is not None and value != "Default":
            out.append(Finding(rule, level, path, f"procMount={value!r}; use Default"))
    return out


def proc_mount_baseline(pod: PodReader, version: Version) -> list[Finding]:
    return proc_mount(
        pod, version, rule="procMount", level="baseline", user_ns_relaxes=True
    )


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def seccomp_baseline(pod: PodReader, version: Version) -> list[Finding]:
    # Up to v1.18 the policy reads only the alpha annotations; from v1.19
    # only the seccompProfile fields. Each era ignores the other mechanism.
    if version < SECCOMP_FIELDS_SINCE:
        return _seccomp_annotations(pod)
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        profile_path = f"{sc_path}.seccompProfile"
        profile = pod.field(sc, "seccompProfile", dict, profile_path)
        if profile is None:
            continue
        kind = pod.field(profile, "type", str, f"{profile_path}.type")
        if kind not in SECCOMP_TYPES:
            out.append(
                Finding(
                    "seccompProfile_baseline",
                    "baseline",
                    f"{profile_path}.type",
                    f"seccompProfile.type is {shown(kind)}; "
                    "use RuntimeDefault or Localhost",
                )
            )
    return out


def _seccomp_annotations(pod: PodReader) -> list[Finding]:
    annotations = pod.annotations()
    keys = [_SECCOMP_POD_ANNOTATION]
    for _path, container in pod.containers():
        name = container.get("name")
        if isinstance(name, str):
            keys.append(_SECCOMP_CONTAINER_PREFIX + name)
    out = []
    for key in dict.fromkeys(keys):
        if key not in annotations:
            continue
        value = annotations[key]
        ok = value in ("runtime/default", "docker/default") or value.startswith(
            "localhost/"
        )
        if not ok:
            out.append(
                Finding(
                    "seccompProfile_baseline",
                    "baseline",
                    f"{pod.meta_path}.annotations[{key}]",
                    f"seccomp annotation {value!r}; use runtime/default, "
                    "docker/default or localhost/<profile>",
                )
            )
    return out


def sysctls(pod: PodReader, version: Version) -> list[Finding]:
    allowed = in_force(SYSCTLS, version)
    sc_path, sc = pod.pod_context()
    out = []
    for path, entry in pod.items(sc, "sysctls", f"{sc_path}.sysctls"):
        name = pod.field(entry, "name", str, f"{path}.name") or ""
        if name not in allowed:
            out.append(
                Finding(
                    "sysctls",
                    "baseline",
                    f"{path}.name",
                    f"sysctl {name!r} is not in the safe set of this policy version",
                )
            )
    return out


def windows_host_process(pod: PodReader, version: Version) -> list[Finding]:
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        opts_path = f"{sc_path}.windowsOptions"
        opts = pod.field(sc, "windowsOptions", dict, opts_path)
        path = f"{opts_path}.hostProcess"
        if pod.field(opts, "hostProcess", bool, path):
            out.append(
                Finding("windowsHostProcess", "baseline", path, "hostProcess=true")
            )
    return out
