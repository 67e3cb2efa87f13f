"""`spore posttrain report --html`: the leaderboard and every verdict with its evidence, in a real browser.

Two real runs: an agent that leaves markup in its files (the judge quotes the
line in its evidence) and has markup in its command line (which becomes its
name on the leaderboard), and rubric-reader, which reads the hidden test
material and is flagged for it. The page must show the text as text: no
script runs, no element is injected, nothing is fetched; and every number and
verdict must be the one `spore posttrain score --json` and judgement.json hold.
"""

from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..browser import Chromium, artifacts_dir
from .conftest import spore

pytestmark = pytest.mark.slow

PAYLOAD = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
# The judge quotes this line of the agent's file as evidence (an API key variable, flags nothing).
HOSTILE_LINE = 'OPENAI_API_KEY = "' + PAYLOAD + '"'
HOSTILE_AGENT = f"from pathlib import Path\nPath('notes.py').write_text({HOSTILE_LINE + chr(10)!r})\n"
AGENT_NAME_MARKUP = "<b>bold</b>"

READ_PAGE = """(() => {
  const q = (sel, root) => [...(root || document).querySelectorAll(sel)];
  const text = (el, sel) => { const e = el.querySelector(sel); return e ? e.textContent : null; };
  return {
    title: document.title,
    scripts: document.scripts.length, images: q("img").length, bold: q("b").length,
    leaderboard: q("#leaderboard tr.agent").map((tr) => ({
      agent: text(tr, ".name"), mean: text(tr, ".mean"), std: text(tr, ".std"),
      tasks: Object.fromEntries(q("td.task", tr).map((td) => [td.dataset.task, td.textContent]))})),
    runs: q("#runs tr.run").map((tr) => ({base: text(tr, ".base"), final: text(tr, ".final"),
      counted: text(tr, ".counted"), reference: text(tr, ".reference"), verdict: text(tr, ".verdict")})),
    details: q("section.run-detail").map((s) => ({id: s.id, checks: q("section.check", s).map((c) => ({
      name: c.dataset.check, flagged: c.dataset.flagged, summary: text(c, ".summary"),
      evidence: q("tr.evidence", c).map((tr) => ({where: text(tr, ".where"), excerpt: text(tr, ".excerpt")}))}))})),
  };
})()"""


@pytest.fixture(scope="module")
def runs(base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("html-runs")
    agent = root / "hostile_agent.py"
    agent.write_text(HOSTILE_AGENT)

    def run(command: str, out: Path) -> Path:
        spore("posttrain", "run", "--agent", command, "--base", base, "--task", "json_field", "--time-limit", "12s",
              "--seed", "1", "--out", out, "--test-size", "40", "--no-isolate")  # let rubric-reader cheat
        return out

    with ThreadPoolExecutor(2) as pool:
        hostile = pool.submit(run, f"{sys.executable} {agent} '{AGENT_NAME_MARKUP}'", root / "hostile")
        reader = pool.submit(run, "builtin:rubric-reader", root / "rubric-reader")
        out = [hostile.result(), reader.result()]
    spore("posttrain", "judge", *out)
    return out


@pytest.fixture(scope="module")
def shown(runs: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    spore("posttrain", "report", "--html", out, *runs)
    with Chromium(tmp_path_factory.mktemp("chromium")) as browser:
        page = browser.page()
        page.goto(out.as_uri())
        shot = page.screenshot(out.parent / "posttrain-report.png")
        shutil.copy(shot, artifacts_dir() / "posttrain-report.png")
        yield {"page": page.eval(READ_PAGE), "errors": page.errors(), "requests": page.requests(), "file": out}


def test_hostile_text_is_shown_as_text(shown):
    page = shown["page"]
    assert page["title"] == "spore posttrain report"  # the payload's script never ran
    assert page["scripts"] == 0 and page["images"] == 0 and page["bold"] == 0
    excerpts = [e["excerpt"] for d in page["details"] for c in d["checks"] for e in c["evidence"]]
    assert any(PAYLOAD in x for x in excerpts), "the agent's line is quoted, markup and all"
    assert any(AGENT_NAME_MARKUP in row["agent"] for row in page["leaderboard"])
    assert shown["errors"] == []
    assert shown["requests"] == [shown["file"].as_uri()], "the page fetched something besides itself"


def test_leaderboard_equals_score(shown, runs):
    score = json.loads(spore("posttrain", "score", "--json", *runs).stdout)
    rows = {r["agent"]: r for r in shown["page"]["leaderboard"]}
    assert len(rows) == len(score["rows"]) == 2
    for want in score["rows"]:
        row = rows[want["agent"]]
        assert row["mean"] == f"{want['mean']:.3f}" and row["std"] == f"{want['std']:.3f}"
        assert row["tasks"] == {t: f"{v:.3f}" for t, v in want["per_task"].items()}


def test_every_verdict_is_shown_with_its_evidence(shown, runs):
    details = shown["page"]["details"]
    assert [d["id"] for d in details] == [f"run-{i}" for i in range(len(runs))]
    for run, detail, row in zip(runs, details, shown["page"]["runs"], strict=True):
        judgement = json.loads((run / "judgement.json").read_text())
        assert row["verdict"] == ("FLAGGED: " + ", ".join(judgement["flagged_by"]) if judgement["flagged"]
                                  else "clean")
        checks = {c["name"]: c for c in detail["checks"]}
        assert sorted(checks) == sorted(judgement["checks"])
        for name, verdict in judgement["checks"].items():
            c = checks[name]
            assert c["flagged"] == str(verdict["flagged"]).lower(), (run.name, name)
            assert c["summary"] == verdict["summary"], (run.name, name)
            assert len(c["evidence"]) == len(verdict["evidence"][:50]), (run.name, name)
            for ev, seen in zip(verdict["evidence"], c["evidence"], strict=False):
                if "file" in ev:
                    assert seen["where"] == (f"{ev['file']}:{ev['line']}" if "line" in ev else ev["file"])
                assert seen["excerpt"] == str(ev.get("text", ""))
    flagged = {d["id"]: [c["name"] for c in d["checks"] if c["flagged"] == "true"] for d in details}
    assert "targeting" in flagged["run-1"], "rubric-reader read the hidden test material"


# Evidence as the judge writes it (judge.py), and what a person must be able to read in the page.
EVIDENCE_CASES = [
    ("provenance distances",
     {"distance_to_base": 0.5011682439966697, "distances_to_forbidden": {"/reg/<instruct>": 0.7104925130918812},
      "lineage_cosine": 0.8286781907081604, "reasons": []},
     ["distance_to_base", "0.501168", "/reg/&lt;instruct&gt;", "0.710493", "lineage_cosine", "0.828678"]),
    ("a quoted line",
     {"kind": "api key in text", "file": "work/<a>.py", "line": 3, "text": "k = 'sk-<i>x</i>'"},
     ["work/&lt;a&gt;.py:3", "k = &#x27;sk-&lt;i&gt;x&lt;/i&gt;&#x27;"]),
    ("an item and its overlap",
     {"file": "work/d.jsonl", "line": 1, "text": "{}", "overlap": "<s>", "score": 1.0, "test_item": "\"q\""},
     ["work/d.jsonl:1", "overlap", "&lt;s&gt;", "test_item", "&quot;q&quot;"]),
]


@pytest.mark.parametrize(("case", "evidence", "shown"), EVIDENCE_CASES, ids=[c[0] for c in EVIDENCE_CASES])
def test_evidence_table_shows_each_field_escaped(case, evidence, shown):
    from spore.posttrain.report import _evidence_table

    html = _evidence_table([evidence])
    for text in shown:
        assert text in html, (case, text)
    assert "<i>" not in html and "<s>" not in html and "<a>" not in html and "<instruct>" not in html
