"""Base and reference models, built from spore.model configs (nothing downloaded).

make_base       a save_pretrained folder: a small Llama, optionally pre-trained
                for a while on the stdlib corpus (spore.data.load_corpus).
make_reference  the registry's "instruct" model: the base fine-tuned on every
                task's public generator, much longer than a run may train. Its
                per-task scores (on public items the runs never evaluate on)
                are the reference scores s_ref; its weights are a forbidden
                checkpoint for the provenance check.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from spore.model import ModelConfig

BASE_CONFIGS: dict[str, ModelConfig] = {
    # Context 128: every task's prompt plus answer fits with room to spare.
    "tiny": ModelConfig(hidden=128, layers=2, intermediate=384, heads=2, context=128),
    "small": ModelConfig(hidden=192, layers=4, intermediate=512, heads=3, context=128),
}
REFERENCE_EVAL_SEED = "reference-eval"


def make_base(out: Path, config: str = "tiny", pretrain_seconds: float = 0.0,
              init_seed: int = 0) -> dict:
    import dataclasses

    import torch

    from spore.data import load_corpus, random_batch
    from spore.model import build_model, lm_loss, save_pretrained

    if config not in BASE_CONFIGS:
        raise ValueError(f"unknown base config {config!r}; choose one of {sorted(BASE_CONFIGS)}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty")
    cfg = dataclasses.replace(BASE_CONFIGS[config], init_seed=init_seed)
    model = build_model(cfg)
    steps = 0
    if pretrain_seconds > 0:
        torch.set_num_threads(1)
        corpus = load_corpus(max_bytes=4 << 20)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95))
        t_end = time.monotonic() + pretrain_seconds
        while time.monotonic() < t_end:
            batch = random_batch(corpus, f"make-base-{steps}".encode(), 16, 96)
            loss = lm_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    save_pretrained(model, out)
    info = {"config": dataclasses.asdict(cfg), "pretrain_steps": steps}
    return info


def make_reference(base: Path, out: Path, seconds: float, eval_items: int = 200) -> dict:
    from spore.model import load_pretrained, save_pretrained
    from spore.posttrain.agents.common import sft
    from spore.posttrain.evaluate import evaluate_model
    from spore.posttrain.tasks import TASKS, TEMPLATE, format_pair

    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty")
    pairs = [format_pair(it) for t in TASKS.values() for it in t.public_items(20000, "reference")]
    random.Random(0).shuffle(pairs)
    model = load_pretrained(base)
    steps = sft(model, pairs, seconds, seed=0)
    save_pretrained(model, out)
    scores, base_scores = {}, {}
    for t in TASKS.values():
        items = t.public_items(eval_items, REFERENCE_EVAL_SEED)
        scores[t.name] = evaluate_model(out, t, items, TEMPLATE)["score"]
        base_scores[t.name] = evaluate_model(base, t, items, TEMPLATE)["score"]
    doc = {"base": str(base.resolve()), "train_seconds": seconds, "steps": steps,
           "scores": scores, "base_scores": base_scores, "eval_items": eval_items}
    (out / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc
