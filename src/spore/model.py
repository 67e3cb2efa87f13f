"""Models: small Llama configurations, built from a config (never downloaded).

A model is an ordinary Hugging Face `LlamaForCausalLM`, so checkpoints are
`save_pretrained` folders that any HF tool (and `spore posttrain`) loads.
Every 2-D weight has both sides a multiple of 64, so SparseLoCo cuts it into
64x64 blocks without padding.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from spore.data import VOCAB_SIZE, save_tokenizer


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 128
    layers: int = 2
    intermediate: int = 384
    heads: int = 2
    context: int = 128
    vocab: int = VOCAB_SIZE
    init_seed: int = 0

    def to_hf(self):  # -> transformers.LlamaConfig
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=self.context,
            tie_word_embeddings=False,
            bos_token_id=256,
            eos_token_id=257,
            pad_token_id=258,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Per-peer training hyper-parameters (spec section 1)."""

    inner_steps: int = 10  # H
    batch_size: int = 8
    seq_len: int = 128
    inner_lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    outer_lr: float = 1.0  # alpha
    beta: float = 0.95  # error-feedback decay
    topk: int = 64
    chunk: int = 4096
    eval_sequences: int = 32


@dataclass(frozen=True)
class Preset:
    name: str
    model: ModelConfig
    train: TrainConfig
    window_seconds: float
    windows: int
    peers: int = 3
    checkpoint_every: int = 2
    notes: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        model=ModelConfig(hidden=128, layers=2, intermediate=384, heads=2, context=64),
        train=TrainConfig(inner_steps=8, batch_size=8, seq_len=64, inner_lr=2e-3, eval_sequences=32),
        window_seconds=4.0,
        windows=4,
        notes="~0.5M parameters; 3 peers x 4 windows in well under a minute on 2 cores",
    ),
    "small": Preset(
        name="small",
        model=ModelConfig(hidden=192, layers=4, intermediate=512, heads=3, context=128),
        train=TrainConfig(inner_steps=15, batch_size=8, seq_len=128, inner_lr=1.5e-3, eval_sequences=64),
        window_seconds=12.0,
        windows=20,
        notes="~2M parameters; learns visibly in a few minutes on 2 cores",
    ),
}
DEFAULT_PRESET = "small"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def build_model(cfg: ModelConfig) -> torch.nn.Module:
    """A freshly initialised model; the same config and seed give the same weights."""
    from transformers import LlamaForCausalLM

    state = torch.random.get_rng_state()
    torch.manual_seed(cfg.init_seed)
    try:
        model = LlamaForCausalLM(cfg.to_hf())
    finally:
        torch.random.set_rng_state(state)
    return model


def parameter_layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the trainable tensors in canonical (state-dict) order."""
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def model_id(cfg: ModelConfig, layout: list[tuple[str, tuple[int, ...]]]) -> bytes:
    """32-byte identity of an architecture: its config and tensor layout."""
    doc = json.dumps({"config": asdict(cfg), "layout": layout}, sort_keys=True)
    return hashlib.sha256(b"spore/model-id/v1\0" + doc.encode()).digest()


def theta_digest(model: torch.nn.Module) -> bytes:
    """32-byte SHA-256 of every parameter's exact fp32 bytes, in canonical order.

    Equal digests mean bit-identical parameters: this is how peers prove they
    hold the same theta, and how a validator tells how far behind a peer is.
    """
    h = hashlib.sha256(b"spore/theta/v1\0")
    for name, p in model.named_parameters():
        h.update(name.encode() + b"\0")
        h.update(p.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.digest()


def lm_loss(model: torch.nn.Module, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a (batch, seq_len + 1) token array."""
    t = torch.as_tensor(batch, dtype=torch.long)
    logits = model(input_ids=t[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), t[:, 1:].reshape(-1))


@torch.no_grad()
def row_losses(model: torch.nn.Module, rows: np.ndarray | torch.Tensor, batch: int = 32) -> np.ndarray:
    """Mean next-token cross-entropy of each row of a (rows, seq_len + 1) token array, in float64."""
    t = torch.as_tensor(rows, dtype=torch.long)
    out = []
    for i in range(0, len(t), batch):
        x = t[i : i + batch]
        logits = model(input_ids=x[:, :-1]).logits
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        out.append(ce.mean(dim=1).to(torch.float64))
    return torch.cat(out).numpy() if out else np.zeros(0)


@torch.no_grad()
def eval_loss(model: torch.nn.Module, batches: list[np.ndarray]) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        total += float(lm_loss(model, b)) * len(b)
        count += len(b)
    model.train(was_training)
    return total / count


def save_pretrained(model: torch.nn.Module, folder: str | os.PathLike[str]) -> None:
    """An ordinary HF folder (config.json + model.safetensors) with our tokenizer."""
    folder = Path(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    save_tokenizer(folder)


def load_pretrained(folder: str | os.PathLike[str]) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder))
