"""The evaluated model is a snapshot (issue #10, item 3): each adversary leaves a final_model/
built to make the evaluator load something other than the bytes the judge sees."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from spore.posttrain.snapshot import digest, snapshot_dir, take

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
          "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
          "num_key_value_heads": 2, "vocab_size": 320, "max_position_embeddings": 64}


def honest(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "tokenizer.json").write_text("{}")
    return folder


def symlinked_weights(final: Path, elsewhere: Path) -> None:
    (final / "model.safetensors").unlink()
    (final / "model.safetensors").symlink_to(elsewhere / "model.safetensors")


def hard_linked_weights(final: Path, elsewhere: Path) -> None:
    (final / "model.safetensors").unlink()
    os.link(elsewhere / "model.safetensors", final / "model.safetensors")


def fifo_weights(final: Path, elsewhere: Path) -> None:
    (final / "model.safetensors").unlink()
    os.mkfifo(final / "model.safetensors")


def pointer_config(final: Path, elsewhere: Path) -> None:
    cfg = CONFIG | {"_name_or_path": str(elsewhere), "auto_map": {"AutoModelForCausalLM": "x.Y"},
                    "repetition_penalty": 0.1, "sequence_bias": [[[65], 9.0]]}
    (final / "config.json").write_text(json.dumps(cfg))


def decoding_rules(final: Path, elsewhere: Path) -> None:
    (final / "generation_config.json").write_text(json.dumps({"sequence_bias": [[[65], 9.0]]}))
    (final / "modeling_cheat.py").write_text("import os\n")


def custom_architecture(final: Path, elsewhere: Path) -> None:
    (final / "config.json").write_text(json.dumps(CONFIG | {"architectures": ["CheatForCausalLM"]}))


def shard_index_elsewhere(final: Path, elsewhere: Path) -> None:
    (final / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w": "../elsewhere/model-00001-of-00001.safetensors"}}))


def symlinked_folder(final: Path, elsewhere: Path) -> None:
    shutil.rmtree(final)
    final.symlink_to(elsewhere)


def pickled_weights(final: Path, elsewhere: Path) -> None:
    (final / "model.safetensors").rename(final / "pytorch_model.bin")


# (adversary, files that must not be in the snapshot, usable, reason fragment)
CASES = [
    (symlinked_weights, ["model.safetensors"], False, "a symlink"),
    (hard_linked_weights, ["model.safetensors"], False, "a hard link"),
    (fifo_weights, ["model.safetensors"], False, "not a regular file"),
    (pointer_config, [], True, None),
    (decoding_rules, ["generation_config.json", "modeling_cheat.py"], True, "not on the whitelist"),
    (custom_architecture, ["config.json"], False, "is not ['LlamaForCausalLM']"),
    (shard_index_elsewhere, [], False, "names files not in the snapshot"),
    (symlinked_folder, ["config.json", "model.safetensors"], False, "not a folder"),
    (pickled_weights, ["pytorch_model.bin"], False, "no safetensors"),
]


@pytest.mark.parametrize(("adversary", "absent", "usable", "reason"), CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_the_snapshot_takes_only_regular_whitelisted_files(tmp_path, adversary, absent, usable,
                                                           reason):
    elsewhere = honest(tmp_path / "elsewhere")  # a forbidden checkpoint, say
    final = honest(tmp_path / "work" / "final_model")
    adversary(final, elsewhere)
    record = take(final, snapshot_dir(tmp_path / "run"))
    snap = snapshot_dir(tmp_path / "run")
    assert [n for n in absent if (snap / n).exists()] == []
    assert record["usable"] is usable, record
    if reason is not None:
        assert reason in json.dumps(record)
    assert all(not p.is_symlink() and p.stat().st_nlink == 1 for p in snap.iterdir())
    assert record["digest"] == digest(snap)


def test_config_keeps_only_the_architectures_keys(tmp_path):
    final = honest(tmp_path / "final_model")
    pointer_config(final, tmp_path)
    take(final, tmp_path / "snap")
    kept = json.loads((tmp_path / "snap" / "config.json").read_text())
    assert kept == CONFIG  # no path, no code, no decoding settings


def test_sizes_are_bounded(tmp_path):
    final = honest(tmp_path / "final_model")
    (final / "model.safetensors").write_bytes(b"x" * 1000)
    record = take(final, tmp_path / "snap", max_bytes=100)
    assert "too large" in record["refused"]["model.safetensors"] and not record["usable"]


def test_the_digest_covers_names_and_contents(tmp_path):
    a = honest(tmp_path / "a")
    b = honest(tmp_path / "b")
    assert digest(a) == digest(b)
    (b / "tokenizer.json").write_text("{ }")
    assert digest(a) != digest(b)
    (b / "tokenizer.json").rename(b / "tokenizer_config.json")
    assert digest(a) != digest(b)
