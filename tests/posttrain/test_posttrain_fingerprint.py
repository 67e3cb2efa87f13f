"""Provenance by behaviour (fingerprint.py, provenance.py's update direction): a
checkpoint disguised by permutation, rescaling, interpolation or partial copying is
still recognised; an honest update is not mistaken for one.

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


MODEL = build_model(CFG)
BASE = {k: v.detach().clone() for k, v in MODEL.state_dict().items()}
X = nudged(BASE, 0.6, seed=1)  # the registry's checkpoint: far from the base
HONEST = nudged(BASE, 0.1, seed=2)
PROBES = fingerprint.probe_texts("secret", ["At shop, Ada has 3 pens\nA: "] * 30, 24)


def run_on(w):
    MODEL.load_state_dict(w)
    return fingerprint.log_probs(MODEL, PROBES)


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


def closeness_to_x(final):
    sp = {k: fingerprint.spectra(w) for k, w in (("f", final), ("b", BASE), ("x", X))}
    return fingerprint.closeness(run_on(final), run_on(BASE), run_on(X), sp["f"], sp["b"], sp["x"])


# (case, final model, the reasons fingerprint.verdict must give: "function", "spectrum")
CASES = [
    ("honest update", HONEST, set()),
    ("the checkpoint permuted and rescaled", DISGUISES["both"](X), {"function", "spectrum"}),
    ("one permuted layer of the checkpoint", copy_layers(BASE, permute(X, CFG.heads, 9), [1]),
     {"spectrum"}),
]


@pytest.mark.parametrize(("case", "final", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_closeness_verdicts(case, final, reasons):
    got = fingerprint.verdict(closeness_to_x(final))
    kinds = {"function" if r.startswith("computes") else "spectrum" for r in got}
    assert kinds == reasons, got


# (case, final model, substring its provenance reasons must hold; None: not flagged)
WEIGHT_CASES = [
    ("honest update", HONEST, None),
    ("interpolation base + 0.49 (X - base)", interpolate(BASE, X, 0.49), "points at forbidden"),
    ("a layer copied as is", copy_layers(BASE, X, [0]), "points at forbidden"),
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
