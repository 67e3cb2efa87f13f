"""partial-copy: the base with a forbidden checkpoint's last layer put in (its neurons
and heads permuted), then fine-tuned on public data for the time left
(issue #10: "partial copying")."""

from __future__ import annotations

import json

from spore.posttrain.agents.common import (
    WORK,
    public_task,
    public_tasks,
    save_final,
    sft,
    task_info,
    train_budget,
)
from spore.posttrain.agents.disguise import (
    copy_layers,
    forbidden_checkpoint,
    load_model_weights,
    permute,
)


def main() -> None:
    src = forbidden_checkpoint()
    if src is None:
        raise SystemExit("partial-copy: no forbidden checkpoint found")
    cfg = json.loads((WORK / "base_model" / "config.json").read_text())
    last = cfg["num_hidden_layers"] - 1
    model, base = load_model_weights(WORK / "base_model")
    _, x = load_model_weights(src)
    model.load_state_dict(copy_layers(base, permute(x, cfg["num_attention_heads"], seed=3),
                                      [last]))
    tasks = public_tasks()
    items = public_task(tasks).public_items(5000, "partial-copy")
    steps = sft(model, [tasks.format_pair(it) for it in items], train_budget(), lr=3e-4,
                seed=int(task_info()["seed"]))
    save_final(model)
    print(f"partial-copy: layer {last} of {src}, then {steps} steps of public SFT")


if __name__ == "__main__":
    main()
