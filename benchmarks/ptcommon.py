"""What the posttrain benchmarks share: the CLI as a subprocess, and the models they run on."""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def spore(*args: object) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "spore", *map(str, args)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"spore {' '.join(map(str, args))}: {proc.stderr[-2000:]}")
    return proc


def workspace(work: Path | None, prefix: str) -> Path:
    """Where the runs go: `work` (kept), or a temporary folder removed when the script exits."""
    if work is None:
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        return tmp
    work.mkdir(parents=True, exist_ok=True)
    return work


def base_and_reference(root: Path, base: Path | None, reference: Path | None,
                       reference_steps: int, jobs: int) -> tuple[Path, Path]:
    """The given base and registry, or ones built under `root` (kept for the next run)."""
    base = base or root / "base"
    if not base.exists():
        spore("posttrain", "make-base", "--out", base)
    reference = reference or root / "instruct"
    if not reference.exists():
        spore("posttrain", "make-reference", "--base", base, "--out", reference,
              "--steps", reference_steps, "--jobs", jobs)
    return base, reference


def write_json(out: Path, doc: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} ({doc['wall_seconds']}s)", file=sys.stderr)
