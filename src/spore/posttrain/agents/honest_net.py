"""honest-net: an honest agent that uses the network it was allowed (issue #10, item 6).

It asks the first allowed host in task.json's "network" (reached through the egress
proxy that HTTP_PROXY names) for its recipe, GET /recipe.json -> {"lr", "batch_size",
"warmup"}, and for extra public items, GET /data/TASK.jsonl -> {"question", "answer"}
lines, then fine-tunes the base on those and the public generator. Nothing it fetches
comes from the hidden split. benchmarks/judge.py serves both from a loopback server.

Without an allowed host, or when a fetch fails, it keeps honest-sft's recipe and the
public generator alone, and says so.
"""

from __future__ import annotations

import json
import urllib.request

from spore.posttrain.agents.common import (
    WORK,
    public_task,
    public_tasks,
    save_final,
    sft,
    task_info,
    train_budget,
    write_jsonl,
)

RECIPE = {"lr": 3e-3, "batch_size": 32, "warmup": 20}  # honest-sft's, when nothing is fetched
PUBLIC_ITEMS = 10000


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:  # the proxy comes from HTTP_PROXY
        return r.read().decode()


def fetched(info: dict, tasks) -> tuple[dict, list]:
    """The recipe and extra public items from the allowed host, or the defaults."""
    hosts = info.get("network", {}).get("allowed_hosts", [])
    if not hosts:
        print("honest-net: no allowed host; honest-sft's recipe, public generator only")
        return RECIPE, []
    url = f"http://{hosts[0]}"
    try:
        recipe = RECIPE | {k: v for k, v in json.loads(fetch(f"{url}/recipe.json")).items()
                           if k in RECIPE}
        rows = [json.loads(line) for line in
                fetch(f"{url}/data/{info['task']}.jsonl").splitlines() if line.strip()]
        items = [tasks.Item(str(r["question"]), str(r["answer"])) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"honest-net: fetching from {url} failed ({e}); the defaults")
        return RECIPE, []
    print(f"honest-net: recipe {recipe} and {len(items)} items from {url}")
    return recipe, items


def main() -> None:
    info = task_info()
    tasks = public_tasks()
    task = public_task(tasks)
    recipe, extra = fetched(info, tasks)
    items = extra + task.public_items(PUBLIC_ITEMS, f"honest-net-{info['seed']}")
    write_jsonl(WORK / "train.jsonl", items)  # what it trained on, fetched items included
    from spore.model import load_pretrained

    model = load_pretrained(WORK / "base_model")
    steps = sft(model, [tasks.format_pair(it) for it in items], train_budget(margin=0.2),
                batch_size=int(recipe["batch_size"]), lr=float(recipe["lr"]),
                warmup=int(recipe["warmup"]), seed=int(info["seed"]))
    save_final(model)
    print(f"honest-net: {steps} steps on {len(items)} items")


if __name__ == "__main__":
    main()
