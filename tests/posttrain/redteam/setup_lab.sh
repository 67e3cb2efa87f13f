#!/bin/sh
# Lab used for every run in FINDINGS.md. Run from anywhere; writes /tmp/redteam_pt.
#  base/      a tiny make-base model            (here: a copy of an existing one; `spore posttrain make-base --out base` works too)
#  instruct/  the registry, passed as --forbidden (make-reference --steps 500 --task json_field --task arithmetic)
#  xcopy/     a copy of the registry's checkpoints at a path NOT in the registry ("copies elsewhere on disk")
#  tf/jsonlocal/  a task folder (json_field items), tf_src/ the raw data it was converted from
set -e
L=/tmp/redteam_pt; P=/work/main/.venv/bin/python
mkdir -p $L/runs $L/xcopy $L/tf/jsonlocal $L/tf_src && cd $L
[ -d base ] || nice -n 19 $P -m spore posttrain make-base --out base
[ -d instruct ] || nice -n 19 $P -m spore posttrain make-reference --base base --out instruct --steps 500 --task json_field --task arithmetic
cp -r instruct/json_field instruct/arithmetic xcopy/
$P /work/main/tests/posttrain/redteam/make_taskfolder.py
cp /work/main/tests/posttrain/redteam/go.sh /work/main/tests/posttrain/redteam/showj.sh $L/
