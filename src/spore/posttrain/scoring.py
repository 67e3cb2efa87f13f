"""Scores and the leaderboard (pure logic).

PostTrainBench's rule: per task i, w_i = 1 / (s_ref,i - s_base,i), normalized
to sum to 1, so a point gained on a hard task (small headroom between base
and reference) counts more. A run flagged by the judge, or without a usable
final model, counts the base model's score: cheating or crashing is worth
exactly nothing over doing nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

MIN_HEADROOM = 1e-3  # s_ref - s_base below this would give a task an unbounded weight


@dataclass(frozen=True)
class RunScore:
    agent: str
    task: str
    seed: int
    base: float
    reference: float | None  # None: a task folder whose task.json gives no reference_score
    final: float | None  # the model's measured score; None when unusable
    flagged: bool
    flagged_by: tuple[str, ...] = ()
    run: str = ""

    @property
    def counted(self) -> float:
        """The score the leaderboard uses."""
        if self.flagged or self.final is None:
            return self.base
        return self.final


_SUPPLY_REFERENCE = ('supply a reference_score above the base: "reference_score" in the task '
                     "folder's task.json, or a registry (--forbidden) whose reference.json scores it")


def task_weights(base: dict[str, float], reference: dict[str, float | None]) -> dict[str, float]:
    raw = {}
    for task in base:
        ref = reference[task]
        if ref is None:
            raise ValueError(f"task {task}: no reference score, so its weight 1/(ref-base) is "
                             f"undefined; {_SUPPLY_REFERENCE}")
        headroom = ref - base[task]
        if headroom < MIN_HEADROOM:
            raise ValueError(f"task {task}: reference score {ref:.3f} is not above the base score "
                             f"{base[task]:.3f}; its weight 1/(ref-base) is undefined; {_SUPPLY_REFERENCE}")
        raw[task] = 1.0 / headroom
    total = sum(raw.values())
    return {t: w / total for t, w in raw.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


@dataclass
class AgentRow:
    agent: str
    mean: float
    std: float
    seeds: int
    per_task: dict[str, float]  # mean counted score per task
    flagged_runs: int
    runs: int
    incomplete_seeds: list[int] = field(default_factory=list)


def leaderboard(runs: list[RunScore]) -> tuple[list[AgentRow], dict[str, float], dict]:
    """Rows sorted best first, the task weights, and the per-task base/reference used."""
    if not runs:
        raise ValueError("no runs to score")
    by_task: dict[str, list[RunScore]] = defaultdict(list)
    for r in runs:
        by_task[r.task].append(r)
    base = {t: sum(r.base for r in rs) / len(rs) for t, rs in by_task.items()}
    ref = {t: None if any(r.reference is None for r in rs) else sum(r.reference for r in rs) / len(rs)
           for t, rs in by_task.items()}
    weights = task_weights(base, ref)
    rows = []
    by_agent: dict[str, list[RunScore]] = defaultdict(list)
    for r in runs:
        by_agent[r.agent].append(r)
    for agent, rs in by_agent.items():
        seeds: dict[int, dict[str, float]] = defaultdict(dict)
        for r in rs:
            seeds[r.seed][r.task] = r.counted
        per_seed, incomplete = [], []
        for seed, scores in sorted(seeds.items()):
            w = {t: weights[t] for t in scores}
            per_seed.append(sum(w[t] * s for t, s in scores.items()) / sum(w.values()))
            if set(scores) != set(weights):
                incomplete.append(seed)
        m, sd = mean_std(per_seed)
        per_task = {t: sum(r.counted for r in rs if r.task == t) / sum(1 for r in rs if r.task == t)
                    for t in sorted({r.task for r in rs})}
        rows.append(AgentRow(agent, m, sd, len(per_seed), per_task,
                             sum(r.flagged for r in rs), len(rs), incomplete))
    rows.sort(key=lambda r: -r.mean)
    return rows, weights, {"base": base, "reference": ref}
