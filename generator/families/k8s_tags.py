"""The flat feature map of a Kubernetes case, computed from what it means.

Tags describe the input, never the verdict: clustering looks for regions
where a model fails, and a tag that restated the truth would find the
answer key instead. Keys and value classes come from ``generator.tags``.
"""

from __future__ import annotations

from typing import Any

from generator import tags as T
from generator.config.k8s import TEMPLATE_PATHS
from generator.config.k8s_yaml import Style, render
from generator.records import TagValue

__all__ = ["k8s_tags"]

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _workload(documents: tuple[dict[str, Any], ...]) -> tuple[str, dict, dict]:
    """(kind, pod metadata, pod spec) of the first workload, read-only."""
    for doc in documents:
        items = doc.get("items") if doc.get("kind") == "List" else None
        for candidate in [doc, *(items or [])]:
            kind = candidate.get("kind") if isinstance(candidate, dict) else None
            holder = candidate if kind == "Pod" else None
            if kind in TEMPLATE_PATHS:
                holder = candidate
                for key in TEMPLATE_PATHS[kind]:
                    holder = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                return (
                    str(kind),
                    _dict(holder.get("metadata")),
                    _dict(holder.get("spec")),
                )
    return "none", {}, {}


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _worst(values: list[Any], order: tuple[Any, ...]) -> str:
    """The first of ``order`` found among ``values`` (wrong types: invalid)."""
    classes = [_value_class(v) for v in values]
    for candidate in order:
        if candidate in classes:
            return candidate
    return T.UNSET


def _value_class(value: Any) -> str:
    if value is None:
        return T.UNSET
    if isinstance(value, bool):
        return "true" if value else "false"
    return T.INVALID


def _level(pod_has: bool, container_has: bool) -> str:
    if pod_has and container_has:
        return T.BOTH
    return T.POD if pod_has else T.CONTAINER if container_has else T.UNSET


def _spelling(names: list[Any]) -> str:
    # Capability names match exactly: upper-case, no CAP_ prefix.
    classes = set()
    for name in names:
        text = str(name)
        if text.startswith(("CAP_", "cap_")):
            classes.add("cap-prefix")
        elif text == text.upper():
            classes.add("exact")
        else:
            classes.add("lower" if text == text.lower() else "mixed-case")
    if not classes:
        return T.NONE
    return classes.pop() if len(classes) == 1 else "mixed"


def k8s_tags(
    documents: tuple[dict[str, Any], ...],
    style: Style,
    *,
    family: str,
    method: str,
    operators: tuple[str, ...],
    seed_file: str = "",
    relation: str = "base",
) -> dict[str, TagValue]:
    """Every key of ``generator.tags.K8S_KEYS`` for one case."""
    kind, meta, spec = _workload(documents)
    tags: dict[str, TagValue] = {
        T.FAMILY: family,
        T.METHOD: method,
        T.OPERATORS: ",".join(operators),
        T.OPERATOR_COUNT: len(operators),
        T.SEED_FILE: seed_file,
        T.YAML_STYLE: style.label(),
        T.DOCUMENTS: len(documents),
        T.SIZE: _size(render(documents, style)),
        T.RELATION: relation,
        T.KIND: kind,
        T.OS: str(_dict(spec.get("os")).get("name") or T.UNSET),
    }
    lists = {
        key: [c for c in spec.get(key) or () if isinstance(c, dict)]
        for key in _CONTAINER_LISTS
    }
    everything = [c for key in _CONTAINER_LISTS for c in lists[key]]
    tags.update(_shape_tags(lists))
    tags.update(_volume_tags(spec, everything))
    tags.update(_context_tags(meta, spec, everything))
    tags.update(_host_tags(spec, everything))
    return tags


def _size(text: str) -> str:
    lines = text.count("\n")
    return "short" if lines < 30 else "medium" if lines < 60 else "long"


def _shape_tags(lists: dict[str, list[dict]]) -> dict[str, TagValue]:
    inits = lists["initContainers"]
    return {
        T.CONTAINERS: len(lists["containers"]),
        T.INIT_CONTAINERS: len(inits),
        T.EPHEMERAL_CONTAINERS: len(lists["ephemeralContainers"]),
        T.HAS_INIT: bool(inits),
        T.HAS_SIDECAR: any(c.get("restartPolicy") == "Always" for c in inits),
        T.HAS_EPHEMERAL: bool(lists["ephemeralContainers"]),
    }


def _volume_tags(spec: dict, everything: list[dict]) -> dict[str, TagValue]:
    volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
    hosts = [v for v in volumes if v.get("hostPath") is not None]
    names = {v.get("name") for v in hosts}
    mounts = [
        m
        for c in everything
        for m in c.get("volumeMounts") or ()
        if isinstance(m, dict) and m.get("name") in names
    ]
    # A volume with no source is defaulted to emptyDir; it gets its own class.
    sources = {next((k for k in v if k != "name"), "name-only") for v in volumes}
    target = _dict(hosts[0].get("hostPath")).get("path") if hosts else None
    return {
        T.HAS_HOSTPATH: bool(hosts),
        T.HOSTPATH_TARGET: str(target) if hosts else T.NONE,
        T.HOSTPATH_READ_ONLY: bool(mounts)
        and all(m.get("readOnly") is True for m in mounts),
        T.VOLUME_SOURCES: ",".join(sorted(sources)) or T.NONE,
    }


def _context_tags(
    meta: dict, spec: dict, everything: list[dict]
) -> dict[str, TagValue]:
    pod_sc = _dict(spec.get("securityContext"))
    contexts = [_dict(c.get("securityContext")) for c in everything]
    places = [pod_sc, *contexts]
    users = [sc.get("runAsUser") for sc in places if "runAsUser" in sc]
    seccomp = [_dict(sc.get("seccompProfile")).get("type") for sc in places
               if "seccompProfile" in sc]  # fmt: skip
    bad_seccomp = [t for t in seccomp if t not in ("RuntimeDefault", "Localhost")]
    proc = [sc["procMount"] for sc in contexts if "procMount" in sc]
    annotated = any(
        str(k).startswith(_APPARMOR) for k in _dict(meta.get("annotations"))
    )
    fielded = any("appArmorProfile" in sc for sc in places)
    return {
        T.APE: _worst(
            [sc.get("allowPrivilegeEscalation") for sc in contexts],
            ("true", T.INVALID, T.UNSET, "false"),
        ),  # fmt: skip
        T.PRIVILEGED: any(sc.get("privileged") is True for sc in contexts),
        T.RUN_AS_NON_ROOT_LEVEL: _level(
            "runAsNonRoot" in pod_sc, any("runAsNonRoot" in sc for sc in contexts)
        ),
        T.RUN_AS_NON_ROOT: _worst(
            [sc["runAsNonRoot"] for sc in places if "runAsNonRoot" in sc],
            ("false", T.INVALID, T.UNSET, "true"),
        ),  # fmt: skip
        T.RUN_AS_USER: "root" if 0 in users else "non-root" if users else T.UNSET,
        T.SECCOMP_LEVEL: _level(
            "seccompProfile" in pod_sc, any("seccompProfile" in sc for sc in contexts)
        ),
        T.SECCOMP_TYPE: str((bad_seccomp or seccomp or [T.UNSET])[0]),
        **_capability_tags(contexts, len(everything)),
        T.PROC_MOUNT: str(
            next((p for p in proc if p != "Default"), proc[0] if proc else T.UNSET)
        ),
        T.APPARMOR: {
            (False, False): T.NONE,
            (True, False): "annotation",
            (False, True): "field",
        }.get((annotated, fielded), T.BOTH),  # fmt: skip
        T.SELINUX: "set" if any("seLinuxOptions" in sc for sc in places) else T.NONE,
    }


_APPARMOR = "container.apparmor.security.beta.kubernetes.io/"


def _capability_tags(contexts: list[dict], containers: int) -> dict[str, TagValue]:
    caps = [_dict(sc.get("capabilities")) for sc in contexts]
    added = [n for cap in caps if isinstance(cap.get("add"), list) for n in cap["add"]]
    drops = [cap["drop"] if isinstance(cap.get("drop"), list) else [] for cap in caps]
    # restricted wants the literal ALL in every container's drop list.
    if len(drops) < containers or not all(drops):
        drop_all = "missing"
    elif all("ALL" in d for d in drops):
        drop_all = "exact"
    else:
        drop_all = "misspelled"
    return {
        T.CAPABILITY_SPELLING: _spelling(added),
        T.CAPABILITIES_ADDED: ",".join(sorted(map(str, added))) or T.NONE,
        T.DROP_ALL: drop_all,
    }


def _host_tags(spec: dict, everything: list[dict]) -> dict[str, TagValue]:
    ports = [p for c in everything for p in c.get("ports") or () if isinstance(p, dict)]
    handlers = [
        _dict(c.get(key)) for c in everything
        for key in ("livenessProbe", "readinessProbe", "startupProbe")
    ] + [
        _dict(h) for c in everything for h in _dict(c.get("lifecycle")).values()
    ]  # fmt: skip
    bodies = [_dict(h.get(a)) for h in handlers for a in ("httpGet", "tcpSocket")]
    sysctls = _dict(spec.get("securityContext")).get("sysctls")
    host_users = spec.get("hostUsers")
    namespaces = [
        k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True
    ]
    return {
        T.HOST_NAMESPACES: ",".join(namespaces) or T.NONE,
        T.HOST_USERS: T.UNSET if host_users is None else _value_class(host_users),
        T.HOST_PORT: any(p.get("hostPort") not in (None, 0) for p in ports),
        T.PROBE_HOST: any(body.get("host") for body in bodies),
        T.SYSCTLS: len(sysctls) if isinstance(sysctls, list) else 0,
    }
