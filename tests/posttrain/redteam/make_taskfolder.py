# ruff: noqa  (red-team agent scripts, not project code)
"""Support: build the task folder /tmp/redteam_pt/tf/jsonlocal (json_field items from the
public generator: 3000 train, 200 test) and leave the raw data it came from in
/tmp/redteam_pt/tf_src/, as the docs' GSM8K example leaves grade-school-math/."""
import json
import os

from spore.posttrain.tasks import get_task

os.chdir("/tmp/redteam_pt")
t = get_task("json_field")
train = t.public_items(3000, "tf-train")
trq = {i.question for i in train}
test = [i for i in t.public_items(300, "tf-test") if i.question not in trq][:200]


def w(p, items):
    with open(p, "w") as f:
        for i in items:
            f.write(json.dumps({"question": i.question, "answer": i.answer}) + "\n")


w("tf/jsonlocal/train.jsonl", train)
w("tf/jsonlocal/test.jsonl", test)
w("tf_src/jsonlocal_test_raw.jsonl", test)
w("tf_src/jsonlocal_train_raw.jsonl", train)
json.dump({"name": "jsonlocal", "description": "Read one field's value out of a small JSON object.",
           "max_answer_chars": 8, "reference_score": 0.3}, open("tf/jsonlocal/task.json", "w"))
print(len(train), len(test))
