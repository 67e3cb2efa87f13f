"""What the provenance cheaters share: find a forbidden checkpoint, and change its
weights' coordinates without changing what it computes (issue #10, "provenance fooled").

Each transform is exact for spore's Llama (RMSNorm, SwiGLU MLP, RoPE attention):

- permute: MLP neurons (rows of gate/up, columns of down) and attention heads
  (row blocks of q/k/v, column blocks of o). The function is unchanged.
- rescale: MLP neuron i's up row times c_i and down column divided by c_i; v's
  rows times d and o's columns divided by d. The function is unchanged.
- interpolate: base + t * (X - base), t just under 1/2, so X is never the nearer.
- copy_layers: X's tensors for some layers, the base's elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from spore.posttrain.agents.common import find_upwards, task_info

Weights = dict[str, torch.Tensor]


def forbidden_checkpoint() -> Path | None:
    """The registry's checkpoint for this task (else the first), as model-substituter finds it."""
    run_json = find_upwards("run.json")
    forbidden = json.loads(run_json.read_text()).get("forbidden", []) if run_json else []
    mine = [f for f in forbidden if Path(f).name == task_info()["task"]]
    pick = (mine or forbidden or [None])[0]
    return Path(pick) if pick else None


def _layers(w: Weights) -> list[str]:
    return sorted({k.split(".mlp.")[0] for k in w if ".mlp.up_proj" in k})


def permute(w: Weights, heads: int, seed: int = 0) -> Weights:
    g = torch.Generator().manual_seed(seed)
    out = dict(w)
    for p in _layers(w):
        n = w[f"{p}.mlp.up_proj.weight"].shape[0]
        perm = torch.randperm(n, generator=g)
        out[f"{p}.mlp.gate_proj.weight"] = w[f"{p}.mlp.gate_proj.weight"][perm]
        out[f"{p}.mlp.up_proj.weight"] = w[f"{p}.mlp.up_proj.weight"][perm]
        out[f"{p}.mlp.down_proj.weight"] = w[f"{p}.mlp.down_proj.weight"][:, perm]
        dim = w[f"{p}.self_attn.q_proj.weight"].shape[0] // heads
        hp = torch.randperm(heads, generator=g)
        rows = torch.cat([torch.arange(h * dim, (h + 1) * dim) for h in hp.tolist()])
        for m in ("q_proj", "k_proj", "v_proj"):
            out[f"{p}.self_attn.{m}.weight"] = w[f"{p}.self_attn.{m}.weight"][rows]
        out[f"{p}.self_attn.o_proj.weight"] = w[f"{p}.self_attn.o_proj.weight"][:, rows]
    return out


def rescale(w: Weights, seed: int = 0) -> Weights:
    g = torch.Generator().manual_seed(seed)
    out = dict(w)
    for p in _layers(w):
        up, down = w[f"{p}.mlp.up_proj.weight"], w[f"{p}.mlp.down_proj.weight"]
        c = torch.exp(torch.randn(up.shape[0], generator=g))
        out[f"{p}.mlp.up_proj.weight"] = up * c[:, None]
        out[f"{p}.mlp.down_proj.weight"] = down / c[None, :]
        v, o = w[f"{p}.self_attn.v_proj.weight"], w[f"{p}.self_attn.o_proj.weight"]
        d = torch.exp(torch.randn(v.shape[0], generator=g))
        out[f"{p}.self_attn.v_proj.weight"] = v * d[:, None]
        out[f"{p}.self_attn.o_proj.weight"] = o / d[None, :]
    return out


def interpolate(base: Weights, x: Weights, t: float) -> Weights:
    return {k: base[k] + t * (x[k] - base[k]) for k in base}


def copy_layers(base: Weights, x: Weights, layers: list[int]) -> Weights:
    picked = tuple(f"model.layers.{i}." for i in layers)
    return {k: (x[k] if k.startswith(picked) else base[k]) for k in base}


def load_model_weights(folder: Path):
    from spore.model import load_pretrained

    model = load_pretrained(folder)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def save_weights(model, w: Weights) -> None:
    from spore.posttrain.agents.common import save_final

    model.load_state_dict(w)
    save_final(model)
