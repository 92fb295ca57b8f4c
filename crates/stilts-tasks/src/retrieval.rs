//! Scoring sentence retrieval (Tatoeba): given one embedding per sentence
//! of each side, is each sentence's nearest neighbour on the other side its
//! translation (the sentence on the same line)? Cosine similarity as
//! XTREME's `evaluate_retrieval.py` (L2-normalised vectors, inner product),
//! or the ratio margin of Artetxe & Schwenk (2019) over k = 4 neighbours as
//! LASER's `mine_bitext(mode="search")`.

use candle_core::{Device, Tensor};
use stilts_model::error::{Error, Result};

/// Which side is searched for which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// Each non-English sentence looks for its English translation.
    XxEn,
    /// Each English sentence looks for its translation.
    EnXx,
    /// Both, one after the other (the score is their mean, as LASER reports).
    Both,
}

impl Direction {
    /// `"xx-en"`, `"en-xx"` or `"both"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "xx-en" => Ok(Direction::XxEn),
            "en-xx" => Ok(Direction::EnXx),
            "both" => Ok(Direction::Both),
            other => Err(Error::msg(format!(
                "direction `{other}`: use \"xx-en\" (each sentence retrieves its English translation), \"en-xx\" (the other way) or \"both\" (the mean of the two)"
            ))),
        }
    }

    /// The name [`Direction::parse`] reads.
    pub fn name(&self) -> &'static str {
        match self {
            Direction::XxEn => "xx-en",
            Direction::EnXx => "en-xx",
            Direction::Both => "both",
        }
    }
}

/// How a candidate is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scoring {
    /// Cosine similarity: the nearest neighbour among all candidates.
    Cosine,
    /// Ratio margin (Artetxe & Schwenk 2019): among the query's k = 4
    /// nearest candidates by cosine, the one with the largest
    /// `cos(x, y) / ((mean_k(x) + mean_k(y)) / 2)`, where `mean_k(v)` is
    /// the mean cosine of v's k nearest neighbours on the other side.
    Margin,
}

/// The neighbourhood of the ratio margin (LASER's `neighborhood=4`).
pub const MARGIN_K: usize = 4;

impl Scoring {
    /// `"cosine"` or `"margin"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(Scoring::Cosine),
            "margin" => Ok(Scoring::Margin),
            other => Err(Error::msg(format!(
                "scoring `{other}`: use \"cosine\" (nearest neighbour) or \"margin\" (the ratio margin of Artetxe & Schwenk 2019, k = 4)"
            ))),
        }
    }

    /// The name [`Scoring::parse`] reads.
    pub fn name(&self) -> &'static str {
        match self {
            Scoring::Cosine => "cosine",
            Scoring::Margin => "margin",
        }
    }
}

/// Cosine similarities `[xx.len()][en.len()]` of two sets of vectors (each
/// `dim` wide, row-major), after scaling each to unit length (a zero
/// vector stays zero, as faiss's `normalize_L2`).
pub fn cosine_matrix(xx: &[f32], en: &[f32], dim: usize) -> Result<Vec<Vec<f32>>> {
    if dim == 0 || xx.len() % dim != 0 || en.len() % dim != 0 {
        return Err(Error::msg(format!(
            "retrieval: {} and {} values are not rows of {dim}",
            xx.len(),
            en.len()
        )));
    }
    let unit = |v: &[f32]| -> Result<Tensor> {
        let mut v = v.to_vec();
        for row in v.chunks_mut(dim) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        let rows = v.len() / dim;
        Ok(Tensor::from_vec(v, (rows, dim), &Device::Cpu)?)
    };
    let (x, y) = (unit(xx)?, unit(en)?);
    Ok(x.matmul(&y.t()?)?.to_vec2()?)
}

/// Indices `0..row.len()` by decreasing value, ties to the lower index.
fn ranked(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// For each query (a row of `sim`, its candidates the columns), the index
/// of the candidate retrieved. `back` is `sim` transposed (the candidates'
/// own similarities to the queries, for the margin).
fn search(sim: &[Vec<f32>], back: &[Vec<f32>], scoring: Scoring) -> Vec<usize> {
    match scoring {
        Scoring::Cosine => sim.iter().map(|row| ranked(row, 1)[0]).collect(),
        Scoring::Margin => {
            let mean_k = |rows: &[Vec<f32>]| -> Vec<f32> {
                rows.iter()
                    .map(|r| {
                        let top = ranked(r, MARGIN_K.min(r.len()));
                        top.iter().map(|&j| r[j]).sum::<f32>() / top.len() as f32
                    })
                    .collect()
            };
            let (fwd, bwd) = (mean_k(sim), mean_k(back));
            sim.iter()
                .enumerate()
                .map(|(i, row)| {
                    let mut best = (f32::NEG_INFINITY, 0);
                    for j in ranked(row, MARGIN_K.min(row.len())) {
                        let score = row[j] / ((fwd[i] + bwd[j]) / 2.0);
                        if score > best.0 {
                            best = (score, j);
                        }
                    }
                    best.1
                })
                .collect()
        }
    }
}

/// Whether each query retrieves its translation (the sentence on its own
/// line): one entry per xx sentence (`XxEn`), per English one (`EnXx`),
/// or both lists one after the other (`Both`). `sim` is
/// [`cosine_matrix`]`(xx, en)`. Also returns the index each query retrieved.
///
/// ```
/// use stilts_tasks::retrieval::{cosine_matrix, hits, Direction, Scoring};
/// // xx 0 is nearest en 0; xx 1 is nearest en 0 too (a miss); the other
/// // way each English sentence finds its own.
/// let sim = cosine_matrix(&[1.0, 0.0, 1.0, 0.2], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
/// let (h, found) = hits(&sim, Direction::XxEn, Scoring::Cosine);
/// assert_eq!((h, found), (vec![true, false], vec![0, 0]));
/// let (h, found) = hits(&sim, Direction::Both, Scoring::Cosine);
/// assert_eq!((h, found), (vec![true, false, true, true], vec![0, 0, 0, 1]));
/// ```
pub fn hits(sim: &[Vec<f32>], direction: Direction, scoring: Scoring) -> (Vec<bool>, Vec<usize>) {
    let m = sim.first().map_or(0, Vec::len);
    let back: Vec<Vec<f32>> = (0..m).map(|j| sim.iter().map(|r| r[j]).collect()).collect();
    let mut found = vec![];
    if direction != Direction::EnXx {
        found.extend(search(sim, &back, scoring));
    }
    if direction != Direction::XxEn {
        found.extend(search(&back, sim, scoring));
    }
    let n = sim.len();
    let h = found
        .iter()
        .enumerate()
        .map(|(q, &f)| match direction {
            Direction::Both if q >= n => f == q - n,
            _ => f == q,
        })
        .collect();
    (h, found)
}
