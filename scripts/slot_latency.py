"""Issue 14: warm Bot.ask latency with the slot rule on and off, alternating, 300 tune questions on
/tmp/q14/idx24 (from scripts/size_abstention.py). Usage: python scripts/slot_latency.py"""
import sys, time, dataclasses, json, numpy as np
sys.path.insert(0,'.')
from qa.answer import Bot
from qa.index import Index
from qa.retrieve import Ranker
idx=Index.open(__import__('pathlib').Path('/tmp/q14/idx24'))
on=Bot(idx); off=Bot(idx, dataclasses.replace(on.ranker, slot_demotion=1.0))
d=np.load('/tmp/q14/size24/own.npz'); qs=[str(x) for x in d['questions']][::18][:300]
for b in (on,off): b.ask(qs[0])
t={'on':[], 'off':[]}
for q in qs:
    for name,b in (('on',on),('off',off)):
        t0=time.perf_counter(); b.ask(q); t[name].append(time.perf_counter()-t0)
for k,v in t.items(): print(k, 'p50 %.1f ms p95 %.1f ms' % (np.median(v)*1e3, np.quantile(v,.95)*1e3))
