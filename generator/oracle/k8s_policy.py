"""Version data of the Pod Security Standards, kept apart from the checks.

Each entry says from which policy version a value applies; ``since`` looks
up the value in force at a version. The facts come from the Pod Security
Admission library's checks (kubernetes/pod-security-admission, policy/) and
https://kubernetes.io/docs/concepts/security/pod-security-standards/.
"""

from __future__ import annotations

import re
from typing import TypeVar

from generator.errors import InvalidArgument

__all__ = [
    "ALLOWED_VOLUME_SOURCES",
    "BASELINE_CAPABILITIES",
    "LATEST",
    "LEVELS",
    "SECCOMP_FIELDS_SINCE",
    "SELINUX_TYPES",
    "SYSCTLS",
    "USER_NAMESPACE_RELAXATION_SINCE",
    "Version",
    "VOLUME_SOURCES",
    "WINDOWS_EXEMPTION_SINCE",
    "in_force",
    "parse_version",
]

Version = tuple[int, int]
LATEST: Version = (1, 37)
LEVELS = ("baseline", "restricted")

T = TypeVar("T")


def in_force(table: tuple[tuple[Version, T], ...], version: Version) -> T:
    """The value of ``table`` whose start version is the newest <= ``version``."""
    value = table[0][1]
    for start, entry in table:
        if start <= version:
            value = entry
    return value


_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)")


def parse_version(text: str) -> Version:
    """``latest`` or ``v1.<minor>``; newer minors than we know act as the newest.

    PSA does the same: a version label newer than its library evaluates with
    the newest rules (api/helpers.go, ParseVersion).
    """
    if text == "latest":
        return LATEST
    match = _VERSION.fullmatch(text)
    if not match:
        raise InvalidArgument(
            f"policy version {text!r} is not 'latest' or v1.<minor> (e.g. v1.37)"
        )
    return min((1, int(match.group(1))), LATEST)


def format_version(version: Version) -> str:
    return f"v{version[0]}.{version[1]}"


# Version boundaries that change how a check reads a pod.
# seccompProfile_baseline reads the alpha annotations before this version
# and the seccompProfile fields from it on.
SECCOMP_FIELDS_SINCE: Version = (1, 19)
# allowPrivilegeEscalation, capabilities_restricted and
# seccompProfile_restricted skip pods with spec.os.name windows.
WINDOWS_EXEMPTION_SINCE: Version = (1, 25)
# hostUsers: false skips runAsNonRoot and runAsUser and lets baseline
# procMount allow Unmasked.
USER_NAMESPACE_RELAXATION_SINCE: Version = (1, 35)

# capabilities_baseline: the only names a container may add. Matching is
# exact: "chown" and "CAP_CHOWN" are not "CHOWN".
BASELINE_CAPABILITIES = frozenset(
    "AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE "
    "SETFCAP SETGID SETPCAP SETUID SYS_CHROOT".split()
)

# sysctls: the safe set grows with the policy version.
_SYSCTLS_1_0 = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
)
_SYSCTLS_1_27 = (*_SYSCTLS_1_0, "net.ipv4.ip_local_reserved_ports")
_SYSCTLS_1_29 = (
    *_SYSCTLS_1_27,
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
_SYSCTLS_1_32 = (*_SYSCTLS_1_29, "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
_SYSCTLS_1_37 = (
    *_SYSCTLS_1_32,
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
)
SYSCTLS: tuple[tuple[Version, frozenset[str]], ...] = (
    ((1, 0), frozenset(_SYSCTLS_1_0)),
    ((1, 27), frozenset(_SYSCTLS_1_27)),
    ((1, 29), frozenset(_SYSCTLS_1_29)),
    ((1, 32), frozenset(_SYSCTLS_1_32)),
    ((1, 37), frozenset(_SYSCTLS_1_37)),
)

# seLinuxOptions.type: "" (unset) and the container types; v1.31 adds one.
_SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES: tuple[tuple[Version, frozenset[str]], ...] = (
    ((1, 0), _SELINUX_1_0),
    ((1, 31), _SELINUX_1_0 | {"container_engine_t"}),
)

# Every inline volume source of core/v1 Volume; a volume with none of them
# is defaulted to emptyDir by the API server before admission.
VOLUME_SOURCES = frozenset(
    "awsElasticBlockStore azureDisk azureFile cephfs cinder configMap csi "
    "downwardAPI emptyDir ephemeral fc flexVolume flocker gcePersistentDisk "
    "gitRepo glusterfs hostPath image iscsi nfs persistentVolumeClaim "
    "photonPersistentDisk portworxVolume projected quobyte rbd scaleIO secret "
    "storageos vsphereVolume".split()
)
# restrictedVolumes: the sources a restricted pod may use.
ALLOWED_VOLUME_SOURCES = frozenset(
    "configMap csi downwardAPI emptyDir ephemeral image persistentVolumeClaim "
    "projected secret".split()
)
