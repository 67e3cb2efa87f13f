"""Leaderboard text, per-run reports and bar charts (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path

from spore.posttrain.scoring import RunScore, leaderboard


def load_run(run_dir: Path) -> RunScore:
    """A run's scores, judging it first if it has no judgement yet."""
    res_path = run_dir / "result.json"
    if not res_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no result.json: not a finished posttrain run")
    res = json.loads(res_path.read_text())
    jpath = run_dir / "judgement.json"
    if not jpath.is_file():
        from spore.posttrain.judge import judge

        judge(run_dir)
    j = json.loads(jpath.read_text())
    final = res["final_score"] if res["final_usable"] else None
    ref = res["reference_score"]  # null for a task folder that gives none
    return RunScore(res["agent"], res["task"], int(res["seed"]), float(res["base_score"]),
                    None if ref is None else float(ref), final, bool(j["flagged"]),
                    tuple(j["flagged_by"]), str(run_dir))


def format_leaderboard(runs: list[RunScore]) -> str:
    rows, weights, meta = leaderboard(runs)
    tasks = sorted(weights)
    head = f"{'agent':<28} {'score':>15} " + " ".join(f"{t:>11}" for t in tasks) + "  flagged"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = " ".join(f"{r.per_task[t]:>11.3f}" if t in r.per_task else f"{'-':>11}"
                         for t in tasks)
        mark = f"{r.flagged_runs}/{r.runs} FLAGGED" if r.flagged_runs else f"0/{r.runs}"
        note = f" (incomplete seeds {r.incomplete_seeds})" if r.incomplete_seeds else ""
        lines.append(f"{r.agent:<28} {r.mean:>7.3f} ± {r.std:<5.3f} {cells}  {mark}{note}")
    lines.append("")
    lines.append("task weights w_i = 1/(s_ref - s_base), normalized: "
                 + ", ".join(f"{t} {weights[t]:.3f} (base {meta['base'][t]:.3f}, "
                             f"ref {meta['reference'][t]:.3f})" for t in tasks))
    lines.append("a flagged run, or one without a usable final model, counts the base score")
    flagged = [r for r in runs if r.flagged]
    for r in flagged:
        lines.append(f"  FLAGGED {r.agent} {r.task} seed {r.seed}: {', '.join(r.flagged_by)}"
                     f"  ({r.run})")
    return "\n".join(lines)


def plot_leaderboard(runs: list[RunScore], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, weights, meta = leaderboard(runs)
    tasks = sorted(weights)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(tasks), 4))
    width = 0.8 / (len(rows) + 2)
    for k, label in enumerate(("base", "reference")):
        ax.bar([i + k * width for i in range(len(tasks))], [meta[label][t] for t in tasks],
               width, label=label, color=("#bbbbbb", "#555555")[k])
    for j, r in enumerate(rows, 2):
        ax.bar([i + j * width for i in range(len(tasks))], [r.per_task.get(t, 0) for t in tasks],
               width, label=r.agent + (" (flagged runs)" if r.flagged_runs else ""))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks)
    ax.set_ylabel("exact-match score (counted)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_report(run_dir: Path) -> Path:
    """RUN_DIR/report.md and report.png: scores, verdicts with evidence, time used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = load_run(run_dir)
    res = json.loads((run_dir / "result.json").read_text())
    j = json.loads((run_dir / "judgement.json").read_text())
    labels = ["base", "final (measured)", "counted", "reference"]
    values = [score.base, score.final or 0.0, score.counted, score.reference or 0.0]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(labels, values, color=["#bbbbbb", "#4c72b0", "#c44e52" if score.flagged else "#55a868",
                                  "#555555"])
    ax.set_title(f"{score.agent} on {score.task}, seed {score.seed}"
                 + (" (FLAGGED)" if score.flagged else ""), fontsize=9)
    ax.set_ylabel("exact match")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "report.png", dpi=100)
    plt.close(fig)
    lines = [f"# {score.agent} on {score.task} (seed {score.seed})", "",
             f"- base score {score.base:.3f}, reference "
             + (f"{score.reference:.3f}" if score.reference is not None else "none (no reference_score)"),
             "- final model: " + (f"{score.final:.3f}" if score.final is not None
                                   else f"unusable ({res.get('final_error')})"),
             f"- counted score: {score.counted:.3f}" + (" (flagged: base score)" if score.flagged
                                                         else ""),
             f"- agent wall time {res['agent_wall_s']:.1f}s, exit code {res['agent_exit_code']}, "
             f"timed out: {res['timed_out']}; judge {j['judge_seconds']:.2f}s", "",
             "![scores](report.png)", "", "## Verdicts", ""]
    for name, c in j["checks"].items():
        lines.append(f"### {name}: {'FLAGGED' if c['flagged'] else 'clean'}")
        lines.append(c["summary"])
        for ev in c["evidence"][:5]:
            lines.append(f"- `{json.dumps(ev)[:400]}`")
        lines.append("")
    out = run_dir / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
