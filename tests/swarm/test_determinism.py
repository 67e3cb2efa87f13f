"""The outer step is exact: decode -> aggregate -> apply gives the same theta bits
whatever vector unit the CPU uses (issue 9; spec: codec.py, "Exact outer step").

Each capability runs in its own process, because ATEN_CPU_CAPABILITY is read
once when torch loads. The parent builds everything the network would share:
signed update bytes from real error-feedback steps on the `tiny` layout (norms
a factor 40 apart, so median-norm clipping is active) and theta(0) as bytes,
since compression and initialisation may round differently per CPU and are
not part of the exact path. Checked against the code before this rule: on
an AVX2 machine, default and avx2 gave different theta in the three cases
with alpha != 1 (the fused multiply-add in sub_(a, alpha=lr)); update_norm's
float64 .sum() agreed there, but its order follows the vector width, so it
is now exact too (and checked against avx512 where the CPU has it).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from spore import model as M
from spore.swarm import codec, wire
from spore.swarm.identity import Identity

WINDOWS = 3
SCALES = [1e-3, 3e-3, 2e-2, 5e-4, 7e-3]  # one pseudo-gradient scale per peer
CASES = [  # (aggregation, outer learning rate, incentive weights)
    ("all", 1.0, None),
    ("all", 0.7, None),
    ("chosen", 0.7, None),
    ("chosen", 1.3, [0.3, 0.1, 0.2, 0.25, 0.15]),
]

# Run in a fresh interpreter per capability: replays every case through the
# real Replica.apply and prints one JSON line of digests.
CHILD = r"""
import json, sys
from pathlib import Path
from types import SimpleNamespace
import torch
from safetensors.torch import load_file
from spore import model as M
from spore.swarm import codec, wire
from spore.swarm.replica import Gathered, Replica

folder = Path(sys.argv[1])
spec = json.loads((folder / "spec.json").read_text())
cfg = M.get_preset("tiny").model
p = codec.CodecParams()
model = M.build_model(cfg)
layout = M.parameter_layout(model)
plans = codec.plan_layout(layout, p)
start = load_file(str(folder / "theta0.safetensors"))
out = {"capability": torch.backends.cpu.get_cpu_capability(), "cases": []}
for mean, lr, weights in spec["cases"]:
    with torch.no_grad():
        for n, t in model.named_parameters():
            t.copy_(start[n])
    manifest = SimpleNamespace(codec=p, aggregation=mean, train=SimpleNamespace(outer_lr=lr))
    replica = SimpleNamespace(model=model, manifest=manifest, window=0)
    norms, thetas = [], []
    for w in range(spec["windows"]):
        updates = []
        for name in sorted(spec["blobs"][w]):
            blob = (folder / name).read_bytes()
            _, u = wire.decode(blob, plans, expected_params=p, model_id=bytes.fromhex(spec["model_id"]))
            updates.append(u)
        norms += [codec.update_norm(u).hex() for u in updates]
        accepted = [SimpleNamespace(update=u) for u in updates]
        Replica.apply(replica, Gathered(w, accepted=accepted), weights)
        thetas.append(M.theta_digest(model).hex())
    out["cases"].append({"norms": norms, "thetas": thetas})
print(json.dumps(out))
"""


def capabilities() -> list[str]:
    """default and avx2 on any x86-64 that has AVX2, and avx512 where the CPU has it."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    caps = ["default"]
    if " avx2" in flags:
        caps.append("avx2")
    if " avx512f" in flags and " avx512bw" in flags and " avx512vl" in flags and " avx512dq" in flags:
        caps.append("avx512")
    return caps


def write_network_inputs(folder: Path) -> None:
    """theta(0) and WINDOWS x len(SCALES) signed updates, as the store would hold them."""
    from safetensors.torch import save_file

    cfg = M.get_preset("tiny").model
    p = codec.CodecParams()
    model = M.build_model(cfg)
    layout = M.parameter_layout(model)
    plans = codec.plan_layout(layout, p)
    mid = M.model_id(cfg, layout)
    save_file({n: t.detach().contiguous() for n, t in model.named_parameters()}, str(folder / "theta0.safetensors"))
    g = torch.Generator().manual_seed(9)
    peers = [Identity.from_seed(bytes([i]) * 32) for i in range(len(SCALES))]
    residuals = [[torch.zeros(s) for _, s in layout] for _ in peers]
    blobs: list[list[str]] = []
    for w in range(WINDOWS):
        names = []
        for i, (peer, scale) in enumerate(zip(peers, SCALES, strict=True)):
            pseudo_gradient = [torch.randn(s, generator=g) * scale for _, s in layout]
            update, residuals[i] = codec.error_feedback_step(residuals[i], pseudo_gradient, 0.95, plans, p)
            header = wire.Header(w, peer.id, mid, b"\0" * 32, p, wire.ELIAS_FANO)
            name = f"w{w}-{peer.hex}.bin"
            (folder / name).write_bytes(wire.encode(update, header, peer))
            names.append(name)
        blobs.append(names)
    spec = {"windows": WINDOWS, "cases": CASES, "blobs": blobs, "model_id": mid.hex()}
    (folder / "spec.json").write_text(json.dumps(spec))


def replay(folder: Path, capability: str) -> dict:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(capabilities()) < 2, reason="needs an x86-64 CPU with AVX2 to compare against")
def test_theta_is_bit_identical_across_cpu_vector_units(tmp_path):
    write_network_inputs(tmp_path)
    results = {cap: replay(tmp_path, cap) for cap in capabilities()}
    for cap, r in results.items():
        assert r["capability"].lower() == cap.lower(), f"asked for {cap}, torch ran {r['capability']}"
    reference, *others = results.values()
    for r in others:
        for case, a, b in zip(CASES, reference["cases"], r["cases"], strict=True):
            assert a["norms"] == b["norms"], f"update norms differ between capabilities in case {case}"
            assert a["thetas"] == b["thetas"], f"theta differs between capabilities in case {case}"
    # Each window and case moved theta somewhere new: the digests are not vacuous.
    thetas = [t for c in reference["cases"] for t in c["thetas"]]
    assert len(set(thetas)) == len(thetas)


def test_update_norm_is_exact():
    """update_norm equals sqrt of the exact rational sum of squares, rounded once."""
    shape = (128, 192)
    p = codec.CodecParams()
    u = [codec.compress(torch.randn(shape, generator=torch.Generator().manual_seed(3)), codec.plan_tensor(shape, p), p)]
    values = codec.sent_values(u[0]).tolist()
    exact = sum(Fraction(v) ** 2 for v in values)
    assert codec.update_norm(u) == float(exact) ** 0.5
    assert codec.squared_norm(u) == exact


def test_outer_step_rounds_twice_never_fused():
    """theta - float32(alpha) * delta with a rounding after the multiply, unlike one fused multiply-add."""
    theta = torch.tensor([1.0], dtype=torch.float32)
    delta = torch.tensor([1.0 + 2.0**-23], dtype=torch.float32)
    alpha = 1.0 + 2.0**-22
    # float32 product 1 + 3*2^-23 (rounded from 1 + 3*2^-23 + 2^-45), then 1 - that is exact.
    codec.outer_step(theta, delta, alpha)
    assert float(theta) == -3 * 2.0**-23
    fused = 1.0 - float(delta) * alpha  # exact in float64: what a single-rounding FMA would round
    assert float(theta) != codec.to_float32(fused)


def reference_outer_step(theta: np.ndarray, updates: list[codec.Update], mean: str, alpha: float,
                         weights: list[float] | None) -> np.ndarray:
    """The rule in codec's docstring, written again with numpy binary32 scalars and exact rationals."""
    p = codec.CodecParams()
    norms = [math.sqrt(float(sum(Fraction(v) ** 2 for t in u for v in codec.sent_values(t).tolist()))) for u in updates]
    med = statistics.median(norms)
    clips = [1.0 if n <= med or n == 0.0 else med / n for n in norms]
    coeffs = [np.float32(c * (1.0 if weights is None else w)) for c, w in zip(clips, weights or clips, strict=True)]
    xs = [codec.decompress(u[0], p).numpy() for u in updates]
    total = np.zeros_like(theta)
    for c, x in zip(coeffs, xs, strict=True):
        total = total + c * x
    count = sum((x != 0).astype(np.float32) for x in xs)
    agg = total / np.float32(len(updates)) if mean == "all" else total / np.maximum(count, np.float32(1))
    return theta - np.float32(alpha) * agg


@pytest.mark.parametrize(("mean", "alpha", "weights"), CASES[:3] + [("chosen", 1.3, [0.5, 0.2, 0.3])])
def test_aggregate_and_outer_step_follow_the_written_rule_bit_for_bit(mean, alpha, weights):
    p = codec.CodecParams()
    shape = (128, 192)
    plan = codec.plan_tensor(shape, p)
    g = torch.Generator().manual_seed(5)
    updates = [[codec.compress(torch.randn(shape, generator=g) * s, plan, p)] for s in (1.0, 3.0, 0.2)]
    theta = torch.randn(shape, generator=g)
    want = reference_outer_step(theta.numpy().copy(), updates, mean, alpha, weights)
    (agg,) = codec.aggregate(updates, p, mean, weights)
    codec.outer_step(theta, agg, alpha)
    assert want.dtype == np.float32 and np.array_equal(theta.numpy().view(np.uint32), want.view(np.uint32))
