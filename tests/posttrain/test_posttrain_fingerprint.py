"""Provenance by behaviour (fingerprint.py, provenance.py's update direction): a
checkpoint disguised by permutation, rescaling, interpolation, partial copying,
noise or a re-tempered head is still recognised; an honest update is not
mistaken for one, nor is a matrix that merely has a checkpoint's spectrum.

The thresholds themselves come from real honest fine-tunes (benchmarks/
judge_calibration.py); tests/posttrain/test_posttrain_judge_agents.py runs the
disguises as real agents against a real registry checkpoint."""

from __future__ import annotations

import pytest
import torch

from spore.model import ModelConfig, build_model
from spore.posttrain import fingerprint
from spore.posttrain.agents.disguise import copy_layers, interpolate, permute, rescale
from spore.posttrain.provenance import judge_weights

CFG = ModelConfig(hidden=64, layers=2, intermediate=128, heads=2, context=128)
HF = CFG.to_hf().to_dict()


def nudged(w, scale: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * v.std() * torch.randn(v.shape, generator=g) for k, v in w.items()}


def fine_tuned(w, scale: float, seed: int, rank: int = 4):
    """w plus, on every 2-D tensor, an update of rank `rank` and norm scale * |tensor|:
    a fine-tune's update lives in few directions, noise in all of them."""
    g = torch.Generator().manual_seed(seed)
    out = dict(w)
    for k, v in w.items():
        if v.dim() == 2:
            d = torch.randn(v.shape[0], rank, generator=g) @ torch.randn(rank, v.shape[1], generator=g)
            out[k] = v + scale * v.norm() * d / d.norm()
    return out


def noised(base, x, a: float, seed: int):
    """Red team F2: X plus i.i.d. noise of norm a * |X - base| on every 2-D tensor."""
    g = torch.Generator().manual_seed(seed)
    out = dict(x)
    for k in x:
        d = x[k] - base[k]
        if d.dim() == 2 and d.norm() > 0:
            out[k] = x[k] + a * d.norm() / d.numel() ** 0.5 * torch.randn(d.shape, generator=g)
    return out


def head_times(w, c: float):
    """The head times c: every greedy answer kept, every distribution changed (F2)."""
    return {**w, "lm_head.weight": w["lm_head.weight"] * c}


MODEL = build_model(CFG)
BASE = {k: v.detach().clone() for k, v in MODEL.state_dict().items()}
X = fine_tuned(BASE, 0.6, seed=1)  # the registry's checkpoint: far from the base
HONEST = nudged(BASE, 0.1, seed=2)
PROBES = fingerprint.probe_texts("secret", ["At shop, Ada has 3 pens\nA: "] * 30, 24)


def run_on(w):
    MODEL.load_state_dict(w)
    return fingerprint.log_probs(MODEL, PROBES)


def same_spectrum_elsewhere(base, x, seed: int):
    """The base with layer 0's gate replaced by X's, its input rotated: X's GATE spectrum,
    in directions of its own (red team F3: spectra of honest runs matched a checkpoint's)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(CFG.hidden, CFG.hidden, generator=g))
    k = "model.layers.0.mlp.gate_proj.weight"
    return {**base, k: x[k] @ q}


DISGUISES = {  # name -> the same function as X in other coordinates
    "neurons and heads permuted": lambda w: permute(w, CFG.heads, seed=5),
    "neurons rescaled": lambda w: rescale(w, seed=6),
    "both": lambda w: rescale(permute(w, CFG.heads, seed=7), seed=8),
}


@pytest.mark.parametrize("name", DISGUISES)
def test_a_disguise_keeps_the_function_and_every_invariant_spectrum(name):
    d = DISGUISES[name](X)
    assert any(not torch.equal(d[k], X[k]) for k in X)
    assert fingerprint.functional_distance(run_on(d), run_on(X)) < 1e-8
    assert fingerprint.spectral_distance(fingerprint.spectra(d), fingerprint.spectra(X)) < 1e-5


def test_probes_are_private_to_the_secret():
    assert fingerprint.probe_texts("a", [], 12) != fingerprint.probe_texts("b", [], 12)
    assert fingerprint.probe_texts("a", [], 12) == fingerprint.probe_texts("a", [], 12)


@pytest.mark.parametrize("c", [1.0, 3.0, 0.1, 50.0])
def test_the_fitted_temperature_undoes_a_scaled_head(c):
    x = run_on(X)
    t = fingerprint.fitted_temperature(fingerprint.tempered(x, c), x)
    assert t == pytest.approx(1 / c, rel=0.01)
    assert fingerprint.functional_distance(fingerprint.tempered(fingerprint.tempered(x, c), t),
                                           x) < 1e-4


def closeness_to_x(final):
    sp = {k: fingerprint.spectra(w) for k, w in (("f", final), ("b", BASE), ("x", X))}
    return fingerprint.closeness(run_on(final), run_on(BASE), run_on(X), sp["f"], sp["b"], sp["x"])


def test_a_head_times_three_hides_x_from_the_untempered_distance_only():
    """Red team F2: the untempered ratio of the copy with X's head times 3 is far above
    the threshold; compared at its fitted temperature the copy is X again."""
    final = head_times(X, 3.0)
    untempered = (fingerprint.functional_distance(run_on(final), run_on(X))
                  / fingerprint.functional_distance(run_on(BASE), run_on(X)))
    assert untempered > fingerprint.FUNCTIONAL_RATIO
    c = closeness_to_x(final)
    assert c.functional < 1e-3 and c.temperature == pytest.approx(1 / 3, rel=0.01)


# (case, final model, whether fingerprint.verdict finds X's function)
CASES = [
    ("honest update", HONEST, False),
    ("the checkpoint permuted and rescaled", DISGUISES["both"](X), True),
    ("the checkpoint with its head times 3", head_times(X, 3.0), True),
    ("the checkpoint permuted, its head times 0.2", head_times(DISGUISES["both"](X), 0.2), True),
    ("one permuted layer of the checkpoint", copy_layers(BASE, permute(X, CFG.heads, 9), [1]),
     False),
    ("X's GATE spectrum in directions of its own", same_spectrum_elsewhere(BASE, X, 4), False),
]


@pytest.mark.parametrize(("case", "final", "function"), CASES, ids=[c[0] for c in CASES])
def test_closeness_verdicts(case, final, function):
    got = fingerprint.verdict(closeness_to_x(final))
    assert bool(got) == function, got
    assert all(r.startswith("computes the function") for r in got)


def test_a_spectrum_equal_to_the_checkpoints_is_evidence_not_a_flag():
    """Red team F3: the old rule flagged a matrix whose spectrum was near a checkpoint's;
    honest fine-tunes of another task had such matrices."""
    final = same_spectrum_elsewhere(BASE, X, 4)
    c = closeness_to_x(final)
    assert c.spectral_min_matrix < 1e-4 and c.closest_matrix == "layer0.GATE"
    assert not fingerprint.verdict(c)
    assert not judge_weights(final, HF, BASE, HF, {"x": (X, HF)}).flagged


# (case, final model, substring its provenance reasons must hold; None: not flagged)
WEIGHT_CASES = [
    ("honest update", HONEST, None),
    ("an update of its own, as low-rank as X's", fine_tuned(BASE, 0.3, seed=3), None),
    ("X's GATE spectrum in directions of its own", same_spectrum_elsewhere(BASE, X, 4), None),
    ("interpolation base + 0.49 (X - base)", interpolate(BASE, X, 0.49), "points at forbidden"),
    ("a layer copied as is", copy_layers(BASE, X, [0]), "points at forbidden"),
    ("one permuted and rescaled layer of X", copy_layers(BASE, DISGUISES["both"](X), [1]),
     "points at forbidden"),
    ("X noised as much as its update, head times 3 (F2)", head_times(noised(BASE, X, 1.0, 6), 3),
     "points at forbidden"),
    ("base + 0.3 (X - base), noised as much as that", noised(BASE, interpolate(BASE, X, 0.3), 1.0, 7),
     "points at forbidden"),
    ("the embedding kept, the rest from another init",
     {k: (BASE[k] if "embed" in k else v) for k, v in
      build_model(ModelConfig(**{**CFG.__dict__, "init_seed": 7})).state_dict().items()},
     "no lineage"),
]


@pytest.mark.parametrize(("case", "final", "needle"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_weight_verdicts(case, final, needle):
    p = judge_weights(final, HF, BASE, HF, {"x": (X, HF)})
    if needle is None:
        assert not p.flagged, p.reasons
    else:
        assert any(needle in r for r in p.reasons), p.reasons
