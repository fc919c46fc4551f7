"""The names ``grammars/k8s.yaml`` may use, and the values the code can write.

Kept apart from the strategies so the list of what a grammar file must hold
reads in one place. A closed vocabulary is one whose values the generator
has to understand (a volume source it can write a body for, a workload kind
it can wrap a pod in); open pools (names, images, capability spellings)
take any value, because probing odd values is their purpose.
"""

from __future__ import annotations

from generator.grammar.k8s_parts import KINDS, VOLUME_BODIES
from generator.grammar.pools import Schema
from generator.oracle.k8s_policy import ALLOWED_VOLUME_SOURCES

__all__ = ["SCHEMA"]

_BOOLEAN_STATES = frozenset({"unset", "null", "false", "true", "string"})
_PRESENCE = frozenset({"set", "unset"})
_LEVELS = frozenset({"pod", "container", "both", "unset"})

SCHEMA = Schema(
    pools={
        "names": str,
        "images": str,
        "windows_images": str,
        "kinds": str,
        "capabilities_add": str,
        "capabilities_drop": str,
        "seccomp_types": str,
        "localhost_profiles": str,
        "apparmor_types": str,
        "apparmor_annotations": str,
        "selinux_types": str,
        "selinux_users": str,
        "selinux_roles": str,
        "selinux_levels": str,
        "sysctls": str,
        "sysctl_values": str,
        "proc_mounts": str,
        "run_as_users": int,
        "run_as_groups": int,
        "probe_hosts": str,
        "probe_handlers": str,
        "lifecycle_hooks": str,
        "host_ports": int,
        "container_ports": int,
        "os_names": str,
        "sidecar_restart_policies": str,
        "allowed_volume_sources": str,
        "forbidden_volume_sources": str,
        "volume_kinds": str,
        "mount_modes": str,
        "windows_users": str,
    },
    vocabularies={
        "kinds": frozenset(KINDS),
        "probe_handlers": frozenset({"httpGet", "tcpSocket", "exec", "grpc"}),
        "lifecycle_hooks": frozenset({"postStart", "preStop"}),
        "os_names": frozenset({"unset", "linux", "windows"}),
        "sidecar_restart_policies": frozenset({"unset", "Always"}),
        # The allowed/forbidden split is the oracle's restrictedVolumes list,
        # so a grammar cannot file nfs under allowed by mistake.
        "allowed_volume_sources": frozenset(VOLUME_BODIES) & ALLOWED_VOLUME_SOURCES,
        "forbidden_volume_sources": frozenset(VOLUME_BODIES) - ALLOWED_VOLUME_SOURCES,
        "volume_kinds": frozenset({"allowed", "forbidden", "host_path", "name_only"}),
        "mount_modes": frozenset({"read_write", "read_only", "sub_path"}),
    },
    states={
        **dict.fromkeys(
            (
                "allowPrivilegeEscalation",
                "privileged",
                "runAsNonRoot",
                "readOnlyRootFilesystem",
                "hostNetwork",
                "hostPID",
                "hostIPC",
                "hostUsers",
                "hostProcess",
            ),
            _BOOLEAN_STATES,
        ),
        **dict.fromkeys(
            (
                "securityContext",
                "capabilities",
                "seccompProfile",
                "seLinuxOptions",
                "appArmorProfile",
                "appArmorAnnotation",
                "procMount",
                "sysctls",
                "hostPort",
                "probe",
                "lifecycle",
                "resources",
            ),
            _PRESENCE,
        ),
    },
    levels=dict.fromkeys(("runAsNonRoot", "seccompProfile", "runAsUser"), _LEVELS),
    sizes=frozenset(
        {
            "containers",
            "init_containers",
            "ephemeral_containers",
            "volumes",
            "capabilities_add",
            "sysctls",
            "ports",
        }
    ),
)
