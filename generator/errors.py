"""Exceptions raised by spotcheck.

Every error a user can cause is a ``SpotcheckError``; the command line turns
it into one line on stderr and exit status 2. Anything else is a bug.

    SpotcheckError
    ├── InvalidArgument        a bad option or function argument
    ├── ConfigError            a config file that cannot be judged
    │   └── UnsupportedKind    a well-formed document of a kind we do not know
    ├── SuiteError             a suite or run directory that is missing or broken
    ├── ModelError             a model that cannot be found or loaded
    ├── Undecidable            a question the config alone cannot answer
    └── RemediationError       a config the oracle's remediation cannot fix
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidArgument",
    "ModelError",
    "RemediationError",
    "SpotcheckError",
    "SuiteError",
    "Undecidable",
    "UnsupportedKind",
]


class SpotcheckError(Exception):
    """A problem the user can fix; its message says where and how."""


class InvalidArgument(SpotcheckError):
    """An option or argument has a value spotcheck cannot use."""


class ConfigError(SpotcheckError):
    """A config document is unreadable: malformed, too large, or not a config.

    ``source`` names the file and ``index`` the document inside it (0-based),
    so the message can point at the exact place.
    """

    def __init__(self, message: str, *, source: str = "", index: int | None = None):
        self.source = source
        self.index = index
        self.reason = message
        where = source or "<input>"
        if index is not None:
            where = f"{where}: document {index}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Pickled across worker processes (check --jobs) with its parts.
        return (_rebuild, (type(self), self.reason, self.source, self.index))


def _rebuild(cls, reason: str, source: str, index: int | None) -> ConfigError:
    return cls(reason, source=source, index=index)


class UnsupportedKind(ConfigError):
    """The document parses but its ``kind`` is not one spotcheck judges."""


class SuiteError(SpotcheckError):
    """A suite or run directory is missing, incomplete or inconsistent."""


class ModelError(SpotcheckError):
    """The model under test cannot be located or loaded."""


class Undecidable(SpotcheckError):
    """The oracle cannot answer from the config alone ("depends").

    The answer hinges on facts outside the document (what a named role may
    do, what a data source holds), so it is no ground truth: such configs
    never enter a suite, and a repair that ends up here is not verified.
    """


class RemediationError(SpotcheckError):
    """No fix was found that the oracle judges safe and that keeps the intent.

    Raised by ``generator.remediate`` for configs it refuses (say, a pod
    whose only way to pass is to lose a container) and whenever its own
    re-check of a fix fails: an unverified fix is never returned.
    """
