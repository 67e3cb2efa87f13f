"""Convergence: dense data-parallel AdamW vs DiLoCo vs SparseLoCo, same budget.

Same model, data (the public sampler), peers and total inner steps for every
method; R peers are simulated in one process (the algorithms, not the
network, are under test). Reports held-out loss and bytes each peer sends.

    python benchmarks/convergence.py                 # tiny preset, 4 peers, 40 windows x 10 steps
    python benchmarks/convergence.py --quick         # a smoke run

Writes benchmarks/results/convergence.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from spore import model as M
from spore.data import eval_batches, load_corpus, peer_batches
from spore.swarm import codec, wire

RESULTS = Path(__file__).resolve().parent / "results"


def make_peers(base: torch.nn.Module, n: int, t: M.TrainConfig):
    peers = []
    for _ in range(n):
        m = copy.deepcopy(base)
        opt = torch.optim.AdamW(m.parameters(), lr=t.inner_lr, betas=t.betas, weight_decay=t.weight_decay)
        peers.append((m, opt))
    return peers


def inner_steps(m: torch.nn.Module, opt: torch.optim.Optimizer, batches, t: M.TrainConfig) -> None:
    m.train()
    for b in batches:
        loss = M.lm_loss(m, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), t.grad_clip)
        opt.step()


def run_method(method: str, args, corpus, evals, seed: bytes) -> dict:
    preset = M.get_preset(args.preset)
    t = replace(preset.train, inner_steps=args.inner_steps)
    theta = M.build_model(preset.model)
    ids = [bytes([i]) * 32 for i in range(args.peers)]
    n_params = sum(p.numel() for p in theta.parameters())
    dense_bytes = 4 * n_params
    curve = [M.eval_loss(theta, evals)]
    sent = 0
    start = time.time()

    def batches(peer: int, w: int):
        return peer_batches(corpus, seed, ids[peer], w, t.inner_steps, t.batch_size, t.seq_len)

    if method == "adamw":
        opt = torch.optim.AdamW(theta.parameters(), lr=t.inner_lr, betas=t.betas, weight_decay=t.weight_decay)
        for w in range(args.windows):
            per_peer = [batches(r, w) for r in range(args.peers)]
            theta.train()
            for s in range(t.inner_steps):
                opt.zero_grad(set_to_none=True)
                for r in range(args.peers):  # all-reduce: the mean gradient over peers, every step
                    (M.lm_loss(theta, per_peer[r][s]) / args.peers).backward()
                torch.nn.utils.clip_grad_norm_(theta.parameters(), t.grad_clip)
                opt.step()
                sent += dense_bytes
            curve.append(M.eval_loss(theta, evals))
    else:
        peers = make_peers(theta, args.peers, t)
        plans = codec.plan_layout(M.parameter_layout(theta), codec.CodecParams())
        residuals = [[torch.zeros_like(p) for p in theta.parameters()] for _ in range(args.peers)]
        outer = None
        if method == "diloco":
            outer = torch.optim.SGD(theta.parameters(), lr=args.diloco_lr, momentum=0.9, nesterov=True)
        for w in range(args.windows):
            deltas = []
            for r, (m, opt) in enumerate(peers):
                with torch.no_grad():
                    for p, q in zip(m.parameters(), theta.parameters(), strict=True):
                        p.copy_(q)
                inner_steps(m, opt, batches(r, w), t)
                with torch.no_grad():
                    deltas.append([q - p for p, q in zip(m.parameters(), theta.parameters(), strict=True)])
            with torch.no_grad():
                if method == "diloco":
                    assert outer is not None
                    for j, q in enumerate(theta.parameters()):
                        q.grad = sum(d[j] for d in deltas) / args.peers
                    outer.step()
                    outer.zero_grad(set_to_none=True)
                    sent += dense_bytes
                else:
                    updates = []
                    for r in range(args.peers):
                        u, residuals[r] = codec.error_feedback_step(
                            residuals[r], deltas[r], t.beta, plans, codec.CodecParams()
                        )
                        updates.append(u)
                    agg = codec.aggregate(updates, codec.CodecParams(), mean=method.split("-")[1])
                    for q, a in zip(theta.parameters(), agg, strict=True):
                        q.sub_(a, alpha=args.outer_lr)
                    sent += wire.expected_size(plans, codec.CodecParams(), wire.ELIAS_FANO)
            curve.append(M.eval_loss(theta, evals))
    return {
        "method": method,
        "final_eval_loss": curve[-1],
        "eval_curve": curve,
        "bytes_sent_per_peer": sent,
        "seconds": round(time.time() - start, 1),
        "parameters": n_params,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--inner-steps", type=int, default=10)
    ap.add_argument("--outer-lr", type=float, default=1.0, help="SparseLoCo outer lr alpha")
    ap.add_argument("--diloco-lr", type=float, default=0.7)
    ap.add_argument("--methods", default="adamw,diloco,sparseloco-all,sparseloco-chosen")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "convergence.json")
    args = ap.parse_args()
    if args.quick:
        args.windows, args.inner_steps = 4, 4
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    corpus = load_corpus()
    t = M.get_preset(args.preset).train
    evals = eval_batches(corpus, 64, t.seq_len, t.batch_size)
    seed = b"convergence-benchmark"
    results = []
    for method in args.methods.split(","):
        results.append(run_method(method, args, corpus, evals, seed))
        r = results[-1]
        print(f"  {method}: final loss {r['final_eval_loss']:.4f} in {r['seconds']}s", flush=True)
    by = {r["method"]: r for r in results}
    print(f"{args.peers} peers, {args.windows} windows x {args.inner_steps} inner steps, preset {args.preset}")
    print(f"{'method':<20}{'final loss':>12}{'vs DiLoCo':>11}{'vs AdamW':>10}{'bytes/peer':>14}{'DiLoCo/ours':>13}")
    for r in results:
        d, a = by.get("diloco"), by.get("adamw")
        rel_d = f"{r['final_eval_loss'] / d['final_eval_loss'] - 1:+.1%}" if d else "-"
        rel_a = f"{r['final_eval_loss'] / a['final_eval_loss'] - 1:+.1%}" if a else "-"
        ratio = f"{d['bytes_sent_per_peer'] / r['bytes_sent_per_peer']:.1f}x" if d else "-"
        print(f"{r['method']:<20}{r['final_eval_loss']:>12.4f}{rel_d:>11}{rel_a:>10}{r['bytes_sent_per_peer']:>14,}{ratio:>13}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
