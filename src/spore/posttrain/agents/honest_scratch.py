"""honest-scratch: an honest agent written as its own script, sharing nothing with
spore's trainer: its own byte encoding, its own loop (loss on the whole sequence,
Adam at a constant 1e-3 after a short warm-up, batch 16), public data only.

It only needs torch and transformers, as an outside agent would; it is in the
package so the tests and benchmarks/judge.py can start it as builtin:honest-scratch."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

WORK = Path(".")


def load_public():
    spec = importlib.util.spec_from_file_location("my_tasks", WORK / "public" / "tasks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["my_tasks"] = mod
    spec.loader.exec_module(mod)
    info = json.loads((WORK / "task.json").read_text())
    public = WORK / "public"
    if (public / "task.json").is_file():
        task = mod.local_task((public / "task.json").read_text(),
                              (public / "train.jsonl").read_text(), "public")
    else:
        task = mod.TASKS[info["task"]]
    return info, task


def main() -> None:
    t0 = time.time()
    info, task = load_public()
    deadline = float(info["deadline"])
    cfg = json.loads((WORK / "base_model" / "config.json").read_text())
    eos, pad = cfg["eos_token_id"], cfg["pad_token_id"]
    items = task.public_items(8000, f"scratch-{info['seed']}")
    rows = [list(f"{it.question}\nA: {it.answer}\n".encode()) + [eos] for it in items]
    torch.manual_seed(int(info["seed"]))
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(WORK / "base_model"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = random.Random(int(info["seed"]))
    stop_at = t0 + 0.7 * (deadline - t0) - 3
    step = 0
    model.train()
    while time.time() < stop_at:
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / 10)
        batch = [rows[rng.randrange(len(rows))] for _ in range(16)]
        width = max(map(len, batch))
        ids = torch.full((16, width), pad)
        labels = torch.full((16, width), -100)
        for i, r in enumerate(batch):
            ids[i, : len(r)] = torch.tensor(r)
            labels[i, : len(r)] = torch.tensor(r)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    out = WORK / "final_model"
    model.save_pretrained(str(out), safe_serialization=True)
    for f in (WORK / "base_model").iterdir():  # the tokenizer files, as given
        if f.is_file() and not (out / f.name).exists():
            shutil.copyfile(f, out / f.name)
    print(f"honest-scratch: {step} steps, last loss {float(loss):.3f}")


if __name__ == "__main__":
    main()
