"""Which Pod Security checks run, at which level and policy version.

The list is explicit and in PSA's order. A restricted check may replace a
baseline check from some version on; the replaced check then does not run at
restricted at all (policy/registry.go), which is why a Windows pod can pass
restricted while failing baseline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from generator.oracle import k8s_baseline as b
from generator.oracle import k8s_restricted as r
from generator.oracle.k8s_pod import Finding, PodReader
from generator.oracle.k8s_policy import LEVELS, Version

__all__ = ["CHECKS", "Check", "active_checks"]

CheckFn = Callable[[PodReader, Version], list[Finding]]


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


CHECKS: tuple[Check, ...] = (
    Check("hostNamespaces", "baseline", (1, 0), b.host_namespaces),
    Check("privileged", "baseline", (1, 0), b.privileged),
    Check("capabilities_baseline", "baseline", (1, 0), b.capabilities_baseline),
    Check("hostPathVolumes", "baseline", (1, 0), b.host_path_volumes),
    Check("hostPorts", "baseline", (1, 0), b.host_ports),
    Check("hostProbesAndHostLifecycle", "baseline", (1, 34), b.host_probes),
    Check("appArmorProfile", "baseline", (1, 0), b.apparmor),
    Check("seLinuxOptions", "baseline", (1, 0), b.selinux),
    Check("procMount", "baseline", (1, 0), b.proc_mount_baseline),
    Check("seccompProfile_baseline", "baseline", (1, 0), b.seccomp_baseline),
    Check("sysctls", "baseline", (1, 0), b.sysctls),
    Check("windowsHostProcess", "baseline", (1, 0), b.windows_host_process),
    Check(
        "allowPrivilegeEscalation", "restricted", (1, 8), r.allow_privilege_escalation
    ),
    Check(
        "capabilities_restricted",
        "restricted",
        (1, 22),
        r.capabilities_restricted,
        replaces="capabilities_baseline",
        replaces_since=(1, 22),
    ),
    Check("runAsNonRoot", "restricted", (1, 0), r.run_as_non_root),
    Check("runAsUser", "restricted", (1, 23), r.run_as_user),
    Check(
        "seccompProfile_restricted",
        "restricted",
        (1, 19),
        r.seccomp_restricted,
        replaces="seccompProfile_baseline",
        replaces_since=(1, 19),
    ),
    Check(
        "restrictedVolumes",
        "restricted",
        (1, 0),
        r.restricted_volumes,
        replaces="hostPathVolumes",
        replaces_since=(1, 0),
    ),
    Check(
        "procMount_restricted",
        "restricted",
        (1, 35),
        r.proc_mount_restricted,
        replaces="procMount",
        replaces_since=(1, 35),
    ),
)


@functools.cache
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
