"""The validator's private randomness, committed before use and revealed after.

The validator needs randomness peers cannot predict (the random rows every
update is measured on, the sample of peers it measures when there are too
many). If it stayed private, nobody could recompute a score. So it is a
hash chain, committed in the run manifest and revealed window by window:

    link(W - 1) = SHA-256("spore/randomness/root/v1\\0" + signature)
                  signature = the validator's ed25519 signature of
                  "spore/randomness/v1\\0" + run_id   (deterministic: RFC 8032)
    link(w)     = H(link(w + 1))      for w = W - 2 ... 0
    commit      = H(link(0))          published in run.json before window 0
    H(x)        = SHA-256("spore/randomness/chain/v1\\0" + x)

Window w's record reveals link(w). A reader checks H(link(0)) == commit and
H(link(w)) == link(w - 1): the validator could not have chosen link(w) after
seeing window w's submissions, because it is fixed by the commitment, and
nobody could predict it before, because H cannot be inverted. Only the key
holder can compute the root, so a restarted validator recomputes the chain
from its key alone.

Every use draws from `derive(link, what)`: one 32-byte seed per purpose.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

ROOT_DOMAIN = b"spore/randomness/root/v1\0"
SIGN_DOMAIN = b"spore/randomness/v1\0"
CHAIN_DOMAIN = b"spore/randomness/chain/v1\0"


def step(link: bytes) -> bytes:
    return hashlib.sha256(CHAIN_DOMAIN + link).digest()


def root_from_signature(signature: bytes) -> bytes:
    return hashlib.sha256(ROOT_DOMAIN + signature).digest()


def chain(root: bytes, windows: int) -> list[bytes]:
    """[link(0), ..., link(windows - 1)] from link(windows - 1) = root."""
    links = [root]
    for _ in range(windows - 1):
        links.append(step(links[-1]))
    return links[::-1]


def commitment(links: list[bytes]) -> bytes:
    return step(links[0])


def verify_link(link: bytes, window: int, commit: bytes, previous: bytes | None) -> bool:
    """Does `link` follow the commitment (window 0) or the previous window's revealed link?"""
    expected = commit if window == 0 else previous
    return expected is not None and len(link) == 32 and step(link) == expected


def derive(link: bytes, what: bytes) -> bytes:
    """A 32-byte seed for one purpose in one window."""
    return hmac.new(link, b"spore/randomness/derive/v1\0" + what, hashlib.sha256).digest()


def rng(link: bytes, what: bytes) -> np.random.Generator:
    return np.random.default_rng(np.frombuffer(derive(link, what), dtype=np.uint64))
