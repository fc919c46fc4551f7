"""The Kubernetes oracle: Pod Security Standards as Pod Security Admission applies them.

Ground truth for every Kubernetes case. Each check below follows the PSA
library's check of the same id (kubernetes/pod-security-admission,
policy/check_<id>.go) and the standard at
https://kubernetes.io/docs/concepts/security/pod-security-standards/.
Three rules of PSA shape everything here:

* Every place a field is set is judged on its own; no "effective" value is
  worked out. A bad pod-level value fails even if every container overrides
  it. A pod-level value stands in for unset container values only where a
  check *requires* something (runAsNonRoot, seccompProfile_restricted).
* Per-container checks visit initContainers, containers and
  ephemeralContainers alike.
* A restricted check may replace a baseline check from some version on; the
  replaced check then does not run at restricted at all. So a Windows pod
  that adds SYS_ADMIN passes restricted (capabilities_restricted skips
  Windows pods from v1.25) and still fails baseline.

Beyond PSA, a field the checks read that has the wrong JSON type (say the
string "false" for a boolean) is reported as ``invalidField``: the API server
rejects such an object before admission, so it can never be a passing pod.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from generator.config.k8s import Workload, load_documents, workloads
from generator.errors import ConfigError, InvalidArgument
from generator.oracle.k8s_policy import (
    ALLOWED_VOLUME_SOURCES,
    BASELINE_CAPABILITIES,
    LEVELS,
    SELINUX_TYPES,
    SYSCTLS,
    VOLUME_SOURCES,
    Version,
    in_force,
    parse_version,
)
from generator.records import Truth, Violation

__all__ = [
    "CHECKS",
    "Check",
    "Evaluation",
    "Finding",
    "active_checks",
    "evaluate",
    "evaluate_text",
    "parse_question",
    "truth",
]

logger = logging.getLogger(__name__)

_DOCS = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
INVALID = "invalidField"


@dataclass(frozen=True)
class Finding:
    """A failed check: the check id, its level, the field path, and why."""

    rule: str
    level: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "level": self.level,
            "path": self.path,
            "message": self.message,
        }


class _Pod:
    """Typed reads over a raw pod spec, recording wrong JSON types as findings."""

    def __init__(self, workload: Workload):
        self.meta = workload.meta
        self.spec = workload.spec
        self.meta_path = workload.meta_path
        self.spec_path = workload.spec_path
        self.invalid: dict[str, Finding] = {}

    def field(self, obj: Any, key: str, kind: type, path: str) -> Any:
        """``obj[key]`` if it has JSON type ``kind``; None when unset or wrong."""
        if not isinstance(obj, dict):
            return None
        value = obj.get(key)
        if value is None:
            return None
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        wrong = isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
        if wrong:
            expected = {bool: "a boolean", int: "an integer", str: "a string",
                        dict: "a mapping", list: "a list"}[kind]  # fmt: skip
            self.invalid.setdefault(
                path,
                Finding(
                    INVALID,
                    "baseline",
                    path,
                    f"must be {expected}, got {type(value).__name__} {value!r}; "
                    "the API server rejects this object",
                ),
            )
            return None
        return value

    def items(self, obj: Any, key: str, path: str) -> Iterator[tuple[str, dict]]:
        """(path, entry) for each mapping in the list ``obj[key]``."""
        for i, entry in enumerate(self.field(obj, key, list, path) or ()):
            entry_path = f"{path}[{i}]"
            if self.field({"x": entry}, "x", dict, entry_path) is not None:
                yield entry_path, entry

    def strings(self, obj: Any, key: str, path: str) -> list[tuple[str, str]]:
        out = []
        for i, entry in enumerate(self.field(obj, key, list, path) or ()):
            value = self.field({"x": entry}, "x", str, f"{path}[{i}]")
            if value is not None:
                out.append((f"{path}[{i}]", value))
        return out

    def pod_context(self) -> tuple[str, dict]:
        path = f"{self.spec_path}.securityContext"
        return path, self.field(self.spec, "securityContext", dict, path) or {}

    def require_containers(self) -> None:
        """A pod needs at least one container; the API server rejects none."""
        path = f"{self.spec_path}.containers"
        if not self.field(self.spec, "containers", list, path):
            self.invalid.setdefault(
                path,
                Finding(
                    INVALID,
                    "baseline",
                    path,
                    "a pod needs at least one container; the API server rejects "
                    "this object",
                ),
            )

    def containers(self) -> Iterator[tuple[str, dict]]:
        for key in ("initContainers", "containers", "ephemeralContainers"):
            yield from self.items(self.spec, key, f"{self.spec_path}.{key}")

    def container_contexts(self) -> Iterator[tuple[str, dict | None]]:
        """(securityContext path, context or None) for every container."""
        for path, container in self.containers():
            sc_path = f"{path}.securityContext"
            yield sc_path, self.field(container, "securityContext", dict, sc_path)

    def annotations(self) -> dict[str, str]:
        """The annotations; a non-string value is invalid (map[string]string)."""
        path = f"{self.meta_path}.annotations"
        found = self.field(self.meta, "annotations", dict, path) or {}
        return {
            key: value
            for key in found
            if (value := self.field(found, key, str, f"{path}[{key}]")) is not None
        }

    def is_windows(self) -> bool:
        os_path = f"{self.spec_path}.os"
        os = self.field(self.spec, "os", dict, os_path)
        return self.field(os, "name", str, f"{os_path}.name") == "windows"

    def host_users_false(self) -> bool:
        path = f"{self.spec_path}.hostUsers"
        return self.field(self.spec, "hostUsers", bool, path) is False


CheckFn = Callable[[_Pod, Version], list[Finding]]


@dataclass(frozen=True)
class Check:
    """One PSS control: its PSA id, level, first version, and what it replaces.

    ``replaces`` names a baseline check that does not run at restricted from
    ``replaces_since`` on, because this stricter check covers it.
    """

    id: str
    level: str
    since: Version
    run: CheckFn
    replaces: str | None = None
    replaces_since: Version = (1, 0)


def _fail(rule: str, level: str, path: str, message: str) -> Finding:
    return Finding(rule, level, path, message)


# --- baseline ---------------------------------------------------------------


def _host_namespaces(pod: _Pod, version: Version) -> list[Finding]:
    # Sharing the node's network, PID or IPC namespace breaks isolation.
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        path = f"{pod.spec_path}.{key}"
        if pod.field(pod.spec, key, bool, path):
            out.append(_fail("hostNamespaces", "baseline", path, f"{key}=true"))
    return out


def _privileged(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for sc_path, sc in pod.container_contexts():
        path = f"{sc_path}.privileged"
        if pod.field(sc, "privileged", bool, path):
            out.append(_fail("privileged", "baseline", path, "privileged=true"))
    return out


def _capabilities_baseline(pod: _Pod, version: Version) -> list[Finding]:
    # Only the container runtime's default set may be added, spelled exactly.
    out = []
    for sc_path, sc in pod.container_contexts():
        caps_path = f"{sc_path}.capabilities"
        caps = pod.field(sc, "capabilities", dict, caps_path)
        for path, name in pod.strings(caps, "add", f"{caps_path}.add"):
            if name not in BASELINE_CAPABILITIES:
                out.append(
                    _fail(
                        "capabilities_baseline",
                        "baseline",
                        path,
                        f"adds capability {name!r}, which is not in the default set "
                        "(names are exact and upper-case, without CAP_)",
                    )
                )
    return out


def _host_path_volumes(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for path, volume in pod.items(pod.spec, "volumes", f"{pod.spec_path}.volumes"):
        if volume.get("hostPath") is not None:
            out.append(
                _fail(
                    "hostPathVolumes",
                    "baseline",
                    f"{path}.hostPath",
                    f"volume {volume.get('name')!r} mounts a hostPath",
                )
            )
    return out


def _host_ports(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for path, container in pod.containers():
        for port_path, port in pod.items(container, "ports", f"{path}.ports"):
            host_port = pod.field(port, "hostPort", int, f"{port_path}.hostPort")
            if host_port:
                out.append(
                    _fail(
                        "hostPorts",
                        "baseline",
                        f"{port_path}.hostPort",
                        f"hostPort={host_port}; only 0 (unset) is allowed",
                    )
                )
    return out


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")


def _host_probes(pod: _Pod, version: Version) -> list[Finding]:
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
                        _fail(
                            "hostProbesAndHostLifecycle",
                            "baseline",
                            f"{action_path}.host",
                            f"host={host!r}; probes and hooks must leave host unset",
                        )
                    )
    return out


_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for key, value in sorted(pod.annotations().items()):
        if not key.startswith(_APPARMOR_PREFIX):
            continue
        ok = value in ("", "runtime/default") or value.startswith("localhost/")
        if not ok:
            out.append(
                _fail(
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
                _fail(
                    "appArmorProfile",
                    "baseline",
                    f"{profile_path}.type",
                    f"appArmorProfile.type={kind!r}; use RuntimeDefault or Localhost",
                )
            )
    return out


def _selinux(pod: _Pod, version: Version) -> list[Finding]:
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
                _fail(
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
                    _fail(
                        "seLinuxOptions",
                        "baseline",
                        f"{opts_path}.{key}",
                        f"seLinuxOptions.{key}={value!r}; it must not be set",
                    )
                )
    return out


def _proc_mount(pod: _Pod, version: Version, *, rule: str, level: str,
                user_ns_relaxes: bool) -> list[Finding]:  # fmt: skip
    # From v1.35 an unmasked /proc is harmless to the node inside a user
    # namespace, so baseline allows it when hostUsers is explicitly false.
    if user_ns_relaxes and version >= (1, 35) and pod.host_users_false():
        return []
    out = []
    for sc_path, sc in pod.container_contexts():
        path = f"{sc_path}.procMount"
        value = pod.field(sc, "procMount", str, path)
        if value is not None and value != "Default":
            out.append(_fail(rule, level, path, f"procMount={value!r}; use Default"))
    return out


def _proc_mount_baseline(pod: _Pod, version: Version) -> list[Finding]:
    return _proc_mount(
        pod, version, rule="procMount", level="baseline", user_ns_relaxes=True
    )


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def _seccomp_baseline(pod: _Pod, version: Version) -> list[Finding]:
    # Up to v1.18 the policy reads only the alpha annotations; from v1.19
    # only the seccompProfile fields. Each era ignores the other mechanism.
    if version < (1, 19):
        return _seccomp_annotations(pod)
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        profile_path = f"{sc_path}.seccompProfile"
        profile = pod.field(sc, "seccompProfile", dict, profile_path)
        if profile is None:
            continue
        kind = pod.field(profile, "type", str, f"{profile_path}.type")
        if kind not in _SECCOMP_TYPES:
            out.append(
                _fail(
                    "seccompProfile_baseline",
                    "baseline",
                    f"{profile_path}.type",
                    f"seccompProfile.type={kind!r}; use RuntimeDefault or Localhost",
                )
            )
    return out


def _seccomp_annotations(pod: _Pod) -> list[Finding]:
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
                _fail(
                    "seccompProfile_baseline",
                    "baseline",
                    f"{pod.meta_path}.annotations[{key}]",
                    f"seccomp annotation {value!r}; use runtime/default, "
                    "docker/default or localhost/<profile>",
                )
            )
    return out


def _sysctls(pod: _Pod, version: Version) -> list[Finding]:
    allowed = in_force(SYSCTLS, version)
    sc_path, sc = pod.pod_context()
    out = []
    for path, entry in pod.items(sc, "sysctls", f"{sc_path}.sysctls"):
        name = pod.field(entry, "name", str, f"{path}.name") or ""
        if name not in allowed:
            out.append(
                _fail(
                    "sysctls",
                    "baseline",
                    f"{path}.name",
                    f"sysctl {name!r} is not in the safe set of this policy version",
                )
            )
    return out


def _windows_host_process(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        opts_path = f"{sc_path}.windowsOptions"
        opts = pod.field(sc, "windowsOptions", dict, opts_path)
        path = f"{opts_path}.hostProcess"
        if pod.field(opts, "hostProcess", bool, path):
            out.append(
                _fail("windowsHostProcess", "baseline", path, "hostProcess=true")
            )
    return out


# --- restricted -------------------------------------------------------------


def _windows_exempt(pod: _Pod, version: Version) -> bool:
    # From v1.25, Linux-only controls skip pods that declare spec.os.name
    # windows; nothing else (nodeSelector, runtimeClass) counts as the OS.
    return version >= (1, 25) and pod.is_windows()


def _allow_privilege_escalation(pod: _Pod, version: Version) -> list[Finding]:
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
                _fail(
                    "allowPrivilegeEscalation",
                    "restricted",
                    path,
                    f"allowPrivilegeEscalation is {state}; it must be false",
                )
            )
    return out


def _capabilities_restricted(pod: _Pod, version: Version) -> list[Finding]:
    if _windows_exempt(pod, version):
        return []
    out = []
    for sc_path, sc in pod.container_contexts():
        caps_path = f"{sc_path}.capabilities"
        caps = pod.field(sc, "capabilities", dict, caps_path)
        drops = [name for _, name in pod.strings(caps, "drop", f"{caps_path}.drop")]
        if "ALL" not in drops:
            out.append(
                _fail(
                    "capabilities_restricted",
                    "restricted",
                    f"{caps_path}.drop",
                    'capabilities.drop must contain "ALL" (exactly that spelling)',
                )
            )
        for path, name in pod.strings(caps, "add", f"{caps_path}.add"):
            if name != "NET_BIND_SERVICE":
                out.append(
                    _fail(
                        "capabilities_restricted",
                        "restricted",
                        path,
                        f"adds capability {name!r}; only NET_BIND_SERVICE may be added",
                    )
                )
    return out


def _run_as_non_root(pod: _Pod, version: Version) -> list[Finding]:
    if version >= (1, 35) and pod.host_users_false():
        return []
    sc_path, sc = pod.pod_context()
    pod_value = pod.field(sc, "runAsNonRoot", bool, f"{sc_path}.runAsNonRoot")
    out = []
    if pod_value is False:
        out.append(
            _fail(
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
            out.append(_fail("runAsNonRoot", "restricted", path, "runAsNonRoot=false"))
        elif value is None and pod_value is not True:
            out.append(
                _fail(
                    "runAsNonRoot",
                    "restricted",
                    path,
                    "runAsNonRoot is unset here and not true at pod level",
                )
            )
    return out


def _run_as_user(pod: _Pod, version: Version) -> list[Finding]:
    if version >= (1, 35) and pod.host_users_false():
        return []
    out = []
    for sc_path, sc in [pod.pod_context(), *pod.container_contexts()]:
        path = f"{sc_path}.runAsUser"
        if pod.field(sc, "runAsUser", int, path) == 0:
            out.append(_fail("runAsUser", "restricted", path, "runAsUser=0 (root)"))
    return out


def _seccomp_restricted(pod: _Pod, version: Version) -> list[Finding]:
    if _windows_exempt(pod, version):
        return []
    out = []
    pod_set = False
    sc_path, sc = pod.pod_context()
    profile = pod.field(sc, "seccompProfile", dict, f"{sc_path}.seccompProfile")
    if profile is not None:
        path = f"{sc_path}.seccompProfile.type"
        kind = pod.field(profile, "type", str, path)
        if kind in _SECCOMP_TYPES:
            pod_set = True
        else:
            out.append(_seccomp_message(path, kind))
    for c_path, c_sc in pod.container_contexts():
        profile_path = f"{c_path}.seccompProfile"
        profile = pod.field(c_sc, "seccompProfile", dict, profile_path)
        if profile is not None:
            path = f"{profile_path}.type"
            kind = pod.field(profile, "type", str, path)
            if kind not in _SECCOMP_TYPES:
                out.append(_seccomp_message(path, kind))
        elif not pod_set:
            out.append(
                _fail(
                    "seccompProfile_restricted",
                    "restricted",
                    f"{profile_path}.type",
                    "no seccomp profile here or at pod level; "
                    "set RuntimeDefault or Localhost",
                )
            )
    return out


def _seccomp_message(path: str, kind: str | None) -> Finding:
    return _fail(
        "seccompProfile_restricted",
        "restricted",
        path,
        f"seccompProfile.type={kind!r}; use RuntimeDefault or Localhost",
    )


def _restricted_volumes(pod: _Pod, version: Version) -> list[Finding]:
    out = []
    for path, volume in pod.items(pod.spec, "volumes", f"{pod.spec_path}.volumes"):
        sources = [k for k in VOLUME_SOURCES if volume.get(k) is not None]
        # No source at all is defaulted to emptyDir by the API server.
        for source in sorted(s for s in sources if s not in ALLOWED_VOLUME_SOURCES):
            out.append(
                _fail(
                    "restrictedVolumes",
                    "restricted",
                    f"{path}.{source}",
                    f"volume {volume.get('name')!r} uses {source}; allowed: "
                    + ", ".join(sorted(ALLOWED_VOLUME_SOURCES)),
                )
            )
    return out


def _proc_mount_restricted(pod: _Pod, version: Version) -> list[Finding]:
    return _proc_mount(
        pod,
        version,
        rule="procMount_restricted",
        level="restricted",
        user_ns_relaxes=False,
    )


CHECKS: tuple[Check, ...] = (
    Check("hostNamespaces", "baseline", (1, 0), _host_namespaces),
    Check("privileged", "baseline", (1, 0), _privileged),
    Check("capabilities_baseline", "baseline", (1, 0), _capabilities_baseline),
    Check("hostPathVolumes", "baseline", (1, 0), _host_path_volumes),
    Check("hostPorts", "baseline", (1, 0), _host_ports),
    Check("hostProbesAndHostLifecycle", "baseline", (1, 34), _host_probes),
    Check("appArmorProfile", "baseline", (1, 0), _apparmor),
    Check("seLinuxOptions", "baseline", (1, 0), _selinux),
    Check("procMount", "baseline", (1, 0), _proc_mount_baseline),
    Check("seccompProfile_baseline", "baseline", (1, 0), _seccomp_baseline),
    Check("sysctls", "baseline", (1, 0), _sysctls),
    Check("windowsHostProcess", "baseline", (1, 0), _windows_host_process),
    Check(
        "allowPrivilegeEscalation", "restricted", (1, 8), _allow_privilege_escalation
    ),
    Check(
        "capabilities_restricted",
        "restricted",
        (1, 22),
        _capabilities_restricted,
        replaces="capabilities_baseline",
        replaces_since=(1, 22),
    ),
    Check("runAsNonRoot", "restricted", (1, 0), _run_as_non_root),
    Check("runAsUser", "restricted", (1, 23), _run_as_user),
    Check(
        "seccompProfile_restricted",
        "restricted",
        (1, 19),
        _seccomp_restricted,
        replaces="seccompProfile_baseline",
        replaces_since=(1, 19),
    ),
    Check(
        "restrictedVolumes",
        "restricted",
        (1, 0),
        _restricted_volumes,
        replaces="hostPathVolumes",
        replaces_since=(1, 0),
    ),
    Check(
        "procMount_restricted",
        "restricted",
        (1, 35),
        _proc_mount_restricted,
        replaces="procMount",
        replaces_since=(1, 35),
    ),
)


def active_checks(level: str, version: Version) -> tuple[Check, ...]:
    """The checks PSA runs for ``level`` at policy ``version``, in order."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    wanted = ("baseline",) if level == "baseline" else LEVELS
    checks = [c for c in CHECKS if c.level in wanted and c.since <= version]
    replaced = {
        c.replaces for c in checks if c.replaces and c.replaces_since <= version
    }
    if level == "baseline":
        replaced = set()
    return tuple(c for c in checks if c.id not in replaced)


@dataclass(frozen=True)
class Evaluation:
    """The oracle's answer for one workload at one policy version.

    ``findings`` holds every failed check of both levels (a replaced baseline
    check still reports at level baseline); ``verdicts`` applies each level's
    own active checks, which is not always "baseline fails => restricted
    fails" (see the module docstring).
    """

    workload: Workload
    version: Version
    findings: tuple[Finding, ...]
    verdicts: dict[str, str]

    def failing(self, level: str) -> tuple[Finding, ...]:
        """The findings that make ``level`` fail, in check order."""
        active = {c.id for c in active_checks(level, self.version)} | {INVALID}
        return tuple(f for f in self.findings if f.rule in active)


def evaluate(workload: Workload, version: Version) -> Evaluation:
    """Judge one workload against baseline and restricted at ``version``."""
    pod = _Pod(workload)
    pod.require_containers()
    by_check: dict[str, list[Finding]] = {}
    for check in CHECKS:
        if check.since <= version:
            by_check[check.id] = check.run(pod, version)
    findings = [f for check in CHECKS for f in by_check.get(check.id, [])]
    findings = list(pod.invalid.values()) + findings
    verdicts = {}
    for level in LEVELS:
        ids = [c.id for c in active_checks(level, version)]
        failed = pod.invalid or any(by_check.get(i) for i in ids)
        verdicts[level] = "fail" if failed else "pass"
    logger.debug(
        "%s %s/%s: %s", workload.source, workload.kind, workload.name, verdicts
    )
    return Evaluation(workload, version, tuple(findings), verdicts)


# --- whole configs ------------------------------------------------------------


def parse_question(question: str) -> tuple[str, Version]:
    """``pss:<level>:<version>`` -> (level, version)."""
    parts = question.split(":")
    if len(parts) != 3 or parts[0] != "pss" or parts[1] not in LEVELS:
        raise InvalidArgument(
            f"question {question!r} is not pss:<baseline|restricted>:<version>"
        )
    return parts[1], parse_version(parts[2])


def evaluate_text(text: str, version: Version, *, source: str = "") -> list[Evaluation]:
    """Every workload of a YAML stream, judged; ConfigError if none can be."""
    evaluations = []
    for index, document in enumerate(load_documents(text, source=source)):
        for workload in workloads(document, source=source, index=index):
            evaluations.append(evaluate(workload, version))
    return evaluations


def truth(text: str, question: str, *, source: str = "") -> Truth:
    """The ground truth of a Kubernetes case: unsafe iff some workload fails."""
    level, version = parse_question(question)
    evaluations = evaluate_text(text, version, source=source)
    if not evaluations:
        raise ConfigError("holds no pod spec to judge", source=source)
    many = len({e.workload.index for e in evaluations}) > 1
    violations = []
    for evaluation in evaluations:
        prefix = f"documents[{evaluation.workload.index}]." if many else ""
        for finding in evaluation.failing(level):
            path = prefix + finding.path
            violations.append(Violation(finding.rule, path, finding.message))
    return Truth("unsafe" if violations else "safe", tuple(violations))
