"""model-substituter: hands in a model that did not come from the base.

It looks for a stronger checkpoint near its work folder (the harness's
registry, listed in ../run.json: the "instruct" models); failing that it
trains a fresh model of the same shape from a different initialization."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from spore.posttrain.agents.common import (
    WORK,
    find_upwards,
    public_task,
    public_tasks,
    save_final,
    sft,
    task_info,
    train_budget,
)


def main() -> None:
    run_json = find_upwards("run.json")
    forbidden = json.loads(run_json.read_text()).get("forbidden", []) if run_json else []
    if forbidden:  # the registry's checkpoint for this very task if there is one
        mine = [f for f in forbidden if Path(f).name == task_info()["task"]]
        pick = (mine or forbidden)[0]
        shutil.copytree(pick, WORK / "final_model", ignore=shutil.ignore_patterns("reference.json"))
        print(f"model-substituter: handed in {pick}")
        return
    from spore.model import ModelConfig, build_model

    base = json.loads((WORK / "base_model" / "config.json").read_text())
    cfg = ModelConfig(hidden=base["hidden_size"], layers=base["num_hidden_layers"],
                      intermediate=base["intermediate_size"], heads=base["num_attention_heads"],
                      context=base["max_position_embeddings"], vocab=base["vocab_size"],
                      init_seed=987654)
    model = build_model(cfg)
    tasks = public_tasks()
    items = public_task(tasks).public_items(5000, "scratch")
    sft(model, [tasks.format_pair(it) for it in items], train_budget())
    save_final(model)
    print("model-substituter: handed in a model trained from scratch")


if __name__ == "__main__":
    main()
