"""Mutators over a pod's shape: volumes, extra containers, kinds, OS, host access.

Each docstring is the one scenario the mutator exists for; the rules are
the Pod Security Standards as PSA applies them (k8s-pss.md). Shape edits
are where reviewers' intuitions go wrong most: a read-only hostPath still
fails restricted, an init container copied without its securityContext
fails it too, and a Deployment is judged exactly like its pod template.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from generator.grammar.k8s import default_grammar, volume_name_for
from generator.grammar.k8s_parts import KINDS, host_path_volume, volume, wrap
from generator.mutate.base import Manifest, containers_in, weighted_choice

__all__ = [
    "add_bare_init_container",
    "add_companion_document",
    "add_debug_container",
    "add_host_path_mount",
    "add_native_sidecar",
    "mount_forbidden_volume",
    "point_probe_at_host",
    "publish_host_port",
    "run_as_windows_host_process",
    "set_windows_os",
    "share_host_namespace",
    "strip_volume_source",
    "swap_host_path_for_lookalike",
    "wrap_in_list",
    "wrap_in_workload",
]


def _main(spec: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    return rnd.choice([c for key, c in containers_in(spec) if key == "containers"])


def _mount(container: dict[str, Any], mount: dict[str, Any]) -> None:
    mounts = container.get("volumeMounts")
    if not isinstance(mounts, list):
        mounts = container["volumeMounts"] = []
    mounts.append(mount)


def _free_name(spec: dict[str, Any], name: str) -> str:
    taken = {v.get("name") for v in spec.get("volumes") or () if isinstance(v, dict)}
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


# --- volumes ----------------------------------------------------------------


def add_host_path_mount(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A log shipper gains ``hostPath: /var/log`` mounted ``readOnly: true``;
    restricted forbids every hostPath volume, whatever the mount says."""
    twin, _, _, spec = m.edit()
    g = default_grammar()
    target = weighted_choice(rnd, tuple((t, t.weight) for t in g.host_paths))
    entry = host_path_volume(_free_name(spec, volume_name_for(target.path)), target)
    spec.setdefault("volumes", []).append(entry)
    mount: dict[str, Any] = {"name": entry["name"], "mountPath": target.path}
    mode = weighted_choice(rnd, g.pools["mount_modes"])
    if mode == "read_only":
        mount["readOnly"] = True
    elif mode == "sub_path":
        mount["subPath"] = "node"
    _mount(_main(spec, rnd), mount)
    return twin


_LOOKALIKES = ("emptyDir", "persistentVolumeClaim", None, "configMap")


def swap_host_path_for_lookalike(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The ``docker-sock`` hostPath volume becomes an emptyDir (or a PVC, or
    just a name) with the same name and mountPath: it reads like a host
    mount but is an allowed source."""
    twin, _, _, spec = m.edit()
    volumes = spec.get("volumes")
    hosts = [v for v in volumes or () if isinstance(v, dict) and "hostPath" in v]
    if not hosts:
        return None
    chosen = rnd.choice(hosts)
    swapped = volume(chosen["name"], rnd.choice(_LOOKALIKES))
    volumes[volumes.index(chosen)] = swapped
    return twin


def mount_forbidden_volume(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A legacy app mounts an ``nfs`` (or iscsi, gitRepo, ...) volume: none of
    the inline network or cloud sources is on restricted's allow-list."""
    twin, _, _, spec = m.edit()
    source = weighted_choice(rnd, default_grammar().pools["forbidden_volume_sources"])
    entry = volume(_free_name(spec, source.lower()), source)
    spec.setdefault("volumes", []).append(entry)
    _mount(_main(spec, rnd), {"name": entry["name"], "mountPath": "/mnt/shared"})
    return twin


def strip_volume_source(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A volume keeps only its name; the API server defaults it to emptyDir
    before PSA looks, so a forbidden source written that way is gone."""
    twin, _, _, spec = m.edit()
    volumes = [
        v for v in spec.get("volumes") or () if isinstance(v, dict) and len(v) > 1
    ]
    if not volumes:
        return None
    chosen = rnd.choice(volumes)
    for key in [k for k in chosen if k != "name"]:
        del chosen[key]
    return twin


# --- extra containers -------------------------------------------------------


def add_bare_init_container(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A chart adds a ``fix-permissions`` init container copied from the app
    container but without its securityContext; PSA checks init containers."""
    twin, _, _, spec = m.edit()
    source = copy.deepcopy(_main(spec, rnd))
    init = {"name": "fix-permissions", "image": source.get("image", "busybox:1.36"),
            "command": ["sh", "-c", "chown -R 1000:1000 /data"]}  # fmt: skip
    if source.get("volumeMounts"):
        init["volumeMounts"] = source["volumeMounts"]
    spec.setdefault("initContainers", []).insert(0, init)
    return twin


def add_native_sidecar(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A log-shipping sidecar is added as an init container with
    ``restartPolicy: Always``, copying the app container's securityContext."""
    twin, _, _, spec = m.edit()
    source = _main(spec, rnd)
    sidecar = {"name": "log-shipper", "image": "cr.fluentbit.io/fluent/fluent-bit:3.1",
               "restartPolicy": "Always"}  # fmt: skip
    if "securityContext" in source:
        sidecar["securityContext"] = copy.deepcopy(source["securityContext"])
    spec.setdefault("initContainers", []).append(sidecar)
    return twin


def add_debug_container(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``kubectl debug`` adds an ephemeral container with no securityContext;
    PSA evaluates it on the ephemeralcontainers subresource."""
    twin, doc, _, spec = m.edit()
    if doc.get("kind") != "Pod":
        return None
    target = _main(spec, rnd)
    debugger = {"name": "debugger", "image": "busybox:1.36", "stdin": True, "tty": True,
                "targetContainerName": target["name"]}  # fmt: skip
    if rnd.random() < 0.3 and "securityContext" in target:
        debugger["securityContext"] = copy.deepcopy(target["securityContext"])
    spec.setdefault("ephemeralContainers", []).append(debugger)
    return twin


# --- kinds and documents ----------------------------------------------------


def wrap_in_workload(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod becomes the template of a CronJob (or Deployment, DaemonSet,
    ...); PSA judges a template exactly as it judges a pod."""
    twin, doc, meta, spec = m.edit()
    top = [i for i, d in enumerate(twin.documents) if d is doc]
    if not top or spec.get("ephemeralContainers"):
        return None
    kind = rnd.choice([k for k in KINDS if k != doc["kind"]])
    name = (doc.get("metadata") or {}).get("name") or "app"
    wrapped = wrap(kind, str(name), spec, annotations=meta.get("annotations"))
    documents = list(twin.documents)
    documents[top[0]] = wrapped
    return Manifest(tuple(documents), twin.style)


def wrap_in_list(m: Manifest, rnd: random.Random) -> Manifest | None:
    """``kubectl get -o yaml`` output: the workload sits in ``kind: List``
    items; every item is judged as if it stood alone."""
    if len(m.documents) != 1 or m.documents[0].get("kind") == "List":
        return None
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [copy.deepcopy(m.documents[0])],
    }
    return Manifest((listed,), m.style)


def add_companion_document(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A Service (or ConfigMap) document is added to the stream; it holds no
    pod spec, so the verdict is the workload's alone."""
    twin = Manifest(copy.deepcopy(m.documents), m.style)
    name = str((twin.workload().get("metadata") or {}).get("name") or "app")
    if rnd.random() < 0.5:
        extra = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                 "spec": {"selector": {"app": name},
                          "ports": [{"port": 80, "targetPort": 8080}]}}  # fmt: skip
    else:
        extra = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{name}-config"},
                 "data": {"LOG_LEVEL": "info"}}  # fmt: skip
    documents = (
        [*twin.documents, extra] if rnd.random() < 0.5 else [extra, *twin.documents]
    )
    return Manifest(tuple(documents), twin.style)


# --- Windows and host access ------------------------------------------------


def set_windows_os(m: Manifest, rnd: random.Random) -> Manifest | None:
    """The pod declares ``spec.os.name: windows``: from v1.25 the escalation,
    capability and seccomp checks skip it, runAsNonRoot still applies."""
    twin, _, _, spec = m.edit()
    if (spec.get("os") or {}).get("name") == "windows":
        return None
    spec["os"] = {"name": "windows"}
    spec.pop("hostUsers", None)
    for _, c in containers_in(spec):
        c["image"] = "mcr.microsoft.com/windows/nanoserver:ltsc2022"
    return twin


def run_as_windows_host_process(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A Windows node agent sets ``windowsOptions.hostProcess: true`` with
    ``hostNetwork: true``, as the API requires; baseline forbids both."""
    twin, _, _, spec = m.edit()
    spec["os"] = {"name": "windows"}
    spec["hostNetwork"] = True
    pod_sc = spec.setdefault("securityContext", {})
    pod_sc["windowsOptions"] = {
        "hostProcess": True,
        "runAsUserName": "NT AUTHORITY\\SYSTEM",
    }
    return twin


def share_host_namespace(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A node exporter sets ``hostPID: true`` (or hostNetwork, hostIPC) to see
    every process on the node."""
    twin, _, _, spec = m.edit()
    spec[rnd.choice(("hostNetwork", "hostPID", "hostIPC"))] = True
    return twin


def publish_host_port(m: Manifest, rnd: random.Random) -> Manifest | None:
    """An ingress pod publishes ``hostPort: 80``; only 0 is allowed, so an
    explicit ``hostPort: 0`` is the safe look-alike."""
    twin, _, _, spec = m.edit()
    target = _main(spec, rnd)
    ports = target.get("ports")
    if not isinstance(ports, list) or not ports:
        ports = target["ports"] = [{"containerPort": 8080}]
    ports[0]["hostPort"] = weighted_choice(rnd, default_grammar().pools["host_ports"])
    return twin


def point_probe_at_host(m: Manifest, rnd: random.Random) -> Manifest | None:
    """A readiness probe names ``host: 127.0.0.1``; from v1.34 any probe or
    hook host fails baseline, loopback included."""
    twin, _, _, spec = m.edit()
    target = _main(spec, rnd)
    hosts = tuple(p for p in default_grammar().pools["probe_hosts"] if p[0])
    host = weighted_choice(rnd, hosts)
    probe = target.setdefault("livenessProbe", {"periodSeconds": 10})
    action = "tcpSocket" if "tcpSocket" in probe else "httpGet"
    probe.pop("exec", None)
    probe.pop("grpc", None)
    body = probe.setdefault(action, {"path": "/healthz", "port": 8080})
    body["host"] = host
    return twin
