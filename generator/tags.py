"""Tag keys and value classes: the flat features every case carries.

One place for the words clustering groups by, so a report, a filter and a
generator cannot spell the same feature two ways. Every value is a str, an
int or a bool. Keys are grouped by the dimension they describe; the
Kubernetes values are computed in ``generator.families.k8s_tags``.
"""

from __future__ import annotations

__all__ = [
    "IAM_KEYS",
    "K8S_KEYS",
    "NETPOL_KEYS",
    "SG_KEYS",
]

# --- every case ---------------------------------------------------------------
FAMILY = "family"
METHOD = "method"  # grammar | mutation
OPERATORS = "operators"  # comma-joined operator names, in order; "" if none
OPERATOR_COUNT = "operator_count"
SEED_FILE = "seed_file"  # seed manifest stem for mutations; "" for grammar
YAML_STYLE = "yaml_style"  # Style.label(): block, flow, json, quoted-keys, ...
DOCUMENTS = "documents"
# short (< 30 lines) | medium (< 60) | long: small models lean towards one
# answer on short configs and another on long ones, so size is a slice.
SIZE = "size"
# base | same | opposite: a sibling is a respelling of its base case ("same")
# or its smallest verdict-moving edit ("opposite"); unpaired cases are "base".
RELATION = "relation"

# --- Kubernetes: shape ----------------------------------------------------------
KIND = "kind"
OS = "os"  # unset | linux | windows
CONTAINERS = "containers"
INIT_CONTAINERS = "init_containers"
EPHEMERAL_CONTAINERS = "ephemeral_containers"
HAS_INIT = "has_init"
HAS_SIDECAR = "has_sidecar"  # an init container with restartPolicy Always
HAS_EPHEMERAL = "has_ephemeral"

# --- Kubernetes: volumes ---------------------------------------------------------
HAS_HOSTPATH = "has_hostpath"
HOSTPATH_TARGET = "hostpath_target"  # first hostPath path, or "none"
HOSTPATH_READ_ONLY = "hostpath_read_only"  # every hostPath mount is readOnly
VOLUME_SOURCES = "volume_sources"  # sorted, comma-joined; "name-only" for bare

# --- Kubernetes: security context --------------------------------------------------
APE = "ape"  # worst allowPrivilegeEscalation over containers
PRIVILEGED = "privileged"
RUN_AS_NON_ROOT_LEVEL = "run_as_non_root_level"  # where it is written
RUN_AS_NON_ROOT = "run_as_non_root"  # worst written value
RUN_AS_USER = "run_as_user"  # root | non-root | unset
SECCOMP_LEVEL = "seccomp_level"
SECCOMP_TYPE = "seccomp_type"  # worst written type
CAPABILITY_SPELLING = "capability_spelling"  # class of the added names
CAPABILITIES_ADDED = "capabilities_added"  # sorted, comma-joined
DROP_ALL = "drop_all"  # exact | misspelled | missing, worst container
PROC_MOUNT = "proc_mount"
APPARMOR = "apparmor"  # none | annotation | field | both
SELINUX = "selinux"  # none | set

# --- Kubernetes: host access ---------------------------------------------------------
HOST_NAMESPACES = "host_namespaces"  # comma-joined true ones, or "none"
HOST_USERS = "host_users"  # unset | true | false
HOST_PORT = "host_port"
PROBE_HOST = "probe_host"
SYSCTLS = "sysctls"  # count

# Value classes shared by several keys.
UNSET = "unset"
NONE = "none"
POD = "pod"
CONTAINER = "container"
BOTH = "both"
INVALID = "invalid"  # a value of the wrong JSON type ("false" as a string)

K8S_KEYS = (
    FAMILY, METHOD, OPERATORS, OPERATOR_COUNT, SEED_FILE, YAML_STYLE, DOCUMENTS,
    SIZE, RELATION, KIND, OS, CONTAINERS, INIT_CONTAINERS, EPHEMERAL_CONTAINERS,
    HAS_INIT, HAS_SIDECAR, HAS_EPHEMERAL, HAS_HOSTPATH, HOSTPATH_TARGET,
    HOSTPATH_READ_ONLY, VOLUME_SOURCES, APE, PRIVILEGED, RUN_AS_NON_ROOT_LEVEL,
    RUN_AS_NON_ROOT, RUN_AS_USER, SECCOMP_LEVEL, SECCOMP_TYPE, CAPABILITY_SPELLING,
    CAPABILITIES_ADDED, DROP_ALL, PROC_MOUNT, APPARMOR, SELINUX, HOST_NAMESPACES,
    HOST_USERS, HOST_PORT, PROBE_HOST, SYSCTLS,
)  # fmt: skip

# --- IAM: every key is computed in generator.families.iam_tags ------------------
QUESTION = "question"  # iam:privesc | iam:admin | iam:public
POLICY_KIND = "policy_kind"  # identity | resource | trust
JSON_LAYOUT = "json_layout"  # JsonStyle.label(): pretty-4, one-line, tab, ...
POLICY_VERSION = "policy_version"  # 2012-10-17 | 2008-10-17 | none
STATEMENTS = "statements"  # count
STATEMENT_FORM = "statement_form"  # object | list
EFFECTS = "effects"  # allow | deny | both
NOT_ACTION = "not_action"  # some statement uses NotAction
NOT_RESOURCE = "not_resource"  # some statement uses NotResource
# widest action pattern: star | service | infix | suffix | question | none
ACTION_WILDCARD = "action_wildcard"
ACTION_CASE = "action_case"  # canonical | lower | upper-service | mixed
# widest Resource: star | arn-wildcard | variable | other-account | scoped | none
RESOURCE_FORM = "resource_form"
POLICY_VARIABLES = "policy_variables"  # a ${...} appears anywhere
CONDITION_KEYS = "condition_keys"  # sorted, comma-joined, lower-case; "none"
# widest: none | star | aws-star | aws-list | federated | arn | account | service
PRINCIPAL_FORM = "principal_form"
VALUE_SHAPES = "value_shapes"  # string | list | mixed: how elements are written

IAM_KEYS = (
    FAMILY, METHOD, OPERATORS, OPERATOR_COUNT, SEED_FILE, SIZE, RELATION,
    QUESTION, POLICY_KIND, JSON_LAYOUT, POLICY_VERSION, STATEMENTS, STATEMENT_FORM,
    EFFECTS, NOT_ACTION, NOT_RESOURCE, ACTION_WILDCARD, ACTION_CASE, RESOURCE_FORM,
    POLICY_VARIABLES, CONDITION_KEYS, PRINCIPAL_FORM, VALUE_SHAPES,
)  # fmt: skip

# --- netpol: computed in generator.families.netpol_build -------------------------
POLICIES = "policies"  # NetworkPolicy count
FLOW = "flow"  # pod-pod | pod-external | external-pod
SAME_NAMESPACE = "same_namespace"  # both ends in one namespace
PROTOCOL = "protocol"  # asked protocol: tcp | udp | sctp
POLICY_TYPES_WRITTEN = "policy_types_written"  # some policy writes policyTypes
EMPTY_RULE = "empty_rule"  # a `- {}` rule
EMPTY_PEERS = "empty_peers"  # a `from: []` / `to: []`
PEER_AND = "peer_and"  # a peer with namespaceSelector AND podSelector
IP_BLOCK = "ip_block"
EXPRESSIONS = "expressions"  # matchExpressions anywhere
NOT_IN = "not_in"
NAMED_PORT = "named_port"
END_PORT = "end_port"
PROTOCOL_WRITTEN = "protocol_written"  # some port entry writes its protocol

NETPOL_KEYS = (
    FAMILY, METHOD, OPERATORS, OPERATOR_COUNT, SEED_FILE, SIZE, RELATION,
    QUESTION, YAML_STYLE, DOCUMENTS, POLICIES, FLOW, SAME_NAMESPACE, PROTOCOL,
    POLICY_TYPES_WRITTEN, EMPTY_RULE, EMPTY_PEERS, PEER_AND, IP_BLOCK, EXPRESSIONS,
    NOT_IN, NAMED_PORT, END_PORT, PROTOCOL_WRITTEN,
)  # fmt: skip

# --- sg: computed in generator.families.sg_build ---------------------------------
RULE_STYLE = "rule_style"  # inline | attribute | rule | vpc
GRANTS = "grants"  # ingress statements written
PORT = "port"  # the asked port
IP_VERSION = "ip_version"  # 4 | 6: what the question asks about
PROTOCOL_SPELLING = "protocol_spelling"  # name | number | all | mixed
PORT_SPELLING = "port_spelling"  # number | string | float | none
CIDR_FORM = "cidr_form"  # literal | variable | local | function | for | mixed
WORLD_LITERAL = "world_literal"  # 0.0.0.0/0 or ::/0 written literally
SPLIT_CIDRS = "split_cidrs"  # world covered by several blocks
MIXED_SOURCES = "mixed_sources"  # self / SG / prefix list beside CIDRs
DYNAMIC = "dynamic"  # a dynamic "ingress" block
COUNT_ZERO = "count_zero"  # a rule resource with count = 0
EGRESS_WORLD = "egress_world"  # an egress rule to the world (a decoy)

SG_KEYS = (
    FAMILY, METHOD, OPERATORS, OPERATOR_COUNT, SEED_FILE, SIZE, RELATION,
    QUESTION, RULE_STYLE, GRANTS, PORT, IP_VERSION, PROTOCOL_SPELLING,
    PORT_SPELLING, CIDR_FORM, WORLD_LITERAL, SPLIT_CIDRS, MIXED_SOURCES, DYNAMIC,
    COUNT_ZERO, EGRESS_WORLD,
)  # fmt: skip
