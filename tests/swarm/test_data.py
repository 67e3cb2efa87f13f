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
    """docs/protocol.md: offset = sha256(domain|seed|peer|u64 window|u32 step|u32 j)[:8] LE mod span."""
    seq_len, peer = 16, b"p" * 32
    got = data.peer_batches(corpus, b"seed", peer, window=3, steps=2, batch_size=4, seq_len=seq_len)
    span = len(corpus.train) - seq_len - 1
    h = hashlib.sha256(b"spore/sampler/v1\0" + b"seed" + peer + struct.pack("<QI", 3, 1) + struct.pack("<I", 2))
    off = int.from_bytes(h.digest()[:8], "little") % span
    assert np.array_equal(got[1, 2], corpus.train[off : off + seq_len + 1])


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
