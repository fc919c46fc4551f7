"""The field-level strategies of the Kubernetes grammar, and their shared checks.

Security contexts, capabilities and volumes: the parts ``pod_specs``
assembles. Public names are re-exported by ``generator.grammar.k8s``; see
its docstring for the hardened and loose regions of the space.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from generator.errors import InvalidArgument
from generator.grammar.k8s_parts import VOLUME_BODIES, host_path_volume, volume
from generator.grammar.k8s_schema import SCHEMA
from generator.grammar.pools import Grammar, load_grammar, weighted

__all__ = [
    "GRAMMAR_PATH",
    "capabilities",
    "default_grammar",
    "host_path_volumes",
    "k8s_grammar",
    "security_contexts",
    "volume_name_for",
    "volumes",
]

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammars" / "k8s.yaml"


def k8s_grammar(path: str | Path) -> Grammar:
    """Load and check a Kubernetes grammar file other than the default one."""
    return load_grammar(path, SCHEMA)


@lru_cache(maxsize=1)
def default_grammar() -> Grammar:
    """The repository's ``grammars/k8s.yaml``, loaded once."""
    return load_grammar(GRAMMAR_PATH, SCHEMA)


# --- argument checks --------------------------------------------------------


def check_grammar(grammar: Grammar | None) -> Grammar:
    if grammar is None:
        return default_grammar()
    if not isinstance(grammar, Grammar):
        raise InvalidArgument(
            f"grammar={grammar!r} ({type(grammar).__name__}) must be a Grammar "
            "from k8s_grammar(path), or None for the default"
        )
    return grammar


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(
            f"{name}={value!r} ({type(value).__name__}) must be a bool"
        )


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise InvalidArgument(f"{name}={value!r} must be one of {choices}")


def check_size(name: str, value: int, *, low: int = 0, high: int = 16) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not low <= value <= high
    ):
        raise InvalidArgument(
            f"{name}={value!r} ({type(value).__name__}) must be an int "
            f"in [{low}, {high}]"
        )


# --- field states -----------------------------------------------------------

UNSET = object()
# "string" is the trap spelling: a quoted boolean the API server refuses.
_STATES = {"unset": UNSET, "null": None, "false": False, "true": True}
_STRING_STATE = {"runAsNonRoot": "true", "readOnlyRootFilesystem": "true"}


def state_of(draw: Any, g: Grammar, field: str) -> Any:
    name = draw(weighted(g.states[field]))
    if name == "string":
        return _STRING_STATE.get(field, "false")
    return _STATES.get(name, name)


def present(draw: Any, g: Grammar, field: str) -> bool:
    return draw(weighted(g.states[field])) == "set"


def pooled(g: Grammar, name: str, hardened: bool) -> st.SearchStrategy[Any]:
    table = g.hardened if hardened and name in g.hardened else g.pools
    return weighted(table[name])


def put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not UNSET:
        target[key] = value


def profile_of(draw: Any, g: Grammar, kind: str, hardened: bool) -> dict[str, Any]:
    """A seccompProfile or appArmorProfile; Localhost names its profile file."""
    pool = "seccomp_types" if kind == "seccomp" else "apparmor_types"
    value = draw(pooled(g, pool, hardened))
    out = {"type": value}
    if value == "Localhost":
        out["localhostProfile"] = draw(pooled(g, "localhost_profiles", hardened))
    return out


# --- security contexts ------------------------------------------------------


def security_contexts(
    *, level: str = "container", hardened: bool = False, grammar: Grammar | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """A pod-level (``level="pod"``) or container-level securityContext."""
    check_choice("level", level, ("container", "pod"))
    check_bool("hardened", hardened)
    return _security_context_strategy(level, hardened, check_grammar(grammar))


@lru_cache(maxsize=256)
def _security_context_strategy(level: str, hardened: bool, g: Grammar):
    return _security_context(level, hardened, g)


@st.composite
def _security_context(draw, level: str, hardened: bool, g: Grammar) -> dict[str, Any]:
    sc: dict[str, Any] = {}
    container = level == "container"
    if container:
        # Restricted needs an explicit false on every container: unset means
        # escalation allowed (no_new_privs is only set for false).
        if hardened:
            sc["allowPrivilegeEscalation"] = False
        else:
            put(
                sc,
                "allowPrivilegeEscalation",
                state_of(draw, g, "allowPrivilegeEscalation"),
            )
            put(sc, "privileged", state_of(draw, g, "privileged"))
        put(sc, "readOnlyRootFilesystem", state_of(draw, g, "readOnlyRootFilesystem"))

    # runAsNonRoot and runAsUser exist at both levels; pod_specs decides
    # where they stay. A hardened context holds only passing values.
    put(sc, "runAsNonRoot", True if hardened else state_of(draw, g, "runAsNonRoot"))
    sc["runAsUser"] = draw(pooled(g, "run_as_users", hardened))
    if draw(st.booleans()):
        sc["runAsGroup"] = draw(pooled(g, "run_as_groups", hardened))
    if not container and draw(st.booleans()):
        sc["fsGroup"] = draw(pooled(g, "run_as_groups", hardened))

    if container and (hardened or present(draw, g, "capabilities")):
        sc["capabilities"] = draw(capabilities(hardened=hardened, grammar=g))
    if hardened or present(draw, g, "seccompProfile"):
        sc["seccompProfile"] = profile_of(draw, g, "seccomp", hardened)
    if present(draw, g, "seLinuxOptions"):
        sc["seLinuxOptions"] = _selinux(draw, g, hardened)
    if present(draw, g, "appArmorProfile"):
        sc["appArmorProfile"] = profile_of(draw, g, "apparmor", hardened)
    if container and present(draw, g, "procMount"):
        sc["procMount"] = draw(pooled(g, "proc_mounts", hardened))
    if not container and present(draw, g, "sysctls"):
        low, high = g.sizes["sysctls"]
        names = draw(st.lists(pooled(g, "sysctls", hardened), min_size=max(low, 1),
                              max_size=max(high, 1), unique=True))  # fmt: skip
        value = pooled(g, "sysctl_values", hardened)
        sc["sysctls"] = [{"name": n, "value": draw(value)} for n in names]
    if not hardened:
        host_process = state_of(draw, g, "hostProcess")
        if host_process is not UNSET:
            sc["windowsOptions"] = {"hostProcess": host_process}
    return sc


def _selinux(draw: Any, g: Grammar, hardened: bool) -> dict[str, Any]:
    # PSA restricts type, user and role; level is never restricted.
    opts = {"type": draw(pooled(g, "selinux_types", hardened))}
    if draw(st.booleans()):
        opts["level"] = draw(pooled(g, "selinux_levels", hardened))
    if not hardened and draw(st.integers(0, 3)) == 0:
        opts["user"] = draw(pooled(g, "selinux_users", hardened))
        opts["role"] = draw(pooled(g, "selinux_roles", hardened))
    return opts


def capabilities(
    *, hardened: bool = False, grammar: Grammar | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """A ``capabilities`` block: ``drop`` and ``add`` lists in drawn spellings."""
    check_bool("hardened", hardened)
    return _capabilities(hardened, check_grammar(grammar))


@lru_cache(maxsize=256)
def _capabilities(hardened: bool, g: Grammar) -> st.SearchStrategy[dict[str, Any]]:
    low, high = g.sizes["capabilities_add"]
    adds = st.lists(pooled(g, "capabilities_add", hardened), min_size=low,
                    max_size=high, unique=True)  # fmt: skip
    # A hardened pod drops exactly ALL; a loose one may drop nothing at all.
    drops = st.lists(pooled(g, "capabilities_drop", hardened), min_size=int(hardened),
                     max_size=1 if hardened else 2, unique=True)  # fmt: skip

    def build(pair: tuple[list[str], list[str]]) -> dict[str, Any]:
        drop, add = pair
        out: dict[str, Any] = {}
        if drop:
            out["drop"] = drop
        if add:
            out["add"] = add
        return out

    return st.tuples(drops, adds).map(build)


# --- volumes ----------------------------------------------------------------


def host_path_volumes(*, grammar: Grammar | None = None) -> st.SearchStrategy[dict]:
    """A ``hostPath`` volume entry aimed at one of the grammar's node paths."""
    return _host_path_volumes(check_grammar(grammar))


@lru_cache(maxsize=256)
def _host_path_volumes(g: Grammar) -> st.SearchStrategy[dict[str, Any]]:
    targets = weighted((t, t.weight) for t in g.host_paths)
    return targets.map(lambda t: host_path_volume(volume_name_for(t.path), t))


def volumes(
    *, hardened: bool = False, grammar: Grammar | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """A volume entry of any source kind the grammar weights (hardened: allowed)."""
    check_bool("hardened", hardened)
    return _volumes(hardened, check_grammar(grammar))


@lru_cache(maxsize=256)
def _volumes(hardened: bool, g: Grammar) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw) -> dict[str, Any]:
        kind = draw(pooled(g, "volume_kinds", hardened))
        if kind == "host_path":
            return draw(host_path_volumes(grammar=g))
        if kind == "name_only":
            return volume("scratch", None)
        source = draw(pooled(g, f"{kind}_volume_sources", hardened))
        return volume(volume_name_for(source), source)

    return build()


_VOLUME_NAMES = {
    "configMap": "config", "secret": "tls", "emptyDir": "cache", "projected":
    "token", "downwardAPI": "podinfo", "persistentVolumeClaim": "data", "csi":
    "secrets-store", "ephemeral": "scratch-claim", "image": "models",
}  # fmt: skip


def volume_name_for(source_or_path: str) -> str:
    """A realistic volume name: ``docker-sock`` for a socket path, ``config``..."""
    if source_or_path in VOLUME_BODIES:
        return _VOLUME_NAMES.get(source_or_path, source_or_path.lower())
    tail = source_or_path.strip("/").replace(".", "-").replace("/", "-")
    return tail.split("-", 2)[-1] if tail.count("-") > 2 else tail or "host-root"
