#!/usr/bin/env python3
"""Cross-check spotcheck's IAM oracle against cloudsplaining and parliament.

    scripts/crosscheck_iam.py --setup                   # .venv-iampeers (optional)
    scripts/crosscheck_iam.py --suite SUITE --out OUT   # OUT/crosscheck.{md,json}
    scripts/crosscheck_iam.py --cases shared/conformance/iam/cases.json --out OUT

The peers (cloudsplaining 0.9.1, parliament 1.6.4) run in their own venv, in
one subprocess for the whole suite, JSON in and out, with sockets refused.
privesc is compared with cloudsplaining's ``allows_privilege_escalation`` and
parliament's PRIVILEGE_ESCALATION findings (community auditors); public with
cloudsplaining's ResourcePolicyDocument (resource policies) or
AssumeRolePolicyDocument (trust policies). No peer answers admin.

Verdicts are compared as yes/no; where both say yes, the methods are compared
through the peers' names in the method catalogue's ``aliases``. A verdict
disagreement is one row per (case, peer), a method disagreement one per (case,
peer, method); each is explained by RULES: each
rule is a documented way a peer departs from IAM (shared/research/iam.md
§2.4 and §4.2), re-checked on the policy itself. A miss (spotcheck yes, peer
no) is explained when, for every peer method that would have matched, some
action the peer dropped shows a rule; a false alarm when some action of the
peer's method shows one. What no rule explains is UNCLASSIFIED: a person
must look, since an oracle error shows up there first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-iampeers"
PINS = ("cloudsplaining==0.9.1", "parliament==1.6.4")
PEERS = ("cloudsplaining", "parliament")
METHOD_FILES = (
    ROOT / "generator" / "oracle" / "iam_methods.yaml",
    ROOT.parent / "shared" / "research" / "iam-privesc-methods.yaml",
)
UNCLASSIFIED = "UNCLASSIFIED"
VERDICTS = {
    "unsafe": "yes",
    "safe": "no",
    "YES": "yes",
    "NO": "no",
    "DEPENDS": "depends",
}
# Credentials for oneself give nothing new (trap 11); editing one's own
# policies does.
SELF_CREDENTIALS = {"iam:createaccesskey", "iam:createloginprofile",
                    "iam:updateloginprofile"}  # fmt: skip
# Actions authorized against several required resource types (trap 13), for
# when the oracle's catalogue cannot be imported.
MULTI_RESOURCE = {"ec2:runinstances"}

# --- the peer side: runs in .venv-iampeers -------------------------------------

PEER_PROGRAM = r"""
import ast, io, json, logging, socket, sys, contextlib

def _refuse(*a, **k):
    raise OSError("crosscheck_iam: network access refused")
socket.socket.connect = _refuse
socket.create_connection = _refuse
logging.disable(logging.CRITICAL)

from importlib.metadata import version
from cloudsplaining.scan.policy_document import PolicyDocument
from cloudsplaining.scan.resource_policy_document import ResourcePolicyDocument
from cloudsplaining.scan.assume_role_policy_document import AssumeRolePolicyDocument
from cloudsplaining.shared.constants import PRIVILEGE_ESCALATION_METHODS
from parliament import analyze_policy_string, expand_action
from parliament.misc import make_list
import parliament.community_auditors.privilege_escalation as pe
from parliament.policy import Policy as PaPolicy

# The auditor already works out the allowed actions, the slow part (seconds
# for Action "*"); keep its answer for the report instead of asking twice.
_allowed = PaPolicy.get_allowed_actions
def _kept(self, raise_exceptions=True):
    if not hasattr(self, "_crosscheck_allowed"):
        self._crosscheck_allowed = _allowed(self, raise_exceptions)
    return self._crosscheck_allowed
PaPolicy.get_allowed_actions = _kept
from policy_sentry.querying.actions import get_action_data

def parliament_methods():
    tree = ast.parse(open(pe.__file__).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "escalation_methods":
            return ast.literal_eval(node.value)

PA_METHODS = parliament_methods()
ACTIONS = sorted({a for t in (PRIVILEGE_ESCALATION_METHODS, PA_METHODS) for v in t.values() for a in v})

def cs_name(a):
    s, n = a.split(":")
    found = get_action_data(s, n).get(s) or [{}]
    return found[0].get("action")

def cs_wildcard_only(a):
    s, n = a.split(":")
    d = get_action_data(s, n).get(s) or []
    return len(d) == 1 and d[0]["resource_arn_format"] == "*"

def pa_known(a):
    try:
        return bool(expand_action(a))
    except Exception:
        return False

def keep(actions):
    return sorted({a.lower() for a in actions} & set(ACTIONS))

def cloudsplaining_privesc(policy):
    doc = PolicyDocument(policy)
    counted = set()
    for st in doc.statements:
        if st.effect_allow and not st.has_condition:
            counted.update(st.unrestrictable_actions)
            if st.has_resource_wildcard:
                counted.update(st.restrictable_actions)
    final = doc.all_allowed_unrestricted_actions + doc.all_allowed_unrestrictable_actions
    return {"methods": sorted(e["type"] for e in doc.allows_privilege_escalation),
            "counted": keep(counted), "allowed": keep(final)}

def cloudsplaining_public(policy, kind):
    if kind == "trust":
        found = AssumeRolePolicyDocument(policy).role_assumable_by_any_principal
        return {"public": bool(found), "api": "AssumeRolePolicyDocument", "found": found}
    found = ResourcePolicyDocument(policy).internet_accessible_actions
    return {"public": bool(found), "api": "ResourcePolicyDocument", "found": found}

def parliament_privesc(text):
    p = analyze_policy_string(text, include_community_auditors=True)
    issues = [{"issue": f.issue, "detail": str(f.detail)[:300],
               "string": str((f.location or {}).get("string", ""))[:200]}
              for f in p.findings if f.issue != "PRIVILEGE_ESCALATION"]
    methods = sorted(f.location["type"] for f in p.findings if f.issue == "PRIVILEGE_ESCALATION")
    referenced = set()
    for st in p.statements:
        if "Action" in st.stmt:
            for a in make_list(st.stmt["Action"]):
                for e in expand_action(a.value, raise_exceptions=False):
                    referenced.add(e["service"] + ":" + e["action"])
    try:
        allowed = p.get_allowed_actions(raise_exceptions=False)
    except Exception:
        allowed = []
    return {"methods": methods, "valid": bool(p.statements) and p.is_valid,
            "issues": issues, "referenced": keep(referenced), "allowed": keep(allowed)}

def guarded(fn, *args):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*args)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"[:300]}

out = {"versions": {n: version(n) for n in ("cloudsplaining", "parliament", "policy_sentry")},
       "catalogues": {"cloudsplaining": PRIVILEGE_ESCALATION_METHODS, "parliament": PA_METHODS},
       "facts": {"cloudsplaining_wildcard_only": [a for a in ACTIONS if cs_wildcard_only(a)],
                 "cloudsplaining_names": {a: cs_name(a) for a in ACTIONS},
                 "parliament_unknown": [a for a in ACTIONS if not pa_known(a)]},
       "results": {}}
for case in json.load(sys.stdin):
    policy, r = json.loads(case["text"]), {}
    if case["question"] == "privesc":
        r["cloudsplaining"] = guarded(cloudsplaining_privesc, policy)
        r["parliament"] = guarded(parliament_privesc, case["text"])
    elif case["question"] == "public":
        r["cloudsplaining"] = guarded(cloudsplaining_public, policy, case["kind"])
    out["results"][case["id"]] = r
json.dump(out, sys.stdout)
"""


def run_peers(cases: list[dict[str, Any]], python: Path) -> dict[str, Any]:
    """Run both peers once over every case, offline; their JSON result."""
    if not python.exists():
        raise SystemExit(f"no peer venv at {python.parent.parent}; run --setup first")
    payload = [{k: c[k] for k in ("id", "question", "kind", "text")} for c in cases]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [str(python), "-c", PEER_PROGRAM], input=json.dumps(payload),
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"peer run failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- cases and spotcheck's side ---------------------------------------------------


def load_suite(suite: Path) -> list[dict[str, Any]]:
    """The IAM cases of a generated suite (DIR/cases.jsonl), in one shape."""
    cases = []
    for line in (suite / "cases.jsonl").read_text().splitlines():
        raw = json.loads(line) if line.strip() else {}
        domain, _, question = raw.get("question", "").partition(":")
        if domain != "iam":
            continue
        truth = raw.get("truth") or {}
        found = truth.get("violations") or ()
        cases.append(_case(raw["id"], raw.get("family", ""), question, raw["config"], {
            "verdict": VERDICTS.get(truth.get("verdict"), "?"),
            "methods": sorted({v["rule"] for v in found} - {"admin", "public"}),
            "statements": sorted({i for v in found for i in _indexes(v["path"])}),
        }))  # fmt: skip
    return cases


def load_conformance(path: Path) -> list[dict[str, Any]]:
    """Cases in the conformance format (shared/conformance/iam/cases.json)."""
    return [
        _case(c["id"], "conformance", c["question"], json.dumps(c["policy"], indent=1),
              {"verdict": VERDICTS.get(c["truth"], "?"), "methods": None,
               "statements": None})
        for c in json.loads(path.read_text())["cases"]
    ]  # fmt: skip


def _indexes(path: str) -> list[int]:
    return [int(i) for i in re.findall(r"Statement\[(\d+)\]", path)]


def _case(cid: str, family: str, question: str, text: str,
          truth: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    from generator.config.iam import kind, load_policy

    return {"id": cid, "family": family, "question": question, "text": text,
            "policy": json.loads(text), "kind": kind(load_policy(text)),
            "truth": truth}  # fmt: skip


def spotcheck_answers(cases: list[dict[str, Any]]) -> tuple[str, dict[str, dict]]:
    """("oracle" | "stored truth", id -> {verdict, methods, statements}).

    The oracle answers when it can be imported; otherwise the case's stored
    truth stands in (a suite's truth is the oracle's answer when generated).
    """
    try:
        from generator.config.iam import load_policy
        from generator.oracle.iam import answer
    except ImportError:
        return "stored truth", {c["id"]: c["truth"] for c in cases}
    answers = {}
    for c in cases:
        got = answer(load_policy(c["text"]), c["question"])
        answers[c["id"]] = {
            "verdict": got.value, "reason": got.reason,
            "methods": sorted({f.rule for f in got.findings} - {"admin", "public"}),
            "statements": sorted({f.statement for f in got.findings
                                  if f.statement is not None}),
        }  # fmt: skip
    return "oracle", answers


def truth_mismatches(cases: list[dict[str, Any]], spot: dict[str, dict]) -> list[dict]:
    """Cases whose stored truth is not what spotcheck answers now."""
    return [
        {"id": c["id"], "question": c["question"], "stored": c["truth"]["verdict"],
         "spotcheck": spot[c["id"]]["verdict"],
         "reason": spot[c["id"]].get("reason", "")}
        for c in cases
        if c["truth"]["verdict"] not in ("?", spot[c["id"]]["verdict"])
    ]  # fmt: skip


# --- the method catalogue -------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One of our methods, actions as lower-case names, and its peer names."""

    id: str
    required: tuple[str, ...]
    any_of: tuple[tuple[str, ...], ...]
    aliases: dict[str, tuple[str, ...]]

    def actions(self) -> set[str]:
        return set(self.required) | {a for g in self.any_of for a in g}


def load_methods(path: Path | None = None) -> dict[str, Method]:
    """Our methods by id, from the oracle's copy or the research file."""
    path = path or next((p for p in METHOD_FILES if p.exists()), None)
    if path is None:
        raise SystemExit("no method catalogue: " + ", ".join(map(str, METHOD_FILES)))
    methods = {}
    for m in yaml.safe_load(path.read_text())["methods"]:
        # A peer name may carry a note: "PutRolePolicy (requires sts:AssumeRole)".
        aliases = {peer: tuple(str(n).split(" (")[0] for n in _list(names))
                   for peer, names in (m.get("aliases") or {}).items()}  # fmt: skip
        methods[m["id"]] = Method(
            m["id"], tuple(a.lower() for a in m.get("required_actions") or ()),
            tuple(tuple(a.lower() for a in g) for g in m.get("any_of") or ()),
            aliases,
        )  # fmt: skip
    return methods


# --- reading a policy the way IAM does (for re-checks) ----------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _list(policy.get("Statement")) if isinstance(s, dict)]


def amatch(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, * any run, ? one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                 for c in pattern)  # fmt: skip
    return re.fullmatch(rx, action, re.IGNORECASE | re.DOTALL) is not None


def names(st: dict[str, Any], action: str) -> bool:
    """Whether the statement's Action (or NotAction) covers ``action``."""
    if "Action" in st:
        return any(amatch(p, action) for p in _list(st["Action"]))
    return not any(amatch(p, action) for p in _list(st.get("NotAction")))


def reaches(st: dict[str, Any], action: str) -> bool:
    """Whether the Resource can name something the action acts on (by the
    service segment of its ARNs, which cannot be a wildcard)."""
    if "NotResource" in st:
        return True
    services = _resource_services(action)
    return any(r == "*" or (r.split(":") + ["", "", ""])[2].lower() in services
               for r in _list(st.get("Resource")))  # fmt: skip


@lru_cache(maxsize=4096)
def _resource_services(action: str) -> frozenset[str]:
    """The services whose ARNs the action takes: its own, and those of its
    resource types in the Service Authorization Reference (the oracle's
    catalogue), e.g. ec2 for ec2-instance-connect:SendSSHPublicKey."""
    own = {action.split(":")[0]}
    try:
        from generator.oracle.iam_catalogue import action_info
    except ImportError:
        return frozenset(own)
    arns = [t.arn for t in action_info(action).resource_types]
    return frozenset(own | {a.split(":")[2].lower() for a in arns if a.count(":") > 2})


def allows(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The Allow statements granting ``action`` on some resource of its kind."""
    return [s for s in statements(policy) if s.get("Effect") == "Allow"
            and names(s, action) and reaches(s, action)]  # fmt: skip


def denies(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in statements(policy) if s.get("Effect") == "Deny"
            and names(s, action)]  # fmt: skip


def star(st: dict[str, Any]) -> bool:
    return "*" in _list(st.get("Resource"))


# --- rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A documented peer behaviour; ``reason`` says what IAM does instead."""

    key: str
    peer: str
    reason: str


# In priority order: a row's class is the first rule that explains each of
# its items; the JSON keeps every rule that holds.
RULES: dict[str, Rule] = {r.key: r for r in (
    Rule("peer-error", "both", "the peer raised an exception on this policy"),
    Rule("pa-rejects-policy", "parliament", "parliament drops all findings when "
         "it rejects a statement (unknown action or prefix, trap 17; also a Sid "
         "with punctuation or an ARN it cannot parse)"),
    Rule("cs-literal-star", "cloudsplaining", "cloudsplaining counts only a "
         'literal Resource "*" (trap 9); an ARN pattern covering the target '
         "grants as much"),
    Rule("cs-notresource-allow", "cloudsplaining", "cloudsplaining never counts "
         "an Allow with NotResource (trap 10); it grants all but the listed ARNs"),
    Rule("cs-skips-conditional-allow", "cloudsplaining", "cloudsplaining drops "
         "every conditional Allow (conditions ignored); spotcheck counts one "
         "whose condition the caller can meet"),
    Rule("cs-question-mark", "cloudsplaining", "? wildcard not expanded (trap 6):"
         " policy_sentry keeps a pattern without * as a literal name"),
    Rule("cs-prefix-case", "cloudsplaining", "an upper-case service prefix with "
         "a wildcard is not expanded (trap 7); action names are case-insensitive"),
    Rule("cs-deny-ignores-resource", "cloudsplaining", "cloudsplaining subtracts "
         "a Deny's actions whatever its Resource (trap 3)"),
    Rule("cs-deny-ignores-condition", "cloudsplaining", "cloudsplaining subtracts "
         "a conditional Deny's actions (trap 4); the caller can avoid it"),
    Rule("cs-ignores-notaction-deny", "cloudsplaining", "cloudsplaining "
         "subtracts nothing for a NotAction Deny (trap 2); it denies every "
         "action not listed"),
    Rule("cs-deny-spelling", "cloudsplaining", "cloudsplaining subtracts a Deny "
         "by exact spelling (trap 8); names are case-insensitive, ? matches one "
         "character"),
    Rule("cs-any-resource", "cloudsplaining", "cloudsplaining counts an action it "
         "finds unrestrictable (wildcard-only, or a name it cannot look up) "
         "whatever the Resource"),
    Rule("pa-ignores-notaction", "parliament", "parliament ignores NotAction "
         "Allows (trap 1); they grant every action not listed"),
    Rule("pa-notresource-deny-as-star", "parliament", "parliament reads a Deny "
         "with NotResource as a Deny on *; it spares the listed ARNs"),
    Rule("pa-variables-old-version", "parliament", "parliament reads ${...} as a "
         "variable in any Version; before 2012-10-17 it is literal text (trap 12)"),
    Rule("pa-self-credentials", "parliament", "parliament counts credentials on "
         "user/${aws:username}; keys for oneself give nothing new (trap 11)"),
    Rule("pa-multi-resource", "parliament", "parliament counts an action on any "
         "one of its resource types; ec2:RunInstances needs all the required "
         "ones (trap 13)"),
    Rule("pa-notresource-allow-as-star", "parliament", "parliament reads an "
         "Allow with NotResource as *; the listed ARNs stay out"),
    Rule("pa-ignores-allow-condition", "parliament", "parliament ignores "
         "conditions on Allows (trap 5, conditions ignored)"),
    Rule("pa-skips-conditional-deny", "parliament", "parliament skips every "
         "conditional Deny; spotcheck applies one the caller cannot avoid"),
    Rule("pa-deny-exact-resource", "parliament", "parliament applies a Deny only "
         'to the same Resource string or "*"; a pattern covering the target '
         "denies it"),
    Rule("pa-named-resource", "parliament", "parliament counts an action on any "
         "named resource of the right type; the policy alone cannot show that "
         "target helps"),
    Rule("cs-trust-literal-action", "cloudsplaining", "AssumeRolePolicyDocument "
         "needs the literal sts:AssumeRole; sts:*, AssumeRoleWithWebIdentity and "
         "AssumeRoleWithSAML let principals in too"),
    Rule("cs-trust-conditional", "cloudsplaining", "AssumeRolePolicyDocument "
         "drops every statement with a Condition; one the caller meets restricts "
         "nothing"),
    Rule("cs-public-ifexists", "cloudsplaining", "cloudsplaining takes an "
         "...IfExists or ForAllValues condition as a restriction; without the key "
         "(an outsider's request) it is true (trap 20)"),
    Rule("cs-public-federated", "cloudsplaining", "cloudsplaining never flags a "
         "Federated principal; without a subject condition every identity of the "
         "provider gets in (trap 25)"),
    Rule("cs-public-notaction", "cloudsplaining", "cloudsplaining reports a public "
         "statement by its Action list, so a NotAction one is never flagged"),
    Rule("cs-public-ors-keys", "cloudsplaining", "cloudsplaining calls a statement "
         "public when any condition key is open; keys are ANDed and one "
         "restrictive key is enough (trap 23)"),
    Rule("cs-public-ignored-key", "cloudsplaining", "cloudsplaining reads only "
         "some condition keys and operators and ignores a restrictive one"),
    Rule("cs-public-ignores-deny", "cloudsplaining", "cloudsplaining ignores Deny "
         "statements in resource and trust policies (trap 24)"),
    Rule("catalogue-needs-more", "both", "the peer's method needs an action ours "
         "does not, and the policy does not grant it"),
    Rule("catalogue-needs-fewer", "both", "our method needs an action the peer's "
         "does not, and the policy does not grant it"),
    Rule("catalogue-missing", "both", "the peer's catalogue has no such method"),
    Rule("catalogue-unmapped", "both", "no method of ours names this peer method "
         "in its aliases"),
)}  # fmt: skip
_ORDER = {k: i for i, k in enumerate(RULES)}


def _ordered(keys: set[str] | list[str]) -> list[str]:
    return sorted(set(keys), key=_ORDER.__getitem__)


@dataclass(frozen=True)
class Ctx:
    """One case as spotcheck and one peer saw it."""

    case: dict[str, Any]
    peer: str
    out: dict[str, Any]  # the peer's result for this case
    facts: dict[str, Any]  # about the peers' databases, from the peer run
    spot: dict[str, Any]  # spotcheck's answer

    @property
    def policy(self) -> dict[str, Any]:
        return self.case["policy"]


# --- privesc: how each peer counts an action (its code, restated) -----------------


def cs_expands(pattern: str, action: str) -> bool:
    """Whether cloudsplaining's expansion (policy_sentry) of ``pattern`` holds
    ``action``: ``*`` alone is everything; a pattern with ``*`` is fnmatch'd
    within its service, looked up by the prefix as written (lower case in the
    database); a pattern without ``*`` stays literal, ``?`` included."""
    if pattern == "*":
        return True
    prefix = pattern.split(":", 1)[0]
    if "*" in pattern:
        return prefix == prefix.lower() and fnmatchcase(action, pattern.lower())
    return pattern.lower() == action


def cs_subtracts(pattern: str, action: str, facts: dict[str, Any]) -> bool:
    """Whether a Deny naming ``pattern`` takes ``action`` out for
    cloudsplaining: it subtracts its expansion from the allowed names as
    strings, so a name without ``*`` must be spelled as its database does."""
    if "*" in pattern:
        return cs_expands(pattern, action)
    return pattern == facts.get("cloudsplaining_names", {}).get(action, action)


def cs_any_resource(pattern: str, action: str, facts: dict[str, Any]) -> bool:
    """cloudsplaining counts an "unrestrictable" action whatever the Resource:
    a wildcard-only one, or a literal name its database cannot look up."""
    if action in facts.get("cloudsplaining_wildcard_only", ()):
        return True
    prefix = pattern.split(":", 1)[0]
    return "*" not in pattern and prefix != prefix.lower()


def cs_skip(st: dict[str, Any], action: str, facts: dict[str, Any]) -> str | None:
    """Why cloudsplaining does not count ``action`` from an Allow granting it,
    or None when it does."""
    if st.get("Condition"):
        return "cs-skips-conditional-allow"
    pats = [p for p in _list(st.get("Action")) if amatch(p, action)]
    anywhere = any(cs_any_resource(p, action, facts) for p in pats) or (
        "NotAction" in st and action in facts.get("cloudsplaining_wildcard_only", ())
    )
    if not star(st) and not anywhere:
        return "cs-notresource-allow" if "NotResource" in st else "cs-literal-star"
    if "NotAction" in st or any(cs_expands(p, action) for p in pats):
        return None
    if all("?" in p and "*" not in p for p in pats):
        return "cs-question-mark"
    return "cs-prefix-case"


def pa_skip(st: dict[str, Any], action: str) -> str | None:
    """Why parliament does not count ``action`` from an Allow granting it (it
    reads only ``Action``), or None."""
    return "pa-ignores-notaction" if "NotAction" in st else None


def miss_reasons(ctx: Ctx, action: str) -> list[str]:
    """Why the peer dropped an action that spotcheck's method needs."""
    grants = allows(ctx.policy, action)
    if ctx.peer == "cloudsplaining":
        if action not in ctx.out.get("counted", ()):
            found = [cs_skip(s, action, ctx.facts) for s in grants]
            return _ordered(found) if grants and None not in found else []
        keys = set()  # counted, then subtracted by a Deny
        for d in statements(ctx.policy):
            pats = _list(d.get("Action"))
            if d.get("Effect") != "Deny" or not any(
                cs_expands(p, action) for p in pats
            ):
                continue
            if d.get("Condition"):
                keys.add("cs-deny-ignores-condition")
            if not star(d):
                keys.add("cs-deny-ignores-resource")
        return _ordered(keys)
    if any("NotResource" in d and not d.get("Condition")
           for d in denies(ctx.policy, action)):  # fmt: skip
        return ["pa-notresource-deny-as-star"]
    found = [pa_skip(s, action) for s in grants]
    return _ordered(found) if grants and None not in found else []


def _rejection_shown(ctx: Ctx) -> bool:
    """parliament rejected the policy for something that is really in it."""
    text = ctx.case["text"].lower()
    for issue in ctx.out.get("issues", ()):
        if issue["issue"] in ("UNKNOWN_ACTION", "UNKNOWN_PREFIX", "INVALID_ARN",
                              "INVALID_SID", "MALFORMED", "EXCEPTION"):  # fmt: skip
            shown = issue["string"] or issue["detail"].rsplit(" ", 1)[-1]
            if shown and shown.lower() in text:
                return True
    return False


def extra_reasons(ctx: Ctx, action: str) -> list[str]:
    """Why spotcheck may refuse an action of a method the peer reports."""
    p, keys = ctx.policy, set()
    grants = allows(p, action)
    if ctx.peer == "cloudsplaining":
        for d in denies(p, action):
            pats = [x for x in _list(d.get("Action")) if amatch(x, action)]
            if "NotAction" in d:
                keys.add("cs-ignores-notaction-deny")
            elif not any(cs_subtracts(x, action, ctx.facts) for x in pats):
                keys.add("cs-deny-spelling")
        for s in grants:
            pats = [x for x in _list(s.get("Action")) if amatch(x, action)]
            if (
                not s.get("Condition")
                and not star(s)
                and any(cs_any_resource(x, action, ctx.facts) for x in pats)
            ):
                keys.add("cs-any-resource")
        return _ordered(keys)
    if grants and all(s.get("Condition") for s in grants):
        keys.add("pa-ignores-allow-condition")
    for d in denies(p, action):
        if d.get("Condition"):
            keys.add("pa-skips-conditional-deny")
        elif "Resource" in d and not star(d):
            keys.add("pa-deny-exact-resource")
    counted = [s for s in grants if "Action" in s]
    counted = [s for s in counted if not s.get("Condition")] or counted
    res = [r for s in counted for r in _list(s.get("Resource"))
           if reaches({"Resource": r}, action)]  # fmt: skip
    if counted and all("NotResource" in s for s in counted):
        keys.add("pa-notresource-allow-as-star")
    elif res and "*" not in res:
        if action in SELF_CREDENTIALS and all("${aws:username}" in r for r in res):
            keys.add("pa-self-credentials")
        if p.get("Version") != "2012-10-17" and all("${" in r for r in res):
            keys.add("pa-variables-old-version")
        if _multi_resource(action):
            keys.add("pa-multi-resource")
        if not any("*" in r.split(":", 5)[-1] for r in res):
            keys.add("pa-named-resource")
    return _ordered(keys)


def _multi_resource(action: str) -> bool:
    try:
        from generator.oracle.iam_catalogue import action_info
    except ImportError:
        return action in MULTI_RESOURCE
    return len(action_info(action).required) > 1


# --- public: cloudsplaining's resource and trust checks, restated ---------------

_CS_KEYS = {"aws:sourcearn": "arn", "aws:principalarn": "arn",
            "aws:sourceowner": "account", "aws:sourceaccount": "account",
            "aws:principalaccount": "account", "aws:principalorgid": "organization",
            "aws:principalorgpaths": "organization", "kms:calleraccount": "account",
            "aws:userid": "userid", "aws:sourceip": "cidr", "aws:sourcevpc": "vpc",
            "aws:sourcevpce": "vpce", "saml:aud": "saml-endpoint"}  # fmt: skip
_CS_OPERATORS = re.compile(
    r"((ForAllValues|ForAnyValue):)?(ARN(Equals|Like)|String(Equals|Like)"
    r"(IgnoreCase)?|IpAddress)(IfExists)?",
    re.IGNORECASE,
)


def _cs_entries(st: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(operator, category, value) of each condition entry cloudsplaining reads."""
    entries = []
    for op, block in (st.get("Condition") or {}).items():
        if _CS_OPERATORS.match(op) and isinstance(block, dict):
            for key, value in block.items():
                if key.lower() in _CS_KEYS:
                    entries += [
                        (op, _CS_KEYS[key.lower()], str(v)) for v in _list(value)
                    ]
    return entries


def _cs_open_arn(arn: str) -> bool:
    parts = arn.split(":")
    if arn == "*":
        return True
    return (
        arn.startswith("arn:")
        and len(parts) > 4
        and parts[2] != "s3"
        and parts[4] == "*"
    )


def _cs_open(entry: tuple[str, str, str]) -> bool:
    _, category, value = entry
    if category == "arn":
        return _cs_open_arn(value)
    if category == "cidr":
        return value.endswith("/0")
    if category == "organization":
        return "o-*" in value
    if category == "userid":
        return value.find("*") != len(value) - 1
    return "*" in value


def _principals(st: dict[str, Any]) -> list[str]:
    principal = st.get("Principal")
    if isinstance(principal, dict):
        return [
            v for k in ("AWS", "Federated", "Service") for v in _list(principal.get(k))
        ]
    return _list(principal)


def cs_public_skip(st: dict[str, Any], kind: str) -> str | None:
    """Why cloudsplaining does not flag an Allow statement, in its code's
    order; None when it does flag it, or drops it for another reason."""
    principals = _principals(st)
    if kind == "trust":
        if "sts:assumerole" not in [a.lower() for a in _list(st.get("Action"))]:
            return "cs-trust-literal-action"
        if st.get("Condition"):
            return "cs-trust-conditional"
        open_ = [p for p in principals if p in ("*", "arn:aws:iam::*:root")]
    else:
        entries = _cs_entries(st)
        if any(_cs_open(e) for e in entries):
            open_ = ["condition"]
        elif entries:
            tricky = [
                e for e in entries if re.search(r"IfExists$|^ForAllValues:", e[0])
            ]
            return "cs-public-ifexists" if tricky else None
        else:
            open_ = [p for p in principals if _cs_open_arn(p)]
    if not open_:
        return (
            "cs-public-federated"
            if "Federated" in (st.get("Principal") or {})
            else None
        )
    return "cs-public-notaction" if "NotAction" in st else None


def public_reasons(ctx: Ctx) -> list[str]:
    """Why cloudsplaining's public verdict is not spotcheck's."""
    sts = statements(ctx.policy)
    allow = [i for i, s in enumerate(sts) if s.get("Effect") == "Allow"]
    if ctx.spot["verdict"] == "yes":  # every statement spotcheck flags is missed
        flagged = ctx.spot.get("statements") or allow
        found = [
            cs_public_skip(sts[i], ctx.case["kind"]) for i in flagged if i < len(sts)
        ]
        return _ordered(found) if found and None not in found else []
    keys = set()  # cloudsplaining flags a statement spotcheck does not
    for i in allow:
        if cs_public_skip(sts[i], ctx.case["kind"]) is not None:
            continue
        entries = _cs_entries(sts[i])
        if entries and not all(_cs_open(e) for e in entries):
            keys.add("cs-public-ors-keys")
        elif sts[i].get("Condition") and len(entries) < _condition_entries(sts[i]):
            keys.add("cs-public-ignored-key")
    if any(s.get("Effect") == "Deny" for s in sts):
        keys.add("cs-public-ignores-deny")
    return _ordered(keys)


def _condition_entries(st: dict[str, Any]) -> int:
    return sum(len(_list(v)) for block in (st.get("Condition") or {}).values()
               if isinstance(block, dict) for v in block.values())  # fmt: skip


# --- comparing --------------------------------------------------------------------


def peer_verdict(question: str, out: dict[str, Any]) -> str:
    if "error" in out:
        return "error"
    if question == "public":
        return "yes" if out.get("public") else "no"
    return "yes" if out.get("methods") else "no"


def method_items(ctx: Ctx, methods: dict[str, Method], catalogue: dict[str, list[str]]
                 ) -> list[tuple[str, str, list[str]]]:  # fmt: skip
    """(method, side, rules) for each method one side reports and the other not."""
    ours = set(ctx.spot.get("methods") or ())
    theirs = set(ctx.out.get("methods", ()))
    by_alias: dict[str, list[str]] = {}
    for m in methods.values():
        for n in m.aliases.get(ctx.peer, ()):
            by_alias.setdefault(n, []).append(m.id)
    items = []
    for mid in sorted(ours):
        m = methods.get(mid)
        aliases = [
            n for n in (m.aliases.get(ctx.peer, ()) if m else ()) if n in catalogue
        ]
        if not aliases:  # only a verdict can differ for want of a method
            if not theirs:
                items.append((mid, "peer-missed", ["catalogue-missing"]))
            continue
        if not theirs & set(aliases):
            items.append(
                (mid, "peer-missed", _explain_miss(ctx, m, aliases, catalogue))
            )
    for n in sorted(theirs):
        ids = by_alias.get(n)
        if not ids:
            items.append((n, "peer-extra", ["catalogue-unmapped"]))
        elif not ours & set(ids):
            keys = {"catalogue-needs-fewer" for i in ids
                    if _ungranted(ctx.policy, methods[i], catalogue[n])}  # fmt: skip
            for a in catalogue[n]:
                keys.update(extra_reasons(ctx, a))
            items.append((ids[0], "peer-extra", _ordered(keys)))
    return items


def _explain_miss(ctx: Ctx, m: Method, aliases: list[str],
                  catalogue: dict[str, list[str]]) -> list[str]:  # fmt: skip
    """Rules that keep every one of the peer's variants of ``m`` from firing."""
    if not ctx.out.get("valid", True):  # parliament ran no auditor at all
        return ["pa-rejects-policy"] if _rejection_shown(ctx) else []
    keys: set[str] = set()
    for n in aliases:
        found = set()
        for a in catalogue[n]:
            if a in ctx.out.get("allowed", ()):
                continue
            if a not in m.actions() and not allows(ctx.policy, a):
                found.add("catalogue-needs-more")
            found.update(miss_reasons(ctx, a))
        if not found:
            return []
        keys |= found
    return _ordered(keys)


def _ungranted(policy: dict[str, Any], m: Method, theirs: list[str]) -> bool:
    """Whether our method needs an action the peer's does not, which the
    policy grants nowhere (so the catalogues, not the readings, differ)."""
    if any(not allows(policy, a) for a in m.required if a not in theirs):
        return True
    return bool(m.any_of) and not any(
        all(allows(policy, a) for a in g) for g in m.any_of
    )


def crosscheck(cases: list[dict[str, Any]], spot: dict[str, dict[str, Any]],
               peers: dict[str, Any], methods: dict[str, Method]
               ) -> dict[str, Any]:  # fmt: skip
    """Every disagreement between spotcheck and the peers, classified."""
    rows, depends, compared = [], [], Counter()
    for case in cases:
        for peer in PEERS:
            out = peers["results"].get(case["id"], {}).get(peer)
            if out is None:  # no peer answers admin
                continue
            ctx = Ctx(case, peer, out, peers.get("facts", {}), spot[case["id"]])
            ours, them = ctx.spot["verdict"], peer_verdict(case["question"], out)
            compared[peer] += 1
            base = {"id": case["id"], "family": case["family"],
                    "question": case["question"], "kind": case["kind"],
                    "peer": peer, "spotcheck": ours, "peer_verdict": them,
                    "peer_methods": out.get("methods", [])}  # fmt: skip
            if ours == "depends":
                depends.append(base)
            elif them == "error":
                rows.append(_row(base, "verdict", "-", [("-", ["peer-error"])]))
                rows[-1]["detail"] = out["error"]
            elif case["question"] == "public" and ours != them:
                rows.append(_row(base, "verdict", "public",
                                 [("public", public_reasons(ctx))]))  # fmt: skip
            elif case["question"] == "privesc" and "yes" in (ours, them):
                items = method_items(ctx, methods, peers["catalogues"][peer])
                if ours != them:
                    rows.append(
                        _row(base, "verdict", "", [(m, k) for m, _, k in items])
                    )
                else:
                    rows += [_row(base, "method", m, [(m, k)], s) for m, s, k in items]
    counts = Counter((r["peer"], r["level"], r["side"], r["class"]) for r in rows)
    return {
        "cases": len(cases),
        "questions": dict(Counter(c["question"] for c in cases)),
        "compared": dict(compared),
        "versions": peers.get("versions", {}),
        "counts": [[*k, n] for k, n in sorted(counts.items())],
        "alias_gaps": alias_gaps(peers["catalogues"], methods),
        "disagreements": rows,
        "depends": depends,
    }


def alias_gaps(catalogues: dict[str, dict], methods: dict[str, Method]) -> dict:
    """Peer methods no alias names, and aliases naming no peer method."""
    gaps = {}
    for peer in PEERS:
        named = {n for m in methods.values() for n in m.aliases.get(peer, ())}
        theirs = set(catalogues.get(peer, ()))
        gaps[peer] = {"unaliased": sorted(theirs - named),
                      "unknown": sorted(named - theirs)}  # fmt: skip
    return gaps


def _row(base: dict[str, Any], level: str, method: str,
         items: list[tuple[str, list[str]]], side: str = "") -> dict[str, Any]:  # fmt: skip
    """One table row: its class is each item's first rule, or UNCLASSIFIED
    when an item has none (``detail`` names those)."""
    if not side:
        spot, them = base["spotcheck"], base["peer_verdict"]
        side = "peer-missed" if spot == "yes" and them != "yes" else "peer-extra"
    open_ = [m for m, keys in items if not keys]
    rules = _ordered({k for _, keys in items for k in keys})
    primary = _ordered({keys[0] for _, keys in items if keys})
    return {**base, "level": level, "side": side,
            "method": method or ", ".join(m for m, _ in items),
            "class": UNCLASSIFIED if open_ or not items else " + ".join(primary),
            "rules": rules, "reasons": [RULES[k].reason for k in rules],
            "detail": "no rule for: " + ", ".join(open_) if open_ else ""}  # fmt: skip


# --- report -----------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    """Summary counts, the rules behind them, then every disagreement."""
    rows = result["disagreements"]
    v = ", ".join(f"{k} {n}" for k, n in result["versions"].items())
    lines = [f"# IAM peer cross-check: {result['cases']} cases", "", f"Peers: {v}.",
             f"Questions: {result['questions']}; spotcheck side: "
             f"{result.get('spotcheck_side', '?')}; (case, peer) pairs compared: "
             f"{result['compared']}. No peer answers admin.", ""]  # fmt: skip
    verdicts = Counter((r["peer"], r["class"] == UNCLASSIFIED)
                       for r in rows if r["level"] == "verdict")  # fmt: skip
    for peer in PEERS:
        n, bad = (
            verdicts[(peer, False)] + verdicts[(peer, True)],
            verdicts[(peer, True)],
        )
        lines.append(f"- {peer}: {n} cases with another verdict, {bad} unclassified")
    lines += ["", "| peer | level | side | class | n |", "|---|---|---|---|---:|"]
    lines += ["| {} | {} | {} | {} | {} |".format(*c) for c in result["counts"]]
    by = Counter((r["peer"], k) for r in rows for k in r["rules"])
    lines += [
        "",
        "| peer | rule (holds in) | rows | what IAM does |",
        "|---|---|---:|---|",
    ]
    for (peer, k), n in sorted(by.items(), key=lambda x: (x[0][0], _ORDER[x[0][1]])):
        lines.append(f"| {peer} | {k} | {n} | {RULES[k].reason} |")
    lines += ["", "| case | family | question | peer | spotcheck | peer | level "
              "| method | class | detail |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['id']} | {r['family']} | {r['question']} | {r['peer']} "
            f"| {r['spotcheck']} | {r['peer_verdict']} | {r['level']} "
            f"| {r['method']} | {r['class']} | {r['detail']} |"
        )
    for peer, gap in result["alias_gaps"].items():
        if gap["unaliased"] or gap["unknown"]:
            lines += ["", f"Alias gaps for {peer}: {gap}"]
    if result["depends"]:
        lines += ["", "spotcheck says depends (no yes/no verdict to compare):", ""]
        lines += [f"- {d['id']}: {d['peer']} says {d['peer_verdict']}"
                  for d in result["depends"]]  # fmt: skip
    if result.get("truth_mismatches"):
        lines += ["", "Stored truth differs from spotcheck's answer now:", ""]
        lines += [f"- {t['id']} ({t['question']}): stored {t['stored']}, spotcheck "
                  f"{t['spotcheck']}: {t['reason']}" for t in result["truth_mismatches"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, help="a generated suite (DIR/cases.jsonl)")
    ap.add_argument("--cases", type=Path, help="cases in the conformance format")
    ap.add_argument("--out", type=Path, default=Path("crosscheck-iam-out"))
    ap.add_argument("--setup", action="store_true", help="create .venv-iampeers")
    ap.add_argument("--peers-json", type=Path, help="reuse a saved peer result")
    ap.add_argument("--methods", type=Path, help="method catalogue YAML")
    args = ap.parse_args(argv)
    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "pip"), "install", "--quiet", *PINS]
        return subprocess.run(pip, check=False).returncode
    if (args.suite is None) == (args.cases is None):
        ap.error("give one of --suite DIR or --cases FILE (or --setup)")
    cases = load_suite(args.suite) if args.suite else load_conformance(args.cases)
    if args.peers_json:
        peers = json.loads(args.peers_json.read_text())
    else:
        peers = run_peers(cases, VENV / "bin" / "python")
    side, spot = spotcheck_answers(cases)
    result = crosscheck(cases, spot, peers, load_methods(args.methods))
    result["spotcheck_side"] = side
    result["truth_mismatches"] = truth_mismatches(cases, spot)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(peers))
    (args.out / "crosscheck.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "crosscheck.md").write_text(markdown(result))
    print(markdown(result).split("\n| case |")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
