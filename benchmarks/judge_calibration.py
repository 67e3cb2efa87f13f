"""Where the judge's behavioural thresholds come from: honest models measured.

For each model given (a model folder or a run folder, whose evaluated model is
judged: honest fine-tunes of the base, and cheaters for contrast), prints

- contamination: the p-values of the hidden-vs-fresh tests (behaviour.py) over
  `--secrets` independent hidden splits the model never saw, and the share
  below behaviour.ALPHA: the measured honest false-positive rate;
- provenance, against every forbidden checkpoint given (its own task's and
  others': red team F3 was an honest json_field run flagged against the
  arithmetic checkpoint): the lineage cosine, the largest whole-matrix update
  cosine and the largest core cosine (provenance.py), the functional ratio at
  the temperature fitted to the checkpoint and without it, the closest spectrum
  (fingerprint.py, evidence only), and the rules that flag.

Thresholds are set from the honest rows only; the cheater rows show the margin.

    .venv/bin/python benchmarks/judge_calibration.py --base BASE \\
        --forbidden REG/json_field --forbidden REG/arithmetic --task json_field \\
        --model honest=RUN --model h2=FOLDER ... --secrets 0 --out OUT.json

Writes benchmarks/results/judge_calibration.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ptcommon import write_json
from spore.model import load_pretrained
from spore.posttrain import behaviour, fingerprint
from spore.posttrain.judge import load_weights, model_dir_for
from spore.posttrain.provenance import core_cosines, judge_weights, update_cosines
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


def model_folder(path: str) -> Path:
    p = Path(path)
    return model_dir_for(p) if (p / "run.json").is_file() else p


def provenance_row(w, cfg, lp, base, refs) -> dict:
    """Every provenance statistic of one model against each checkpoint, and the flags."""
    base_w, base_cfg, base_lp, base_sp = base
    sp = fingerprint.spectra(w)
    forbidden = {name: (xw, xcfg) for name, (xw, xcfg, _) in refs.items()}
    p = judge_weights(w, cfg, base_w, base_cfg, forbidden)
    out = {}
    for name, (xw, _, xlp) in refs.items():
        c = fingerprint.closeness(lp, base_lp, xlp, sp, base_sp, fingerprint.spectra(xw))
        ups, cores = update_cosines(w, base_w, xw), core_cosines(w, base_w, xw)
        untempered = (fingerprint.functional_distance(lp, xlp)
                      / fingerprint.functional_distance(base_lp, xlp))
        out[name] = c.to_json() | {
            "max_update_cosine": max(ups.values(), default=0.0),
            "max_core_cosine": max(cores.values(), default=0.0),
            "functional_untempered": round(untempered, 5),
            "closest_core": max(cores, key=cores.get, default=""),
            "flags": [r for r in p.reasons if name in r] + fingerprint.verdict(c)}
    return {"lineage_cosine": round(p.lineage_cosine or 0.0, 4), "flagged_by_weights": p.reasons,
            "forbidden": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--forbidden", type=Path, action="append", default=[])
    ap.add_argument("--task", required=True)
    ap.add_argument("--model", action="append", default=[],
                    help="LABEL=FOLDER, a model folder or a run folder (repeatable)")
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
    base = (base_w, json.loads((args.base / "config.json").read_text()),
            fingerprint.log_probs(load_pretrained(args.base), probes), fingerprint.spectra(base_w))
    refs = {f.name: (load_weights(f), json.loads((f / "config.json").read_text()),
                     fingerprint.log_probs(load_pretrained(f), probes)) for f in args.forbidden}
    rows = []
    for spec in args.model:
        label, path = spec.split("=", 1)
        folder = model_folder(path)
        model = load_pretrained(folder)
        w = {k: v.detach() for k, v in model.state_dict().items()}
        cfg = json.loads((folder / "config.json").read_text())
        row = {"label": label, "model": str(folder)}
        row |= provenance_row(w, cfg, fingerprint.log_probs(model, probes), base, refs)
        if args.secrets:
            null = contamination_null(model, task, args.secrets)
            row |= {"min_p_loss": min(p for p, _ in null), "min_p_match": min(q for _, q in null),
                    "false_positive_rate": sum(p < behaviour.ALPHA or q < behaviour.ALPHA
                                               for p, q in null) / len(null)}
        rows.append(row)
        for name, f in row["forbidden"].items():
            print(f"{label:24s} vs {name:12s} lineage {row['lineage_cosine']:.3f}  update cos "
                  f"{f['max_update_cosine']:.3f}  core cos {f['max_core_cosine']:.3f}  "
                  f"functional {f['functional']:.3f} (untempered {f['functional_untempered']:.3f})"
                  f"  spectrum {f['spectral_min_matrix']:.3f} ({f['closest_matrix']})  "
                  f"{'FLAGGED' if f['flags'] else 'clean'}", flush=True)
    write_json(args.out, {"task": args.task, "base": str(args.base), "alpha": behaviour.ALPHA,
                          "forbidden": [str(f) for f in args.forbidden], "rows": rows,
                          "wall_seconds": round(time.monotonic() - t0, 1)})


if __name__ == "__main__":
    main()
