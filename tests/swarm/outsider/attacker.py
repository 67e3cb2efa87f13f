"""The outsider attacker process: `python tests/swarm/outsider/attacker.py --store URL --validator ID --out DIR`.

It joins a running network like any permissionless peer would (fresh keys, the
store service's URL, the validator's id) and runs a schedule of attacks,
writing what it saw to DIR/attacks.json and its identities to DIR/ids.json.
`--scenario main` runs every attack except measurement starvation;
`--scenario starve` runs only that one (it would hide the others' scoring).
With `--store-root`, it also tampers with the service's folder directly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from outsider import attacks as A
from outsider.client import RawStore
from outsider.swarm import Run, flat
from spore.swarm.identity import Identity


class Log:
    def __init__(self, path: Path):
        self.path, self.data, self.lock = path, {}, threading.Lock()

    def add(self, name: str, w: int, result) -> None:
        with self.lock:
            self.data.setdefault(name, {})[str(w)] = result
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True, default=str))
            os.replace(tmp, self.path)
        print(f"[outsider] w{w} {name}: {json.dumps(result, default=str)[:300]}", flush=True)


def guarded(log: Log, name: str, w: int, fn, *a, **kw):
    try:
        log.add(name, w, fn(*a, **kw))
    except Exception as e:  # an attack failing to run is itself worth recording
        log.add(name, w, {"exception": f"{e.__class__.__name__}: {e}", "trace": traceback.format_exc()[-600:]})


def fs_thread(run: Run, root: str, log: Log, ids: dict, planted_blob: bytes, stop: threading.Event) -> None:
    """Tampering with the store folder: plant a FIFO etc. in window 1, utime an honest update of
    window 1, copy gather list 2 to 3's name as soon as 2 appears, delete list 4 once published."""
    W = run.manifest["windows"]
    run.wait_until(run.open_time(1) + 0.5)
    guarded(log, "fs_plant", 1, A.fs_plant, root, 1, ids["fifo"], ids["planted"], planted_blob)
    done_copy = done_delete = done_utime = False
    while not stop.is_set() and time.time() < run.deadline(W - 1) + 5:
        if not done_utime:
            for o in run.store.list("updates/00000001/"):
                if o["key"].split("/")[-1][:-4] in ids["honest"]:
                    guarded(log, "fs_utime", 1, A.fs_utime, root, o["key"], run.open_time(0) - 1000)
                    done_utime = True
                    break
        if not done_copy and os.path.exists(os.path.join(root, "gather", "00000002.json")):
            guarded(log, "fs_copy_gather", 2, A.fs_copy_gather, root, 2)
            done_copy = True
        if W > 5 and not done_delete and os.path.exists(os.path.join(root, "gather", "00000004.json")):
            guarded(log, "fs_delete_gather", 4, A.fs_delete, root, "gather/00000004.json")
            done_delete = True
        time.sleep(0.05)


def honest_ids(run: Run, mine: set[str]) -> set[str]:
    out = set()
    for o in run.store.list("peers/"):
        pid = o["key"].split("/")[-1][:-5]
        if pid not in mine:
            out.add(pid)
    return out


def starve(args, out: Path, log: Log) -> None:
    """Measurement starvation, prepared from the public preset before the run opens."""
    offline = Run.from_preset(args.preset)
    grad = A.gradient_at_theta0(offline)
    n = args.starvers
    updates = [A.starvation_updates(offline, n, grad, 1.0, parity) for parity in (0, 1)]
    starvers = [Identity.generate() for _ in range(n)]
    run = Run(RawStore(args.store), args.validator)
    for s in starvers:
        run.announce(s)
    ids = {"starvers": [s.hex for s in starvers], "honest": sorted(honest_ids(run, {s.hex for s in starvers}))}
    (out / "ids.json").write_text(json.dumps(ids, indent=1))
    W = run.manifest["windows"]
    for w in range(run.window_now(), W):
        run.wait_until(run.open_time(w) + 0.3)
        if w >= 1:
            run.wait_record(w - 1, run.deadline(w) - 3)
        base = run.base_digest(w)
        codes = [run.put_update(s, w, run.encode(s, w, u, base))
                 for s, u in zip(starvers, updates[w % 2], strict=False)]
        log.add("starvation", w, {"codes": codes})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--validator", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--store-root")
    ap.add_argument("--scenario", choices=["main", "starve", "late-audit"], default="main")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--sybils", type=int, default=100)
    ap.add_argument("--starvers", type=int, default=10)
    ap.add_argument("--slowloris", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated attacks not to run (e.g. replay_old,off_data)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "attacks.json")
    if args.scenario == "starve":
        starve(args, out, log)
        return
    if args.scenario == "late-audit":
        run = Run(RawStore(args.store), args.validator)
        me = Identity.generate()
        run.announce(me)
        (out / "ids.json").write_text(json.dumps({"late": me.hex}))
        w = max(1, run.window_now())
        guarded(log, "late_after_gather", w, A.late_after_gather, run, me, w)
        return
    store = RawStore(args.store)
    run = Run(store, args.validator)
    W = run.manifest["windows"]
    roles = ["main", "case", "vandal", "free_rider", "replay_old", "n30", "n50", "n70", "n90",
             "poison", "off_data", "fifo", "planted"]
    me = {r: Identity.generate() for r in roles}
    sybils = [Identity.generate() for _ in range(args.sybils)]
    mine = {i.hex for i in list(me.values()) + sybils}
    ids = {r: i.hex for r, i in me.items()}
    ids["sybils"] = [s.hex for s in sybils]
    for i in me.values():
        run.announce(i)
    honest = honest_ids(run, mine)
    ids["honest"] = sorted(honest)
    (out / "ids.json").write_text(json.dumps(ids, indent=1))
    # cheap store-service attacks first, with a ready-made valid update
    w0 = run.window_now()
    ready = run.encode(me["case"], w0, run.compress(A.random_dense(run, 0.003, 5)), run.base_digest(w0))
    guarded(log, "case_sybil", w0, A.case_sybil, run, me["case"], w0, ready)
    guarded(log, "replay_request", w0, A.replay_request, run, me["main"], w0)
    guarded(log, "malformed_requests", w0, A.malformed_requests, run, me["main"], w0)
    stop = threading.Event()
    if args.store_root:
        planted = run.encode(me["planted"], 1, run.compress(A.random_dense(run, 0.01, 7)), bytes(32))
        tamper = threading.Thread(target=fs_thread, args=(run, args.store_root, log, ids, planted, stop))
        tamper.start()


    grad = A.gradient_at_theta0(run)
    honest_norm = 0.05
    flood: list = []
    flood_window = None
    vandalised = False
    for w in range(run.window_now(), W):
        run.wait_until(run.open_time(w) + 0.2)
        until = run.deadline(w) - 0.5
        key, dec = A.wait_honest_update(run, w, honest, until - 1)
        if key and not vandalised:
            vandalised = True
            guarded(log, "vandal", w, A.vandal, run, me["vandal"], w, key)
        if dec is not None:
            victim = dec[1]
            honest_norm = float(flat(victim).norm())
            for name, noise in (("n30", 0.3), ("n50", 0.5), ("n70", 0.7), ("n90", 0.9)):
                if name in args.skip.split(","):
                    continue
                guarded(log, "noisy_copy_" + name, w, A.noisy_copy, run, me[name], w, victim, noise,
                        1000 * w + int(100 * noise))  # independent noise per copier
            guarded(log, "poisoner", w, A.poisoner, run, me["poison"], w, victim, 5.0)
        if w >= 1:
            guarded(log, "free_rider", w, A.free_rider, run, me["free_rider"], w)
        if w >= 2 and "replay_old" not in args.skip.split(","):
            # works against this version (see the report): the tests run without it
            guarded(log, "replay_old", w, A.replay_old, run, me["replay_old"], w, honest)
        if "off_data" not in args.skip.split(","):
            # works in warm-up windows against this version (see the report)
            guarded(log, "off_data", w, A.off_data, run, me["off_data"], w, grad, honest_norm)
        if w == flood_window and flood:
            guarded(log, "sybil_flood", w, A.sybil_flood_send, run, flood, w)
        if w >= 1:
            guarded(log, "forge_gather", w, A.forge_gather, run, me["main"], w)
        if flood_window is None and sybils and w + 1 < W:
            flood_window = w + 1
            flood = A.sybil_flood_build(run, sybils, flood_window, 0.003)
        if args.slowloris and w == W - 2:
            # works against this version (see the report): never part of the tests
            guarded(log, "slowloris", w, A.slowloris, run, 70, run.manifest["window_seconds"] / 2)
    stop.set()
    if args.store_root:
        tamper.join(timeout=30)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: torch's thread pools can abort it ("terminate called ...")
