"""Issue 14: how many foreign questions (reserved train articles) have their own gold answer text in
the top sentence anyway (another indexed article answers them). Usage: python scripts/foreign_answered_elsewhere.py 24,48,150,490"""
import sys, json, numpy as np
sys.path.insert(0,'.'); sys.path.insert(0,'scripts')
from pathlib import Path
from qa.eval import load_json
from size_abstention import every, RESERVED, TRAIN, FOREIGN_N
from size_table import stage_groups, sigmoid
train = load_json(TRAIN)["data"]
res = [a for i,a in enumerate(train) if i in set(range(len(train))[RESERVED])]
qs = [(q['question'], [x['text'] for x in q['answers']]) for a in res for p in a['paragraphs'] for q in p['qas'] if q['answers']]
qs = every(qs, FOREIGN_N)
r = json.load(open('qa/ranker.json')); w=np.array(r['weights']); b=r['bias']
for size in sys.argv[1].split(','):
    folder = Path('/tmp/q14')/f'size{size}'
    if size=='1': continue
    texts = np.load(folder/'texts.npz')['texts']
    g = stage_groups(Path('/tmp/q14'), size, 'foreign')
    d = np.load(folder/'foreign.npz'); assert str(d['questions'][0])==qs[0][0]
    hit = 0
    for (X,y,dd,rows),(q,ans) in zip(g,qs):
        if not len(X): continue
        top = rows[int(np.argmax(X@w+b))]
        hit += any(a.lower() in str(texts[top]).lower() for a in ans)
    print(size, 'foreign questions whose top sentence holds their gold answer text:', hit, '/', len(g))
