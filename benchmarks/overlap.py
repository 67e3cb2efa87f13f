"""How similar honest SparseLoCo updates are, and how similar cheats are: the
calibration behind spore.swarm.similarity's thresholds.

Honest updates are produced in one process, without the network, exactly as
peers make them: the `tiny` preset, several peers starting from the same
theta, each H inner AdamW steps on its own public batches (peer_batches),
pseudo-gradient -> error feedback -> top-k + 2-bit codes, and theta moved by
the aggregate each window (mean over all, codec.outer_step). From window 1 on
it measures, over every honest update:

    pair overlap      share of one update's kept positions the other kept too
    pair cosine       exact cosine of two same-window updates (the copy test)
    cos prev agg      |cosine| to the previous window's aggregate
    cos own prev      |cosine| to the same peer's previous update
    cos others prev   largest |cosine| to another peer's previous update
    restatement       similarity.restatement against all public references:
                      the previous aggregate and every previous-window update

and the same for cheats built from those honest updates, the way an attacker
who read the protocol would (never from our built-in adversaries):

    copy+noise30      a victim's update + dense N(0, (0.3 max|v|)^2) noise, re-compressed
    copy+noise50      the same with 50% noise
    copy reselect     a random half of the victim's entries kept, plus 30% noise, re-compressed
    replay aggregate  the previous aggregate, re-compressed (the issue's free-rider)
    replay update     a previous-window update (own or another's) sent again
    replay update+30  a previous update + 30% noise, re-compressed
    agg+update mix    (prev aggregate + a previous update) / 2, re-compressed

Thresholds are the honest maximum plus a stated margin; the table prints
each cheat's smallest value minus the threshold (> 0: every instance caught).
It also times sketching and candidate search for 400 updates of the `small`
layout, against the old all-pairs overlap on a sample.

    python benchmarks/overlap.py             # tiny, 4 peers x 8 windows x H=8, about a minute
    python benchmarks/overlap.py --quick     # 3 peers x 4 windows

Writes benchmarks/results/overlap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from spore import model as M
from spore.data import load_corpus, peer_batches
from spore.swarm import codec, similarity
from spore.swarm.identity import Identity

RESULTS = Path(__file__).resolve().parent / "results"
MARGIN = 0.15  # absolute margin above the largest honest value


# ---------------------------------------------------------------------------
# Honest SparseLoCo, in process


def honest_run(preset: str, peers: int, windows: int, seed: int):
    """Per window: the honest updates (peer order) and the aggregate that moved theta."""
    pre = M.get_preset(preset)
    t, p = pre.train, codec.CodecParams(chunk=pre.train.chunk, topk=pre.train.topk)
    corpus = load_corpus()
    model = M.build_model(pre.model)
    plans = codec.plan_layout(M.parameter_layout(model), p)
    ids = [Identity.from_seed(bytes([seed, i]) * 16).id for i in range(peers)]
    run_seed = bytes([seed]) * 32
    opts = [
        torch.optim.AdamW(model.parameters(), lr=t.inner_lr, betas=t.betas, weight_decay=t.weight_decay)
        for _ in range(peers)
    ]
    residuals = [[torch.zeros_like(q) for q in model.parameters()] for _ in range(peers)]
    history = []
    for w in range(windows):
        theta = [q.detach().clone() for q in model.parameters()]
        updates = []
        for i in range(peers):
            model.train()
            for batch in peer_batches(corpus, run_seed, ids[i], w, t.inner_steps, t.batch_size, t.seq_len):
                loss = M.lm_loss(model, batch)
                opts[i].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opts[i].step()
            with torch.no_grad():
                pseudo_gradient = [q0 - q.detach() for q, q0 in zip(model.parameters(), theta, strict=True)]
                for q, q0 in zip(model.parameters(), theta, strict=True):
                    q.copy_(q0)
            update, residuals[i] = codec.error_feedback_step(residuals[i], pseudo_gradient, t.beta, plans, p)
            updates.append(update)
        agg = codec.aggregate(updates, p, "all")
        with torch.no_grad():
            for q, a in zip(model.parameters(), agg, strict=True):
                codec.outer_step(q, a, t.outer_lr)
        history.append((updates, agg))
        print(f"  window {w}: last inner loss {float(loss.detach()):.3f}", flush=True)
    return history, p


# ---------------------------------------------------------------------------
# Cheats, as an attacker who read the protocol would build them


def recompress(tensors: list[torch.Tensor], p: codec.CodecParams) -> codec.Update:
    return [codec.compress(x, codec.plan_tensor(tuple(x.shape), p), p) for x in tensors]


def with_noise(dense: list[torch.Tensor], level: float, g: torch.Generator) -> list[torch.Tensor]:
    return [x + torch.randn(x.shape, generator=g) * level * float(x.abs().max()) for x in dense]


def decoded(u: codec.Update, p: codec.CodecParams) -> list[torch.Tensor]:
    return [codec.decompress(x, p) for x in u]


def cheats(history, w: int, p: codec.CodecParams, g: torch.Generator) -> dict[str, list[tuple]]:
    """Cheats of window w: {kind: [(update, victim update or None), ...]}."""
    updates, _ = history[w]
    prev_updates, prev_agg = history[w - 1]
    out: dict[str, list[tuple]] = {k: [] for k in (
        "copy+noise30", "copy+noise50", "copy reselect", "replay aggregate",
        "replay update", "replay update+30", "agg+update mix")}
    for v in updates:
        dv = decoded(v, p)
        out["copy+noise30"].append((recompress(with_noise(dv, 0.3, g), p), v))
        out["copy+noise50"].append((recompress(with_noise(dv, 0.5, g), p), v))
        half = [x * (torch.rand(x.shape, generator=g) < 0.5) for x in dv]
        out["copy reselect"].append((recompress(with_noise(half, 0.3, g), p), v))
    out["replay aggregate"].append((recompress([a.clone() for a in prev_agg], p), None))
    for u in prev_updates:
        du = decoded(u, p)
        out["replay update"].append((u, None))
        out["replay update+30"].append((recompress(with_noise(du, 0.3, g), p), None))
        out["agg+update mix"].append((recompress([(a + x) / 2 for a, x in zip(prev_agg, du, strict=True)], p), None))
    return out


# ---------------------------------------------------------------------------
# Measurements


def stats(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, dtype=np.float64)
    return {"n": len(xs), "min": float(a.min()), "median": float(np.median(a)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def measure(history, p: codec.CodecParams, seed: int) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    g = torch.Generator().manual_seed(seed)
    vec = similarity.vector
    honest: dict[str, list[float]] = {k: [] for k in (
        "pair overlap", "pair cosine", "cos prev agg", "cos own prev", "cos others prev", "restatement")}
    cheat: dict[str, dict[str, list[float]]] = {}
    caught: dict[str, list[bool]] = defaultdict(list)
    for w in range(1, len(history)):
        updates, _ = history[w]
        prev_updates, prev_agg = history[w - 1]
        now = [vec(u, p) for u in updates]
        before = [vec(u, p) for u in prev_updates]
        agg_v = similarity.dense_vector(prev_agg, p)
        public = [agg_v, *before]
        for i, a in enumerate(now):
            for j, b in enumerate(now):
                if i != j:
                    honest["pair overlap"].append(similarity.index_overlap(a, b))
                if i < j:
                    honest["pair cosine"].append(similarity.cosine(a, b))
            honest["cos prev agg"].append(abs(similarity.cosine(a, agg_v)))
            honest["cos own prev"].append(abs(similarity.cosine(a, before[i])))
            honest["cos others prev"].append(max(abs(similarity.cosine(a, b)) for j, b in enumerate(before) if j != i))
            honest["restatement"].append(similarity.restatement(a, public, p))
        # End to end, as the validator would run it: the window's honest updates
        # (plus one cheat at a time, arriving last) through find_copies.
        names = {f"peer{i}": a for i, a in enumerate(now)}
        arrival = {k: float(i) for i, k in enumerate(names)}
        flagged = similarity.find_copies(names, arrival, p)
        caught["honest flagged as copy"] += [k in flagged for k in names]
        caught["honest flagged as restatement"] += [
            r >= similarity.RESTATEMENT_THRESHOLD for r in honest["restatement"][-len(now):]]
        for kind, items in cheats(history, w, p, g).items():
            c = cheat.setdefault(kind, {"cosine to victim": [], "overlap with victim": [], "restatement": []})
            for u, victim in items:
                x = vec(u, p)
                r = similarity.restatement(x, public, p)
                c["restatement"].append(r)
                if victim is None:
                    caught[kind].append(r >= similarity.RESTATEMENT_THRESHOLD)
                    continue
                v = vec(victim, p)
                c["cosine to victim"].append(similarity.cosine(x, v))
                c["overlap with victim"].append(similarity.index_overlap(x, v))
                found = similarity.find_copies({**names, "zcheat": x}, {**arrival, "zcheat": 99.0}, p)
                owner = next(i for i, u2 in enumerate(updates) if u2 is victim)
                caught[kind].append(found.get("zcheat") == f"peer{owner}")
    out = {"honest": honest, **{f"cheat/{k}": v for k, v in cheat.items()}}
    return out, {k: f"{sum(v)}/{len(v)}" for k, v in caught.items()}


# ---------------------------------------------------------------------------
# Timing on the `small` layout


def synthetic_updates(n: int, preset: str, seed: int) -> tuple[list[codec.Update], codec.CodecParams]:
    """n random valid updates: per chunk a random cyclic shift of a random 64-position set."""
    p = codec.CodecParams()
    plans = codec.plan_layout(M.parameter_layout(M.build_model(M.get_preset(preset).model)), p)
    rng = np.random.default_rng(seed)
    base = np.sort(rng.choice(p.chunk, p.topk, replace=False))
    out = []
    for _ in range(n):
        upd = []
        for pl in plans:
            if pl.mode == codec.DENSE:
                values = torch.from_numpy(rng.standard_normal(pl.shape).astype(np.float32))
                upd.append(codec.TensorUpdate(pl, values=values))
                continue
            idx = np.sort((base[None, :] + rng.integers(0, p.chunk, (pl.full_chunks, 1))) % p.chunk, axis=1)
            tidx = np.sort(rng.choice(pl.tail, pl.k_tail, replace=False))[None, :] if pl.tail else np.zeros((0, 0))
            lo, hi = sorted(rng.uniform(1e-3, 1e-2, 2))

            def codes(shape: tuple[int, ...]) -> torch.Tensor:
                return torch.from_numpy(rng.integers(0, 4, shape).astype(np.uint8))

            upd.append(codec.TensorUpdate(
                pl, torch.from_numpy(idx.astype(np.int64)), codes(idx.shape),
                torch.from_numpy(tidx.astype(np.int64)), codes(tidx.shape),
                torch.tensor([-hi, -lo, lo, hi], dtype=torch.float32)))
        out.append(upd)
    return out, p


def timing(n: int, preset: str, old_sample: int) -> dict[str, float]:
    updates, p = synthetic_updates(n, preset, 0)
    g = torch.Generator().manual_seed(1)
    names = [f"{i:04d}" for i in range(n)]
    planted = {}  # copier index -> victim index: 30%-noise copies and re-selected half copies
    for j in range(min(8, n // 4)):
        victim, copier = j, n - 1 - j
        dense = decoded(updates[victim], p)
        if j % 2:
            dense = [x * (torch.rand(x.shape, generator=g) < 0.5) for x in dense]
        updates[copier] = recompress(with_noise(dense, 0.3, g), p)
        planted[names[copier]] = names[victim]
    t0 = time.perf_counter()
    vectors = {k: similarity.vector(u, p) for k, u in zip(names, updates, strict=True)}
    t1 = time.perf_counter()
    sketches = similarity.sketch_all(vectors, p)
    t2 = time.perf_counter()
    pairs = similarity.candidate_pairs(sketches)
    t3 = time.perf_counter()
    copies = similarity.find_copies(vectors, {k: float(i) for i, k in enumerate(names)}, p)
    t4 = time.perf_counter()
    # The old detector: exact overlap of every pair, on a sample, scaled by the pair count.
    sets = []
    for u in updates[:old_sample]:
        per = []
        for x in u:
            if x.plan.mode == codec.DENSE:
                per.append(set())
                continue
            flat = (np.arange(x.indices.shape[0])[:, None] * p.chunk + x.indices.numpy()).reshape(-1)
            tail = x.plan.full_chunks * p.chunk + x.tail_indices.numpy().reshape(-1)
            per.append(set(flat.tolist()) | set(tail.tolist()))
        sets.append(per)
    t5 = time.perf_counter()
    _pairwise_find_copies({f"{i}": s for i, s in enumerate(sets)}, {f"{i}": float(i) for i in range(len(sets))},
                        [pl.numel for pl in (x.plan for x in updates[0])], 0.75)
    old = (time.perf_counter() - t5) * (n * (n - 1)) / (old_sample * (old_sample - 1))
    return {
        "updates": n, "preset": preset, "kept_per_update": int(vectors[names[0]].ids.size),
        "vector_s": t1 - t0, "sketch_s": t2 - t1, "candidates_s": t3 - t2,
        "sketch_and_candidates_s": t3 - t1, "find_copies_total_s": t4 - t0,
        "candidate_pairs": len(pairs), "all_pairs": n * (n - 1) // 2,
        "planted_copies": len(planted),
        "planted_copies_found": sum(copies.get(c) == v for c, v in planted.items()),
        "planted_copies_candidates": sum((min(c, v), max(c, v)) in pairs for c, v in planted.items()),
        "planted_copies_at_or_above_threshold": sum(
            similarity.cosine(vectors[c], vectors[v]) >= similarity.COPY_THRESHOLD for c, v in planted.items()),
        "false_copies": sum(c not in planted for c in copies),
        "old_all_pairs_overlap_s_extrapolated": old, "old_sample": old_sample,
        "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count(),
    }


# ---------------------------------------------------------------------------


# The all-pairs exact overlap check the validator used before similarity.py, kept here to time it.

def _index_overlap(a: Sequence[set[int]], b: Sequence[set[int]], sizes: Sequence[int]) -> float:
    """Share of a's kept positions that b kept too, per tensor, weighted by tensor size."""
    total = sum(sizes)
    if total == 0:
        return 0.0
    acc = 0.0
    for sa, sb, n in zip(a, b, sizes, strict=True):
        if sa:
            acc += n * len(sa & sb) / len(sa)
    return acc / total


def _pairwise_find_copies(
    positions: Mapping[str, Sequence[set[int]]],
    stored_at: Mapping[str, float],
    sizes: Sequence[int],
    threshold: float,
) -> dict[str, str]:
    """{offender: original} for every pair overlapping at least `threshold`.

    The later upload is the offender (it could have read the earlier one);
    on equal store timestamps both are marked, since neither can be cleared.
    """
    peers = sorted(positions)
    out: dict[str, str] = {}
    for i, a in enumerate(peers):
        for b in peers[i + 1 :]:
            ov = max(_index_overlap(positions[a], positions[b], sizes),
                     _index_overlap(positions[b], positions[a], sizes))
            if ov < threshold:
                continue
            if stored_at[a] > stored_at[b]:
                out.setdefault(a, b)
            elif stored_at[b] > stored_at[a]:
                out.setdefault(b, a)
            else:
                out.setdefault(a, b)
                out.setdefault(b, a)
    return out

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timing-updates", type=int, default=400)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "overlap.json")
    args = ap.parse_args()
    if args.quick:
        args.peers, args.windows, args.timing_updates = 3, 4, 100
    started = time.perf_counter()
    print(f"honest run: preset {args.preset}, {args.peers} peers, {args.windows} windows", flush=True)
    history, p = honest_run(args.preset, args.peers, args.windows, args.seed)
    data, caught = measure(history, p, args.seed)
    table = {group: {k: stats(v) for k, v in metrics.items() if v} for group, metrics in data.items()}
    h = table["honest"]
    thresholds = {
        "copy (pair cosine)": {"honest_max": h["pair cosine"]["max"], "margin": MARGIN,
                               "threshold": h["pair cosine"]["max"] + MARGIN,
                               "in_code": similarity.COPY_THRESHOLD},
        "restatement": {"honest_max": h["restatement"]["max"], "margin": MARGIN,
                        "threshold": h["restatement"]["max"] + MARGIN,
                        "in_code": similarity.RESTATEMENT_THRESHOLD},
    }
    print(f"\n{'group':<26}{'metric':<22}{'n':>5}{'min':>8}{'median':>8}{'p99':>8}{'max':>8}{'margin':>9}")
    for group, metrics in table.items():
        for metric, s in metrics.items():
            margin = ""
            if group.startswith("cheat/"):
                # A copy must fail the copy test; a replay (no victim) the restatement test.
                test = "cosine to victim" if "cosine to victim" in metrics else "restatement"
                limit = {"cosine to victim": similarity.COPY_THRESHOLD,
                         "restatement": similarity.RESTATEMENT_THRESHOLD}[test] if metric == test else None
                if limit is not None:
                    s["min_minus_threshold"] = s["min"] - limit
                    margin = f"{s['min'] - limit:+.3f}"
            print(f"{group:<26}{metric:<22}{s['n']:>5}{s['min']:>8.3f}{s['median']:>8.3f}"
                  f"{s['p99']:>8.3f}{s['max']:>8.3f}{margin:>9}")
    print("\ncaught end to end (find_copies over the window's updates; restatement >= threshold):")
    for kind, frac in caught.items():
        print(f"  {kind:<32}{frac:>8}")
    print("\nthresholds (honest max + margin; the constants in similarity.py):")
    for name, t in thresholds.items():
        print(f"  {name:<20} honest max {t['honest_max']:.3f} + {t['margin']} = {t['threshold']:.3f}"
              f"  (in code: {t['in_code']})")
    print(f"\ntiming: {args.timing_updates} updates of the small layout", flush=True)
    tm = timing(args.timing_updates, "small", old_sample=min(60, args.timing_updates))
    print(f"  sketch {tm['sketch_s']:.2f}s + candidates {tm['candidates_s']:.2f}s"
          f" = {tm['sketch_and_candidates_s']:.2f}s"
          f" (decode to vectors {tm['vector_s']:.2f}s); {tm['candidate_pairs']} of {tm['all_pairs']} pairs verified;"
          f" find_copies total {tm['find_copies_total_s']:.2f}s;"
          f" planted copies found {tm['planted_copies_found']}/{tm['planted_copies']}"
          f" ({tm['planted_copies_candidates']} reached verification,"
          f" {tm['planted_copies_at_or_above_threshold']} at or above the threshold),"
          f" false copies: {tm['false_copies']}")
    print(f"  old all-pairs overlap: {tm['old_all_pairs_overlap_s_extrapolated']:.1f}s"
          f" (extrapolated from {tm['old_sample']} updates); load average {tm['load_average_1m']:.1f}"
          f" on {tm['cpus']} CPUs")
    doc = {"preset": args.preset, "peers": args.peers, "windows": args.windows,
           "inner_steps": M.get_preset(args.preset).train.inner_steps, "seed": args.seed, "margin": MARGIN,
           "stats": table, "caught": caught, "thresholds": thresholds, "timing": tm,
           "seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
