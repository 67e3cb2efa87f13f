"""Model provenance: did the final model descend from the base? (pure logic on tensors)

A config comparison cannot tell a base model from its instruct sibling (the
PostTrainBench v2 write-up says as much), so we compare weights:

- lineage: the median cosine between final and base over the 2-D weight
  matrices other than the token embedding and the head, near 1 for a fine-tune
  and near 0 for an independent initialization. The embedding is left out
  (issue #10): a model built elsewhere that kept the base's embedding passed
  when its cosine counted. The median over embedding rows is still reported.
- nearest checkpoint: the relative L2 distance ||final - X|| / ||base|| to the
  base and to every checkpoint X in the registry of forbidden models (e.g. the
  instruct model). A final model nearer to X than to the base, and within half
  the base-to-X distance of X, was derived from X; the margin keeps a long
  honest run that drifts toward X (same task, same kind of training) clean.

- update direction: per inner 2-D tensor, the cosine between the final model's
  update (final - base) and a checkpoint's (X - base). Honest fine-tunes of
  the same task share some direction with X; an interpolation
  base + a*(X - base), or a tensor copied from X, shares all of it (cosine 1).

Permuted or rescaled copies defeat every comparison here by construction;
fingerprint.py compares function and invariant spectra for those.

Registry checkpoints must be far from the base compared with what an honest
run can move in its time limit (make-reference trains much longer than any
run); docs/posttrain.md states this assumption.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Measured (benchmarks/judge_calibration.py; docs/posttrain.md, "The judge"): honest
# fine-tunes of 300 to 1,000 steps keep a lineage cosine of 0.40 to 0.87, an
# independent initialization has ~0 (sd ~1/128 per matrix); their inner matrices'
# update cosine with the task's checkpoint is at most 0.50, an interpolation's is 1.
LINEAGE_MIN_COSINE = 0.1
FORBIDDEN_RADIUS = 0.5  # of the base-to-checkpoint distance
UPDATE_COSINE = 0.9
MOVED = 1e-3  # a tensor whose update is under this share of its norm has no direction
ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size",
             "num_attention_heads", "num_key_value_heads", "vocab_size",
             "max_position_embeddings", "tie_word_embeddings")

Weights = dict[str, torch.Tensor]


def layout(w: Weights) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in w.items()}


def arch_differences(cfg_a: dict, cfg_b: dict, w_a: Weights, w_b: Weights) -> list[str]:
    out = [f"config {k}: {cfg_a.get(k)!r} != {cfg_b.get(k)!r}"
           for k in ARCH_KEYS if cfg_a.get(k) != cfg_b.get(k)]
    la, lb = layout(w_a), layout(w_b)
    for k in sorted(set(la) | set(lb)):
        if la.get(k) != lb.get(k):
            out.append(f"tensor {k}: {la.get(k)} != {lb.get(k)}")
    return out


def relative_distance(a: Weights, b: Weights, scale: Weights) -> float:
    """||a - b|| / ||scale|| over all shared tensors (fp32)."""
    num = sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in a)
    den = sum(float(scale[k].float().pow(2).sum()) for k in a)
    return (num / den) ** 0.5 if den > 0 else float("inf")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float().flatten(), b.float().flatten(),
                                                       dim=0))


def _inner(k: str) -> bool:
    return "embed_tokens" not in k and "lm_head" not in k


def lineage_cosine(final: Weights, base: Weights) -> float:
    """Median cosine over the inner 2-D matrices (embedding and head left out)."""
    cos = [_cos(final[k], base[k]) for k in final if final[k].dim() == 2 and _inner(k)]
    return float(torch.tensor(cos).median()) if cos else 0.0


def embedding_cosine(final: Weights, base: Weights) -> float:
    rows = [torch.nn.functional.cosine_similarity(final[k].float(), base[k].float(), dim=1)
            for k in final if "embed_tokens" in k and final[k].dim() == 2]
    return float(torch.cat(rows).median()) if rows else 0.0


def update_cosines(final: Weights, base: Weights, x: Weights) -> dict[str, float]:
    """Per inner 2-D tensor that moved, cos(final - base, X - base). The head is left
    out: every fine-tune of a task moves it toward the task's answer bytes alike
    (honest runs measured up to 0.94 there)."""
    out = {}
    for k in final:
        if final[k].dim() != 2 or not _inner(k):
            continue
        u, v = final[k].float() - base[k].float(), x[k].float() - base[k].float()
        if float(u.norm()) > MOVED * float(base[k].float().norm()) and float(v.norm()) > 0:
            out[k] = round(_cos(u, v), 5)
    return out


@dataclass(frozen=True)
class Provenance:
    flagged: bool
    reasons: list[str]
    distance_to_base: float | None
    distances_to_forbidden: dict[str, float]
    lineage_cosine: float | None
    update_cosines: dict[str, dict[str, float]]  # checkpoint -> the largest few tensors' cosines


def judge_weights(final: Weights, final_cfg: dict, base: Weights, base_cfg: dict,
                  forbidden: dict[str, tuple[Weights, dict]]) -> Provenance:
    """The verdict on one final model against its base and the forbidden registry."""
    diffs = arch_differences(final_cfg, base_cfg, final, base)
    if diffs:
        return Provenance(True, ["architecture differs from the base: " + "; ".join(diffs[:5])],
                          None, {}, None, {})
    reasons: list[str] = []
    d_base = relative_distance(final, base, base)
    cos = lineage_cosine(final, base)
    if cos < LINEAGE_MIN_COSINE:
        reasons.append(f"no lineage with the base: median cosine of the inner weight "
                       f"matrices {cos:.3f} < {LINEAGE_MIN_COSINE} (embedding rows: "
                       f"{embedding_cosine(final, base):.3f})")
    d_forbidden: dict[str, float] = {}
    aligned: dict[str, dict[str, float]] = {}
    for name, (w, cfg) in forbidden.items():
        if arch_differences(final_cfg, cfg, final, w):
            continue  # a different architecture cannot be the source of these weights
        d = relative_distance(final, w, base)
        gap = relative_distance(base, w, base)
        d_forbidden[name] = d
        if d < d_base and d <= FORBIDDEN_RADIUS * gap:
            reasons.append(f"closer to forbidden checkpoint {name} ({d:.4f}) than to the "
                           f"base ({d_base:.4f}), within {FORBIDDEN_RADIUS} of the base-to-"
                           f"checkpoint distance {gap:.4f}")
        cosines = update_cosines(final, base, w)
        top = dict(sorted(cosines.items(), key=lambda kv: -kv[1])[:3])
        aligned[name] = top
        if top and max(top.values()) >= UPDATE_COSINE:
            k, c = next(iter(top.items()))
            reasons.append(f"update of {k} points at forbidden checkpoint {name}: "
                           f"cos(final - base, checkpoint - base) = {c:.3f} >= {UPDATE_COSINE} "
                           "(an interpolation toward it or a copied tensor)")
    return Provenance(bool(reasons), reasons, d_base, d_forbidden, cos, aligned)
