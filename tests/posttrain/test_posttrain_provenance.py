"""Model provenance compares weights: lineage with the base, the nearest checkpoint, and
whether the final model's update holds a checkpoint's update (whole and in its core)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from spore.model import ModelConfig, build_model
from spore.posttrain.agents.disguise import copy_layers, permute, rescale
from spore.posttrain.baseline import BASE_CONFIGS
from spore.posttrain.provenance import core_cosine, core_cosines, judge_weights, update_cosines

CFG = ModelConfig(hidden=64, layers=1, intermediate=128, heads=1, context=64)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def nudged(w: dict[str, torch.Tensor], scale: float, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * v.std() * torch.randn(v.shape, generator=g) for k, v in w.items()}


def hf_cfg(cfg: ModelConfig) -> dict:
    return cfg.to_hf().to_dict()


BASE = weights(build_model(CFG))
INSTRUCT = nudged(BASE, 0.6, seed=1)  # the registry's checkpoint: far from the base
FORBIDDEN = {"instruct": (INSTRUCT, hf_cfg(CFG))}


def test_a_fine_tune_of_the_base_passes() -> None:
    p = judge_weights(nudged(BASE, 0.1, seed=2), hf_cfg(CFG), BASE, hf_cfg(CFG), FORBIDDEN)
    assert not p.flagged, p.reasons
    assert p.distance_to_base < p.distances_to_forbidden["instruct"]


def test_the_forbidden_checkpoint_slightly_tuned_is_caught() -> None:
    p = judge_weights(nudged(INSTRUCT, 0.05, seed=3), hf_cfg(CFG), BASE, hf_cfg(CFG), FORBIDDEN)
    assert p.flagged and "closer to forbidden checkpoint instruct" in p.reasons[0]


def test_a_model_trained_from_another_initialization_has_no_lineage() -> None:
    other = weights(build_model(dataclasses.replace(CFG, init_seed=7)))
    p = judge_weights(other, hf_cfg(CFG), BASE, hf_cfg(CFG), {})
    assert p.flagged and "no lineage" in p.reasons[0]


def test_a_different_architecture_is_caught_before_any_distance() -> None:
    wide = dataclasses.replace(CFG, hidden=128)
    p = judge_weights(weights(build_model(wide)), hf_cfg(wide), BASE, hf_cfg(CFG), {})
    assert p.flagged and "architecture" in p.reasons[0]


# ---------------------------------------------------------------------------
# The update-direction statistics (red team F2/F3, tests/posttrain/redteam/FINDINGS.md)

def low_rank(m: int, n: int, rank: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g)


def noise_like(v: torch.Tensor, a: float, seed: int) -> torch.Tensor:
    """i.i.d. noise of norm a * |v|."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(v.shape, generator=g)
    return a * v.norm() * n / n.norm()


V = low_rank(128, 64, 4, seed=1)  # a checkpoint's update: few directions
LEFT, _, RIGHT = torch.linalg.svd(V, full_matrices=False)

# (case, final's update u, (lowest, highest) core cosine with V, (lowest, highest) whole cosine)
CORE_CASES = [
    ("the checkpoint's update", V, (0.999, 1.0), (0.999, 1.0)),
    ("an interpolation 0.3 of the way", 0.3 * V, (0.999, 1.0), (0.999, 1.0)),
    ("noise as large as the update (F2)", V + noise_like(V, 1.0, 2), (0.98, 1.0), (0.6, 0.8)),
    ("noise three times the update", V + noise_like(V, 3.0, 3), (0.9, 1.0), (0.2, 0.45)),
    ("an update of its own", low_rank(128, 64, 4, seed=4), (-0.3, 0.3), (-0.3, 0.3)),
    ("its directions, weights of its own",
     LEFT[:, :8] @ torch.randn(8, 8, generator=torch.Generator().manual_seed(5)) @ RIGHT[:8],
     (-0.5, 0.5), (-0.5, 0.5)),
]


@pytest.mark.parametrize(("case", "u", "core", "whole"), CORE_CASES, ids=[c[0] for c in CORE_CASES])
def test_core_cosine_sees_the_checkpoints_update_through_noise(case, u, core, whole) -> None:
    eps = 1e-9  # rounding: a cosine of 1.0000000000000002
    assert core[0] <= core_cosine(u, V) <= core[1] + eps
    assert whole[0] <= float(torch.nn.functional.cosine_similarity(u.flatten(), V.flatten(),
                                                                    dim=0)) <= whole[1] + eps


def test_update_cosines_see_a_layer_through_a_permutation() -> None:
    """Layer 0's invariant QK, OV and MLP of a copied layer, permuted and rescaled, are the
    checkpoint's, so their update is the checkpoint's whatever the coordinates."""
    copied = copy_layers(BASE, rescale(permute(INSTRUCT, CFG.heads, seed=2), seed=3), [0])
    ups = update_cosines(copied, BASE, INSTRUCT)
    assert all(ups[f"layer0.{m}"] > 0.999 for m in ("QK", "OV", "MLP"))
    assert ups["model.layers.0.mlp.up_proj.weight"] < 0.5  # the raw weights do not show it
    assert core_cosines(copied, BASE, INSTRUCT)["layer0.MLP"] > 0.999


def test_a_checkpoint_update_under_a_matrix_left_alone_is_not_compared() -> None:
    moved = {**BASE, "model.layers.0.mlp.up_proj.weight": INSTRUCT["model.layers.0.mlp.up_proj.weight"]}
    assert "model.layers.0.mlp.down_proj.weight" not in update_cosines(moved, BASE, INSTRUCT)
    assert update_cosines(moved, BASE, INSTRUCT)["model.layers.0.mlp.up_proj.weight"] == 1.0


# ---------------------------------------------------------------------------
# F2 and F3 reproduced with real training, in the regime the thresholds were measured in
# (docs/posttrain.md, "How the thresholds were chosen"): make-base's tiny model, a
# 500-step registry, honest runs of a few hundred steps. ~15 minutes on 2 loaded cores.

LONG_CFG = BASE_CONFIGS["tiny"]


def trained(w: dict[str, torch.Tensor], task: str, data_seed: str, steps: int, seed: int,
            lr: float = 3e-3) -> dict[str, torch.Tensor]:
    from spore.posttrain.agents.common import sft
    from spore.posttrain.tasks import format_pair, get_task

    model = build_model(LONG_CFG)
    model.load_state_dict(w)
    pairs = [format_pair(it) for it in get_task(task).public_items(3000, data_seed)]
    sft(model, pairs, float("inf"), seed=seed, max_steps=steps, lr=lr, warmup=min(20, steps))
    return weights(model)


def provenance_reasons(final, base, forbidden: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """judge.check_provenance's rules, without a run folder: weights, then function."""
    from spore.posttrain import fingerprint
    from spore.posttrain.tasks import get_task

    cfg = hf_cfg(LONG_CFG)
    model = build_model(LONG_CFG)
    items = get_task("json_field").hidden_items("probe-items", 64)
    probes = fingerprint.probe_texts("long", [f"{it.question}\nA: " for it in items])

    def lp(w):
        model.load_state_dict(w)
        return fingerprint.log_probs(model, probes)

    reasons = list(judge_weights(final, cfg, base, cfg,
                                 {n: (w, cfg) for n, w in forbidden.items()}).reasons)
    for name, w in forbidden.items():
        c = fingerprint.closeness(lp(final), lp(base), lp(w), fingerprint.spectra(final),
                                  fingerprint.spectra(base), fingerprint.spectra(w))
        reasons += [f"{why} {name}" for why in fingerprint.verdict(c)]
    return reasons


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_honest_fine_tunes_pass_and_a_noised_retempered_copy_is_caught() -> None:
    base = weights(build_model(LONG_CFG))
    registry = {"json_field": trained(base, "json_field", "reference", 500, seed=0),
                "arithmetic": trained(base, "arithmetic", "reference", 500, seed=0)}
    for seed in (1, 2):  # F3: honest json_field runs were flagged against arithmetic
        honest = trained(base, "json_field", f"honest-{seed}", 300, seed=seed)
        assert provenance_reasons(honest, base, registry) == []
    x = registry["json_field"]
    g = torch.Generator().manual_seed(0)
    copy = {k: (v + (x[k] - base[k]).norm() / v.numel() ** 0.5 * torch.randn(v.shape, generator=g)
                 if v.dim() == 2 else v) for k, v in x.items()}
    copy["lm_head.weight"] = copy["lm_head.weight"] * 3
    repaired = trained(copy, "json_field", "repair", 40, seed=3, lr=1e-3)  # F2
    reasons = provenance_reasons(repaired, base, registry)
    assert any("points at forbidden checkpoint json_field" in r for r in reasons), reasons
    assert not any("arithmetic" in r for r in reasons), reasons
