"""The run page of `spore swarm watch` and `spore swarm report --html`: markup and its script.

One page for both: live, its script polls `view.json` (spore.swarm.view's
document) on the server that sent it; as a report, the same document is
embedded in the file and drawn once. Charts are drawn as SVG by hand. The
script puts text in with `textContent` only: peers write the notes and ids it
shows.
"""

# The script and markup below are a web asset, not Python: their lines run long.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

from spore.htmlpage import document, embed_json

POLL_MS = 2000

BODY = """
<header>
  <h1>spore swarm · run <span id="run-id" class="mono">…</span></h1>
  <div><span id="state" class="badge">loading</span> <span id="state-text" class="mute"></span>
       <span id="updated" class="mute"></span></div>
  <div id="run-facts" class="mute"></div>
</header>
<section id="problems" hidden><h2 class="bad">Objects that did not verify</h2><ul id="problem-list"></ul></section>
<h2>Overview</h2>
<section class="cards">
  <div class="card"><div class="label">held-out loss (initial → latest)</div>
    <div class="value"><span id="loss-initial">–</span> → <span id="loss-latest">–</span></div>
    <div class="mute" id="loss-latest-window"></div></div>
  <div class="card"><div class="label">bytes per update (median, accepted)</div>
    <div class="value"><span id="wire-median">–</span> B</div>
    <div class="mute">dense fp32 <span id="dense-bytes">–</span> B · <span id="compression">–</span>× smaller</div></div>
  <div class="card"><div class="label">validator busy (median measuring time)</div>
    <div class="value"><span id="busy-median">–</span> s · <span id="busy-share">–</span></div>
    <div class="mute">of a <span id="window-seconds">–</span> s window; budget <span id="budget">–</span></div></div>
  <div class="card"><div class="label">windows without an applied update</div>
    <div class="value" id="no-update-windows">–</div>
    <div class="mute"><span id="accepted-total">–</span> accepted, <span id="rejected-total">–</span> rejected</div></div>
  <div class="card"><div class="label">peers' theta vs the validator's</div>
    <div class="value"><span id="theta-agree">–</span> of <span id="theta-reports">–</span></div>
    <div class="mute">status reports holding the recorded digest</div></div>
  <div class="card"><div class="label">ledger</div>
    <div class="value" id="ledger-state">–</div>
    <ul id="ledger-details" class="mute"></ul></div>
</section>
<h2>Held-out loss per window</h2>
<svg id="loss-chart" viewBox="0 0 1200 240" role="img" aria-label="held-out loss per window"></svg>
<div class="row">
  <div><h2>Bytes per update (median per window)</h2>
    <svg id="bytes-chart" viewBox="0 0 600 200" role="img" aria-label="bytes per update"></svg></div>
  <div><h2>Validator busy (share of the window spent measuring)</h2>
    <svg id="busy-chart" viewBox="0 0 600 200" role="img" aria-label="validator utilization"></svg></div>
</div>
<h2>Peers in window <select id="peer-window"></select></h2>
<table id="peers"><thead><tr>
  <th>peer</th><th class="num">submitted (B)</th><th>verdict</th><th>measured</th><th class="num">outcome</th>
  <th class="num">gradient</th><th class="num">fit z</th><th class="num">rating</th><th class="num">ordinal</th>
  <th class="num">weight</th><th>gather list</th><th>next list</th><th>theta</th><th class="num">train loss</th>
  <th>note</th></tr></thead><tbody></tbody></table>
<h2>Windows</h2>
<table id="windows"><thead><tr>
  <th class="num">window</th><th class="num">held-out loss</th><th class="num">accepted</th><th>rejected</th>
  <th class="num">bytes / update</th><th class="num">aggregated</th><th class="num">updates used</th>
  <th class="num">measured</th><th class="num">measure s</th><th class="num">busy</th><th class="num">gather list</th>
  </tr></thead><tbody></tbody></table>
<footer><h2>Source</h2><div id="source" class="mono mute"></div></footer>
"""

SCRIPT = r"""
"use strict";
const POLL_MS = __POLL_MS__;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let chosenWindow = "latest";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k === null || k === undefined ? "" : String(k)));
  return e;
}
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const dash = "–";
const isNum = (x) => typeof x === "number" && isFinite(x);
const fix = (x, d) => isNum(x) ? x.toFixed(d) : dash;
const bytes = (x) => isNum(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(1)) : dash;
const pct = (x) => isNum(x) ? (100 * x).toFixed(0) + "%" : dash;
const short = (id) => id ? id.slice(0, 12) + "…" : "(no id)";
const yesno = (b) => b === true ? "yes" : b === false ? "no" : dash;
function set(id, text, cls) { const e = $(id); e.textContent = text; if (cls !== undefined) e.className = cls; return e; }

// data-col: the column's name (its first class that is not "num"), for readers and tests.
function td(cls, text, title) { return el("td", {class: cls, "data-col": cls.split(" ").find((c) => c !== "num"), title: title}, text); }

function render(v) {
  $("source").textContent = "store " + (v.source.store || dash) + (v.source.ledger ? "  ·  ledger " + v.source.ledger : "");
  const problems = v.problems || [];
  $("problems").hidden = problems.length === 0;
  $("problem-list").replaceChildren(...problems.map((p) => el("li", {}, p)));
  set("state", v.state, "badge " + ({finished: "good", running: "good", waiting: "warn", starting: "warn"}[v.state] || "warn"));
  set("state-text", v.state_text || "");
  set("updated", v.now ? " · updated " + new Date(v.now * 1000).toLocaleTimeString() : "");
  renderLedger(v.ledger);
  if (!v.run) return;
  const r = v.run, t = v.totals;
  set("run-id", r.run_id);
  set("run-facts", `preset ${r.preset} · ${r.windows} windows of ${r.window_seconds} s · warm-up ${r.warmup_windows}` +
      ` · gather size ${r.gather_size} · aggregation ${r.aggregation} · validator ${short(r.validator)} (${r.validator_source})`);
  set("loss-initial", fix(t.initial_eval_loss, 4));
  set("loss-latest", fix(t.latest_eval_loss, 4));
  set("loss-latest-window", t.windows_recorded ? `after window ${t.windows_recorded - 1} (${t.windows_recorded} of ${r.windows} recorded)` : "no window recorded yet");
  set("wire-median", bytes(t.wire_bytes_per_update));
  set("dense-bytes", bytes(t.dense_fp32_bytes));
  set("compression", fix(t.compression_ratio, 1));
  set("busy-median", fix(t.measure_seconds, 2));
  set("busy-share", pct(t.busy), isNum(t.busy) && t.busy > t.budget ? "warn" : "");
  set("window-seconds", String(r.window_seconds));
  set("budget", pct(t.budget));
  set("no-update-windows", t.windows_without_update.length ? t.windows_without_update.join(", ") : "none",
      t.windows_without_update.length ? "value bad" : "value good");
  set("accepted-total", String(t.accepted));
  set("rejected-total", String(t.rejected));
  set("theta-agree", String(t.theta_agreeing), t.theta_agreeing === t.theta_reports ? "good" : "bad");
  set("theta-reports", String(t.theta_reports));
  const recorded = v.windows.filter((w) => w.recorded);
  lineChart($("loss-chart"), [{x: 0, y: r.initial_eval_loss, label: "start"}]
      .concat(recorded.map((w) => ({x: w.window + 1, y: w.eval_loss, label: "after window " + w.window}))), r.windows);
  barChart($("bytes-chart"), recorded.map((w) => ({x: w.window, y: w.bytes_median, label: bytes(w.bytes_median) + " B"})), r.windows, null, (y) => String(Math.round(y)));
  barChart($("busy-chart"), recorded.map((w) => ({x: w.window, y: w.busy, label: pct(w.busy)})), r.windows, t.budget, pct);
  renderWindows(v.windows);
  renderPeerSelect(v);
  renderPeers(v);
}

function renderLedger(l) {
  const list = $("ledger-details");
  if (!l) { set("ledger-state", "not given", "value mute");
    list.replaceChildren(el("li", {}, "a store alone: records checked by the validator's signature only")); return; }
  const state = $("ledger-state");
  state.dataset.ok = String(l.ok);
  state.textContent = l.ok ? `verified: ${l.records} records` : "BROKEN" + (l.first_bad !== null ? ` at record #${l.first_bad}` : "");
  state.className = "value " + (l.ok ? "good" : "bad");
  const items = [];
  if (!l.ok) items.push(el("li", {class: "bad"}, l.problem));
  else items.push(el("li", {}, "hash chain and every signature check"));
  if (l.validator_matches === false) items.push(el("li", {class: "bad"}, "the ledger's validator is not the one that signed run.json"));
  items.push(el("li", {id: "ledger-same"}, `${l.windows_same.length} window records identical in the store`));
  if (l.windows_differ.length) items.push(el("li", {class: "bad"}, "differ from the store: windows " + l.windows_differ.join(", ")));
  if (l.windows_only_in_ledger.length) items.push(el("li", {class: "warn"}, "not (yet) in the store: windows " + l.windows_only_in_ledger.join(", ")));
  if (l.windows_only_in_store.length) items.push(el("li", {class: "warn"}, "not (yet) in the ledger: windows " + l.windows_only_in_store.join(", ")));
  list.replaceChildren(...items);
}

function axes(svg, W, H, m, ymin, ymax, fmtY) {
  svg.append(svgEl("line", {x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b, stroke: "#999"}));
  svg.append(svgEl("line", {x1: m.l, y1: m.t, x2: m.l, y2: H - m.b, stroke: "#999"}));
  svg.append(svgEl("text", {x: m.l - 6, y: m.t + 4, "text-anchor": "end"}, fmtY(ymax)));
  svg.append(svgEl("text", {x: m.l - 6, y: H - m.b, "text-anchor": "end"}, fmtY(ymin)));
}

function lineChart(svg, pts, windows) {
  svg.replaceChildren();
  pts = pts.filter((p) => isNum(p.y));
  const W = 1200, H = 240, m = {l: 56, r: 16, t: 14, b: 28};
  if (!pts.length) { svg.append(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data yet")); return; }
  let lo = Math.min(...pts.map((p) => p.y)), hi = Math.max(...pts.map((p) => p.y));
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const X = (x) => m.l + (W - m.l - m.r) * x / Math.max(1, windows);
  const Y = (y) => H - m.b - (H - m.t - m.b) * (y - lo) / (hi - lo);
  axes(svg, W, H, m, lo, hi, (y) => y.toFixed(3));
  for (let x = 0; x <= windows; x += Math.max(1, Math.ceil(windows / 20)))
    svg.append(svgEl("text", {x: X(x), y: H - 10, "text-anchor": "middle"}, String(x)));
  svg.append(svgEl("polyline", {points: pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: "#2f5fb3", "stroke-width": 2}));
  for (const p of pts) {
    const c = svgEl("circle", {cx: X(p.x), cy: Y(p.y), r: 3.5, fill: "#2f5fb3", "data-x": p.x});
    c.append(svgEl("title", {}, `${p.label}: ${p.y.toFixed(4)}`));
    svg.append(c);
  }
}

function barChart(svg, bars, windows, refLine, fmtY) {
  svg.replaceChildren();
  const W = 600, H = 200, m = {l: 56, r: 16, t: 14, b: 28};
  const vals = bars.filter((b) => isNum(b.y)).map((b) => b.y);
  if (!vals.length) { svg.append(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data yet")); return; }
  const hi = Math.max(...vals, refLine || 0) * 1.1 || 1;
  const slot = (W - m.l - m.r) / Math.max(1, windows);
  const Y = (y) => H - m.b - (H - m.t - m.b) * y / hi;
  axes(svg, W, H, m, 0, hi, fmtY);
  for (const b of bars) {
    const x = m.l + slot * b.x + slot * 0.15;
    if (isNum(b.y)) {
      const rect = svgEl("rect", {x: x, y: Y(b.y), width: slot * 0.7, height: H - m.b - Y(b.y), fill: "#6c8fd1", "data-x": b.x});
      rect.append(svgEl("title", {}, `window ${b.x}: ${b.label}`));
      svg.append(rect);
    }
    if (windows <= 40) svg.append(svgEl("text", {x: x + slot * 0.35, y: H - 10, "text-anchor": "middle"}, String(b.x)));
  }
  if (isNum(refLine)) {
    svg.append(svgEl("line", {x1: m.l, y1: Y(refLine), x2: W - m.r, y2: Y(refLine), stroke: "#b3261e", "stroke-dasharray": "5 4"}));
    svg.append(svgEl("text", {x: W - m.r, y: Y(refLine) - 4, "text-anchor": "end"}, "budget " + fmtY(refLine)));
  }
}

function renderWindows(ws) {
  const rows = ws.slice().reverse().map((w) => {
    const tr = el("tr", {"data-window": w.window, "data-recorded": String(w.recorded), class: w.recorded ? "" : "mute"});
    const rej = w.rejected || [];
    tr.append(td("num window", String(w.window)),
      td("num eval-loss", w.recorded ? fix(w.eval_loss, 4) : "open"),
      td("num accepted", w.recorded ? String(w.accepted) : `${w.submitted} uploaded`),
      td("rejected", rej.length ? `${rej.length}: ` + rej.map((x) => `${short(x.peer)} ${x.reason}`).join("; ") : (w.recorded ? "0" : dash)),
      td("num bytes", bytes(w.bytes_median)),
      td("num aggregated", w.recorded ? String(w.aggregated) : dash),
      td("num used", pct(w.updates_used)),
      td("num measured", w.recorded ? String(w.measured) : dash),
      td("num measure-seconds", fix(w.measure_seconds, 2)),
      td("num busy", pct(w.busy)),
      td("num gather", w.gather ? String(w.gather.length) : dash, (w.gather || []).join("\n")));
    if (w.recorded && !w.aggregated) tr.className = "bad";
    return tr;
  });
  $("windows").tBodies[0].replaceChildren(...rows);
}

function renderPeerSelect(v) {
  const sel = $("peer-window");
  const opts = [el("option", {value: "latest"}, "latest")].concat(
    v.windows.slice().reverse().map((w) => el("option", {value: String(w.window)}, String(w.window) + (w.recorded ? "" : " (open)"))));
  sel.replaceChildren(...opts);
  sel.value = v.windows.some((w) => String(w.window) === chosenWindow) ? chosenWindow : "latest";
}

function shownWindow(v) {
  if (chosenWindow !== "latest") { const w = v.windows.find((x) => String(x.window) === chosenWindow); if (w) return w; }
  const live = v.current_window !== null && v.current_window !== undefined ? v.windows.find((x) => x.window === v.current_window) : null;
  const recorded = v.windows.filter((x) => x.recorded);
  return live && !live.recorded && !recorded.length ? live : (recorded[recorded.length - 1] || live);
}

function renderPeers(v) {
  const w = shownWindow(v);
  const body = $("peers").tBodies[0];
  $("peers").dataset.window = w ? String(w.window) : "";
  if (!w) { body.replaceChildren(); return; }
  body.replaceChildren(...w.peers.map((p) => {
    const s = p.status || {};
    let verdict = dash, vcls = "verdict";
    if (p.accepted === true) { verdict = "accepted"; vcls += " good"; }
    else if (p.rejected) { verdict = `rejected: ${p.rejected.reason}` + (p.rejected.detail ? ` (${p.rejected.detail})` : ""); vcls += " bad"; }
    else if (p.submitted && !w.recorded) verdict = "uploaded, not yet judged";
    else if (w.recorded) verdict = "no update";
    if (p.copy_of) verdict += ` · copy of ${short(p.copy_of)}`;
    if (p.restates) verdict += " · restates the last aggregate";
    const tr = el("tr", {"data-peer": p.peer || p.key || ""});
    tr.append(td("peer mono", short(p.peer), p.peer || p.key),
      td("num submitted", p.submitted ? bytes(p.bytes) : "no"),
      td(vcls, verdict),
      td("measured", w.recorded ? yesno(p.measured) : dash),
      td("num outcome " + (p.outcome > 0 ? "good" : p.outcome < 0 ? "bad" : ""), isNum(p.outcome) ? (p.outcome > 0 ? "+1" : "-1") : dash),
      td("num gradient", fix(p.gradient_score, 4)),
      td("num fit-z", fix(p.fit_z, 2)),
      td("num rating", fix(p.rating, 3)),
      td("num ordinal", fix(p.ordinal, 2)),
      td("num weight", fix(p.weight, 3)),
      td("in-gather", yesno(p.in_gather)),
      td("in-gather-next", yesno(p.in_gather_next)),
      td("theta " + (s.theta_ok === false ? "bad" : ""), s.theta_ok === true ? "same" : s.theta_ok === false ? "DIFFERENT" : dash),
      td("num train-loss", fix(s.train_loss, 4)),
      td("note pre", s.note || ""));
    return tr;
  }));
}

let last = null;
$("peer-window").addEventListener("change", (e) => { chosenWindow = e.target.value; if (last) renderPeers(last); });

const embedded = $("view-data");
if (embedded) {
  last = JSON.parse(embedded.textContent);
  render(last);
} else {
  async function poll() {
    try {
      const resp = await fetch("view.json", {cache: "no-store"});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      last = await resp.json();
      render(last);
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    } catch (err) {
      set("state", "unreachable", "badge bad");
      set("state-text", "the watcher did not answer (" + err.message + "); retrying");
    }
    setTimeout(poll, last && last.state === "finished" ? 5 * POLL_MS : POLL_MS);
  }
  poll();
}
""".replace("__POLL_MS__", str(POLL_MS))


def page(view: dict[str, Any] | None = None) -> str:
    """The live page (`view` None: it polls view.json), or a report with `view` embedded."""
    if view is None:
        return document("spore swarm watch", BODY, SCRIPT, connect_self=True)
    data = f'<script type="application/json" id="view-data">{embed_json(view)}</script>\n'
    title = f"spore swarm run {view.get('run', {}).get('run_id', '')}"
    return document(title, data + BODY, SCRIPT)
