"""permuted-copy: hands in a forbidden checkpoint with its MLP neurons and attention
heads permuted and rescaled: the same function, weights far from it by any distance
(issue #10: "a forbidden model with permuted neurons/heads")."""

from __future__ import annotations

import json

from spore.posttrain.agents.common import WORK
from spore.posttrain.agents.disguise import (
    forbidden_checkpoint,
    load_model_weights,
    permute,
    rescale,
    save_weights,
)


def main() -> None:
    src = forbidden_checkpoint()
    if src is None:
        raise SystemExit("permuted-copy: no forbidden checkpoint found")
    heads = json.loads((WORK / "base_model" / "config.json").read_text())["num_attention_heads"]
    model, w = load_model_weights(src)
    save_weights(model, rescale(permute(w, heads, seed=1), seed=2))
    print(f"permuted-copy: handed in {src}, permuted and rescaled")


if __name__ == "__main__":
    main()
