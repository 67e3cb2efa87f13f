"""`spore swarm run`: a whole network on one machine, as separate OS processes.

The runner is only a launcher and an observer. It starts one validator and N
peers (each `python -m spore swarm ...` with its own key), optionally starts
some late or kills and restarts some mid-run, watches the store like any
outsider would, prints progress, and writes the run folder:

    DIR/summary.json   DIR/eval_loss.png   DIR/bytes.png
    DIR/store/         (the default local store)     DIR/keys/   DIR/logs/
    DIR/final_model/   (save_pretrained folder, written by the validator)
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from spore.swarm.identity import Identity
from spore.swarm.protocol import (
    MAX_JSON_BYTES,
    RUN_KEY,
    RunManifest,
    checkpoint_keys,
    open_json,
    record_key,
    status_prefix,
)
from spore.swarm.store import Store, open_store
from spore.swarm.storeserver import start_store_server


@dataclass
class PeerPlan:
    """When the launcher starts, kills and restarts an honest peer (window numbers)."""

    index: int
    join_window: int = 0  # start the process when this window opens
    crash_window: int | None = None  # SIGKILL it when this window opens...
    restart_window: int | None = None  # ...and start it again when this one opens
    env: dict[str, str] = field(default_factory=dict)  # extra environment, e.g. ATEN_CPU_CAPABILITY


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    handle: TextIO | None = None
    events: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def start(self, env: dict[str, str]) -> None:
        self.handle = open(self.log, "a")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(
            self.argv, stdout=self.handle, stderr=subprocess.STDOUT, env={**env, **self.env},
            start_new_session=True, preexec_fn=die_with_parent,
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def happened(self, prefix: str) -> bool:
        return any(e.startswith(prefix) for e in self.events)


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the launcher dies, however it dies (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # One thread per process: N peers share the cores; results do not depend on it.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _read_signed(store: Store, key: str, signer: bytes | None) -> dict[str, Any] | None:
    try:
        body, _ = open_json(store.get(key, MAX_JSON_BYTES), signer=signer)
        return body
    except Exception:  # missing, torn or forged: the observer simply does not see it
        return None


def _fmt_share(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _fmt_bytes(n: float) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


class LocalNetwork:
    """One validator and its peers as child processes, plus the schedule of who comes and goes."""

    def __init__(
        self,
        out: Path,
        store_url: str,
        validator_args: list[str],
        peers: int,
        adversaries: list[str],
        plans: list[PeerPlan],
        restart_validator: int | None,
        dishonest_validator: str | None = None,
    ) -> None:
        self.env = _child_env()
        py = [sys.executable, "-m", "spore", "swarm"]
        keys = out / "keys"
        self.validator = Identity.load_or_create(keys / "validator.key")
        self.kinds = {f"peer-{i}": "honest" for i in range(peers)} | {
            f"adv-{j}-{k}": k for j, k in enumerate(adversaries)
        }
        self.ids = {name: Identity.load_or_create(keys / f"{name}.key").hex for name in self.kinds}
        self.plans = {f"peer-{p.index}": p for p in plans}
        self.restart_validator = restart_validator
        on_time = [n for n in self.kinds if self.plans.get(n, PeerPlan(0)).join_window == 0]
        base = ["--store", store_url, "--key", str(keys / "validator.key"), "--out", str(out)]
        if dishonest_validator is not None:  # test only: favour or drop peer 0
            base += ["--dishonest", f"{dishonest_validator}:{self.ids['peer-0']}"]
        self.procs = {
            "validator": Proc("validator", py + ["validator", *base, "--min-peers", str(len(on_time)),
                                                 *validator_args], out / "logs" / "validator.log")
        }
        self.resume_argv = py + ["validator", *base, "--resume"]
        for name, kind in self.kinds.items():
            argv = py + ["peer", "--store", store_url, "--validator", self.validator.hex,
                         "--key", str(keys / f"{name}.key"), "--workdir", str(out / "peers" / name)]
            self.procs[name] = Proc(name, argv + ([] if kind == "honest" else ["--adversary", kind]),
                                    out / "logs" / f"{name}.log",
                                    env=dict(self.plans[name].env) if name in self.plans else {})
        self.on_time = on_time

    def start(self) -> None:
        self.procs["validator"].start(self.env)
        for name in self.on_time:
            self.procs[name].start(self.env)

    def follow_schedule(self, window: int, echo: TextIO) -> None:
        """Late joins, crashes and restarts due by `window`."""
        for name, plan in self.plans.items():
            proc = self.procs[name]
            if plan.join_window > 0 and window >= plan.join_window and proc.popen is None:
                proc.start(self.env)
                proc.events.append(f"joined at window {window}")
                print(f"  {name} joins late at window {window}", file=echo)
            if plan.crash_window is not None and window >= plan.crash_window and proc.alive() \
                    and not proc.happened("killed"):
                proc.kill()
                proc.events.append(f"killed at window {window}")
                print(f"  {name} killed (SIGKILL) at window {window}", file=echo)
            if plan.restart_window is not None and window >= plan.restart_window and not proc.alive() \
                    and proc.happened("killed") and not proc.happened("restarted"):
                proc.start(self.env)
                proc.events.append(f"restarted at window {window}")
                print(f"  {name} restarted at window {window}", file=echo)
        v = self.procs["validator"]
        if self.restart_validator is not None and window >= self.restart_validator and v.alive() \
                and not v.events:
            v.kill()
            v.events.append(f"killed at window {window}")
            print(f"  validator killed (SIGKILL) at window {window}; resuming", file=echo)
            v.argv = self.resume_argv
            v.start(self.env)
            v.events.append("resumed from its ledger")

    def validator_done(self) -> bool:
        v = self.procs["validator"]
        if v.alive():
            return False
        assert v.popen is not None
        if v.popen.returncode != 0:
            raise RuntimeError(f"validator exited with {v.popen.returncode}; see {v.log}")
        return True

    def stop(self, grace: float) -> None:
        """Let peers finish on their own (they do once the last window is decided), then kill."""
        wait_until = time.time() + grace
        for p in self.procs.values():
            while p.alive() and time.time() < wait_until:
                time.sleep(0.1)
        for p in self.procs.values():
            p.kill()
            if p.handle:
                p.handle.close()


def run_network(
    *,
    peers: int,
    windows: int,
    preset: str,
    out: Path,
    store_url: str | None = None,
    window_seconds: float | None = None,
    aggregation: str = "all",
    outer_lr: float | None = None,
    plans: list[PeerPlan] | None = None,
    adversaries: list[str] | None = None,
    restart_validator: int | None = None,
    dishonest_validator: str | None = None,
    echo: TextIO = sys.stdout,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    service = None
    if store_url is None:
        # The embedded default: a store service over OUT/store, so that arrival times and
        # write access are the service's, not whatever a peer process does to a folder.
        if (out / "store").exists() and any((out / "store").iterdir()):
            raise ValueError(f"{out / 'store'} already holds a run; choose a new --out")
        validator_id = Identity.load_or_create(out / "keys" / "validator.key").hex
        store_url, service = start_store_server(out / "store", validator_id)
    store = open_store(store_url)
    if store.head(RUN_KEY) is not None:
        raise ValueError(f"store {store_url} already holds a run; choose a new --out or --store")
    vargs = ["--preset", preset, "--windows", str(windows), "--aggregation", aggregation]
    vargs += ["--window-seconds", str(window_seconds)] if window_seconds is not None else []
    vargs += ["--outer-lr", str(outer_lr)] if outer_lr is not None else []
    adversaries = adversaries or []
    net = LocalNetwork(out, store_url, vargs, peers, adversaries, plans or [], restart_validator,
                       dishonest_validator)

    started = time.time()
    try:
        return _watch(net, store, out, peers=peers, windows=windows, preset=preset, adversaries=adversaries,
                      store_url=store_url, started=started, echo=echo)
    finally:
        if service is not None:
            service.kill()
            service.wait()


def _watch(net: LocalNetwork, store: Store, out: Path, *, peers: int, windows: int, preset: str,
           adversaries: list[str], store_url: str, started: float, echo: TextIO) -> dict[str, Any]:
    net.start()
    print(f"spore swarm: {peers} honest peers, {len(adversaries)} adversaries, {windows} windows, "
          f"preset {preset}, store {store_url}", file=echo)
    manifest: RunManifest | None = None
    shown = 0
    try:
        while not net.validator_done():
            if manifest is None:
                body = _read_signed(store, RUN_KEY, net.validator.id)
                if body is not None:
                    manifest = RunManifest.from_json(body)
                    print(f"run {manifest.run_id} opened; window 0 starts in "
                          f"{max(0.0, manifest.t0 - time.time()):.1f}s "
                          f"(initial eval loss {manifest.extra['initial_eval_loss']:.4f})", file=echo)
            if manifest is not None:
                net.follow_schedule(manifest.window_at(time.time()), echo)
                while shown < windows and (rec := _read_signed(store, record_key(shown), net.validator.id)):
                    sizes = [s["bytes"] for s in rec["submissions"]]
                    print(f"window {shown} ({shown + 1}/{windows})  eval loss {rec['eval_loss']:.4f}  "
                          f"submissions {len(sizes)}  rejected {len(rec['rejected'])}  "
                          f"wire {_fmt_bytes(statistics.median(sizes)) if sizes else '-'}/peer", file=echo, flush=True)
                    shown += 1
            time.sleep(0.25)
    finally:
        net.stop(grace=60)

    assert manifest is not None
    summary = summarize(store, manifest, net.validator.id, peers=peers, ids=net.ids, kinds=net.kinds,
                        procs=net.procs)
    summary["wall_seconds"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, out)
    if summary["windows_without_training"]:
        print(f"WARNING: windows {summary['windows_without_training']} passed without any honest update "
              "applied (peers too slow or missing?); the run is incomplete", file=echo)
    print(
        f"done: eval loss {summary['initial_eval_loss']:.4f} -> {summary['final_eval_loss']:.4f}, "
        f"{_fmt_bytes(summary['wire_bytes_per_peer_window'])} per update vs "
        f"{_fmt_bytes(summary['dense_fp32_bytes'])} dense ({summary['compression_ratio']:.1f}x), "
        f"theta consistent: {summary['theta_consistent']}, honest retention {_fmt_share(summary['honest_retention'])}"
        f"; wrote {out / 'summary.json'}",
        file=echo,
    )
    return summary


def summarize(
    store: Store,
    m: RunManifest,
    validator: bytes,
    *,
    peers: int,
    ids: dict[str, str],
    kinds: dict[str, str],
    procs: dict[str, Proc],
) -> dict[str, Any]:
    """Everything in summary.json comes from signed objects in the store."""
    from spore import model as M
    from spore.swarm import codec

    records = [_read_signed(store, record_key(w), validator) for w in range(m.windows)]
    missing = [w for w, r in enumerate(records) if r is None]
    if missing:
        raise RuntimeError(f"the validator published no record for windows {missing}")
    ck0 = _read_signed(store, checkpoint_keys(0)[1], validator)
    assert ck0 is not None
    expected_theta = [ck0["theta"]] + [r["theta"] for r in records]  # type: ignore[index]

    layout = M.parameter_layout(M.build_model(m.model))
    dense = 4 * sum(c.numel for c in codec.plan_layout(layout, m.codec))
    sizes = [s["bytes"] for r in records for s in r["submissions"]]  # type: ignore[index]
    wire = statistics.median(sizes) if sizes else 0

    honest = {ids[n] for n, k in kinds.items() if k == "honest"}
    per_window: list[dict[str, Any]] = []
    consistent, reports = True, 0
    mismatches: list[str] = []
    for w in range(m.windows + 1):
        statuses = []
        for info in store.list(status_prefix(w)):
            body = _read_signed(store, info.key, None)
            if body is not None and info.key.endswith(f"{body.get('peer')}.json"):
                statuses.append(body)
        for s in statuses:
            if s["peer"] not in honest:
                continue  # adversaries report whatever they like
            reports += 1
            if s["theta"] != expected_theta[w]:
                consistent = False
                mismatches.append(f"peer {s['peer'][:12]} window {w}")
        if w < m.windows:
            rec = records[w]
            assert rec is not None
            losses = [s["train_loss"] for s in statuses if s.get("train_loss") is not None and s["peer"] in honest]
            per_window.append({
                "window": w,
                "eval_loss": rec["eval_loss"],
                "submissions": len(rec["submissions"]),
                "rejected": [{"peer": x["peer"][:16], "reason": x["reason"]} for x in rec["rejected"]],
                "train_loss_mean": statistics.fmean(losses) if losses else None,
                "wire_bytes": [s["bytes"] for s in rec["submissions"]],
                "peers_reporting": len(statuses),
                "gather": rec.get("gather"),
                "ranks": {p: [r["final"], r["ordinal"]] for p, r in rec.get("ratings", {}).items()},
            })
    last = records[-1]
    assert last is not None
    kind_of = {ids[n]: kinds[n] for n in ids}
    ratings = last.get("ratings", {})
    ranking = sorted(
        (
            {
                "id": pid, "name": n, "kind": kinds[n],
                "ordinal": ratings.get(pid, {}).get("ordinal"),
                "final_score": ratings.get(pid, {}).get("final", 0.0),
                "weight": last.get("weights", {}).get(pid, 0.0),
                "windows_in_gather": ratings.get(pid, {}).get("state", {}).get("windows_in_gather", 0),
            }
            for n, pid in ids.items()
        ),
        key=lambda r: (-r["final_score"], -(r["ordinal"] or -1e9), r["name"]),
    )
    for place, r in enumerate(ranking, 1):
        r["rank"] = place
    adversary_hits = sum(
        1 for r in records[m.warmup_windows :] for p in (r or {}).get("gather") or [] if kind_of.get(p, "?") != "honest"
    )
    fairness = fairness_figures(records, m, honest, kind_of)  # type: ignore[arg-type]
    return {
        "run_id": m.run_id,
        "preset": m.preset,
        "peers": peers,
        "windows": m.windows,
        "window_seconds": m.window_seconds,
        "parameters": dense // 4,
        "initial_eval_loss": m.extra["initial_eval_loss"],
        "final_eval_loss": records[-1]["eval_loss"],  # type: ignore[index]
        "wire_bytes_per_peer_window": wire,
        "dense_fp32_bytes": dense,
        "compression_ratio": dense / wire if wire else 0.0,
        "index_coding": "elias-fano" if m.index_coding == 1 else "plain-12bit",
        "aggregation": m.aggregation,
        "theta_consistent": consistent and reports > 0,
        "theta_reports": reports,
        "theta_mismatches": mismatches,
        "warmup_windows": m.warmup_windows,
        "ranking": ranking,
        "adversaries_in_gather_after_warmup": adversary_hits,
        **fairness,
        "rejections": sorted({(x["peer"], x["reason"]) for r in records for x in r["rejected"]}),  # type: ignore[index]
        "events": {name: p.events for name, p in procs.items() if p.events},
        "per_window": per_window,
    }


def plot(summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pw = summary["per_window"]
    xs = [p["window"] + 1 for p in pw]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, *xs], [summary["initial_eval_loss"]] + [p["eval_loss"] for p in pw], marker="o")
    ax.set_xlabel("window")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("held-out loss (nats/byte)")
    ax.set_title(f"spore swarm: {summary['peers']} peers, preset {summary['preset']}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "eval_loss.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = {r["id"]: f"{r['name']} ({r['kind']})" for r in summary["ranking"]}
    colors = plt.get_cmap("tab20").colors
    for i, (pid, label) in enumerate(names.items()):
        order = []
        for p in pw:
            scores = p["ranks"]  # peer -> [final score, ordinal]; ties on 0 broken by ordinal
            ranked = sorted(scores, key=lambda q: (-scores[q][0], -scores[q][1], q))
            order.append(ranked.index(pid) + 1 if pid in scores else None)
        style = "-" if "honest" in label else "--"
        ax.plot(xs, order, style, marker="o", label=label, color=colors[i % len(colors)])
    ax.invert_yaxis()
    ax.set_xlabel("window")
    ax.set_ylabel("rank (final score, then ordinal; 1 = best)")
    ax.set_title("validator ranking over windows")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(out / "ranks.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    med = [statistics.median(p["wire_bytes"]) if p["wire_bytes"] else 0 for p in pw]
    ax.bar(xs, med, label="SparseLoCo update (median per peer)")
    ax.axhline(summary["dense_fp32_bytes"], color="C3", linestyle="--", label="dense fp32")
    ax.set_yscale("log")
    ax.set_xlabel("window")
    ax.set_ylabel("bytes sent per peer")
    ax.set_title(f"{summary['compression_ratio']:.0f}x smaller than dense")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bytes.png", dpi=100)
    plt.close(fig)


def fairness_figures(
    records: list[dict[str, Any]], m: RunManifest, honest: set[str], kind_of: dict[str, str]
) -> dict[str, Any]:
    """How the validator treated honest peers and adversaries, from its signed records.

    honest_retention     share of honest peers' valid updates after the warm-up that were aggregated
    honest_pass_rate     share of honest peers' measured windows with outcome +1
    windows_without_training   windows in which no honest update was applied
    adversary_zero_weight_after   per adversary id: the first window after which its weight stayed 0
    """
    kept = offered = passed = measured = 0
    lost: list[int] = []
    for r in records:
        w = r["window"]
        subs = {s["peer"] for s in r["submissions"]} & honest
        used = set(r["aggregated"]) & honest
        if not used:
            lost.append(w)
        for p, sc in r["scores"].items():
            if p in honest and sc.get("own_before") is not None:
                measured += 1
                passed += sc.get("outcome") == 1
        if w >= m.warmup_windows:
            offered += len(subs)
            kept += len(subs & used)
    zero_after: dict[str, int | None] = {}
    for pid, kind in kind_of.items():
        if kind == "honest":
            continue
        last_positive = max((r["window"] for r in records if r.get("weights", {}).get(pid, 0.0) > 0), default=-1)
        zero_after[pid] = last_positive + 1
    return {
        "honest_retention": kept / offered if offered else None,
        "honest_pass_rate": passed / measured if measured else None,
        "windows_without_training": lost,
        "adversary_zero_weight_after": zero_after,
        "validation_seconds_per_window": statistics.median(r["measure_seconds"] for r in records) if records else None,
    }


def run_ok(summary: dict[str, Any]) -> bool:
    """A run succeeded when every honest peer held the shared theta and every window trained."""
    return bool(summary["theta_consistent"]) and not summary["windows_without_training"]
