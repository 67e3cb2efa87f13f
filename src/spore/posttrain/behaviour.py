"""Contamination judged by behaviour: does the model know the hidden items better
than fresh items of the same kind? (pure logic: a model and items in, numbers out)

A model trained on the hidden test items, in whatever encoding (verbatim,
paraphrased with the labels kept, hidden in a dot-folder, assembled at run
time), has seen their random content together with their answers. On those
items it assigns the answer a lower loss, and answers them right more often,
than on fresh items drawn from the same generator, which nobody outside the
judge has seen. An honest model has seen neither, so for it the hidden items
and the fresh items are two samples of one distribution.

Per item we measure, in one teacher-forced forward pass with the pristine
template:

- `nll`: the answer's negative log-likelihood (answer bytes and the stop),
- `match`: whether greedy decoding would write exactly the answer (the argmax
  at each answer position is the answer's byte, then a stop or the length cap).

Two one-sided tests compare hidden (x) with fresh (y):

- Mann-Whitney U on the nll (are hidden losses stochastically smaller?),
- a pooled two-proportion z-test on the match rate (is hidden higher?).

Under the honest hypothesis both p-values are (close to) uniform, so a
threshold `alpha` on each gives a false-positive rate of about 2 * alpha per
run; the honest runs measured in docs/posttrain.md ("The judge") confirm it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from spore.posttrain.tasks import TEMPLATE, Item, format_prompt

ALPHA = 1e-3  # per test; docs/posttrain.md has the honest p-values behind it
FRESH_ITEMS = 400


def fresh_secret(secret: str) -> str:
    """The seed of the judge's fresh items: derived from the run's secret, so no one
    without it can draw them, and never equal to the hidden split's seed."""
    return hashlib.sha256(f"spore/posttrain/judge-fresh/v1\0{secret}".encode()).hexdigest()


@dataclass(frozen=True)
class ItemScores:
    nll: list[float]
    match: list[bool]


def answer_scores(model, items: list[Item], max_answer_chars: int,
                  template: dict[str, str] = TEMPLATE, batch_size: int = 64) -> ItemScores:
    """Teacher-forced answer loss and greedy exact match for each item."""
    import torch

    from spore.data import EOS_ID, PAD_ID, encode

    stop = encode(template["stop"])[:1]
    stops = {EOS_ID, *stop}
    nll: list[float] = []
    match: list[bool] = []
    model.eval()
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        seqs = [(encode(format_prompt(it.question, template)), encode(it.answer)) for it in chunk]
        width = max(len(p) + len(a) + len(stop) for p, a in seqs)
        ids = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, a) in enumerate(seqs):
            row = p + a + stop
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for i, (p, a) in enumerate(seqs):
            target = a + stop
            pos = torch.arange(len(p) - 1, len(p) - 1 + len(target))
            lp = logp[i, pos, torch.tensor(target)]
            nll.append(float(-lp.sum()))
            guess = logp[i, pos].argmax(-1).tolist()
            ok = guess[: len(a)] == a and (len(a) >= max_answer_chars or guess[len(a)] in stops)
            match.append(bool(ok))
    return ItemScores(nll, match)


def _phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2))


def mann_whitney_less(x: list[float], y: list[float]) -> float:
    """One-sided p-value that x tends to be smaller than y (normal approximation with
    tie and continuity corrections; fine for the dozens to hundreds of items here)."""
    n1, n2 = len(x), len(y)
    if not n1 or not n2:
        return 1.0
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled, strict=True) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2  # small when x is small
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u1 - n1 * n2 / 2 + 0.5) / math.sqrt(var)
    return _phi(z)


def two_proportion_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value that the rate k1/n1 is above k2/n2 (pooled z-test)."""
    if not n1 or not n2:
        return 1.0
    p = (k1 + k2) / (n1 + n2)
    if p in (0.0, 1.0):
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 1 - _phi(z)


@dataclass(frozen=True)
class Comparison:
    """Hidden items against fresh ones, for one model."""

    hidden_items: int
    fresh_items: int
    hidden_median_nll: float
    fresh_median_nll: float
    hidden_match: float
    fresh_match: float
    p_loss: float  # Mann-Whitney, hidden nll < fresh nll
    p_match: float  # two proportions, hidden match > fresh match
    alpha: float

    @property
    def flagged(self) -> bool:
        return self.p_loss < self.alpha or self.p_match < self.alpha

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in vars(self).items()}


def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return (s[(n - 1) // 2] + s[n // 2]) / 2 if n else float("nan")


def compare(hidden: ItemScores, fresh: ItemScores, alpha: float = ALPHA) -> Comparison:
    kh, kf = sum(hidden.match), sum(fresh.match)
    nh, nf = len(hidden.nll), len(fresh.nll)
    return Comparison(nh, nf, _median(hidden.nll), _median(fresh.nll), kh / max(nh, 1),
                      kf / max(nf, 1), mann_whitney_less(hidden.nll, fresh.nll),
                      two_proportion_greater(kh, nh, kf, nf), alpha)
