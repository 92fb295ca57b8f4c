//! The feature cache: features on disk, keyed by the data files' SHA-256,
//! the tokenizer fingerprint and the settings, so a rerun skips
//! tokenization and a changed file or tokenizer misses.
//!
//! Folder: `$STILTS_CACHE/features` if `STILTS_CACHE` is set, else
//! `~/.cache/stilts/features`. One file per key, `{task}-{split}-{key}.feat`,
//! written atomically, in a small little-endian binary format:
//! `STFEAT01`, the key (64 hex bytes), u64 count, then per feature:
//! u32 example, u32 rows, (u32 len, len × u32 id) per row, u8 label kind
//! (0 none, 1 class u32, 2 span u32 u32, 3 tags u32 n + n × i32), u32
//! offsets count + per offset u32 start, u32 end (`u32::MAX` twice = none).
//! A file that fails to parse is treated as a miss and rewritten.

use std::path::{Path, PathBuf};

use super::encode::TextEncoder;
use super::example::Dataset;
use super::features::{featurize, Feature, FeatureOptions, Label};
use super::io::file_sha256;
use stilts_model::error::Result;

const MAGIC: &[u8; 8] = b"STFEAT01";
/// Bump when features are built differently, so old entries miss.
const FEATURES_VERSION: u32 = 1;

/// Whether features came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from a cache file whose key matched.
    Hit,
    /// Tokenized now (no valid file for the key) and written to the cache.
    Miss,
    /// Caching off ([`FeatureCache::disabled`]).
    Off,
}

/// Where features are kept.
#[derive(Clone, Debug)]
pub struct FeatureCache {
    dir: Option<PathBuf>,
}

impl Default for FeatureCache {
    fn default() -> Self {
        FeatureCache {
            dir: Some(Self::default_dir()),
        }
    }
}

impl FeatureCache {
    /// A cache in the folder `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FeatureCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: features are always tokenized and never stored.
    pub fn disabled() -> Self {
        FeatureCache { dir: None }
    }

    /// `$STILTS_CACHE/features`, else `~/.cache/stilts/features`.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("STILTS_CACHE").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("features"),
            None => dirs::home_dir()
                .unwrap_or_default()
                .join(".cache")
                .join("stilts")
                .join("features"),
        }
    }

    /// The cache folder; `None` when caching is off.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache key of a dataset's features: SHA-256 over the files'
    /// SHA-256, the tokenizer fingerprint, the feature settings, what was
    /// read (task, split, subset, limit, bad-line policy) and the format version.
    pub fn key(
        ds: &Dataset,
        enc: &TextEncoder,
        opts: &FeatureOptions,
        read: &super::io::ReadOptions,
    ) -> Result<String> {
        let files = ds
            .files
            .iter()
            .map(|p| file_sha256(p))
            .collect::<Result<Vec<_>>>()?;
        let desc = serde_json::json!({
            "version": FEATURES_VERSION,
            "files": files,
            "tokenizer": enc.fingerprint(),
            "features": opts,
            "task": ds.task, "split": ds.split, "subset": ds.subset,
            "read": read,
            "examples": ds.examples.len(),
        });
        Ok(stilts_model::util::sha256_hex(desc.to_string().as_bytes()))
    }

    fn file(&self, ds: &Dataset, key: &str) -> Option<PathBuf> {
        let safe = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        };
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{}-{}-{}.feat",
                safe(&ds.task),
                safe(&ds.split),
                &key[..24]
            ))
        })
    }

    /// The features of `ds`: from the cache if its key matches, else
    /// tokenized and stored.
    pub fn features(
        &self,
        ds: &Dataset,
        enc: &TextEncoder,
        opts: &FeatureOptions,
        read: &super::io::ReadOptions,
    ) -> Result<(Vec<Feature>, CacheStatus)> {
        if self.dir.is_none() {
            return Ok((featurize(ds, enc, opts)?, CacheStatus::Off));
        }
        let key = Self::key(ds, enc, opts, read)?;
        let path = self.file(ds, &key).expect("cache dir");
        if let Ok(bytes) = std::fs::read(&path) {
            if let Some(f) = decode(&bytes, &key) {
                return Ok((f, CacheStatus::Hit));
            }
        }
        let features = featurize(ds, enc, opts)?;
        stilts_model::util::write_atomic(&path, &encode(&features, &key))?;
        Ok((features, CacheStatus::Miss))
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The binary form of `features` (see the module docs).
pub fn encode(features: &[Feature], key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        16 + features
            .iter()
            .map(|f| 16 + 4 * f.cost() + 8 * f.offsets.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    let mut k = [b' '; 64];
    for (d, s) in k.iter_mut().zip(key.bytes()) {
        *d = s;
    }
    out.extend_from_slice(&k);
    out.extend_from_slice(&(features.len() as u64).to_le_bytes());
    for f in features {
        put_u32(&mut out, f.example as u32);
        put_u32(&mut out, f.rows.len() as u32);
        for r in &f.rows {
            put_u32(&mut out, r.len() as u32);
            for &id in r {
                put_u32(&mut out, id);
            }
        }
        match &f.label {
            Label::None => out.push(0),
            Label::Class(c) => {
                out.push(1);
                put_u32(&mut out, *c as u32);
            }
            Label::Span { start, end } => {
                out.push(2);
                put_u32(&mut out, *start as u32);
                put_u32(&mut out, *end as u32);
            }
            Label::Tags(t) => {
                out.push(3);
                put_u32(&mut out, t.len() as u32);
                for &v in t {
                    out.extend_from_slice(&(v as i32).to_le_bytes());
                }
            }
        }
        put_u32(&mut out, f.offsets.len() as u32);
        for o in &f.offsets {
            let (a, b) = o
                .map(|(a, b)| (a as u32, b as u32))
                .unwrap_or((u32::MAX, u32::MAX));
            put_u32(&mut out, a);
            put_u32(&mut out, b);
        }
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn len(&mut self) -> Option<usize> {
        let n = self.u32()? as usize;
        // Never allocate more than the bytes left could hold.
        (n <= self.b.len() - self.pos).then_some(n)
    }
}

/// Parses [`encode`]'s output; `None` if it is damaged or has another key.
pub fn decode(bytes: &[u8], key: &str) -> Option<Vec<Feature>> {
    let mut r = Reader { b: bytes, pos: 0 };
    if r.take(8)? != MAGIC {
        return None;
    }
    let k = r.take(64)?;
    if std::str::from_utf8(k).ok()?.trim_end() != key {
        return None;
    }
    let n = u64::from_le_bytes(r.take(8)?.try_into().ok()?) as usize;
    let mut out = Vec::with_capacity(n.min(bytes.len() / 13));
    for _ in 0..n {
        let example = r.u32()? as usize;
        let nrows = r.len()?;
        let mut rows = Vec::with_capacity(nrows);
        for _ in 0..nrows {
            let len = r.len()?;
            let raw = r.take(len.checked_mul(4)?)?;
            rows.push(
                raw.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            );
        }
        let label = match r.u8()? {
            0 => Label::None,
            1 => Label::Class(r.u32()? as usize),
            2 => Label::Span {
                start: r.u32()? as usize,
                end: r.u32()? as usize,
            },
            3 => {
                let len = r.len()?;
                let raw = r.take(len.checked_mul(4)?)?;
                Label::Tags(
                    raw.chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                        .collect(),
                )
            }
            _ => return None,
        };
        let no = r.len()?;
        let mut offsets = Vec::with_capacity(no);
        for _ in 0..no {
            let (a, b) = (r.u32()?, r.u32()?);
            offsets.push((a != u32::MAX).then_some((a as usize, b as usize)));
        }
        out.push(Feature {
            example,
            rows,
            label,
            offsets,
        });
    }
    (r.pos == bytes.len()).then_some(out)
}
