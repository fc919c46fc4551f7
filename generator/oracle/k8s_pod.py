"""Typed reads over a raw pod spec, for the Pod Security checks.

PSA sees objects after the API server decoded them into Go types, so a field
of the wrong JSON type never reaches a check: the API server rejects the
whole object. ``PodReader`` reads the raw YAML the same way: a value of the
expected type is returned, an unset or null one is None, and a wrong type is
recorded once per path as an ``invalidField`` finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from generator.config.k8s import Workload

__all__ = ["INVALID", "Finding", "PodReader", "shown"]

INVALID = "invalidField"


@dataclass(frozen=True)
class Finding:
    """A failed check: the check id, its level, the field path, and why."""

    rule: str
    level: str
    path: str
    message: str

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str]]:
        # Findings cross process boundaries by the thousand in ``check
        # --jobs``; arguments pickle several times faster than field state.
        return Finding, (self.rule, self.level, self.path, self.message)

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "level": self.level,
            "path": self.path,
            "message": self.message,
        }


class PodReader:
    """Typed reads over one workload's pod spec and pod metadata."""

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
        if type(value) is kind:  # the common case; bool is not int here
            return value
        if value is None:
            return None
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        wrong = isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
        if wrong:
            expected = {bool: "a boolean", int: "an integer", str: "a string",
                        dict: "a mapping", list: "a list"}[kind]  # fmt: skip
            got = f"{type(value).__name__} {value!r}"
            self._invalid(path, f"must be {expected}, got {got}")
            return None
        return value

    def items(self, obj: Any, key: str, path: str) -> Iterator[tuple[str, dict]]:
        """(path, entry) for each mapping in the list ``obj[key]``."""
        for i, entry in enumerate(self.field(obj, key, list, path) or ()):
            entry_path = f"{path}[{i}]"
            if entry is None:
                # Go decodes null into an empty object, which lacks the
                # required fields (a container's name, a volume's name).
                self._invalid(entry_path, "a list entry must be an object, got null")
            elif self.field({"x": entry}, "x", dict, entry_path) is not None:
                yield entry_path, entry

    def strings(self, obj: Any, key: str, path: str) -> list[tuple[str, str]]:
        """(path, value) for each string in the list ``obj[key]``.

        A null entry decodes to the empty string in Go, so it reads as "".
        """
        out = []
        for i, entry in enumerate(self.field(obj, key, list, path) or ()):
            entry_path = f"{path}[{i}]"
            value = (
                "" if entry is None else self.field({"x": entry}, "x", str, entry_path)
            )
            if value is not None:
                out.append((entry_path, value))
        return out

    def pod_context(self) -> tuple[str, dict]:
        path = f"{self.spec_path}.securityContext"
        return path, self.field(self.spec, "securityContext", dict, path) or {}

    def require_containers(self) -> None:
        """A pod needs at least one container; the API server rejects none."""
        path = f"{self.spec_path}.containers"
        if not self.field(self.spec, "containers", list, path):
            self._invalid(path, "a pod needs at least one container")

    def _invalid(self, path: str, problem: str) -> None:
        # Once per path: a field read by several checks is one problem.
        message = f"{problem}; the API server rejects this object"
        self.invalid.setdefault(path, Finding(INVALID, "baseline", path, message))

    @cached_property
    def _containers(self) -> tuple[tuple[str, dict], ...]:
        # Every per-container check walks the same three lists; read once.
        return tuple(
            entry
            for key in ("initContainers", "containers", "ephemeralContainers")
            for entry in self.items(self.spec, key, f"{self.spec_path}.{key}")
        )

    @cached_property
    def _contexts(self) -> tuple[tuple[str, dict | None], ...]:
        out = []
        for path, container in self._containers:
            sc_path = f"{path}.securityContext"
            out.append(
                (sc_path, self.field(container, "securityContext", dict, sc_path))
            )
        return tuple(out)

    def containers(self) -> Iterator[tuple[str, dict]]:
        """(path, container) for init, regular and ephemeral containers."""
        return iter(self._containers)

    def container_contexts(self) -> Iterator[tuple[str, dict | None]]:
        """(securityContext path, context or None) for every container."""
        return iter(self._contexts)

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


def shown(value: str | None) -> str:
    """A value for a message: quoted, or "missing" when unset."""
    return "missing" if value is None else repr(value)
