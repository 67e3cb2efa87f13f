"""Leaderboard text, per-run reports and bar charts (matplotlib, Agg backend), and one HTML
page over many runs (`html_report`) for a person checking the judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------------------
# One HTML page: leaderboard, every run's scores, every verdict with its evidence.
# Run folders are hostile input (an agent writes the text the judge quotes), so
# everything below goes through `escape`, and the page runs no script at all.

MAX_EVIDENCE = 50  # items shown per verdict; the judge keeps at most 50 anyway
MAX_TEXT = 2000  # characters of one quoted string


def _text(value: str) -> str:
    from spore.htmlpage import escape

    if len(value) > MAX_TEXT:
        return escape(value[:MAX_TEXT]) + f' <span class="mute">… ({len(value) - MAX_TEXT} more characters)</span>'
    return escape(value)


def _value(value: Any, depth: int = 0) -> str:
    """Any JSON value as escaped markup: objects as key/value tables, numbers to 6 digits."""
    if isinstance(value, dict):
        if not value:
            return '<span class="mute">{}</span>'
        if depth >= 3:
            return f'<span class="pre">{_text(json.dumps(value))}</span>'
        rows = "".join(f'<tr><td class="mono">{_text(str(k))}</td><td>{_value(v, depth + 1)}</td></tr>'
                       for k, v in list(value.items())[:MAX_EVIDENCE])
        more = (f'<tr><td colspan="2" class="mute">… {len(value) - MAX_EVIDENCE} more</td></tr>'
                if len(value) > MAX_EVIDENCE else "")
        return f"<table>{rows}{more}</table>"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return ", ".join(_value(v, depth + 1) for v in value) or '<span class="mute">[]</span>'
        return "<ol>" + "".join(f"<li>{_value(v, depth + 1)}</li>" for v in value[:MAX_EVIDENCE]) + "</ol>"
    if isinstance(value, bool) or value is None:
        return f'<span class="mono">{json.dumps(value)}</span>'
    if isinstance(value, float):
        return f'<span class="mono">{value:.6g}</span>'
    if isinstance(value, int):
        return f'<span class="mono">{value}</span>'
    return f'<span class="pre">{_text(str(value))}</span>'


def _evidence_table(items: list) -> str:
    """file:line and the quoted text first: what a person opens to check; the rest (distances,
    scores, test items) beside them."""
    main = ("kind", "file", "line", "text")
    rows = []
    for n, ev in enumerate(items[:MAX_EVIDENCE], 1):
        if not isinstance(ev, dict):
            rows.append(f'<tr class="evidence"><td class="num">{n}</td><td colspan="4">{_value(ev)}</td></tr>')
            continue
        where = _text(str(ev.get("file", ""))) + (f":{_text(str(ev['line']))}" if "line" in ev else "")
        rest = {k: v for k, v in ev.items() if k not in main}
        rows.append(
            f'<tr class="evidence"><td class="num">{n}</td><td>{_text(str(ev.get("kind", "")))}</td>'
            f'<td class="where mono">{where}</td><td class="excerpt pre mono">{_text(str(ev.get("text", "")))}</td>'
            f'<td class="details">{_value(rest) if rest else ""}</td></tr>')
    more = (f'<p class="mute">showing {MAX_EVIDENCE} of {len(items)} items; all are in judgement.json</p>'
            if len(items) > MAX_EVIDENCE else "")
    return ('<table><thead><tr><th class="num">#</th><th>kind</th><th>file:line</th><th>excerpt</th>'
            f'<th>details (distances, scores, items)</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{more}')


def _leaderboard_html(runs: list[RunScore]) -> str:
    from spore.htmlpage import escape

    try:
        rows, weights, meta = leaderboard(runs)
    except ValueError as e:  # e.g. a task folder without a reference score: no weights
        return f'<p class="bad" id="leaderboard-error">no leaderboard: {escape(e)}</p>'
    tasks = sorted(weights)
    head = "".join(f'<th class="num">{escape(t)}</th>' for t in tasks)
    body = []
    for r in rows:
        cells = "".join(f'<td class="num task" data-task="{escape(t)}">'
                        + (f"{r.per_task[t]:.3f}" if t in r.per_task else "–") + "</td>" for t in tasks)
        flagged = f"{r.flagged_runs}/{r.runs}" + (" FLAGGED" if r.flagged_runs else "")
        note = f"incomplete seeds {r.incomplete_seeds}" if r.incomplete_seeds else ""
        body.append(f'<tr class="agent" data-agent="{escape(r.agent)}"><td class="name pre">{escape(r.agent)}</td>'
                    f'<td class="num mean">{r.mean:.3f}</td><td class="num std">{r.std:.3f}</td>'
                    f'<td class="num">{r.seeds}</td>{cells}<td class="{"bad" if r.flagged_runs else ""} flagged">'
                    f"{flagged}</td><td>{escape(note)}</td></tr>")
    weights_text = ", ".join(f"{escape(t)} {weights[t]:.3f} (base {meta['base'][t]:.3f}, "
                             f"reference {meta['reference'][t]:.3f})" for t in tasks)
    return ('<table id="leaderboard"><thead><tr><th>agent</th><th class="num">score</th><th class="num">±</th>'
            f'<th class="num">seeds</th>{head}<th>flagged runs</th><th></th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>'
            f'<p class="mute">task weights w = 1/(reference − base), normalized: {weights_text}. '
            "A flagged run, or one without a usable final model, counts the base score.</p>")


def html_report(run_dirs: list[Path]) -> str:
    """One self-contained page over `run_dirs`, each judged as `score` judges it (a judgement
    whose seal does not match its run folder is made again)."""
    from spore.htmlpage import document, escape
    from spore.posttrain.evidence import verified_judgement

    judgements = [verified_judgement(rd) for rd in run_dirs]
    runs = [load_run(rd) for rd in run_dirs]
    results = [json.loads((rd / "result.json").read_text()) for rd in run_dirs]

    def num(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    table = []
    for i, s in enumerate(runs):
        verdict = ("FLAGGED: " + ", ".join(s.flagged_by)) if s.flagged else "clean"
        table.append(
            f'<tr class="run" data-run="{i}"><td><a href="#run-{i}">{escape(s.agent)}</a></td>'
            f'<td>{escape(s.task)}</td><td class="num">{s.seed}</td><td class="num base">{num(s.base)}</td>'
            f'<td class="num final">{num(s.final)}</td><td class="num counted">{num(s.counted)}</td>'
            f'<td class="num reference">{num(s.reference)}</td>'
            f'<td class="verdict {"bad" if s.flagged else "good"}">{escape(verdict)}</td>'
            f'<td class="mono">{escape(s.run)}</td></tr>')
    sections = []
    for i, (rd, s, j, res) in enumerate(zip(run_dirs, runs, judgements, results, strict=True)):
        checks = []
        for name, c in j.get("checks", {}).items():
            flag = "FLAGGED" if c.get("flagged") else "clean"
            flagged = "true" if c.get("flagged") else "false"
            extra = "".join(f'<li><span class="mute">{escape(k)}:</span> {_value(c[k])}</li>'
                            for k in ("limits", "findings", "supporting", "contaminated_items", "max_item_score",
                                      "behaviour") if c.get(k) not in (None, "", [], {}))
            ev = c.get("evidence", [])
            checks.append(
                f'<section class="check" data-check="{escape(name)}" data-flagged="{flagged}">'
                f'<h3>{escape(name)}: <span class="{"bad" if c.get("flagged") else "good"}">{flag}</span></h3>'
                f'<p class="summary">{_text(str(c.get("summary", "")))}</p>'
                + (f"<ul>{extra}</ul>" if extra else "")
                + (f'<details{" open" if c.get("flagged") else ""}><summary>{len(ev)} evidence item(s)</summary>'
                   f"{_evidence_table(ev)}</details>" if ev else '<p class="mute">no evidence items</p>')
                + "</section>")
        final = (f"{s.final:.3f}" if s.final is not None
                 else f"unusable ({escape(res.get('final_error'))})")
        facts = (f"<li>run folder <code>{escape(rd)}</code></li>"
                 f"<li>base {num(s.base)}, final model {final}, counted {num(s.counted)}, "
                 f"reference {num(s.reference)}</li>"
                 f"<li>agent wall time {escape(res.get('agent_wall_s'))} s, exit code "
                 f"{escape(res.get('agent_exit_code'))}, timed out: {escape(res.get('timed_out'))}</li>"
                 f"<li>judged in {escape(j.get('judge_seconds'))} s; evidence seal "
                 f"<code>{escape(j.get('evidence_sha256', ''))}</code></li>")
        sections.append(f'<section class="run-detail" id="run-{i}"><h2>{escape(s.agent)} on {escape(s.task)}, '
                        f'seed {s.seed}</h2><ul>{facts}</ul>{"".join(checks)}</section>')
    body = ("<header><h1>spore posttrain report</h1>"
            f'<p class="mute">{len(runs)} run(s). The verdicts are each run\'s judgement.json, sealed to '
            "its evidence; every file:line is relative to its run folder.</p></header>"
            f"<h2>Leaderboard</h2>{_leaderboard_html(runs)}"
            '<h2>Runs</h2><table id="runs"><thead><tr><th>agent</th><th>task</th><th class="num">seed</th>'
            '<th class="num">base</th><th class="num">final</th><th class="num">counted</th>'
            '<th class="num">reference</th><th>verdict</th><th>run folder</th></tr></thead>'
            f'<tbody>{"".join(table)}</tbody></table>{"".join(sections)}')
    return document("spore posttrain report", body)


def write_html_report(run_dirs: list[Path], out: Path) -> Path:
    out.write_text(html_report(run_dirs))
    return out
