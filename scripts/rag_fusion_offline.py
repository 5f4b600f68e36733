#!/usr/bin/env python3
"""Offline fusion check on the RAG golden set's dev questions (docs/retrieval.md): reads an
index's chunk vectors (kiln rag index), embeds the dev queries with sentence-transformers
(the same model), runs a simple BM25 with the document title counted 0, 1 or 3 extra times
(BM25F-like), and prints dev nDCG@10 of dense, BM25, RRF and convex fusions; then counts the
dev questions dense misses at rank 1 with a same-titled passage above the labelled one.

    ~/.cache/kiln/venv/bin/python scripts/rag_fusion_offline.py runs/rag-golden gen-N
"""
import collections, json, math, os, re, sys
import numpy as np
G=sys.argv[1].rstrip('/')+'/' if len(sys.argv)>1 else 'runs/rag-golden/'
GEN=sys.argv[2] if len(sys.argv)>2 else 'gen-1'
chunks=[json.loads(l) for l in open(G+'index/'+GEN+'/chunks.jsonl')]
docs={}
for l in open(G+'index/'+GEN+'/docs.jsonl'):
    j=json.loads(l); docs[j['id']]=j
V=np.fromfile(G+'index/'+GEN+'/vectors.f32',dtype=np.float32).reshape(len(chunks),-1)
def load(p): return [json.loads(l) for l in open(p)]
dev=load(G+'golden.dev.jsonl'); test=load(G+'golden.jsonl')
from sentence_transformers import SentenceTransformer
m=SentenceTransformer(os.path.expanduser(os.environ.get('KILN_ASSETS','~/.cache/kiln/assets'))+'/all-MiniLM-L6-v2', device='cpu')
def emb(qs): return m.encode([q['query'] for q in qs], normalize_embeddings=True, batch_size=64)
QD, QT = emb(dev), emb(test)
tok=lambda s: re.findall(r"[a-z0-9]+", s.lower())
def stem(w):
    for suf in ('ing','ed','es','s'):
        if len(w)>4 and w.endswith(suf): return w[:-len(suf)]
    return w
def build(title_boost):
    tf=[]; df=collections.Counter(); lens=[]
    for c in chunks:
        t=docs[c['doc_id']].get('title') or ''
        words=[stem(w) for w in tok(c['text'])]
        cnt=collections.Counter(words)
        for w in (stem(x) for x in tok(t)): cnt[w]+=title_boost
        tf.append(cnt); lens.append(sum(cnt.values()))
        for w in cnt: df[w]+=1
    N=len(chunks); avg=sum(lens)/N
    idf={w:math.log(1+(N-n+0.5)/(n+0.5)) for w,n in df.items()}
    inv=collections.defaultdict(list)
    for i,cnt in enumerate(tf):
        for w,f in cnt.items(): inv[w].append((i,f))
    return inv, idf, lens, avg
def bm25(index, q, k1=1.2, b=0.75):
    inv, idf, lens, avg = index
    s=collections.defaultdict(float)
    for w in set(stem(x) for x in tok(q)):
        for i,f in inv.get(w,()):
            s[i]+=idf[w]*f*(k1+1)/(f+k1*(1-b+b*lens[i]/avg))
    return s
def doc_rank(scores):  # chunk scores dict/array -> doc list best first
    best={}
    for i,sc in scores.items():
        d=chunks[i]['doc_id']
        if d not in best or sc>best[d]: best[d]=sc
    return sorted(best, key=lambda d:-best[d])
def ndcg(rank, rel):
    for i,d in enumerate(rank[:10]):
        if d in rel: return 1/math.log2(i+2)
    return 0.0
def evaluate(qs, Q, idx, variants):
    out=collections.defaultdict(list)
    for qi,q in enumerate(qs):
        rel=set(q['relevant'])
        dn=V@Q[qi]
        top=np.argsort(-dn)[:50]
        dense={int(i):float(dn[i]) for i in top}
        b=bm25(idx,q['query'])
        btop=dict(sorted(b.items(), key=lambda x:-x[1])[:50])
        for name,f in variants.items():
            out[name].append(ndcg(doc_rank(f(dense,btop)), rel))
    return {k:round(100*np.mean(v),2) for k,v in out.items()}, out
def convex(a, lo_d=-1.0):
    def f(d,b):
        hd=max(d.values()); hb=max(b.values()) if b else 1
        s=collections.defaultdict(float)
        for i,v in d.items(): s[i]+=a*(v-lo_d)/(hd-lo_d)
        for i,v in b.items(): s[i]+=(1-a)*v/hb
        return s
    return f
def rrf(k=60):
    def f(d,b):
        s=collections.defaultdict(float)
        for L in (d,b):
            for r,i in enumerate(sorted(L,key=lambda x:-L[x])): s[i]+=1/(k+r+1)
        return s
    return f
variants={'dense':lambda d,b:d,'bm25':lambda d,b:b,'rrf':rrf()}
for a in (0.6,0.7,0.8,0.9): variants[f'convex{a}']=convex(a)
for a in (0.5,0.7): variants[f'convex0{a}']=convex(a,0.0)
for tb in (0,1,3):
    idx=build(tb)
    r,_=evaluate(dev,QD,idx,variants)
    print('dev title_boost',tb,r,flush=True)

idx=build(3)
c=collections.Counter(); ex=[]
for qi,q in enumerate(dev):
    rel=q['relevant'][0]
    dn=V@QD[qi]; top=np.argsort(-dn)[:50]
    dr=doc_rank({int(i):float(dn[i]) for i in top})
    b=bm25(idx,q['query']); br=doc_rank(dict(sorted(b.items(), key=lambda x:-x[1])[:50]))
    rd=dr.index(rel)+1 if rel in dr else 99; rb=br.index(rel)+1 if rel in br else 99
    c[(min(rd,4),min(rb,4))]+=1
    if rd>1 and len(ex)<8: ex.append((q['query'], docs[rel].get('title'), [docs[d].get('title') for d in dr[:3]], rb))
print(sorted(c.items()))
for e in ex: print(e)

same=0; miss=0
for qi,q in enumerate(dev):
    rel=q['relevant'][0]
    dn=V@QD[qi]; top=np.argsort(-dn)[:50]
    dr=doc_rank({int(i):float(dn[i]) for i in top})
    rd=dr.index(rel) if rel in dr else 99
    if rd>0:
        miss+=1
        t=docs[rel].get('title')
        if any(docs[d].get('title')==t for d in dr[:rd]): same+=1
print('misses',miss,'same-title above',same)
