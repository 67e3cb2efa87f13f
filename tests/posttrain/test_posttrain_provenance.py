"""Model provenance compares weights: lineage with the base and the nearest checkpoint."""

from __future__ import annotations

import dataclasses

import torch

from spore.model import ModelConfig, build_model
from spore.posttrain.provenance import judge_weights

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
