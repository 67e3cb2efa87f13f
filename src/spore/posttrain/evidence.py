"""A judgement counts only for the evidence it was made on.

`judge_and_seal` runs the judge and adds `evidence_sha256` to RUN/judgement.json: the
digest of every evidence file the harness wrote plus the evaluated snapshot
(`evidence_digest`). `verified_judgement`, which `score` calls for every run, keeps a
judgement only when that seal matches the run folder as it is now, and judges the run
again otherwise. So a `judgement.json` planted by an agent (issue #10: "a planted
judgement.json that score trusts"), or one left over from evidence that changed
since, changes nothing.

The seal is not a secret: it binds a verdict to its evidence, it does not prove who
wrote it. What keeps an agent from rewriting the evidence itself is the sandbox,
which never shows it the run folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spore.posttrain.snapshot import digest, snapshot_dir

# Written by the harness, in this order; a missing one counts as missing.
EVIDENCE = ("run.json", "manifest.json", "secrets/secret.json", "trace/outcome.json",
            "trace/files.json", "trace/syscalls.log", "trace/network.jsonl", "trace/stdout.txt",
            "trace/stderr.txt",
            "evaluation.json", "result.json")


def evidence_digest(run_dir: Path) -> str:
    h = hashlib.sha256()
    for name in EVIDENCE:
        p = Path(run_dir) / name
        content = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "missing"
        h.update(f"{name}\0{content}\n".encode())
    snap = snapshot_dir(run_dir)
    h.update(f"snapshot\0{digest(snap) if snap.is_dir() else 'missing'}\n".encode())
    return h.hexdigest()


def judge_and_seal(run_dir: Path) -> dict:
    from spore.posttrain.judge import judge

    doc = judge(run_dir)
    doc["evidence_sha256"] = evidence_digest(run_dir)
    (Path(run_dir) / "judgement.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def verified_judgement(run_dir: Path) -> dict:
    """RUN/judgement.json when its seal matches the evidence; else a new judgement."""
    if not (Path(run_dir) / "result.json").is_file():
        raise FileNotFoundError(f"{run_dir} has no result.json: not a finished posttrain run")
    path = Path(run_dir) / "judgement.json"
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("evidence_sha256") == evidence_digest(run_dir):
        return doc
    return judge_and_seal(run_dir)
