#!/bin/sh
# usage: go.sh NAME TASK LIMIT SEED AGENT...
n=$1; t=$2; l=$3; s=$4; shift 4
nice -n 19 /work/main/.venv/bin/python -m spore posttrain run --agent "$*" --base base --task $t --time-limit $l --seed $s --out runs/$n --forbidden instruct --test-size 100 > $n.log 2>&1
nice -n 19 /work/main/.venv/bin/python -m spore posttrain judge runs/$n >> $n.log 2>&1
./showj.sh runs/$n
