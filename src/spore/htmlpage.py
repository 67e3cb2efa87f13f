"""One self-contained HTML page: inline style and script, nothing fetched from elsewhere.

Used by `spore swarm watch` / `spore swarm report --html` and `spore posttrain
report --html`. What they show comes from run folders and stores, which
peers and agents write: hostile input. So every page carries a
Content-Security-Policy that allows only its own inline style and script (by
SHA-256) and, for a live page, requests to the server that sent it; text goes
in through `escape` (server side) or `textContent` (in the page's script), never
as markup; and JSON embedded in a page cannot close its `<script>` element.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

STYLE = """
:root { --fg: #1d2330; --mute: #5b6476; --line: #d9dde5; --bad: #b3261e; --good: #1e7b34;
        --warn: #8a5a00; --accent: #2f5fb3; --bg: #fbfbfc; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1280px; }
h1 { font-size: 20px; margin: 4px 0; } h2 { font-size: 16px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
td table { width: auto; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--mute); font-size: 12px; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .label { color: var(--mute); font-size: 12px; }
.card .value { font-size: 18px; font-variant-numeric: tabular-nums; }
.bad { color: var(--bad); } .good { color: var(--good); } .warn { color: var(--warn); }
.mute { color: var(--mute); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         border: 1px solid currentColor; }
.pre { white-space: pre-wrap; word-break: break-all; }
svg { background: #fff; border: 1px solid var(--line); border-radius: 6px; width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--mute); }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
details { margin: 4px 0; } summary { cursor: pointer; }
"""

ICON = '<link rel="icon" href="data:,">'  # no /favicon.ico request (and no console error for it)


def escape(value: Any) -> str:
    """Text as HTML, quotes included (safe in element content and in quoted attributes)."""
    return html.escape(str(value), quote=True)


def embed_json(doc: Any) -> str:
    """JSON for a `<script type="application/json">` element: no `<`, `>` or `&` in it, so no
    string in it can end the element; JSON.parse reads the escapes back."""
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def document(title: str, body: str, script: str | None = None, connect_self: bool = False) -> str:
    """A whole page; `body` must already be escaped markup."""
    policy = ["default-src 'none'", f"style-src {_sha256(STYLE)}", "img-src data:", "base-uri 'none'",
              "form-action 'none'"]
    if script is not None:
        policy.append(f"script-src {_sha256(script)}")
    if connect_self:
        policy.append("connect-src 'self'")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{"; ".join(policy)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{ICON}\n<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        + (f"<script>{script}</script>\n" if script is not None else "")
        + "</body></html>\n"
    )
