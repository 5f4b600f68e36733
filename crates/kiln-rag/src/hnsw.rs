//! Approximate nearest neighbours by HNSW (Malkov & Yashunin, 2016): a hierarchy of
//! proximity graphs, each level a random sample of the one below (level of a node drawn
//! as ⌊-ln U · mL⌋, mL = 1/ln M). A search descends greedily from the top and widens to a
//! beam of `ef` candidates on level 0. Links are chosen by the paper's heuristic (a
//! candidate is kept only if it is closer to the new node than to every link already
//! kept), which keeps clusters connected. Scores are dot products of unit vectors, as in
//! `FlatVectors`; with a filter the beam is widened and, if still short of k, the exact
//! search answers instead, so filters never lose results. The graph is saved beside the
//! generation's vectors (`gen-N/hnsw.bin`) the first time it is built, so a large corpus
//! pays for it once per commit.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use rand::{Rng, SeedableRng};

use crate::error::{io_err, RagError, Result};
use crate::index::RagIndex;
use crate::vectors::{dot, FlatVectors, VectorStore};

const MAGIC: &[u8; 8] = b"KHNSW001";
/// The graph's file in a generation directory.
pub const HNSW_FILE: &str = "hnsw.bin";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Links per node above level 0 (twice this on level 0).
    pub m: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Beam width while searching (at least k).
    pub ef_search: usize,
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
            ef_search: 100,
            seed: 1,
        }
    }
}

/// A score and a node, ordered by score (ties by node, for determinism).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

pub struct Hnsw {
    params: HnswParams,
    vectors: FlatVectors,
    /// links[node][level]: its neighbours on that level.
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
}

impl Hnsw {
    /// Builds the graph over every row of `vectors`.
    pub fn build(vectors: FlatVectors, params: HnswParams) -> Self {
        let n = vectors.len();
        let mut h = Self {
            params: HnswParams {
                m: params.m.max(2),
                ..params
            },
            vectors,
            links: Vec::with_capacity(n),
            entry: None,
        };
        let ml = 1.0 / (h.params.m as f64).ln();
        let mut rng = rand::rngs::StdRng::seed_from_u64(params.seed);
        for node in 0..n {
            let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
            let level = (-u.ln() * ml).floor() as usize;
            h.insert(node as u32, level.min(16));
        }
        h
    }

    pub fn vectors(&self) -> &FlatVectors {
        &self.vectors
    }

    /// Writes the graph (not the vectors) to `path` atomically: a temporary file, synced,
    /// renamed over.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut b: Vec<u8> = MAGIC.to_vec();
        let p = &self.params;
        for x in [p.m, p.ef_construction, p.ef_search, self.links.len()] {
            b.extend((x as u32).to_le_bytes());
        }
        b.extend(p.seed.to_le_bytes());
        b.extend(self.entry.unwrap_or(u32::MAX).to_le_bytes());
        for levels in &self.links {
            b.push(levels.len() as u8);
            for l in levels {
                b.extend((l.len() as u32).to_le_bytes());
                for &n in l {
                    b.extend(n.to_le_bytes());
                }
            }
        }
        Ok(kiln_model::atomic::write_bytes_atomic(path, &b)?)
    }

    /// Reads a graph saved by `save` over `vectors`; a file that does not fit them (another
    /// size, a link out of range, cut short) is an error.
    pub fn load(path: &Path, vectors: FlatVectors) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let bad = |what: &str| RagError::Index {
            dir: path.to_path_buf(),
            message: format!("HNSW graph: {what}"),
        };
        let mut r = Reader { b: &bytes, at: 0 };
        if r.take(8).ok_or_else(|| bad("too short"))? != MAGIC {
            return Err(bad("not a kiln HNSW file"));
        }
        let mut u32s = [0usize; 4];
        for x in &mut u32s {
            *x = r.u32().ok_or_else(|| bad("cut short"))? as usize;
        }
        let [m, ef_construction, ef_search, n] = u32s;
        let seed = r.u64().ok_or_else(|| bad("cut short"))?;
        if n != vectors.len() {
            return Err(bad(&format!("{n} nodes for {} vectors", vectors.len())));
        }
        let entry = r.u32().ok_or_else(|| bad("cut short"))?;
        let entry = (entry != u32::MAX).then_some(entry);
        if entry.is_some_and(|e| e as usize >= n) || (entry.is_none() && n > 0) {
            return Err(bad("entry point out of range"));
        }
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let levels = r.take(1).ok_or_else(|| bad("cut short"))?[0] as usize;
            if levels == 0 {
                return Err(bad("a node on no level"));
            }
            let mut node = Vec::with_capacity(levels);
            for _ in 0..levels {
                let count = r.u32().ok_or_else(|| bad("cut short"))? as usize;
                let mut l = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let id = r.u32().ok_or_else(|| bad("cut short"))?;
                    if id as usize >= n {
                        return Err(bad("a link out of range"));
                    }
                    l.push(id);
                }
                node.push(l);
            }
            links.push(node);
        }
        if r.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            params: HnswParams {
                m,
                ef_construction,
                ef_search,
                seed,
            },
            vectors,
            links,
            entry,
        })
    }

    fn score(&self, q: &[f32], node: u32) -> f32 {
        dot(q, self.vectors.row(node as usize))
    }

    fn top_level(&self) -> usize {
        self.entry.map_or(0, |e| self.links[e as usize].len() - 1)
    }

    fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    fn insert(&mut self, node: u32, level: usize) {
        self.links.push(vec![vec![]; level + 1]);
        let Some(entry) = self.entry else {
            self.entry = Some(node);
            return;
        };
        let q = self.vectors.row(node as usize).to_vec();
        let top = self.top_level();
        let mut ep = vec![Scored(self.score(&q, entry), entry)];
        for l in (level + 1..=top).rev() {
            ep = self.search_level(&q, &ep, 1, l, None);
        }
        for l in (0..=level.min(top)).rev() {
            let found = self.search_level(&q, &ep, self.params.ef_construction, l, None);
            let chosen = self.select(&found, self.params.m);
            for &Scored(_, nb) in &chosen {
                self.links[node as usize][l].push(nb);
                self.link(nb, node, l);
            }
            ep = found;
        }
        if level > top {
            self.entry = Some(node);
        }
    }

    /// Adds `to` to `from`'s links on `level`, pruning them back to the level's limit.
    fn link(&mut self, from: u32, to: u32, level: usize) {
        let limit = self.max_links(level);
        let list = &mut self.links[from as usize][level];
        list.push(to);
        if list.len() <= limit {
            return;
        }
        let base = self.vectors.row(from as usize).to_vec();
        let mut cands: Vec<Scored> = self.links[from as usize][level]
            .iter()
            .map(|&x| Scored(self.score(&base, x), x))
            .collect();
        cands.sort_by(|a, b| b.cmp(a));
        let kept: Vec<u32> = self.select(&cands, limit).iter().map(|s| s.1).collect();
        self.links[from as usize][level] = kept;
    }

    /// The paper's neighbour heuristic over `cands` (best first): keep a candidate only if
    /// it is closer to the base than to every one kept; fill up with the pruned ones.
    fn select(&self, cands: &[Scored], m: usize) -> Vec<Scored> {
        let mut kept: Vec<Scored> = vec![];
        let mut pruned = vec![];
        for &c in cands {
            if kept.len() == m {
                break;
            }
            let row = self.vectors.row(c.1 as usize);
            if kept
                .iter()
                .all(|k| dot(row, self.vectors.row(k.1 as usize)) < c.0)
            {
                kept.push(c);
            } else {
                pruned.push(c);
            }
        }
        for c in pruned {
            if kept.len() == m {
                break;
            }
            kept.push(c);
        }
        kept
    }

    /// The `ef` best nodes of `level` reachable from `entry`, best first; with `keep`,
    /// only accepted nodes count as results (others are still walked through).
    fn search_level(
        &self,
        q: &[f32],
        entry: &[Scored],
        ef: usize,
        level: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Scored> {
        let mut visited = vec![0u64; self.links.len().div_ceil(64)];
        let mut mark = |n: u32| {
            let (w, b) = (n as usize / 64, n as usize % 64);
            let seen = (visited[w] >> b) & 1 == 1;
            visited[w] |= 1 << b;
            !seen
        };
        let accepts = |n: u32| keep.is_none_or(|k| k(n as usize));
        let mut frontier: BinaryHeap<Scored> = BinaryHeap::new();
        // Results as a min-heap of the best `ef`.
        let mut best: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        for &e in entry {
            if mark(e.1) {
                frontier.push(e);
                if accepts(e.1) {
                    best.push(std::cmp::Reverse(e));
                }
            }
        }
        while let Some(c) = frontier.pop() {
            if best.len() >= ef && best.peek().is_some_and(|w| c.0 < w.0 .0) {
                break;
            }
            for &nb in self.links[c.1 as usize].get(level).into_iter().flatten() {
                if !mark(nb) {
                    continue;
                }
                let s = Scored(self.score(q, nb), nb);
                let worst = best.peek().map(|w| w.0 .0);
                if best.len() < ef || worst.is_some_and(|w| s.0 > w) {
                    frontier.push(s);
                    if accepts(nb) {
                        best.push(std::cmp::Reverse(s));
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Scored> = best.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }
}

impl VectorStore for Hnsw {
    fn dim(&self) -> usize {
        self.vectors.dim()
    }

    fn len(&self) -> usize {
        self.links.len()
    }

    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let Some(entry) = self.entry else {
            return vec![];
        };
        if query.len() != self.dim() || k == 0 {
            return vec![];
        }
        let mut ep = vec![Scored(self.score(query, entry), entry)];
        for l in (1..=self.top_level()).rev() {
            ep = self.search_level(query, &ep, 1, l, None);
        }
        let ef = self.params.ef_search.max(k);
        let found = self.search_level(query, &ep, ef, 0, Some(keep));
        if found.len() < k.min(self.len()) {
            // A filter that rejects most nodes starves the beam: answer exactly.
            let exact = self.vectors.search(query, k, keep);
            if exact.len() > found.len() {
                return exact;
            }
        }
        found
            .into_iter()
            .take(k)
            .map(|s| (s.1 as usize, s.0))
            .collect()
    }
}

/// Little-endian reads over a byte slice.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }
}

/// The index's graph: read from its generation when saved there, else built (with
/// `params`) and saved. The flag says whether it was built now. A graph that cannot be
/// saved (a read-only index) is still returned.
pub fn cached_hnsw(index: &RagIndex, params: HnswParams) -> Result<(Hnsw, bool)> {
    let path = index.generation_dir().join(HNSW_FILE);
    if path.exists() {
        if let Ok(h) = Hnsw::load(&path, index.vectors.clone()) {
            return Ok((h, false));
        }
    }
    let h = Hnsw::build(index.vectors.clone(), params);
    let _ = h.save(&path);
    Ok((h, true))
}

/// Share of the exact top-k that the approximate search returns, averaged over `queries`.
pub fn recall_at_k(
    ann: &dyn VectorStore,
    exact: &dyn VectorStore,
    queries: &[Vec<f32>],
    k: usize,
) -> f64 {
    if queries.is_empty() {
        return f64::NAN;
    }
    let all = |_: usize| true;
    let mut sum = 0.0;
    for q in queries {
        let truth: Vec<usize> = exact.search(q, k, &all).into_iter().map(|h| h.0).collect();
        let got: Vec<usize> = ann.search(q, k, &all).into_iter().map(|h| h.0).collect();
        let hit = truth.iter().filter(|t| got.contains(t)).count();
        sum += hit as f64 / truth.len().max(1) as f64;
    }
    sum / queries.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors around `clusters` random centres.
    fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut gauss = || {
            let (u, v): (f32, f32) = (1.0 - rng.random::<f32>(), rng.random::<f32>());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        };
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| gauss()).collect())
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % clusters];
                let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * gauss()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    fn store(rows: &[Vec<f32>]) -> FlatVectors {
        let mut f = FlatVectors::new(rows[0].len());
        for r in rows {
            f.push(r).unwrap();
        }
        f
    }

    #[test]
    fn recall_against_exact_search_is_high() {
        let rows = clustered(3000, 32, 20, 7);
        let flat = store(&rows);
        let queries = clustered(100, 32, 20, 99);
        // Noisy 32-dimensional clusters are a hard case (distances nearly equal): a wider
        // beam buys recall, up to exact.
        let recall = |ef_search| {
            let params = HnswParams {
                ef_search,
                ..HnswParams::default()
            };
            recall_at_k(&Hnsw::build(flat.clone(), params), &flat, &queries, 10)
        };
        let (r64, r256) = (recall(64), recall(256));
        assert!(
            r64 >= 0.9 && r256 >= 0.99 && r256 >= r64,
            "recall@10 {r64} {r256}"
        );
        // A narrow beam is measurably worse: the measurement can tell.
        let narrow = Hnsw::build(
            flat.clone(),
            HnswParams {
                m: 2,
                ef_construction: 4,
                ef_search: 10,
                seed: 1,
            },
        );
        assert!(recall_at_k(&narrow, &flat, &queries, 10) < r64);
    }

    #[test]
    fn results_are_best_first_and_filters_are_exact() {
        let rows = clustered(500, 16, 5, 3);
        let flat = store(&rows);
        let hnsw = Hnsw::build(flat.clone(), HnswParams::default());
        let q = &rows[42];
        let hits = hnsw.search(q, 5, &|_| true);
        assert_eq!(hits[0].0, 42);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
        // Only rows divisible by 97: six of them, found exactly despite the sparse filter.
        let keep = |r: usize| r.is_multiple_of(97);
        let filtered = hnsw.search(q, 10, &keep);
        let exact = flat.search(q, 10, &keep);
        assert_eq!(filtered, exact);
        assert_eq!(filtered.len(), 6);
        // Saved and loaded, the same graph answers the same.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HNSW_FILE);
        hnsw.save(&path).unwrap();
        let loaded = Hnsw::load(&path, flat.clone()).unwrap();
        assert_eq!(
            loaded.search(q, 10, &|_| true),
            hnsw.search(q, 10, &|_| true)
        );
        assert_eq!(loaded.links, hnsw.links);
        // Cut short, or over other vectors: refused.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Hnsw::load(&path, flat.clone()).is_err());
        std::fs::write(&path, &bytes).unwrap();
        assert!(Hnsw::load(&path, store(&rows[..10])).is_err());
        assert!(Hnsw::build(FlatVectors::new(4), HnswParams::default())
            .search(&[1.0, 0.0, 0.0, 0.0], 3, &|_| true)
            .is_empty());
    }
}
