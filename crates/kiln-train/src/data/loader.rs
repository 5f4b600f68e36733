//! A memory-mapped token shard and the random-window batches nanoGPT trains on.
//!
//! A batch is `batch` windows of `ctx + 1` consecutive tokens, each starting uniformly in
//! `0..=len - ctx - 1`; inputs are the first `ctx` tokens of a window and targets the last
//! `ctx` (inputs shifted by one). The only state is the [`DataRng`], so saving its state is
//! saving the data position.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use memmap2::Mmap;

use crate::data::manifest::{Dtype, Manifest, Split};
use crate::data::rng::DataRng;
use crate::error::{Result, TrainError};

/// One split's tokens, read through a memory map (the OS pages in only what batches touch).
#[derive(Debug)]
pub struct TokenShard {
    path: PathBuf,
    dtype: Dtype,
    len: usize,
    /// `None` for an empty shard: zero-length files cannot be mapped.
    map: Option<Mmap>,
    /// Ids must be below this (the manifest's vocabulary), checked in every batch drawn.
    vocab: Option<u64>,
}

/// `batch` windows, row-major `(batch, ctx)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub batch: usize,
    pub ctx: usize,
    /// Where each window starts in the shard (for logs and tests).
    pub starts: Vec<usize>,
}

impl Batch {
    /// `(inputs, targets)` as `(batch, ctx)` u32 tensors.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let shape = (self.batch, self.ctx);
        Ok((
            Tensor::from_slice(&self.inputs, shape, device)?,
            Tensor::from_slice(&self.targets, shape, device)?,
        ))
    }
}

impl TokenShard {
    /// Opens `path`, one of `manifest`'s shards (matched by file name), checking that its
    /// size is what the manifest says.
    pub fn open(path: &Path, manifest: &Manifest) -> Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let info = [Split::Train, Split::Val]
            .into_iter()
            .map(|s| manifest.split(s))
            .find(|i| i.file == name)
            .ok_or_else(|| TrainError::Manifest {
                path: path.into(),
                msg: format!(
                    "not a shard of this manifest (it lists {} and {})",
                    manifest.train.file, manifest.val.file
                ),
            })?;
        let mut shard = Self::open_raw(path, manifest.dtype, info.tokens)?;
        shard.vocab = Some(manifest.vocab_size);
        Ok(shard)
    }

    /// Opens `split` of the shard directory `dir`.
    pub fn open_split(dir: &Path, manifest: &Manifest, split: Split) -> Result<Self> {
        Self::open(&dir.join(&manifest.split(split).file), manifest)
    }

    /// Opens a raw little-endian shard of `tokens` ids of `dtype`.
    pub fn open_raw(path: &Path, dtype: Dtype, tokens: u64) -> Result<Self> {
        let file = File::open(path).map_err(|e| TrainError::io(path, "open", e))?;
        let found = file
            .metadata()
            .map_err(|e| TrainError::io(path, "stat", e))?
            .len();
        let expected = tokens * dtype.size() as u64;
        if found != expected {
            return Err(TrainError::ShardSize {
                path: path.into(),
                tokens,
                dtype: dtype.name(),
                expected,
                found,
            });
        }
        let len = usize::try_from(tokens).map_err(|_| {
            TrainError::InvalidArgument(format!("{tokens} tokens do not fit this platform"))
        })?;
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and kiln never modifies a shard in place (shards
            // are replaced by rename, which leaves this mapping on the old file). Another
            // program truncating the file under us could fault; that is the usual mmap
            // caveat.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| TrainError::io(path, "mmap", e))?;
            #[cfg(unix)]
            {
                // Random windows: readahead would mostly fetch pages no batch wants. Only a
                // hint, so its failure does not matter.
                let _ = map.advise(memmap2::Advice::Random);
            }
            Some(map)
        };
        Ok(Self {
            path: path.into(),
            dtype,
            len,
            map,
            vocab: None,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens `start..start + len`, or `None` past the end.
    pub fn window(&self, start: usize, len: usize) -> Option<Vec<u32>> {
        let end = start.checked_add(len).filter(|&e| e <= self.len)?;
        let mut out = vec![0; end - start];
        self.read_into(start, &mut out);
        Some(out)
    }

    /// Every token (for small shards and tests).
    pub fn to_vec(&self) -> Vec<u32> {
        self.window(0, self.len).unwrap_or_default()
    }

    /// Fills `out` with tokens from `start`; the caller keeps it in range.
    fn read_into(&self, start: usize, out: &mut [u32]) {
        let Some(map) = &self.map else { return };
        let size = self.dtype.size();
        let bytes = &map[start * size..(start + out.len()) * size];
        match self.dtype {
            Dtype::U16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = u32::from(u16::from_le_bytes([b[0], b[1]]));
                }
            }
            Dtype::U32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }

    /// `batch` random windows of `ctx` inputs and `ctx` targets, advancing `rng` by exactly
    /// `batch` draws (when no draw is rejected; either way the same state gives the same
    /// batch).
    pub fn sample_batch(&self, rng: &mut DataRng, batch: usize, ctx: usize) -> Result<Batch> {
        self.check_shape(batch, ctx)?;
        // Starts in 0..=len - ctx - 1, so the window's last target is in range.
        let n_starts = (self.len - ctx) as u64;
        let mut b = Batch {
            inputs: Vec::with_capacity(batch * ctx),
            targets: Vec::with_capacity(batch * ctx),
            batch,
            ctx,
            starts: Vec::with_capacity(batch),
        };
        let mut window = vec![0u32; ctx + 1];
        for _ in 0..batch {
            let start = rng.below(n_starts) as usize;
            self.read_into(start, &mut window);
            self.check_ids(start, &window)?;
            b.inputs.extend_from_slice(&window[..ctx]);
            b.targets.extend_from_slice(&window[1..]);
            b.starts.push(start);
        }
        Ok(b)
    }

    /// `n` fixed batches for evaluation: the same `seed` gives the same windows every time,
    /// so losses at different steps (and in different runs) are measured on the same text.
    pub fn eval_batches(
        &self,
        n: usize,
        batch: usize,
        ctx: usize,
        seed: u64,
    ) -> Result<Vec<Batch>> {
        let mut rng = DataRng::seed_from_u64(seed);
        (0..n)
            .map(|_| self.sample_batch(&mut rng, batch, ctx))
            .collect()
    }

    /// A corrupt shard (or a manifest edited to a smaller vocabulary) would otherwise index
    /// past the embedding table deep inside the model.
    fn check_ids(&self, start: usize, window: &[u32]) -> Result<()> {
        let Some(vocab) = self.vocab else {
            return Ok(());
        };
        match window.iter().position(|&t| u64::from(t) >= vocab) {
            None => Ok(()),
            Some(i) => Err(TrainError::Manifest {
                path: self.path.clone(),
                msg: format!(
                    "token id {} at position {} is outside the vocabulary of {vocab} ids that \
                     manifest.json gives (the shard or the manifest is corrupt)",
                    window[i],
                    start + i
                ),
            }),
        }
    }

    fn check_shape(&self, batch: usize, ctx: usize) -> Result<()> {
        if batch == 0 || ctx == 0 {
            return Err(TrainError::InvalidArgument(format!(
                "batch ({batch}) and ctx ({ctx}) must be at least 1"
            )));
        }
        if self.len <= ctx {
            return Err(TrainError::ShardTooShort {
                path: self.path.clone(),
                tokens: self.len as u64,
                ctx,
            });
        }
        Ok(())
    }
}

/// A prepared shard directory: its manifest and both splits.
#[derive(Debug)]
pub struct TokenDataset {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub train: TokenShard,
    pub val: TokenShard,
}

impl TokenDataset {
    /// Opens `dir/manifest.json` and the shards it lists.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        Ok(Self {
            train: TokenShard::open_split(dir, &manifest, Split::Train)?,
            val: TokenShard::open_split(dir, &manifest, Split::Val)?,
            dir: dir.into(),
            manifest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A u16 and a u32 shard of the tokens 0..n (token i at position i).
    fn shards(n: u32) -> (tempfile::TempDir, TokenShard, TokenShard) {
        let dir = tempfile::tempdir().unwrap();
        let p16 = dir.path().join("a16.bin");
        let p32 = dir.path().join("a32.bin");
        let b16: Vec<u8> = (0..n).flat_map(|i| (i as u16).to_le_bytes()).collect();
        let b32: Vec<u8> = (0..n).flat_map(|i| (i + 70_000).to_le_bytes()).collect();
        std::fs::write(&p16, b16).unwrap();
        std::fs::write(&p32, b32).unwrap();
        let s16 = TokenShard::open_raw(&p16, Dtype::U16, n as u64).unwrap();
        let s32 = TokenShard::open_raw(&p32, Dtype::U32, n as u64).unwrap();
        (dir, s16, s32)
    }

    #[test]
    fn windows_are_in_range_and_targets_are_inputs_shifted() {
        let (_d, s, s32) = shards(50);
        assert_eq!(s32.window(3, 2), Some(vec![70_003, 70_004]));
        let ctx = 8;
        let mut rng = DataRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let b = s.sample_batch(&mut rng, 4, ctx).unwrap();
            assert_eq!((b.inputs.len(), b.targets.len()), (4 * ctx, 4 * ctx));
            for (row, &start) in b.starts.iter().enumerate() {
                assert!(start + ctx < s.len(), "start {start}");
                let inp = &b.inputs[row * ctx..(row + 1) * ctx];
                let tgt = &b.targets[row * ctx..(row + 1) * ctx];
                // Token i sits at position i, so the window is start, start + 1, ...
                let expect: Vec<u32> = (start as u32..(start + ctx) as u32).collect();
                assert_eq!(inp, expect.as_slice());
                assert_eq!(&inp[1..], &tgt[..ctx - 1]);
                assert_eq!(tgt[ctx - 1], (start + ctx) as u32);
                seen.insert(start);
            }
        }
        // Every start in 0..=len - ctx - 1 turns up, both ends included.
        assert_eq!(seen.len(), 50 - ctx);
        assert_eq!(seen.first(), Some(&0));
        assert_eq!(seen.last(), Some(&(50 - ctx - 1)));
    }

    #[test]
    fn same_seed_same_batches_and_restore_resumes() {
        let (_d, s, _) = shards(1000);
        let mut a = DataRng::seed_from_u64(42);
        let mut b = DataRng::seed_from_u64(42);
        for _ in 0..5 {
            assert_eq!(
                s.sample_batch(&mut a, 3, 16).unwrap(),
                s.sample_batch(&mut b, 3, 16).unwrap()
            );
        }
        let saved = a.state();
        let next: Vec<Batch> = (0..5)
            .map(|_| s.sample_batch(&mut a, 3, 16).unwrap())
            .collect();
        let mut resumed = DataRng::from_state(saved).unwrap();
        let again: Vec<Batch> = (0..5)
            .map(|_| s.sample_batch(&mut resumed, 3, 16).unwrap())
            .collect();
        assert_eq!(next, again);
        let other = s
            .sample_batch(&mut DataRng::seed_from_u64(43), 3, 16)
            .unwrap();
        assert_ne!(other.starts, next[0].starts);
    }

    #[test]
    fn eval_batches_are_fixed_by_seed() {
        let (_d, s, _) = shards(500);
        let a = s.eval_batches(4, 2, 10, 1337).unwrap();
        assert_eq!(a, s.eval_batches(4, 2, 10, 1337).unwrap());
        assert_eq!(a.len(), 4);
        assert_ne!(a, s.eval_batches(4, 2, 10, 1338).unwrap());
    }

    #[test]
    fn batch_tensors_have_shape_b_ctx() {
        let (_d, s, _) = shards(100);
        let b = s
            .sample_batch(&mut DataRng::seed_from_u64(0), 3, 5)
            .unwrap();
        let (x, y) = b.to_tensors(&Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[3, 5]);
        assert_eq!(y.dtype(), candle_core::DType::U32);
        assert_eq!(x.flatten_all().unwrap().to_vec1::<u32>().unwrap(), b.inputs);
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
            b.targets
        );
    }

    #[test]
    fn too_short_shards_and_bad_shapes_are_errors() {
        let (_d, s, _) = shards(8);
        let mut rng = DataRng::seed_from_u64(0);
        assert!(s.sample_batch(&mut rng, 1, 7).is_ok());
        let e = s.sample_batch(&mut rng, 1, 8).unwrap_err();
        assert!(matches!(e, TrainError::ShardTooShort { .. }), "{e}");
        assert!(s.sample_batch(&mut rng, 0, 4).is_err());
        assert!(s.sample_batch(&mut rng, 1, 0).is_err());
    }

    #[test]
    fn size_mismatch_with_the_manifest_is_an_error() {
        let (d, _, _) = shards(10);
        let e = TokenShard::open_raw(&d.path().join("a16.bin"), Dtype::U16, 11).unwrap_err();
        assert!(matches!(e, TrainError::ShardSize { .. }), "{e}");
        let e = TokenShard::open_raw(&d.path().join("nope.bin"), Dtype::U16, 1).unwrap_err();
        assert!(matches!(e, TrainError::MissingFile { .. }), "{e}");
    }
}
