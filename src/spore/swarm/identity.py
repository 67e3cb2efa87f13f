"""Peer and validator identities: ed25519 key pairs. The public key is the id."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ID_BYTES = 32
SIG_BYTES = 64
_CANONICAL_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Identity:
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def id(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def hex(self) -> str:
        return self.id.hex()

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the 32-byte seed as hex, readable by the owner only."""
        from cryptography.hazmat.primitives import serialization

        seed = self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"ed25519_seed": seed.hex(), "id": self.hex}, f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        try:
            doc = json.loads(Path(path).read_text())
            return cls.from_seed(bytes.fromhex(doc["ed25519_seed"]))
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a spore key file: {e}") from None

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        if Path(path).exists():
            return cls.load(path)
        ident = cls.generate()
        ident.save(path)
        return ident


def verify(public_id: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is `public_id`'s ed25519 signature of `message`."""
    if len(public_id) != ID_BYTES or len(signature) != SIG_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_id).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_id(text: str) -> bytes:
    """A peer id in its one canonical spelling: exactly 64 lower-case hex digits.

    Anything else is refused, never normalized: the same id spelled in another
    letter case under `updates/` once counted as another peer (issue 9).
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a peer id: an id is a string of 64 lower-case hex digits")
    rule = "an id is exactly 64 lower-case hex digits (the ed25519 public key)"
    if len(text) != 2 * ID_BYTES:
        raise ValueError(f"{text!r} is not a peer id: it has {len(text)} characters; {rule}")
    if not _CANONICAL_ID.fullmatch(text):
        if _CANONICAL_ID.fullmatch(text.lower()):
            raise ValueError(f"{text!r} is not a peer id: it has upper-case letters; {rule}")
        raise ValueError(f"{text!r} is not a peer id: it has characters other than 0-9 a-f; {rule}")
    return bytes.fromhex(text)
