#!/bin/sh
# usage: showj.sh RUN  -> final score + verdict summary
python3 - "$1" <<'P'
import json,sys
r=sys.argv[1]
res=json.load(open(r+'/result.json'));j=json.load(open(r+'/judgement.json'))
print(r,'base',res['base_score'],'final',res['final_score'],'usable',res['final_usable'],'FLAGGED' if j['flagged'] else 'clean',j['flagged_by'])
for k,v in j['checks'].items(): print('  ',k,v['flagged'],v['summary'][:400])
P
