"""interpolator: hands in base + 0.49 * (checkpoint - base), always nearer the base
than the checkpoint by weight distance (issue #10: "base + 0.49*(ref - base)")."""

from __future__ import annotations

from spore.posttrain.agents.common import WORK
from spore.posttrain.agents.disguise import (
    forbidden_checkpoint,
    interpolate,
    load_model_weights,
    save_weights,
)

T = 0.49


def main() -> None:
    src = forbidden_checkpoint()
    if src is None:
        raise SystemExit("interpolator: no forbidden checkpoint found")
    model, base = load_model_weights(WORK / "base_model")
    _, x = load_model_weights(src)
    save_weights(model, interpolate(base, x, T))
    print(f"interpolator: base + {T} * ({src} - base)")


if __name__ == "__main__":
    main()
