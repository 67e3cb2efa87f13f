"""Reference agents, runnable as `spore posttrain run --agent builtin:NAME`.

honest-sft fine-tunes on the public generator only. Each other agent is a
deliberate cheater, one per trick the integrity judge must catch; they are
the judge's test cases (tests/posttrain, benchmarks/judge.py).
"""
