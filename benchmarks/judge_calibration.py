"""Where the judge's behavioural thresholds come from: honest models measured.

For each model folder given (honest fine-tunes of the base, and optionally
cheaters for contrast), prints

- contamination: the p-values of the hidden-vs-fresh tests (behaviour.py) over
  `--secrets` independent hidden splits the model never saw, and the share
  below behaviour.ALPHA: the measured honest false-positive rate;
- provenance, per forbidden checkpoint: the lineage cosine, the largest update
  cosine (provenance.py), and the functional and closest-matrix spectral ratios
  (fingerprint.py).

Thresholds are set from the honest rows only; the cheater rows show the margin.

    .venv/bin/python benchmarks/judge_calibration.py --base BASE --forbidden REG/json_field \\
        --task json_field --model honest=RUN/work/final_model ...

Writes benchmarks/results/judge_calibration.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ptcommon import write_json
from spore.model import load_pretrained
from spore.posttrain import behaviour, fingerprint
from spore.posttrain.judge import load_weights
from spore.posttrain.provenance import lineage_cosine, update_cosines
from spore.posttrain.tasks import get_task


def contamination_null(model, task, secrets: int) -> list[tuple[float, float]]:
    out = []
    for i in range(secrets):
        secret = f"calibration-{i}"
        hidden = task.hidden_items(secret, 200)
        fresh = task.hidden_items(behaviour.fresh_secret(secret), behaviour.FRESH_ITEMS)
        c = behaviour.compare(behaviour.answer_scores(model, hidden, task.max_answer_chars),
                              behaviour.answer_scores(model, fresh, task.max_answer_chars))
        out.append((c.p_loss, c.p_match))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--forbidden", type=Path, action="append", default=[])
    ap.add_argument("--task", required=True)
    ap.add_argument("--model", action="append", default=[], help="LABEL=FOLDER (repeatable)")
    ap.add_argument("--secrets", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/judge_calibration.json"))
    args = ap.parse_args()
    t0 = time.monotonic()
    import torch

    torch.set_num_threads(1)
    task = get_task(args.task)
    probes = fingerprint.probe_texts("calibration", [f"{it.question}\nA: " for it in
                                                     task.hidden_items("probe-items", 64)])
    base_w = load_weights(args.base)
    base_lp, base_sp = fingerprint.log_probs(load_pretrained(args.base), probes), \
        fingerprint.spectra(base_w)
    refs = {str(f): (load_weights(f), fingerprint.log_probs(load_pretrained(f), probes))
            for f in args.forbidden}
    rows = []
    for spec in args.model:
        label, folder = spec.split("=", 1)
        model = load_pretrained(folder)
        w = {k: v.detach() for k, v in model.state_dict().items()}
        lp, sp = fingerprint.log_probs(model, probes), fingerprint.spectra(w)
        null = contamination_null(model, task, args.secrets)
        row = {"label": label, "model": folder, "lineage_cosine": round(lineage_cosine(w, base_w), 4),
               "min_p_loss": min((p for p, _ in null), default=None),
               "min_p_match": min((q for _, q in null), default=None),
               "false_positive_rate": sum(p < behaviour.ALPHA or q < behaviour.ALPHA
                                          for p, q in null) / max(len(null), 1), "forbidden": {}}
        for name, (xw, xlp) in refs.items():
            c = fingerprint.closeness(lp, base_lp, xlp, sp, base_sp, fingerprint.spectra(xw))
            ups = update_cosines(w, base_w, xw)
            row["forbidden"][name] = c.to_json() | {"max_update_cosine": max(ups.values(), default=0.0)}
        rows.append(row)
        f = next(iter(row["forbidden"].values()), {})
        print(f"{label:28s} lineage {row['lineage_cosine']:.3f}  min p {row['min_p_loss']}/"
              f"{row['min_p_match']}  FPR {row['false_positive_rate']:.2f}  "
              f"update cos {f.get('max_update_cosine', float('nan')):.3f}  functional "
              f"{f.get('functional', float('nan')):.3f}  spectral matrix "
              f"{f.get('spectral_min_matrix', float('nan')):.3f} ({f.get('closest_matrix', '')})",
              flush=True)
    write_json(args.out, {"task": args.task, "alpha": behaviour.ALPHA, "rows": rows,
                          "wall_seconds": round(time.monotonic() - t0, 1)})


if __name__ == "__main__":
    main()
