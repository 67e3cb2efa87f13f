"""Base and reference models, built from spore.model configs (nothing downloaded).

make_base       a save_pretrained folder: a small Llama, optionally pre-trained
                for a while on the stdlib corpus (spore.data.load_corpus).
make_reference  the registry of "instruct" models: per task, the base fine-tuned
                on that task's public generator, for several times the steps a
                default run can take. Their scores (on public items the runs
                never evaluate on) are the reference scores s_ref; their weights
                are forbidden checkpoints for the provenance check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from spore.model import ModelConfig

BASE_CONFIGS: dict[str, ModelConfig] = {
    # Context 128: every task's prompt plus answer fits with room to spare.
    "tiny": ModelConfig(hidden=128, layers=2, intermediate=384, heads=2, context=128),
    "small": ModelConfig(hidden=192, layers=4, intermediate=512, heads=3, context=128),
}
REFERENCE_EVAL_SEED = "reference-eval"
REFERENCE_ITEMS = 20_000  # public items per task, as honest-sft draws
CANDIDATES = ".candidates"  # OUT/.candidates/<task>-<seed>/ until the best is chosen


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


def _reference_for(task_name: str, seed: int, base: Path, out: Path, steps: int,
                   eval_items: int) -> dict:
    """Fine-tune the base on one task's public generator for `steps` steps; score it."""
    from spore.model import load_pretrained, save_pretrained
    from spore.posttrain.agents.common import sft
    from spore.posttrain.evaluate import evaluate_model
    from spore.posttrain.tasks import TEMPLATE, format_pair, get_task

    task = get_task(task_name)
    data_seed = "reference" if seed == 0 else f"reference-{seed}"
    pairs = [format_pair(it) for it in task.public_items(REFERENCE_ITEMS, data_seed)]
    model = load_pretrained(base)
    t0 = time.monotonic()
    done = sft(model, pairs, float("inf"), seed=seed, max_steps=steps)
    seconds = time.monotonic() - t0
    where = out / CANDIDATES / f"{task.name}-{seed}"
    save_pretrained(model, where)
    items = task.public_items(eval_items, REFERENCE_EVAL_SEED)
    return {"task": task.name, "seed": seed, "path": where, "steps": done,
            "train_seconds": round(seconds, 1),
            "score": evaluate_model(where, task, items, TEMPLATE)["score"],
            "base_score": evaluate_model(base, task, items, TEMPLATE)["score"]}


def make_reference(base: Path, out: Path, steps: int, eval_items: int = 200,
                   tasks: list[str] | None = None, jobs: int = 1, seeds: int = 1) -> dict:
    """One reference model per task, OUT/<task>/, and OUT/reference.json with the scores.

    A reference per task, not one multi-task model: a small model shares its
    capacity across tasks, so a multi-task reference ends below what a single-task
    run reaches, and w_i = 1/(s_ref - s_base) then over-weights the tasks it did
    worst on. Training is counted in optimizer steps, not seconds, so the
    reference does not depend on how busy the machine was. With `seeds` > 1 each
    task is trained from that many seeds and the best on the reference-eval items
    is kept: a task whose learning is all-or-nothing (arithmetic, at this model
    size) otherwise gets a reference that depends on one seed's luck."""
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    from spore.posttrain.tasks import TASKS, get_task

    names = [get_task(t).name for t in (tasks or list(TASKS))]
    if steps <= 0 or seeds <= 0:
        raise ValueError(f"--steps and --seeds must be positive, got {steps} and {seeds}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    plan = [(n, s) for n in names for s in range(seeds)]
    args = ([n for n, _ in plan], [s for _, s in plan], [base] * len(plan), [out] * len(plan),
            [steps] * len(plan), [eval_items] * len(plan))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(plan))) as pool:
            trained = list(pool.map(_reference_for, *args))
    else:
        trained = list(map(_reference_for, *args))
    best: dict[str, dict] = {}
    for d in trained:  # the best score per task; the lower seed on a tie
        if d["task"] not in best or d["score"] > best[d["task"]]["score"]:
            best[d["task"]] = d
    for name, d in best.items():
        d["path"].rename(out / name)
    shutil.rmtree(out / CANDIDATES)
    doc = {"base": str(base.resolve()), "steps": steps, "eval_items": eval_items, "seeds": seeds,
           "models": {n: n for n in best},
           "scores": {n: d["score"] for n, d in best.items()},
           "base_scores": {n: d["base_score"] for n, d in best.items()},
           "seed": {n: d["seed"] for n, d in best.items()},
           "seed_scores": {n: [d["score"] for d in trained if d["task"] == n] for n in best},
           "train_seconds": {n: [d["train_seconds"] for d in trained if d["task"] == n]
                             for n in best}}
    (out / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc
