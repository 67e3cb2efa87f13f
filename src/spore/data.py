"""Corpus, tokenizer and the public sampler.

The default corpus is the running Python's standard-library source: present on
every machine, no download. Text is tokenized as raw bytes (ids 0..255) plus a
few special ids, so a token stream is just `numpy.frombuffer(text_bytes)`.

The sampler is public and deterministic: anyone who knows the run seed, a peer
id and a window recomputes exactly the batches that peer was assigned. It is
built from SHA-256 alone so that it can be re-implemented in any language
(docs/protocol.md, "Sampler").
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BYTE_VOCAB = 256
BOS_ID, EOS_ID, PAD_ID = 256, 257, 258
# Padded to a multiple of 64 so the embedding and LM head split into 64x64
# blocks for SparseLoCo's chunked top-k (ids 259..319 are never produced).
VOCAB_SIZE = 320

EVAL_PERCENT = 5  # share of files held out for evaluation; no peer trains on them


# ---------------------------------------------------------------------------
# Corpus


@dataclass(frozen=True)
class Corpus:
    """A token stream split into a training part and a held-out part."""

    train: np.ndarray  # uint16 token ids
    eval: np.ndarray
    digest: str  # sha256 of the files' paths and bytes, in order: peers must agree on it
    files: int


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _is_held_out(relpath: str) -> bool:
    h = hashlib.sha256(b"spore/eval-split/v1\0" + relpath.encode()).digest()
    return int.from_bytes(h[:2], "big") % 100 < EVAL_PERCENT


def load_corpus(root: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> Corpus:
    """Read every `*.py` under `root` (default: the stdlib, without site-packages).

    Files are taken in sorted relative-path order, each followed by EOS. A file
    belongs to the evaluation split when a hash of its relative path says so.
    `max_bytes` caps the corpus (first files in order) for fast tests.
    """
    base = Path(root) if root is not None else stdlib_root()
    if not base.is_dir():
        raise FileNotFoundError(f"corpus folder {base} does not exist")
    paths = sorted(
        p
        for p in base.rglob("*.py")
        if "site-packages" not in p.relative_to(base).parts and p.is_file()
    )
    if not paths:
        raise ValueError(f"corpus folder {base} holds no *.py files")
    digest = hashlib.sha256(b"spore/corpus/v1\0")
    train_parts: list[np.ndarray] = []
    eval_parts: list[np.ndarray] = []
    total = 0
    eos = np.array([EOS_ID], dtype=np.uint16)
    for p in paths:
        rel = p.relative_to(base).as_posix()
        data = p.read_bytes()
        digest.update(rel.encode() + b"\0" + struct.pack("<Q", len(data)) + data)
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.uint16)
        (eval_parts if _is_held_out(rel) else train_parts).extend([ids, eos])
        total += len(data)
        if max_bytes is not None and total >= max_bytes:
            break
    if not train_parts or not eval_parts:
        raise ValueError(f"corpus folder {base} is too small to split into train and eval")
    return Corpus(
        train=np.concatenate(train_parts),
        eval=np.concatenate(eval_parts),
        digest=digest.hexdigest(),
        files=len(train_parts) // 2 + len(eval_parts) // 2,
    )


# ---------------------------------------------------------------------------
# Tokenizer


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(ids: list[int]) -> str:
    return bytes(i for i in ids if i < BYTE_VOCAB).decode("utf-8", errors="replace")


def save_tokenizer(folder: str | os.PathLike[str]) -> None:
    """Write a Hugging Face fast tokenizer whose ids are the UTF-8 bytes.

    It is a byte-level BPE with no merges: `AutoTokenizer.from_pretrained`
    loads it, and `tokenizer(text).input_ids == list(text.encode())`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_to_char = pre_tokenizers.ByteLevel.alphabet()  # 256 printable stand-ins
    # The alphabet is unordered; rebuild the GPT-2 byte->char map to fix ids = bytes.
    vocab = {ch: b for b, ch in enumerate(_gpt2_byte_chars())}
    assert set(vocab) == set(byte_to_char)
    vocab.update({"<s>": BOS_ID, "</s>": EOS_ID, "<pad>": PAD_ID})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(str(folder))
    meta = {"kind": "spore-bytes", "vocab_size": VOCAB_SIZE}
    (Path(folder) / "spore_tokenizer.json").write_text(json.dumps(meta) + "\n")


def _gpt2_byte_chars() -> list[str]:
    """The printable character standing for each byte in byte-level BPE (GPT-2's map)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


# ---------------------------------------------------------------------------
# Sampler


PAGES_PER_WINDOW = 2  # a peer's data in one window comes from this many pages...
PAGE_TOKENS = 8192  # ...of this many consecutive tokens (about one module of source)


def _u64(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"".join(parts)).digest()[:8], "little")


def _offsets(domain: bytes, key: bytes, count: int, n_tokens: int, seq_len: int) -> np.ndarray:
    """`count` start offsets in [0, n_tokens - seq_len - 1), from SHA-256 of (domain, key, i)."""
    span = n_tokens - seq_len - 1
    if span <= 0:
        raise ValueError(f"token stream of {n_tokens} is too short for sequences of {seq_len}")
    return np.array([_u64(domain, key, struct.pack("<I", i)) % span for i in range(count)], dtype=np.int64)


def _gather(tokens: np.ndarray, offsets: np.ndarray, seq_len: int) -> np.ndarray:
    idx = offsets[:, None] + np.arange(seq_len + 1)[None, :]
    return tokens[idx].astype(np.int64)


def _paged_batches(
    corpus: Corpus, domain: bytes, key: bytes, steps: int, batch_size: int, seq_len: int
) -> np.ndarray:
    """(steps, batch, seq_len + 1) rows from PAGES_PER_WINDOW pages chosen by (domain, key).

    Page i starts at u64(sha256(domain | "page" | key | u32 i)) mod (N - PAGE_TOKENS - seq_len - 1);
    row j of step s is page (s * batch + j) mod PAGES_PER_WINDOW, at offset
    u64(sha256(domain | "row" | key | u32 s | u32 j)) mod PAGE_TOKENS inside it.
    Pages make a peer's data its own: training on them lowers the loss on
    that text more than on text it never saw, which a validator can measure.
    """
    n = len(corpus.train)
    span = n - PAGE_TOKENS - seq_len - 1
    if span <= 0:
        raise ValueError(f"token stream of {n} is too short for pages of {PAGE_TOKENS}")
    pages = [_u64(domain, b"page", key, struct.pack("<I", i)) % span for i in range(PAGES_PER_WINDOW)]
    out = np.empty((steps, batch_size, seq_len + 1), dtype=np.int64)
    for s in range(steps):
        offs = np.array(
            [
                pages[(s * batch_size + j) % PAGES_PER_WINDOW]
                + _u64(domain, b"row", key, struct.pack("<II", s, j)) % PAGE_TOKENS
                for j in range(batch_size)
            ],
            dtype=np.int64,
        )
        out[s] = _gather(corpus.train, offs, seq_len)
    return out


def peer_batches(
    corpus: Corpus,
    run_seed: bytes,
    peer_id: bytes,
    window: int,
    steps: int,
    batch_size: int,
    seq_len: int,
) -> np.ndarray:
    """The batches peer `peer_id` must train on in `window`: shape (steps, batch, seq_len + 1).

    Public and deterministic: key = run_seed | peer_id | u64 window, domain
    "spore/sampler/v1\0" (see `_paged_batches`).
    """
    key = run_seed + peer_id + struct.pack("<Q", window)
    return _paged_batches(corpus, b"spore/sampler/v1\0", key, steps, batch_size, seq_len)


def random_batch(corpus: Corpus, seed: bytes, batch_size: int, seq_len: int) -> np.ndarray:
    """Rows drawn like a peer's, from pages only the holder of `seed` can predict."""
    return _paged_batches(corpus, b"spore/random/v1\0", seed, 1, batch_size, seq_len)[0]


def eval_batches(corpus: Corpus, n_sequences: int, seq_len: int, batch_size: int) -> list[np.ndarray]:
    """The fixed held-out evaluation set: `n_sequences` windows of the eval split."""
    offs = _offsets(b"spore/eval/v1\0", b"", n_sequences, len(corpus.eval), seq_len)
    seqs = _gather(corpus.eval, offs, seq_len)
    return [seqs[i : i + batch_size] for i in range(0, n_sequences, batch_size)]
