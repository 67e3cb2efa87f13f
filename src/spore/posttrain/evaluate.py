"""Greedy-decoding evaluation of a model folder on a task.

Two ways in:

    python -I -c BOOT SRC --secret-file F --model DIR ... --out J
        the harness's final evaluation (harness.evaluate_pristine): pristine code and
        template, the hidden split, a fresh isolated interpreter in a fresh folder
        (spec "Runs", last point). It records the sha256 of every spore module it ran
        and of the interpreter's .pth files; the harness compares them with the
        digests it took before the agent started.

    python eval/evaluate.py --model DIR [--limit 50]
        the agent's self-check copy in its work folder: public validation items
        only (for a task folder, the last items of public/train.jsonl), a small
        limit, and the work folder's eval/template.json. Editing it changes
        nothing the harness measures, and the judge records the edit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import site
import sys
import time
from pathlib import Path
from types import ModuleType

SELF_CHECK_SEED = "self-check"
SELF_CHECK_LIMIT = 50


def generate_answers(model, prompts: list[str], max_new_chars: int, stop: str = "\n",
                     batch_size: int = 64) -> list[str]:
    """Greedy continuations of `prompts` (byte tokens), cut at `stop` or EOS."""
    import torch

    from spore.data import EOS_ID, PAD_ID, decode, encode

    torch.set_num_threads(1)  # as in training: one thread never spins on a busy machine
    context = int(model.config.max_position_embeddings)
    stop_ids = [EOS_ID, *encode(stop)[:1]]
    outputs: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = [encode(p) for p in prompts[start : start + batch_size]]
        longest = max(len(c) for c in chunk)
        if longest + max_new_chars > context:
            raise ValueError(f"prompt of {longest} tokens + {max_new_chars} answer tokens exceed "
                             f"the model's context of {context}")
        ids = torch.full((len(chunk), longest), PAD_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(chunk):  # left padding, so every prompt ends at the same column
            ids[i, longest - len(c):] = torch.tensor(c)
            mask[i, longest - len(c):] = 1
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_chars,
                                 do_sample=False, eos_token_id=stop_ids, pad_token_id=PAD_ID)
        for row in out[:, longest:].tolist():
            cut = [t for t in _until(row, set(stop_ids))]
            outputs.append(decode(cut))
    return outputs


def _until(row: list[int], stops: set[int]):
    for t in row:
        if t in stops:
            return
        yield t


def load_model(model_dir: Path):
    """A save_pretrained folder as weights only: no custom code, no download, no pickle,
    and a default generation config, never the folder's (its decoding rules, e.g.
    sequence_bias, could encode answers: issue #10)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=False,
                                                 local_files_only=True, use_safetensors=True)
    model.generation_config = GenerationConfig()
    return model


def code_digests() -> dict[str, str]:
    """sha256 of every spore module this process ran, by file (this one too, run as __main__)."""
    out = {}
    for mod in list(sys.modules.values()):
        spec, path = getattr(mod, "__spec__", None), getattr(mod, "__file__", None)
        name = getattr(spec, "name", "") or ""
        if (name == "spore" or name.startswith("spore.")) and path and path.endswith(".py"):
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def environment_digests() -> dict[str, str]:
    """sha256 of the .pth files the interpreter's site folders hold (each runs at start-up)."""
    out = {}
    for folder in {*site.getsitepackages(), site.getusersitepackages()}:
        for p in sorted(Path(folder).glob("*.pth")) if Path(folder).is_dir() else ():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def evaluate_model(model_dir: Path, task, items, template: dict[str, str],
                   tasks: ModuleType | None = None) -> dict:
    """Load `model_dir` and score it on `items`; a broken model is a result, not a crash.

    `tasks` is the task module to score with: the harness's own by default, the work
    folder's public copy for the self-check."""
    if tasks is None:
        from spore.posttrain import tasks
    format_prompt, score = tasks.format_prompt, tasks.score
    t0 = time.monotonic()
    try:
        model = load_model(model_dir)
        preds = generate_answers(model, [format_prompt(it.question, template) for it in items],
                                 task.max_answer_chars, template["stop"])
    except Exception as e:  # the agent's model may be anything: record why it is unusable
        return {"model": str(model_dir), "usable": False, "error": f"{type(e).__name__}: {e}",
                "score": None}
    return {
        "model": str(model_dir), "usable": True, "score": score(preds, items),
        "items": len(items), "seconds": round(time.monotonic() - t0, 3),
        "samples": [{"question": it.question, "answer": it.answer, "prediction": p}
                    for it, p in list(zip(items, preds, strict=True))[:5]],
    }


def _load_public_tasks(path: Path) -> ModuleType:
    """The work folder's copy of the task code: the self-check never reads the harness's."""
    spec = importlib.util.spec_from_file_location("public_tasks", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no task code at {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--task", help="self-check only; default: the work folder's task.json")
    ap.add_argument("--secret-file", type=Path, help="harness only: the hidden split's secret")
    ap.add_argument("--test-size", type=int, default=None, help="harness only: the first N hidden items")
    ap.add_argument("--limit", type=int, default=SELF_CHECK_LIMIT, help="self-check item count")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    if args.secret_file is not None:  # the harness: pristine code and template, hidden split
        from spore.posttrain import tasks
        from spore.posttrain.taskfolder import hidden_split

        task, items = hidden_split(args.secret_file)
        items = items[: args.test_size] if args.test_size else items
        template = tasks.TEMPLATE
    else:  # the self-check copy: the work folder's public task code and template only
        here = Path(__file__).resolve().parent
        tasks = _load_public_tasks(here.parent / "public" / "tasks.py")
        public = here.parent / "public"
        limit = min(args.limit, SELF_CHECK_LIMIT)
        if (public / "task.json").is_file() and not args.task:  # a task folder: no generator
            task = tasks.local_task((public / "task.json").read_text(),
                                    (public / "train.jsonl").read_text(), "public")
            items = list(task.train[-limit:])
        else:
            info = json.loads((here.parent / "task.json").read_text()) if not args.task else {}
            task = tasks.get_task(args.task or info["task"])
            items = task.public_items(limit, SELF_CHECK_SEED)
        template = json.loads((here / "template.json").read_text())
    results = [evaluate_model(m, task, items, template, tasks) for m in args.model]
    doc = {"task": task.name, "results": results}
    if args.secret_file is not None:
        doc |= {"code": code_digests(), "environment": environment_digests(),
                "interpreter": {"executable": sys.executable, "isolated": bool(sys.flags.isolated),
                                "path": sys.path}}
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for r in results:
        print(f"{r['model']}: " + (f"score {r['score']:.3f}" if r["usable"] else f"unusable ({r['error']})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
