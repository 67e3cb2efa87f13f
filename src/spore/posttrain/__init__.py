"""spore posttrain: can an agent post-train a model, honestly? (docs/posttrain.md)

Pure logic: tasks, overlap, provenance, resources, scoring.
Processes and files on top: sandbox, harness, evaluate, judge, report, cli.
"""
