"""Can the caller perform one action on one kind of target? For one identity policy.

The answer is ``OPEN`` (a target with a name the policy does not mention is
allowed: in a worst-case account a privileged one exists), ``PINNED`` (only
targets the policy names or patterns out are allowed; whether one of them
is privileged is outside the policy) or ``CLOSED`` (nothing of that kind is
allowed), in one of two views (research/iam.md §2.3):

* ``definite``: an Allow counts when its condition is surely true for a
  request the caller can make; a Deny counts unless the caller can make its
  condition false or it is surely false. A variable with no known value
  makes an Allow pattern match nothing and a Deny pattern match everything.
* ``possible``: an Allow counts unless its condition is surely false; a Deny
  counts only when its condition is surely true. Unknown variables swing
  the other way.

A Deny removes the action only where its resources reach (per resource,
trap 3). The request is judged against every resource type the catalogue
marks required (all of them must be allowed); where that does not hold but
a smaller documented scenario, or any single type, would do, the answer is
at most ``PINNED`` so the verdict falls to "depends" rather than guessing.
An action with no resource type is allowed only by a Resource that matches
the literal ``*`` (trap 13's neighbour in §1.3).

The caller is an IAM user or a role (``Caller``), in the account the policy
names (``Caller.account``; see iam_privesc for several). Its own ARN is
``user/<name>`` or ``role/<name>`` with the default path, and
``${aws:username}`` resolves to that name for a user and to nothing for a
role session (a Deny built on it then stops applying, trap 21).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from generator.config.iam import Policy, Statement
from generator.oracle import iam_conditions as cond
from generator.oracle.iam_catalogue import ActionInfo, ResourceType, action_info
from generator.oracle.iam_match import (
    NAMESEG,
    NAMESTAR,
    NOTHING,
    UNKNOWN,
    Glob,
    action_matches,
    arn_glob,
    literal_glob,
    satisfiable,
)

__all__ = [
    "CLOSED",
    "OPEN",
    "PINNED",
    "Access",
    "Caller",
    "Grant",
    "Request",
]

logger = logging.getLogger(__name__)

OPEN, PINNED, CLOSED = 2, 1, 0
VIEWS = ("definite", "possible")

SELF_NAME = "spotcheck-caller"
TARGET_NAME = "spotcheck-target"

# AWS-managed policies that make the holder an administrator in one step:
# what an attacker attaches when iam:PolicyARN is the only thing in the way.
ADMIN_POLICIES = (
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
)


@dataclass(frozen=True)
class Caller:
    """Who holds the policy: ``kind`` user or role, in ``partition``/``account``."""

    kind: str
    partition: str
    account: str

    def arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:{self.kind}/{SELF_NAME}"

    def resolve(self, key: str) -> str | object | None:
        """A policy variable's value for this caller (research/iam.md §2.2)."""
        lowered = key.lower()
        if lowered == "aws:username":
            return SELF_NAME if self.kind == "user" else NOTHING
        if lowered == "aws:principalaccount":
            return self.account
        return UNKNOWN


@dataclass(frozen=True)
class Request:
    """One action wanted on one kind of target, in a method's context."""

    action: str
    target: str = "other"  # "self" or "other"
    passed_to: tuple[str, ...] = ()  # iam:PassedToService choices
    passed_to_all: bool = False


@dataclass(frozen=True)
class Grant:
    """The access found, and the statements that allow it."""

    level: int
    statements: tuple[int, ...] = ()


class Access:
    """Answers ``Request``s for one policy and one caller, with caching.

    Everything it finds depends on the policy and the caller alone, so one
    Access may serve many questions (iam keeps the latest few).
    """

    def __init__(self, policy: Policy, caller: Caller):
        self.policy = policy
        self.caller = caller
        self._cache: dict[tuple[Request, str], Grant] = {}
        self._levels: dict[tuple[object, ...], int] = {}
        self._naming: dict[str, list[Statement]] = {}
        # Results of callers above (iam_privesc), keyed as they choose.
        self.memo: dict[object, object] = {}

    def naming(self, action: str) -> list[Statement]:
        """The statements whose Action or NotAction names ``action``."""
        found = self._naming.get(action)
        if found is None:
            found = [s for s in self.policy.statements if _names_action(s, action)]
            self._naming[action] = found
        return found

    def may_allow(self, action: str) -> bool:
        """Whether some Allow names ``action``: without one it is CLOSED."""
        return any(s.allows for s in self.naming(action))

    def grant(self, request: Request, view: str) -> Grant:
        key = (request, view)
        if key not in self._cache:
            self._cache[key] = self._grant(request, view)
        return self._cache[key]

    def _grant(self, request: Request, view: str) -> Grant:
        if request.passed_to_all and len(request.passed_to) > 1:
            # Each role pass is its own request; all of them must go through.
            parts = [
                self._grant(Request(request.action, request.target, (s,)), view)
                for s in request.passed_to
            ]
            level = min(p.level for p in parts)
            return Grant(level, tuple(sorted({i for p in parts for i in p.statements})))
        statements = self.naming(request.action)
        if not any(s.allows for s in statements):
            return Grant(CLOSED)
        info = action_info(request.action)
        context = self._context(request, info, view)
        best = Grant(CLOSED)
        blocks = [s.conditions for s in statements]
        for assignment in cond.assignments(blocks, context):
            allows, denies = [], []
            for s in statements:
                value = cond.evaluate(s.conditions, context, assignment)
                if s.allows and (
                    value == cond.TRUE if view == "definite" else value != cond.FALSE
                ):
                    allows.append(s)
                if not s.allows and (
                    value != cond.FALSE if view == "definite" else value == cond.TRUE
                ):
                    denies.append(s)
            if not allows:
                continue
            level = self._level(request, info, allows, denies, view)
            if level > best.level:
                best = Grant(level, tuple(s.index for s in allows))
            if best.level == OPEN:
                break
        return best

    # --- conditions ---------------------------------------------------------

    def _context(self, request: Request, info: ActionInfo, view: str) -> cond.Context:
        return _request_context(request.action, request.passed_to, view)

    # --- resources ----------------------------------------------------------

    def _level(
        self,
        request: Request,
        info: ActionInfo,
        allows: list[Statement],
        denies: list[Statement],
        view: str,
    ) -> int:
        if not info.resource_types:
            if info.known:
                return self._star(allows, denies, view)
            return self._type_level(request, None, allows, denies, view)  # unknown
        levels = {
            t.name: self._type_level(request, t, allows, denies, view)
            for t in info.resource_types
        }
        strict = min(levels[t.name] for t in info.required)
        if strict == OPEN:
            return OPEN
        options = info.scenarios or tuple(frozenset({t.name}) for t in info.required)
        lenient = max(min(levels.get(n, CLOSED) for n in o) for o in options)
        return PINNED if lenient >= PINNED else CLOSED

    def _star(self, allows: list[Statement], denies: list[Statement], view: str) -> int:
        """Actions with no resource type: only ``*`` itself is requested."""
        allowed = any(self._covers(s, "*", view) for s in allows)
        denied = any(self._covers(s, "*", view) for s in denies)
        return OPEN if allowed and not denied else CLOSED

    def _type_level(
        self,
        request: Request,
        rtype: ResourceType | None,
        allows: list[Statement],
        denies: list[Statement],
        view: str,
    ) -> int:
        key = (
            request.target,
            request.action.partition(":")[0].lower() if rtype is None else None,
            rtype,
            tuple(s.index for s in allows),
            tuple(s.index for s in denies),
            view,
        )
        if key not in self._levels:
            self._levels[key] = self._type_level_uncached(
                request, rtype, allows, denies, view
            )
        return self._levels[key]

    def _type_level_uncached(
        self,
        request: Request,
        rtype: ResourceType | None,
        allows: list[Statement],
        denies: list[Statement],
        view: str,
    ) -> int:
        witness = self._witness(request, rtype)
        if witness is None:
            return CLOSED  # "self" of a type the caller is not (a role's user)
        # Open: a target named nothing the policy mentions, in any region
        # (a worst-case account has privileged ones everywhere). A concrete
        # region is tried first; the exact search settles the rest.
        sample = _sample(witness)
        if sample is not None and self._allowed(sample, allows, denies, view):
            return OPEN
        if self._nonempty(witness, allows, denies, [], view):
            return OPEN
        # Another principal must not be the caller itself (keys for oneself
        # are not escalation, trap 11).
        excluded = [] if request.target == "self" else [literal_glob(self.caller.arn())]
        shape = self._shape(rtype, named=False)
        return (
            PINNED if self._nonempty(shape, allows, denies, excluded, view) else CLOSED
        )

    def _allowed(
        self, arn: str, allows: list[Statement], denies: list[Statement], view: str
    ) -> bool:
        return any(self._covers(s, arn, view) for s in allows) and not any(
            self._covers(s, arn, view) for s in denies
        )

    def _witness(self, request: Request, rtype: ResourceType | None) -> Glob | None:
        if (
            rtype is not None
            and request.target == "self"
            and rtype.service == "iam"
            and rtype.name in ("user", "role")
        ):
            mine = rtype.name == self.caller.kind
            return literal_glob(self.caller.arn()) if mine else None
        if rtype is None:
            # An action the catalogue does not know: a generic ARN of its service.
            service = request.action.partition(":")[0].lower()
            template = (
                f"arn:${{Partition}}:{service}:${{Region}}:${{Account}}:${{Name}}"
            )
            return _shape(template, self.caller.partition, self.caller.account, True)
        return self._shape(rtype, named=True)

    def _shape(self, rtype: ResourceType | None, *, named: bool) -> Glob:
        """ARNs of the type in the caller's account, any region.

        ``named``: with the one name no policy mentions; otherwise any name.
        """
        if rtype is None:
            return Glob((NAMESTAR,))
        return _shape(rtype.arn, self.caller.partition, self.caller.account, named)

    def _covers(self, statement: Statement, arn: str, view: str) -> bool:
        if statement.resources is None and statement.not_resources is None:
            return True  # trust statements: the role itself
        globs = self._globs(statement, view)
        hit = any(g.matches(arn) for g in globs)
        return hit if statement.resources is not None else not hit

    def _globs(self, statement: Statement, view: str) -> tuple[Glob, ...]:
        patterns = statement.resources or statement.not_resources or ()
        # An unknown variable widens a pattern on the side that can only make
        # the view's answer smaller: definite Allows shrink, Denies grow.
        grows = (view == "definite") != statement.allows
        if statement.not_resources is not None:
            grows = not grows
        negative = statement.not_resources is not None
        return tuple(
            _compile(p, self.policy.variables, self.caller, grows, negative and grows)
            for p in patterns
        )

    def _nonempty(
        self,
        shape: Glob,
        allows: list[Statement],
        denies: list[Statement],
        excluded: list[Glob],
        view: str,
    ) -> bool:
        globs: list[Glob] = [shape, *excluded]
        spans: list[tuple[Statement, int, int]] = []
        for s in (*allows, *denies):
            start = len(globs)
            globs.extend(self._globs(s, view))
            spans.append((s, start, len(globs)))
        n_allows, n_excluded = len(allows), len(excluded)

        def accept(flags: Sequence[bool]) -> bool:
            if not flags[0] or any(flags[1 : 1 + n_excluded]):
                return False
            hits = [_statement_hit(s, flags[a:b]) for s, a, b in spans]
            return any(hits[:n_allows]) and not any(hits[n_allows:])

        found = satisfiable(globs, accept, required=(0,))
        return True if found is None else found


def _sample(glob: Glob) -> str | None:
    """One string of a witness glob: its region filled in as us-east-1."""
    if glob.tokens is None:
        return None
    text = "".join("us-east-1" if t == NAMESEG else t for t in glob.tokens)
    return None if "\0" in text else text


def _statement_hit(statement: Statement, flags: Iterable[bool]) -> bool:
    if statement.resources is None and statement.not_resources is None:
        return True
    hit = any(flags)
    return hit if statement.resources is not None else not hit


def _names_action(statement: Statement, action: str) -> bool:
    if statement.actions is not None:
        return any(action_matches(p, action) for p in statement.actions)
    return not any(action_matches(p, action) for p in statement.not_actions or ())


@lru_cache(maxsize=65536)
def _compile(
    pattern: str, variables: bool, caller: Caller, grows: bool, nothing: bool
) -> Glob:
    return arn_glob(
        pattern,
        variables=variables,
        resolve=caller.resolve,
        unknown_as_star=grows,
        nothing_as_star=nothing,
    )


@lru_cache(maxsize=4096)
def _shape(template: str, partition: str, account: str, named: bool) -> Glob:
    tokens: list[str] = []
    position = 0
    for found in re.finditer(r"\$\{([^}]*)\}", template):
        tokens.extend(template[position : found.start()])
        name = found.group(1)
        if name == "Partition":
            tokens.extend(partition)
        elif name == "Account":
            tokens.extend(account)
        elif named and name != "Region":
            tokens.extend(TARGET_NAME)
        else:
            # Region and account sit in their own segments; names after the
            # fifth colon may hold colons (qualified Lambda ARNs).
            colons = template[: found.start()].count(":")
            tokens.append(NAMESTAR if colons >= 5 else NAMESEG)
        position = found.end()
    tokens.extend(template[position:])
    return Glob(tuple(tokens))


@lru_cache(maxsize=4096)
def _request_context(
    action: str, passed_to: tuple[str, ...], view: str
) -> cond.Context:
    """The condition-key models of one request (shared: read, never changed)."""
    info = action_info(action)
    keys = {
        "aws:multifactorauthpresent": cond.KeyModel(
            "free", (None, ("true",), ("false",))
        ),
        "aws:securetransport": cond.KeyModel("free", (("true",), ("false",))),
        "aws:useragent": cond.KeyModel("free"),
        "aws:referer": cond.KeyModel("free"),
    }
    prefixes = {}
    if action.lower() == "iam:passrole" and passed_to:
        keys["iam:passedtoservice"] = cond.KeyModel(
            "free", tuple((s,) for s in passed_to)
        )
    elif action.lower() != "iam:passrole":
        # The key exists only on iam:PassRole requests.
        keys["iam:passedtoservice"] = cond.KeyModel("fixed", (None,))
    if "iam:policyarn" in info.condition_keys and view == "definite":
        keys["iam:policyarn"] = cond.KeyModel(
            "free", tuple((a,) for a in ADMIN_POLICIES)
        )
    if "aws:requesttag/${tagkey}" in info.condition_keys:
        prefixes["aws:requesttag/"] = cond.KeyModel("free")
    if "aws:tagkeys" in info.condition_keys:
        keys["aws:tagkeys"] = cond.KeyModel("free")
    return cond.Context(keys, prefixes)
