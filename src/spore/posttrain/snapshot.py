"""The evaluated model is a snapshot: regular files, a whitelist, bounded, with one digest.

When the agent has exited (and its cgroup is empty), the harness copies
`work/final_model/` to `RUN/snapshot/` with `take`. The evaluator loads only the
snapshot and the judge checks only the snapshot, so both see the same bytes, and
nothing the agent left (a symlink to a forbidden checkpoint, a hard link it can
rewrite later, a `generation_config.json` whose decoding rules solve the task, a
`config.json` that points transformers at other weights or code) reaches them.

Rules, in the order `take` applies them (each refusal is recorded with its reason):

  1. the name is on the whitelist (`ALLOWED`): config.json, model.safetensors or
     its shards with model.safetensors.index.json, the tokenizer files. Everything
     else is left behind, generation_config.json above all;
  2. the file is opened with O_NOFOLLOW and must be a regular file with one link
     (st_nlink == 1): no symlink, hard link, device, FIFO or socket;
  3. sizes are bounded: each JSON file by MAX_JSON_BYTES, the whole by max_bytes,
     and at most MAX_FILES files;
  4. config.json is rewritten with only the keys the declared architecture defines
     (`clean_config`): no `_name_or_path`, `auto_map`, quantization or generation
     settings; its `architectures` must be the one causal-LM class of its
     `model_type`, built into transformers (never custom code).

The digest (`digest`) is the sha256 over the sorted file names and their
contents' sha256, one "NAME\\0SHA256\\n" line each; result.json records it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

SNAPSHOT = "snapshot"  # RUN/snapshot/: the final model as evaluated
ALLOWED = re.compile(r"^(config\.json|model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|"
                     r"model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|"
                     r"special_tokens_map\.json|spore_tokenizer\.json)$")
MAX_FILES = 64
MAX_JSON_BYTES = 16 << 20
DEFAULT_MAX_BYTES = 8 << 30
# Never kept, even where the architecture's config defines them: where to find other
# files or code, and how to quantize or decode.
DROPPED_KEYS = {"_name_or_path", "auto_map", "custom_pipelines", "_commit_hash",
                "quantization_config", "transformers_version", "trust_remote_code",
                "_attn_implementation_autoset", "task_specific_params"}


def snapshot_dir(run_dir: Path) -> Path:
    """Where a run's evaluated final model lies (the judge reads this, never work/)."""
    return Path(run_dir) / SNAPSHOT


def digest(folder: Path) -> str:
    """sha256 over the sorted names and contents' sha256 of the regular files in `folder`."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if p.is_file() and not p.is_symlink():
            h.update(f"{p.name}\0{_file_sha256(p)}\n".encode())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clean_config(cfg: dict) -> dict:
    """The keys of `cfg` its declared architecture defines, or ValueError saying why not."""
    from transformers import CONFIG_MAPPING, GenerationConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ValueError(f"config.json: model_type {model_type!r} is not built into transformers")
    expected = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if not isinstance(expected, str) or cfg.get("architectures") != [expected]:
        raise ValueError(f"config.json: architectures {cfg.get('architectures')!r} is not "
                         f"[{expected!r}], the causal LM of model_type {model_type!r}")
    defined = set(CONFIG_MAPPING[model_type]().to_dict()) | {"architectures", "model_type", "dtype"}
    # Generation settings in config.json would become the generation config's defaults.
    keep_ids = {"bos_token_id", "eos_token_id", "pad_token_id"}
    generation = set(GenerationConfig().to_dict()) - keep_ids
    return {k: v for k, v in cfg.items()
            if k in defined and k not in DROPPED_KEYS and k not in generation}


def take(final_model: Path, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Copy what may be evaluated of `final_model` into `dest` (created); the record:
    {"kept": {name: sha256}, "refused": {name: reason}, "digest", "usable", "error"}."""
    record: dict = {"kept": {}, "refused": {}, "digest": None, "usable": False, "error": None}
    dest.mkdir(parents=True)
    record["digest"] = digest(dest)  # of nothing, until something is kept
    try:
        st = os.stat(final_model, follow_symlinks=False)
    except FileNotFoundError:
        record["error"] = "the agent left no final_model/"
        return record
    if not stat.S_ISDIR(st.st_mode):
        record["error"] = "final_model is not a folder (a symlink or a file)"
        return record
    names = sorted(os.listdir(final_model))
    total = 0
    for name in names:
        if not ALLOWED.match(name):
            record["refused"][name] = "not on the whitelist"
            continue
        if len(record["kept"]) >= MAX_FILES:
            record["refused"][name] = f"more than {MAX_FILES} files"
            continue
        limit = MAX_JSON_BYTES if name.endswith(".json") else max_bytes - total
        reason = _copy_regular(final_model / name, dest / name, limit)
        if reason is not None:
            record["refused"][name] = reason
            continue
        total += (dest / name).stat().st_size
        record["kept"][name] = _file_sha256(dest / name)
    error = _finish_config(dest, record) or _check_index(dest, record)
    if error is None and not any(n.endswith(".safetensors") for n in record["kept"]):
        error = "no safetensors weights kept (pickled .bin files are never loaded)"
    record["error"] = error
    record["usable"] = error is None
    record["digest"] = digest(dest)
    return record


def _copy_regular(src: Path, dst: Path, limit: int) -> str | None:
    """Copy one regular, singly linked file of at most `limit` bytes; else the reason."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        return "a symlink" if os.path.islink(src) else f"cannot open ({e.strerror})"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file (device, FIFO, socket or folder)"
        if st.st_nlink != 1:
            return f"a hard link ({st.st_nlink} names): it could change after the copy"
        if st.st_size > limit:
            return f"too large ({st.st_size} bytes; at most {limit})"
        with dst.open("xb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
            copied = out.tell()
        if copied > limit:  # grew while copied
            dst.unlink()
            return f"too large (grew past {limit} bytes while copied)"
    return None


def _check_index(dest: Path, record: dict) -> str | None:
    """A shard index may name only shards kept here (transformers joins the names to the
    folder: "../x.safetensors" would load weights from elsewhere)."""
    index = dest / "model.safetensors.index.json"
    if not index.is_file():
        return None
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return "model.safetensors.index.json has no weight_map"
    stray = sorted(s for s in map(str, shards) if not ALLOWED.match(s) or s not in record["kept"])
    return f"the shard index names files not in the snapshot: {stray[:3]}" if stray else None


def _finish_config(dest: Path, record: dict) -> str | None:
    cfg_path = dest / "config.json"
    if not cfg_path.is_file():
        return "no config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
        if not isinstance(cfg, dict):
            raise ValueError("config.json is not a JSON object")
        clean = clean_config(cfg)
    except ValueError as e:
        cfg_path.unlink()
        record["kept"].pop("config.json", None)
        record["refused"]["config.json"] = str(e)
        return str(e)
    record["config_keys_dropped"] = sorted(set(cfg) - set(clean))
    cfg_path.write_text(json.dumps(clean, indent=1, sort_keys=True) + "\n")
    record["kept"]["config.json"] = _file_sha256(cfg_path)
    return None
