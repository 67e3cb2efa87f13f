"""Corpus, tokenizer and the public sampler (spore.data)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from spore import data


@pytest.fixture(scope="module")
def corpus():
    return data.load_corpus(max_bytes=3_000_000)


def test_held_out_files_never_reach_the_training_stream(corpus, tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    names = [f"m{i}.py" for i in range(200)]
    for n in names:
        (root / n).write_text(f"# {n}\nUNIQUE_{n.replace('.', '_')} = 1\n")
    c = data.load_corpus(root)
    held = [n for n in names if data._is_held_out(n)]
    assert 0 < len(held) < len(names)
    train, evals = bytes(c.train[c.train < 256].astype(np.uint8)), bytes(c.eval[c.eval < 256].astype(np.uint8))
    for n in names:
        marker = f"UNIQUE_{n.replace('.', '_')}".encode()
        assert (marker in evals) == (n in held) and (marker in train) == (n not in held)


def test_the_corpus_digest_changes_with_any_byte(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(40):
        (root / f"f{i}.py").write_text("x = 1\n" * (i + 1))
    d1 = data.load_corpus(root).digest
    (root / "f3.py").write_text("x = 2\n" * 4)
    assert data.load_corpus(root).digest != d1


def test_sampler_is_a_public_function_of_peer_and_window(corpus):
    a = data.peer_batches(corpus, b"seed", b"p" * 32, window=3, steps=2, batch_size=4, seq_len=16)
    again = data.peer_batches(corpus, b"seed", b"p" * 32, window=3, steps=2, batch_size=4, seq_len=16)
    other_window = data.peer_batches(corpus, b"seed", b"p" * 32, window=4, steps=2, batch_size=4, seq_len=16)
    other_peer = data.peer_batches(corpus, b"seed", b"q" * 32, window=3, steps=2, batch_size=4, seq_len=16)
    assert a.shape == (2, 4, 17)
    assert np.array_equal(a, again)
    assert not np.array_equal(a, other_window) and not np.array_equal(a, other_peer)


def test_sampler_matches_its_documented_definition(corpus):
    """docs/protocol.md, "Sampler": pages, then rows inside them, all from SHA-256."""
    seq_len, peer, steps, batch = 16, b"p" * 32, 2, 4
    got = data.peer_batches(corpus, b"seed", peer, window=3, steps=steps, batch_size=batch, seq_len=seq_len)

    def u64(*parts: bytes) -> int:
        return int.from_bytes(hashlib.sha256(b"".join(parts)).digest()[:8], "little")

    key = b"seed" + peer + struct.pack("<Q", 3)
    dom = b"spore/sampler/v1\0"
    span = len(corpus.train) - data.PAGE_TOKENS - seq_len - 1
    pages = [u64(dom, b"page", key, struct.pack("<I", i)) % span for i in range(data.PAGES_PER_WINDOW)]
    s, j = 1, 2
    page = pages[(s * batch + j) % data.PAGES_PER_WINDOW]
    off = page + u64(dom, b"row", key, struct.pack("<II", s, j)) % data.PAGE_TOKENS
    assert np.array_equal(got[s, j], corpus.train[off : off + seq_len + 1])


def test_a_peers_rows_come_from_its_own_pages(corpus, monkeypatch):
    starts: list[int] = []
    real = data._gather

    def spy(tokens, offsets, seq_len):
        starts.extend(int(o) for o in offsets)
        return real(tokens, offsets, seq_len)

    monkeypatch.setattr(data, "_gather", spy)
    data.peer_batches(corpus, b"seed", b"p" * 32, window=0, steps=8, batch_size=8, seq_len=16)
    starts.sort()
    covers = [starts[0]]  # greedy cover of the row starts by spans of PAGE_TOKENS
    for x in starts:
        if x >= covers[-1] + data.PAGE_TOKENS:
            covers.append(x)
    assert len(starts) == 64 and len(covers) <= data.PAGES_PER_WINDOW


def test_hf_tokenizer_ids_are_utf8_bytes(tmp_path):
    from transformers import AutoTokenizer

    data.save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "def f(x):\n    return x ** 2  # é ☃\n"
    assert tok(text)["input_ids"] == list(text.encode())
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token_id == data.EOS_ID and tok.pad_token_id == data.PAD_ID


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_corpus(tmp_path / "nope")
