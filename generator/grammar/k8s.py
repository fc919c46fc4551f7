"""Hypothesis strategies for Kubernetes workloads, drawn from ``grammars/k8s.yaml``.

Each strategy is a plural noun of what it yields, a plain dict ready to be
rendered: ``security_contexts``, ``capabilities``, ``volumes``,
``host_path_volumes``, ``containers``, ``pod_specs``, ``workloads``.
Arguments are keyword-only and checked when the strategy is built, so a
wrong one raises ``InvalidArgument`` showing ``name=value`` before anything
is drawn.

Two regions of the space:

* ``hardened=True`` draws from the grammar's ``hardened`` pools and writes
  every field the restricted level requires, each placed at pod or
  container level as drawn (a pod-level value stands in for unset container
  values only for runAsNonRoot and seccompProfile; k8s-pss.md). The case
  families start here and move one dimension at a time.
* ``hardened=False`` draws every field from the full pools and the states
  table: unset, null, false, true, or a string where a boolean belongs.

Nothing here decides a verdict; the oracle recomputes every case.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from generator.errors import InvalidArgument
from generator.grammar.k8s_fields import (
    GRAMMAR_PATH,
    UNSET,
    capabilities,
    check_bool,
    check_choice,
    check_grammar,
    check_size,
    default_grammar,
    host_path_volumes,
    k8s_grammar,
    pooled,
    present,
    security_contexts,
    state_of,
    volume_name_for,
    volumes,
)
from generator.grammar.k8s_parts import KINDS, probe, wrap
from generator.grammar.pools import Grammar, weighted

__all__ = [
    "GRAMMAR_PATH",
    "KINDS",
    "capabilities",
    "containers",
    "default_grammar",
    "host_path_volumes",
    "k8s_grammar",
    "pod_specs",
    "security_contexts",
    "volume_name_for",
    "volumes",
    "workloads",
]

ROLES = ("container", "init", "sidecar", "ephemeral")
OS_CHOICES = (None, "unset", "linux", "windows")
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

_ROLE_NAMES = {
    "init": ("init-perms", "migrate", "wait-for-db"),
    "sidecar": ("log-shipper", "envoy", "config-reloader"),
    "ephemeral": ("debugger",),
}
_INIT_COMMANDS = (
    ["sh", "-c", "chown -R 1000:1000 /data"],
    ["/app/migrate", "--to", "latest"],
    ["sh", "-c", "until nc -z db 5432; do sleep 2; done"],
)


# --- containers -------------------------------------------------------------


def containers(
    *, role: str = "container", hardened: bool = False, grammar: Grammar | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """One container of ``role``: container, init, sidecar (init) or ephemeral."""
    check_choice("role", role, ROLES)
    check_bool("hardened", hardened)
    return _container_strategy(role, hardened, check_grammar(grammar))


@lru_cache(maxsize=256)
def _container_strategy(role: str, hardened: bool, g: Grammar):
    return _container(role, hardened, g)


@st.composite
def _container(draw, role: str, hardened: bool, g: Grammar) -> dict[str, Any]:
    if role == "container":
        name = draw(pooled(g, "names", hardened))
    else:
        name = draw(st.sampled_from(_ROLE_NAMES[role]))
    image = (
        "busybox:1.36" if role == "ephemeral" else draw(pooled(g, "images", hardened))
    )
    c: dict[str, Any] = {"name": name, "image": image}
    if role == "ephemeral":
        # kubectl debug writes an interactive shell container.
        c.update(stdin=True, tty=True)
    if role == "init":
        c["command"] = draw(st.sampled_from(_INIT_COMMANDS))
    # A sidecar is an init container with restartPolicy Always (KEP-753);
    # PSA covers it as an init container either way.
    if (
        role == "sidecar"
        and draw(pooled(g, "sidecar_restart_policies", hardened)) != "unset"
    ):
        c["restartPolicy"] = "Always"

    port = 8080
    if role in ("container", "sidecar"):
        low, high = g.sizes["ports"]
        numbers = draw(st.lists(pooled(g, "container_ports", hardened), min_size=low,
                                max_size=high, unique=True))  # fmt: skip
        ports = [{"containerPort": n} for n in numbers]
        for entry in ports:
            if not hardened and present(draw, g, "hostPort"):
                entry["hostPort"] = draw(pooled(g, "host_ports", hardened))
        if ports:
            c["ports"] = ports
            port = numbers[0]
    if role != "ephemeral" and present(draw, g, "resources"):
        c["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"memory": "256Mi"}}  # fmt: skip

    # Probes and hooks with a host let the kubelet reach any address
    # (hostProbesAndHostLifecycle, v1.34+); exec and grpc carry no host.
    if role in ("container", "sidecar") and present(draw, g, "probe"):
        handler = draw(pooled(g, "probe_handlers", hardened))
        host = draw(pooled(g, "probe_hosts", hardened))
        c["readinessProbe"] = probe(handler, host, port)
    if role == "container" and present(draw, g, "lifecycle"):
        hook = draw(pooled(g, "lifecycle_hooks", hardened))
        host = draw(pooled(g, "probe_hosts", hardened))
        handler = draw(st.sampled_from(("httpGet", "exec", "tcpSocket")))
        action = probe(handler, host, port)
        action.pop("periodSeconds")
        c["lifecycle"] = {hook: action}
    if hardened or present(draw, g, "securityContext"):
        c["securityContext"] = draw(
            security_contexts(level="container", hardened=hardened, grammar=g)
        )
    return c


# --- pod specs --------------------------------------------------------------


def pod_specs(
    *,
    min_containers: int | None = None,
    max_containers: int | None = None,
    max_init_containers: int | None = None,
    max_ephemeral_containers: int | None = None,
    hardened: bool = False,
    os: str | None = None,
    grammar: Grammar | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A pod spec; unset sizes come from the grammar's ``sizes`` section.

    ``os`` fixes ``spec.os.name`` ("unset" leaves it out); None draws it.
    """
    g = check_grammar(grammar)
    check_bool("hardened", hardened)
    check_choice("os", os, OS_CHOICES)
    low, high = g.sizes["containers"]
    low = low if min_containers is None else min_containers
    high = high if max_containers is None else max_containers
    check_size("min_containers", low, low=1)
    check_size("max_containers", high, low=1)
    if low > high:
        raise InvalidArgument(
            f"min_containers={low!r} must not exceed max_containers={high!r}"
        )
    inits = (
        g.sizes["init_containers"][1]
        if max_init_containers is None
        else max_init_containers
    )
    check_size("max_init_containers", inits)
    debug = (
        g.sizes["ephemeral_containers"][1]
        if max_ephemeral_containers is None
        else max_ephemeral_containers
    )
    check_size("max_ephemeral_containers", debug)
    return _pod_spec_strategy((low, high), inits, debug, hardened, os, g)


@lru_cache(maxsize=256)
def _pod_spec_strategy(mains_range, max_inits, max_debug, hardened, os_name, g):
    return _pod_spec(mains_range, max_inits, max_debug, hardened, os_name, g)


@st.composite
def _pod_spec(draw, mains_range, max_inits, max_debug, hardened, os_name, g):
    os_name = os_name or draw(pooled(g, "os_names", hardened))
    mains = [draw(containers(role="container", hardened=hardened, grammar=g))
             for _ in range(draw(st.integers(*mains_range)))]  # fmt: skip
    inits = [
        draw(containers(role=draw(st.sampled_from(("init", "sidecar"))),
                        hardened=hardened, grammar=g))
        for _ in range(draw(st.integers(0, max_inits)))
    ]  # fmt: skip
    debug = [draw(containers(role="ephemeral", hardened=hardened, grammar=g))
             for _ in range(draw(st.integers(0, max_debug)))]  # fmt: skip
    _unique_names(inits + mains + debug)
    for entry in debug:
        entry["targetContainerName"] = mains[0]["name"]

    pod_sc = draw(security_contexts(level="pod", hardened=hardened, grammar=g))
    contexts = [
        c["securityContext"] for c in inits + mains + debug if "securityContext" in c
    ]
    for field in ("runAsNonRoot", "seccompProfile", "runAsUser"):
        levels = g.levels[field]
        # Hardened pods must set the two required fields somewhere.
        if hardened and field != "runAsUser":
            levels = tuple(p for p in levels if p[0] != "unset") or (("pod", 1),)
        _place(field, draw(weighted(levels)), pod_sc, contexts)

    spec: dict[str, Any] = {}
    if os_name != "unset":
        spec["os"] = {"name": os_name}
    for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        value = state_of(draw, g, field)
        if hardened and not (
            value is False or (field == "hostUsers" and value is True)
        ):
            value = UNSET
        if value is not UNSET:
            spec[field] = value
    if pod_sc:
        spec["securityContext"] = pod_sc
    if inits:
        spec["initContainers"] = inits
    spec["containers"] = mains
    if debug:
        spec["ephemeralContainers"] = debug
    entries = _volumes(draw, g, hardened, inits + mains)
    if entries:
        spec["volumes"] = entries
    if os_name == "windows":
        _windowsify(draw, g, spec, hardened)
    return spec


def _unique_names(entries: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for entry in entries:
        base, n = entry["name"], 2
        while entry["name"] in seen:
            entry["name"], n = f"{base}-{n}", n + 1
        seen.add(entry["name"])


def _place(field: str, where: str, pod_sc: dict, contexts: list[dict]) -> None:
    """Keep ``field`` only at the drawn level(s): pod, container, both or unset."""
    if where in ("container", "unset"):
        pod_sc.pop(field, None)
    if where in ("pod", "unset"):
        for sc in contexts:
            sc.pop(field, None)


_MOUNT_PATHS = {"config": "/etc/app", "tls": "/etc/tls", "cache": "/tmp",
                "data": "/var/lib/app", "token": "/var/run/secrets/app"}  # fmt: skip


def _volumes(draw, g: Grammar, hardened: bool, mounts_in: list[dict]) -> list[dict]:
    low, high = g.sizes["volumes"]
    entries = [draw(volumes(hardened=hardened, grammar=g))
               for _ in range(draw(st.integers(low, high)))]  # fmt: skip
    _unique_names(entries)
    for entry in entries:
        target = draw(st.sampled_from(mounts_in))
        host = entry.get("hostPath", {}).get("path")
        default_path = _MOUNT_PATHS.get(entry["name"], f"/mnt/{entry['name']}")
        mount = {"name": entry["name"], "mountPath": host or default_path}
        mode = draw(pooled(g, "mount_modes", hardened))
        if mode == "read_only":
            mount["readOnly"] = True
        elif mode == "sub_path":
            mount["subPath"] = "app"
        target.setdefault("volumeMounts", []).append(mount)
    return entries


# Fields API validation forbids on Windows pods; the restricted checks that
# read them skip Windows pods from v1.25, so a hardened Windows pod omits them.
_LINUX_ONLY = (
    "seccompProfile", "seLinuxOptions", "appArmorProfile", "capabilities",
    "allowPrivilegeEscalation", "procMount", "runAsUser", "runAsGroup",
    "readOnlyRootFilesystem", "privileged", "fsGroup", "sysctls",
)  # fmt: skip


def _windowsify(draw, g: Grammar, spec: dict[str, Any], hardened: bool) -> None:
    everything = [*spec.get("initContainers", ()), *spec["containers"],
                  *spec.get("ephemeralContainers", ())]  # fmt: skip
    for c in everything:
        c["image"] = draw(pooled(g, "windows_images", hardened))
    if not hardened:
        return
    spec.pop("hostUsers", None)
    holders = [spec, *everything]
    for holder in holders:
        sc = holder.get("securityContext")
        if sc is None:
            continue
        for key in _LINUX_ONLY:
            sc.pop(key, None)
        if not sc:
            del holder["securityContext"]
    pod_sc = spec.setdefault("securityContext", {})
    pod_sc["windowsOptions"] = {
        "runAsUserName": draw(pooled(g, "windows_users", hardened))
    }


# --- whole workloads --------------------------------------------------------


def workloads(
    *,
    kinds: tuple[str, ...] | None = None,
    hardened: bool = False,
    os: str | None = None,
    grammar: Grammar | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A whole manifest: a Pod or any pod-template kind PSA evaluates."""
    g = check_grammar(grammar)
    check_bool("hardened", hardened)
    check_choice("os", os, OS_CHOICES)
    if kinds is not None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise InvalidArgument(
                f"kinds={kinds!r} holds unknown kinds {unknown}; "
                f"known: {', '.join(KINDS)}"
            )
    wanted = KINDS if kinds is None else tuple(kinds)
    pool = tuple(p for p in g.pools["kinds"] if p[0] in wanted)
    kind_strategy = weighted(pool) if pool else st.sampled_from(wanted)
    return _workload(kind_strategy, hardened, os, g)


@st.composite
def _workload(draw, kind_strategy, hardened: bool, os_name: str | None, g: Grammar):
    kind = draw(kind_strategy)
    name = draw(pooled(g, "names", hardened))
    # Ephemeral containers exist only on live Pods, never in templates.
    debug = None if kind == "Pod" else 0
    spec = draw(pod_specs(max_ephemeral_containers=debug, hardened=hardened, os=os_name,
                          grammar=g))  # fmt: skip
    annotations = {}
    if present(draw, g, "appArmorAnnotation"):
        target = draw(st.sampled_from(spec["containers"]))["name"]
        value = draw(pooled(g, "apparmor_annotations", hardened))
        annotations[APPARMOR_PREFIX + target] = value
    return wrap(kind, name, spec, annotations=annotations)
