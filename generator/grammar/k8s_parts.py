"""Fixed shapes of Kubernetes objects: volume bodies, probes, workload wrappers.

The grammar file says *which* volume source or workload kind to draw; this
module knows how each one is written, so a manifest looks like one a person
would apply (a CronJob has a schedule, a StatefulSet a serviceName). The
verdict never depends on these details: PSA reads only the pod spec and
its metadata (https://kubernetes.io/docs/concepts/security/pod-security-admission/).
"""

from __future__ import annotations

import copy
from typing import Any

from generator.config.k8s import TEMPLATE_PATHS
from generator.grammar.pools import HostPath

__all__ = [
    "KINDS",
    "VOLUME_BODIES",
    "host_path_volume",
    "pod_parts",
    "probe",
    "volume",
    "wrap",
]

KINDS = ("Pod", *TEMPLATE_PATHS)

_API_VERSIONS = {
    "Pod": "v1",
    "PodTemplate": "v1",
    "ReplicationController": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}

# One realistic body per inline volume source of core/v1 Volume.
VOLUME_BODIES: dict[str, dict[str, Any]] = {
    "configMap": {"name": "app-config"},
    "secret": {"secretName": "app-tls"},
    "emptyDir": {},
    "projected": {
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
        ]
    },
    "downwardAPI": {
        "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
    },
    "persistentVolumeClaim": {"claimName": "data"},
    "csi": {
        "driver": "secrets-store.csi.k8s.io",
        "readOnly": True,
        "volumeAttributes": {"secretProviderClass": "app-secrets"},
    },
    "ephemeral": {
        "volumeClaimTemplate": {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }
        }
    },
    "image": {"reference": "quay.io/acme/models:v1", "pullPolicy": "IfNotPresent"},
    "nfs": {"server": "nfs.storage.internal", "path": "/exports/data"},
    "iscsi": {
        "targetPortal": "10.0.0.20:3260",
        "iqn": "iqn.2001-04.com.example:storage.disk1",
        "lun": 0,
    },
    "gitRepo": {"repository": "https://github.com/acme/config.git", "revision": "main"},
    "rbd": {"monitors": ["10.0.0.30:6789"], "image": "data", "pool": "kube"},
    "cephfs": {"monitors": ["10.0.0.30:6789"], "path": "/data"},
    "awsElasticBlockStore": {"volumeID": "vol-0a1b2c3d4e5f", "fsType": "ext4"},
    "gcePersistentDisk": {"pdName": "data-disk", "fsType": "ext4"},
    "azureDisk": {"diskName": "data", "diskURI": "/subscriptions/0/disks/data"},
    "flexVolume": {"driver": "example.com/lvm", "fsType": "ext4"},
    "glusterfs": {"endpoints": "glusterfs-cluster", "path": "data"},
    "fc": {"targetWWNs": ["500a0982991b8dc5"], "lun": 2},
    "cinder": {"volumeID": "8b5e1f3c-0d4a-4c1e-9f6b-2a7d3c9e1f00"},
}


def volume(name: str, source: str | None) -> dict[str, Any]:
    """A volume entry; ``source=None`` writes only the name (defaulted to emptyDir)."""
    if source is None:
        return {"name": name}
    return {"name": name, source: copy.deepcopy(VOLUME_BODIES[source])}


def host_path_volume(name: str, target: HostPath) -> dict[str, Any]:
    body: dict[str, Any] = {"path": target.path}
    if target.type:
        body["type"] = target.type
    return {"name": name, "hostPath": body}


def probe(handler: str, host: str, port: int) -> dict[str, Any]:
    """A liveness/readiness probe; ``host=""`` leaves the host unset."""
    if handler == "exec":
        action: dict[str, Any] = {"command": ["cat", "/tmp/healthy"]}
    elif handler == "httpGet":
        action = {"path": "/healthz", "port": port}
    else:
        action = {"port": port}
    # Only httpGet and tcpSocket carry a host (hostProbesAndHostLifecycle).
    if host and handler in ("httpGet", "tcpSocket"):
        action = {"host": host, **action}
    return {handler: action, "periodSeconds": 10}


def wrap(
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A whole manifest of ``kind`` whose pod spec (or template) is ``spec``."""
    spec = dict(spec)
    labels = {"app": name}
    pod_meta: dict[str, Any] = {"labels": labels}
    if annotations:
        pod_meta["annotations"] = dict(annotations)
    # Jobs must not restart pods forever; every other kind must (API validation).
    if kind in ("Job", "CronJob"):
        spec.setdefault("restartPolicy", "OnFailure")
    elif spec.get("restartPolicy") in ("Never", "OnFailure") and kind != "Pod":
        del spec["restartPolicy"]
    head = {"apiVersion": _API_VERSIONS[kind], "kind": kind}
    if kind == "Pod":
        return {**head, "metadata": {"name": name, **pod_meta}, "spec": spec}
    template = {"metadata": pod_meta, "spec": spec}
    meta = {"name": name, "labels": dict(labels)}
    if kind == "PodTemplate":
        return {**head, "metadata": meta, "template": template}
    if kind == "CronJob":
        job = {"backoffLimit": 2, "template": template}
        body = {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": job}}  # fmt: skip
        return {**head, "metadata": meta, "spec": body}
    if kind == "Job":
        return {
            **head,
            "metadata": meta,
            "spec": {"backoffLimit": 2, "template": template},
        }
    selector: dict[str, Any] = {"matchLabels": dict(labels)}
    if kind == "ReplicationController":
        selector = dict(labels)
    body = {"selector": selector, "template": template}
    if kind != "DaemonSet":
        body = {"replicas": 2, **body}
    if kind == "StatefulSet":
        body = {"serviceName": name, **body}
    return {**head, "metadata": meta, "spec": body}


def pod_parts(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod metadata and spec inside ``doc`` (live references, created if absent).

    Raises ``KeyError`` for a kind that holds no pod spec.
    """
    kind = doc.get("kind")
    if kind == "Pod":
        holder = doc
    elif kind in TEMPLATE_PATHS:
        holder = doc
        for key in TEMPLATE_PATHS[kind]:
            holder = holder.setdefault(key, {})
    else:
        raise KeyError(f"kind {kind!r} holds no pod spec")
    meta = holder.setdefault("metadata", {})
    spec = holder.setdefault("spec", {})
    return meta, spec
