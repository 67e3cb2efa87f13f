"""The `spore` command.

    spore swarm run         a whole local network (validator + peers as processes)
    spore swarm peer        join a run in a store as a peer
    spore swarm validator   open (or resume) a run and validate it
    spore swarm keygen      write a new identity file
    spore swarm store-server  serve a store folder: arrival stamps, signed writes
    spore swarm watch       a live web page of a run (store and ledger only)
    spore swarm report      that page for a finished run, as one HTML file
    spore ledger verify     check a run's hash-chained, signed ledger
    spore ledger show       print it
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spore.cliargs import Parser
from spore.cliargs import non_negative_int as _non_negative_int
from spore.cliargs import positive_float as _positive_float
from spore.cliargs import positive_int as _positive_int


def _at_window(text: str) -> tuple[int, int]:
    """PEER@WINDOW, e.g. 2@3."""
    try:
        a, b = text.split("@")
        i, w = int(a), int(b)
        if i < 0 or w < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PEER@WINDOW (e.g. 2@3, window >= 1)") from None
    return i, w


def _adversary_kinds() -> list[str]:
    from spore.swarm.adversary import KINDS

    return sorted(KINDS)


def _adversary(text: str) -> str:
    if text not in _adversary_kinds():
        raise argparse.ArgumentTypeError(f"unknown adversary {text!r}; choose from {', '.join(_adversary_kinds())}")
    return text


def _ledger_path(path: Path) -> Path:
    from spore.swarm.validator import LEDGER_FILE

    return path / LEDGER_FILE if path.is_dir() else path


def _ledger(args: argparse.Namespace) -> int:
    from spore.swarm.identity import parse_id
    from spore.swarm.ledger import show, verify_ledger

    path = _ledger_path(Path(args.path))
    if args.ledger_command == "show":
        import sqlite3

        try:
            for line in show(path):
                print(line)
        except (sqlite3.DatabaseError, KeyError, ValueError) as e:
            raise ValueError(f"{path} is not a readable spore ledger ({e}); give a run's ledger.sqlite "
                             "or the run folder holding it") from None
        return 0
    if args.ledger_command == "audit":
        from spore.swarm.audit_cli import run_audit

        return run_audit(args.path, args.store, args.validator)
    pinned = parse_id(args.validator) if args.validator else None
    if not path.is_file():
        raise FileNotFoundError(f"no ledger at {path}; give a run's ledger.sqlite or the run folder holding it")
    result = verify_ledger(path, pinned)
    if not result.ok and result.records == 0:  # nothing to verify: not a ledger at all
        raise ValueError(f"{path} is not a spore ledger ({result.problem}); give a run's ledger.sqlite "
                         "or the run folder holding it")
    if result.ok:
        print(f"ledger OK: {result.records} records, chain and signatures verified")
        return 0
    where = f"record #{result.first_bad}" if result.first_bad is not None else "ledger"
    print(f"ledger BROKEN at {where}: {result.problem}")
    return 1


def _peer_env(text: str) -> tuple[int, str, str]:
    """PEER:NAME=VALUE, e.g. 1:ATEN_CPU_CAPABILITY=default."""
    peer, _, assignment = text.partition(":")
    name, eq, value = assignment.partition("=")
    if not peer.isdigit() or not eq or not name.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not PEER:NAME=VALUE (e.g. 1:ATEN_CPU_CAPABILITY=default)")
    return int(peer), name, value


def _dishonest(text: str) -> tuple[str, str]:
    from spore.swarm.identity import parse_id

    mode, _, peer = text.partition(":")
    try:
        parse_id(peer)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if mode not in ("favour", "drop"):
        raise argparse.ArgumentTypeError(f"{text!r}: the mode is favour or drop")
    return mode, peer


def _preset(text: str) -> str:
    from spore.model import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}; choose one of {', '.join(sorted(PRESETS))}")
    return text


def _presets_help() -> str:
    from spore.model import PRESETS

    return "; ".join(f"{name} ({p.notes})" if p.notes else name for name, p in sorted(PRESETS.items()))


def build_parser() -> argparse.ArgumentParser:
    from spore.model import DEFAULT_PRESET

    parser = Parser(prog="spore", description="trust nothing that is not verified")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (and show tracebacks)")
    top = parser.add_subparsers(dest="command", required=True)

    swarm = top.add_parser("swarm", help="permissionless SparseLoCo training").add_subparsers(
        dest="swarm_command", required=True
    )

    run = swarm.add_parser("run", help="run a whole network locally as separate processes")
    run.add_argument("--peers", type=_positive_int, default=3, help="honest peers, each its own process")
    run.add_argument("--windows", type=_positive_int, default=None, help="training windows (default: the preset's)")
    run.add_argument("--preset", type=_preset, default=DEFAULT_PRESET, metavar="NAME",
                     help=f"model and schedule: {_presets_help()}")
    run.add_argument("--out", type=Path, default=Path("runs/swarm"), metavar="DIR",
                     help="a new run folder: summary.json, plots, logs, keys, the final model")
    run.add_argument("--store", default=None, metavar="URL",
                     help="a store folder, http://HOST:PORT or s3://bucket/prefix?endpoint=... "
                          "(default: a store service over OUT/store)")
    run.add_argument("--window-seconds", type=_positive_float, default=None, metavar="SECONDS",
                     help="length of a window (default: the preset's)")
    run.add_argument("--aggregation", choices=["all", "chosen"], default="all",
                     help="the outer step sums all accepted updates, or only the gather list's")
    run.add_argument("--outer-lr", type=_positive_float, default=None, metavar="ALPHA",
                     help="outer learning rate (default: the preset's, 1.0)")
    run.add_argument("--late", type=_at_window, action="append", default=[], metavar="PEER@WINDOW",
                     help="start this peer only when this window opens (repeatable)")
    run.add_argument("--crash", type=_at_window, action="append", default=[], metavar="PEER@WINDOW",
                     help="SIGKILL this peer when this window opens and restart it one window later")
    run.add_argument("--adversary", type=_adversary, action="append", default=[], metavar="KIND",
                     help=f"add a cheating peer (repeatable): {', '.join(_adversary_kinds())}")
    run.add_argument("--restart-validator", type=_positive_int, default=None, metavar="WINDOW",
                     help="SIGKILL the validator when this window opens and resume it at once")
    run.add_argument("--peer-env", type=_peer_env, action="append", default=[], metavar="PEER:NAME=VALUE",
                     help="set an environment variable for one honest peer (repeatable), "
                          "e.g. 1:ATEN_CPU_CAPABILITY=default")
    run.add_argument("--dishonest-validator", choices=["favour", "drop"], default=None,
                     help="TEST ONLY: the validator favours (or drops) peer 0; `spore ledger audit` must catch it")

    peer = swarm.add_parser("peer", help="join a run as a peer")
    peer.add_argument("--store", required=True, metavar="URL",
                      help="the run's store: a folder that exists, http://HOST:PORT or s3://bucket/prefix?endpoint=...")
    peer.add_argument("--validator", required=True, metavar="ID", help="the run validator's id (64 hex digits)")
    peer.add_argument("--key", type=Path, required=True, help="identity file (created if missing)")
    peer.add_argument("--workdir", type=Path, required=True, metavar="DIR", help="the peer's own files (created)")
    peer.add_argument("--wait", type=_positive_float, default=300.0, help="seconds to wait for the run")
    peer.add_argument("--adversary", type=_adversary, default=None, metavar="KIND",
                      help="behave as this kind of cheater (for tests and demos)")

    val = swarm.add_parser("validator", help="open a run (or --resume one) and validate it")
    val.add_argument("--store", required=True, metavar="URL",
                     help="a store folder (created for a new run), http://HOST:PORT or s3://bucket/prefix?endpoint=...")
    val.add_argument("--key", type=Path, required=True, help="the validator's identity file (created if missing)")
    val.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="the validator's folder: its ledger.sqlite, checkpoints, the final model")
    val.add_argument("--preset", type=_preset, default=DEFAULT_PRESET, metavar="NAME",
                     help=f"model and schedule: {_presets_help()}")
    val.add_argument("--windows", type=_positive_int, default=None, help="training windows (default: the preset's)")
    val.add_argument("--window-seconds", type=_positive_float, default=None, metavar="SECONDS",
                     help="length of a window (default: the preset's)")
    val.add_argument("--grace-seconds", type=_positive_float, default=None, metavar="SECONDS",
                     help="how late after a window's end a submission still counts "
                          "(default: 1, or an eighth of a shorter window)")
    val.add_argument("--min-peers", type=_non_negative_int, default=0, metavar="N",
                     help="before window 0, wait (a bounded while) for this many peers to announce")
    val.add_argument("--aggregation", choices=["all", "chosen"], default="all",
                     help="the outer step sums all accepted updates, or only the gather list's")
    val.add_argument("--outer-lr", type=_positive_float, default=None, metavar="ALPHA",
                     help="outer learning rate (default: the preset's, 1.0)")
    val.add_argument("--resume", action="store_true", help="continue the run this key opened in STORE")
    val.add_argument("--dishonest", type=_dishonest, default=None, metavar="favour:ID|drop:ID",
                     help="TEST ONLY: favour or drop one peer; `spore ledger audit` must catch it")

    kg = swarm.add_parser("keygen", help="write a new identity file and print its id")
    kg.add_argument("path", type=Path, help="where to write it (refused if it exists)")

    from spore.swarm.storeserver import add_arguments as store_server_arguments

    store_server_arguments(swarm.add_parser(
        "store-server", help="serve a store folder over HTTP: it stamps arrivals and enforces who writes what"))
    from spore.swarm.watch import add_arguments as watch_arguments

    watch_arguments(swarm)

    ledger = top.add_parser("ledger", help="inspect a run's signed ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    lv = ledger.add_parser("verify", help="check the hash chain and every signature")
    lv.add_argument("path", type=Path, help="ledger.sqlite, or a run folder holding one")
    lv.add_argument("--validator", default=None, metavar="ID",
                    help="pin the validator id the ledger must be signed by (default: the one it names)")
    ls = ledger.add_parser("show", help="print a readable history")
    ls.add_argument("path", type=Path, help="ledger.sqlite, or a run folder holding one")
    la = ledger.add_parser("audit", help="recompute every decision of the validator from the store and the ledger")
    la.add_argument("path", help="a run folder (its ledger.sqlite; store: --store or RUN/store), or a store URL "
                                 "(the validator's signed window records in it)")
    la.add_argument("--store", default=None, help="the run's store URL (default: RUN/store, or RUN/store.url)")
    la.add_argument("--validator", default=None, metavar="ID",
                    help="pin the validator id (default: the one the ledger names)")

    from spore.posttrain.cli import register as register_posttrain

    register_posttrain(top)
    return parser


# Optional dependencies (pyproject's extras) and the extra that brings each.
EXTRAS = {"boto3": "s3", "botocore": "s3", "matplotlib": "plots"}


def _missing_module(e: ModuleNotFoundError) -> str:
    top = (e.name or "").split(".")[0]
    if top in EXTRAS:
        need = f"this needs {top}" if str(e).startswith("No module named") else str(e)
        return f"{need}, an optional dependency: pip install 'spore[{EXTRAS[top]}]'"
    return f"the Python package {top or e.name} is missing: run scripts/setup (or pip install -e .)"


def one_line(e: BaseException) -> str:
    """An error as the one line the user reads: the problem, and where the code says it, the fix."""
    import sqlite3

    if isinstance(e, ModuleNotFoundError):
        return _missing_module(e)
    if isinstance(e, OSError) and e.strerror and e.filename:
        text = f"{e.filename}: {e.strerror}"
    elif isinstance(e, sqlite3.Error):
        text = f"database error: {e}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())  # one line, whatever the message held


def main(argv: list[str] | None = None) -> int:
    import sqlite3

    from spore.swarm.store import StoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # e.g. botocore's "Found credentials in environment variables."
        logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        if args.command == "swarm":
            return _swarm(args)
        if args.command == "ledger":
            return _ledger(args)
        if args.command == "posttrain":
            from spore.posttrain.cli import main as posttrain_main

            return posttrain_main(args)
    except KeyboardInterrupt:
        return 130
    # What a user can act on (a bad value, file, store or network) is one line; -v shows the traceback.
    except (ValueError, OSError, StoreError, RuntimeError, ModuleNotFoundError, sqlite3.Error) as e:
        if args.verbose:
            raise
        print(f"spore: error: {one_line(e)}", file=sys.stderr)
        return 2
    parser.error("unknown command")
    return 2


def _require(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"{what} with {module}", name=module)


def _swarm(args: argparse.Namespace) -> int:
    from spore.model import get_preset
    from spore.swarm.identity import Identity, parse_id
    from spore.swarm.protocol import RUN_KEY
    from spore.swarm.store import open_store

    if args.swarm_command == "keygen":
        if args.path.exists():
            raise ValueError(f"{args.path} exists; refusing to overwrite an identity")
        ident = Identity.generate()
        ident.save(args.path)
        print(ident.hex)
        return 0

    if args.swarm_command == "store-server":
        from spore.swarm.storeserver import run_from_args

        return run_from_args(args)

    if args.swarm_command in ("watch", "report"):
        from spore.swarm.watch import run_from_args as watch

        return watch(args)

    if args.swarm_command == "run":
        from spore.swarm.runner import PeerPlan, run_network, run_ok

        _require("matplotlib", "spore swarm run draws its plots")  # now, not after the whole run
        preset = get_preset(args.preset)
        windows = args.windows or preset.windows
        plans = {i: PeerPlan(i) for i in range(args.peers)}
        for i, w in args.late:
            if i >= args.peers:
                raise ValueError(f"--late {i}@{w}: there are only {args.peers} peers (0..{args.peers - 1})")
            plans[i].join_window = w
        for i, w in args.crash:
            if i >= args.peers:
                raise ValueError(f"--crash {i}@{w}: there are only {args.peers} peers (0..{args.peers - 1})")
            plans[i].crash_window, plans[i].restart_window = w, w + 1
        for i, name, value in args.peer_env:
            if i >= args.peers:
                raise ValueError(f"--peer-env {i}:{name}: there are only {args.peers} peers (0..{args.peers - 1})")
            plans[i].env[name] = value
        summary = run_network(
            peers=args.peers, windows=windows, preset=args.preset, out=args.out, store_url=args.store,
            window_seconds=args.window_seconds, aggregation=args.aggregation, outer_lr=args.outer_lr,
            plans=list(plans.values()), adversaries=args.adversary, restart_validator=args.restart_validator,
            dishonest_validator=args.dishonest_validator,
        )
        return 0 if run_ok(summary) else 1

    validator = parse_id(args.validator) if args.swarm_command == "peer" else None
    ident = Identity.load_or_create(args.key)
    # Only a validator opening a new run creates a store folder: a mistyped --store for a
    # peer or for --resume is an error, not a new empty store (issue 12).
    store = open_store(args.store, ident, create=args.swarm_command == "validator" and not args.resume)
    # Reach the store now, so that a dead endpoint, missing credentials or a wrong URL
    # fails in seconds, before the slow start (corpus, model code).
    store.head(RUN_KEY)
    if args.swarm_command == "peer":
        from spore.swarm.peer import join

        assert validator is not None
        peer = join(store, ident, validator, args.workdir, args.wait, args.adversary)
        peer.run()
        return 0

    if args.swarm_command == "validator":
        from spore.data import load_corpus
        from spore.swarm.validator import Validator, new_manifest

        if args.resume:
            v = Validator.resume(store, ident, args.out, dishonest=args.dishonest)
        else:
            preset = get_preset(args.preset)
            corpus = load_corpus()
            ws = args.window_seconds or preset.window_seconds
            manifest = new_manifest(
                ident, preset, windows=args.windows or preset.windows, window_seconds=ws,
                grace_seconds=args.grace_seconds or min(1.0, ws / 8), corpus_digest=corpus.digest,
                aggregation=args.aggregation, outer_lr=args.outer_lr,
            )
            v = Validator.open_run(store, ident, manifest, args.out, corpus, min_peers=args.min_peers,
                                   dishonest=args.dishonest)
        v.run()
        return 0
    return 2
