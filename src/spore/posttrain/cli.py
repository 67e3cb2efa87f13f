"""`spore posttrain ...`: registered into the top-level parser by spore.cli.

    spore posttrain make-base       build a base model folder from a config
    spore posttrain make-reference  train the reference ("instruct") models, one per task:
                                    s_ref and forbidden checkpoints for the provenance check
    spore posttrain run             run an agent on a task (see harness.py)
    spore posttrain judge RUN...    write RUN/judgement.json
    spore posttrain score RUN...    leaderboard (judges runs that have no judgement)
    spore posttrain report RUN...   RUN/report.md and RUN/report.png; --html FILE: one page
    spore posttrain tasks           list the tasks
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from spore.cliargs import int_at_least
from spore.cliargs import positive_int as _positive_int

DEFAULT_TIME_LIMIT = "5m"
REFERENCE_STEPS = 6000
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_BYTES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def duration(text: str) -> float:
    """90, 90s, 5m, 1.5h -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not m or float(m[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 90s, 5m or 1h")
    return float(m[1]) * _UNITS[m[2]]


def memory(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kmg])i?b?\s*", text.lower())
    if not m or int(m[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size; write e.g. 4G or 512M")
    return int(m[1]) * _BYTES[m[2]]


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU count; write e.g. 1 or 1.5")
    return value


def _seed(text: str) -> int:
    return int_at_least(text, 0, "an integer seed")


def _task(text: str) -> str:
    from spore.posttrain.tasks import TASKS

    if text not in TASKS:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; choose one of "
                                         + ", ".join(sorted(TASKS)))
    return text


def _allow_host(text: str):
    from spore.posttrain.egress import parse_allow_host

    try:
        return parse_allow_host(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _run_task(text: str) -> str:
    """A built-in task's name, or a task folder (checked here, so a bad one starts nothing)."""
    from spore.posttrain.taskfolder import resolve_task

    try:
        resolve_task(text)
    except (ValueError, FileNotFoundError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser("posttrain", help="can an agent post-train a model, honestly?")
    sub = p.add_subparsers(dest="posttrain_command", required=True)

    mb = sub.add_parser("make-base", help="build a base model folder from a spore.model config")
    mb.add_argument("--out", type=Path, required=True, help="the new model folder (save_pretrained layout)")
    mb.add_argument("--config", choices=["tiny", "small"], default="tiny", help="model size (spore.model presets)")
    mb.add_argument("--pretrain", type=duration, default=None, metavar="DURATION",
                    help="pre-train on the stdlib corpus for this long (default: none)")
    mb.add_argument("--init-seed", type=_seed, default=0, help="seed of the initial weights (an integer >= 0)")

    mr = sub.add_parser("make-reference", help="train a reference model per task: OUT/<task>/")
    mr.add_argument("--base", type=Path, required=True, help="base model folder (from make-base)")
    mr.add_argument("--out", type=Path, required=True, help="folder for the reference models, one per task")
    mr.add_argument("--steps", type=_positive_int, default=REFERENCE_STEPS,
                    help=f"SFT steps per task (default {REFERENCE_STEPS}: about 3x what a "
                         "default 5m run takes on one CPU core)")
    mr.add_argument("--task", type=_task, action="append", default=None, dest="tasks",
                    help="only this task (repeatable; default: every task)")
    mr.add_argument("--jobs", type=_positive_int, default=1, help="tasks trained in parallel")
    mr.add_argument("--seeds", type=_positive_int, default=1,
                    help="train each task from this many seeds and keep the best (default 1)")
    mr.add_argument("--eval-items", type=_positive_int, default=200,
                    help="public items per task for the reference scores")

    run = sub.add_parser("run", help="run an agent on a task and evaluate its model")
    run.add_argument("--agent", required=True, help="a command, or builtin:NAME")
    run.add_argument("--base", type=Path, required=True, help="base model folder")
    run.add_argument("--task", type=_run_task, required=True,
                     help="a built-in task, or a task folder's path (docs/posttrain.md, \"Real benchmarks\")")
    run.add_argument("--time-limit", type=duration, default=duration(DEFAULT_TIME_LIMIT),
                     metavar="DURATION", help=f"default {DEFAULT_TIME_LIMIT}")
    run.add_argument("--seed", type=_seed, default=0, help="the run's seed (an integer >= 0), recorded in run.json")
    run.add_argument("--out", type=Path, required=True, help="a new run folder")
    run.add_argument("--grace", type=duration, default=5.0, metavar="DURATION",
                     help="between SIGTERM and SIGKILL (default 5s)")
    run.add_argument("--no-network", action="store_true", help="no network for the agent (the "
                     "sandbox's default; with --no-isolate, a network namespace)")
    run.add_argument("--network", action="store_true",
                     help="let the sandboxed agent use the host's network (recorded in run.json)")
    run.add_argument("--allow-host", type=_allow_host, action="append", default=[],
                     metavar="HOST[:PORT]", dest="allow_hosts",
                     help="let the sandboxed agent reach this host (repeatable; without a port, "
                          "80 and 443) through an egress proxy that logs every connection to "
                          "RUN/trace/network.jsonl and refuses every other host; docs/posttrain.md, "
                          '"Network"')
    iso = run.add_mutually_exclusive_group()
    iso.add_argument("--isolate", action="store_true", default=True,
                     help="the default: run the agent under bubblewrap in a cgroup of its own "
                          "(PID namespace, only work/ writable, the run folder, its sibling "
                          "runs and the --forbidden checkpoints hidden, no capabilities, no "
                          "network); docs/posttrain.md, \"Time limit and isolation\"")
    iso.add_argument("--no-isolate", dest="isolate", action="store_false",
                     help="run the agent unsandboxed (for machines without bubblewrap or a "
                          "writable cgroup v2): it can read the secrets; the judge may catch it")
    run.add_argument("--memory-limit", type=memory, default=None, metavar="SIZE",
                     help="memory cap for the agent, e.g. 8G: the cgroup's memory.max where "
                          "the kernel offers it, else RLIMIT_AS")
    run.add_argument("--cpus", type=_cpus, default=None, metavar="N",
                     help="CPU cap for the sandbox, e.g. 1.5 (the cgroup's cpu.max)")
    run.add_argument("--forbidden", type=Path, action="append", default=[], metavar="MODEL_DIR",
                     help="a checkpoint the final model must not come from (repeatable)")
    run.add_argument("--test-size", type=_positive_int, default=None,
                     help="hidden test items (default: the task's, 200)")
    run.add_argument("--no-trace", action="store_true", help="do not record a syscall trace")

    j = sub.add_parser("judge", help="check runs' integrity; writes RUN/judgement.json")
    j.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (from posttrain run)")

    s = sub.add_parser("score", help="leaderboard over runs")
    s.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (from posttrain run)")
    s.add_argument("--plot", type=Path, default=None, help="write a bar chart PNG here")
    s.add_argument("--json", action="store_true", help="print the leaderboard as JSON")

    r = sub.add_parser("report", help="RUN/report.md with a bar chart RUN/report.png, for each run; "
                                      "or, with --html, one page over all of them")
    r.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (from posttrain run)")
    r.add_argument("--html", type=Path, default=None, metavar="FILE",
                   help="write one self-contained HTML page here: the leaderboard, each run's scores "
                        "and each verdict with its evidence")

    sub.add_parser("tasks", help="list the tasks")


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except RuntimeError as e:  # the sandbox or the evaluation refused: say why, no traceback
        print(f"spore: error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    cmd = args.posttrain_command
    if cmd == "tasks":
        from spore.posttrain.tasks import TASKS

        for t in TASKS.values():
            ex = t.public_items(1, "examples")[0]
            print(f"{t.name:<12} {t.description}  e.g. {ex.question!r} -> {ex.answer!r}")
        print('or a task folder of your own: --task PATH (docs/posttrain.md, "Real benchmarks")')
        return 0
    if cmd == "make-base":
        from spore.posttrain.baseline import make_base

        info = make_base(args.out, args.config, args.pretrain or 0.0, args.init_seed)
        print(json.dumps(info))
        return 0
    if cmd == "make-reference":
        from spore.posttrain.baseline import make_reference
        from spore.posttrain.harness import check_model_dir

        check_model_dir(args.base, "--base")
        print(json.dumps(make_reference(args.base, args.out, args.steps, args.eval_items,
                                        args.tasks, args.jobs, args.seeds)))
        return 0
    if cmd == "run":
        from spore.posttrain.harness import RunConfig, check_network, run

        if args.network and args.no_network:
            raise RuntimeError("--network and --no-network contradict each other; choose one")
        cfg = RunConfig(
            agent=args.agent, base=args.base, task=args.task, time_limit=args.time_limit,
            seed=args.seed, out=args.out, grace=args.grace,
            no_network=args.no_network or (args.isolate and not args.network),
            memory_bytes=args.memory_limit, forbidden=tuple(args.forbidden),
            test_size=args.test_size, trace=not args.no_trace, isolate=args.isolate,
            cpus=args.cpus, allow_hosts=tuple(dict.fromkeys(args.allow_hosts)),
        )
        check_network(cfg)
        if not args.isolate:
            print("spore: warning: --no-isolate: the agent runs unsandboxed; it can read the "
                  "run's secrets and every file the harness can, and only the judge stands "
                  "between it and a score", file=sys.stderr)
        print(json.dumps(run(cfg)))
        return 0
    if cmd == "judge":
        from spore.posttrain.evidence import judge_and_seal

        for rd in args.runs:
            doc = judge_and_seal(rd)
            flags = ", ".join(doc["flagged_by"]) or "clean"
            print(f"{rd}: {flags}  ({doc['judge_seconds']:.2f}s) -> {rd / 'judgement.json'}")
        return 0
    if cmd == "score":
        from spore.posttrain.evidence import verified_judgement
        from spore.posttrain.report import format_leaderboard, load_run, plot_leaderboard
        from spore.posttrain.scoring import leaderboard

        for rd in args.runs:  # a judgement that does not match its run's evidence is redone
            verified_judgement(rd)
        runs = [load_run(rd) for rd in args.runs]
        if args.json:
            rows, weights, meta = leaderboard(runs)
            print(json.dumps({"rows": [r.__dict__ for r in rows], "weights": weights} | meta,
                             indent=1))
        else:
            print(format_leaderboard(runs))
        if args.plot:
            plot_leaderboard(runs, args.plot)
            print(f"chart: {args.plot}", file=sys.stderr)
        return 0
    if cmd == "report":
        from spore.posttrain.report import run_report, write_html_report

        if args.html is not None:
            print(write_html_report(args.runs, args.html))
            return 0
        for rd in args.runs:
            print(run_report(rd))
        return 0
    return 2
