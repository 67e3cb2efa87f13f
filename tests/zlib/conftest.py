"""Fixtures for the spore.zlib tests: zlib's inflate vectors and the Canterbury corpus.

Both live in the shared folder beside the checkout (../shared from the repo
root). Tests that need them skip, saying so, only when that folder is absent.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

# The helpers beside this file (zlib_harness) are imported by plain name, whatever
# pytest's import mode; this folder has no __init__.py because a package named
# "zlib" would shadow the standard library's.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zlib_harness import CANTERBURY


def _canterbury() -> dict[str, bytes]:
    if not CANTERBURY.is_dir():
        pytest.skip(f"shared corpus folder missing: {CANTERBURY}")
    sums = {}
    for line in (CANTERBURY / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name.lstrip("*")] = digest
    files = {}
    for name, digest in sorted(sums.items()):
        data = (CANTERBURY / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} does not match SHA256SUMS"
        files[name] = data
    return files


@pytest.fixture(scope="session")
def canterbury() -> dict[str, bytes]:
    """The Canterbury corpus, name -> contents, checked against its SHA256SUMS."""
    return _canterbury()
