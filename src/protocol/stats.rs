//! Numbers a researcher can trust: mean and spread across seeds, bootstrap
//! confidence intervals over examples, and the paired comparison of two
//! conditions evaluated on the same examples.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A value with its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// Mean and sample standard deviation (n-1; 0 for a single value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Accuracy (in %) averaged over seeds, with a 95% percentile-bootstrap CI
/// over examples: each resample draws example indices with replacement and
/// applies them to every seed (`correct[seed][example]`).
pub fn bootstrap_accuracy(correct: &[Vec<bool>], resamples: usize, seed: u64) -> Estimate {
    let n = correct.first().map(Vec::len).unwrap_or(0);
    let acc = |idx: &mut dyn Iterator<Item = usize>| -> f64 {
        let mut hits = vec![0usize; correct.len()];
        let mut count = 0usize;
        for i in idx {
            for (s, row) in correct.iter().enumerate() {
                hits[s] += row[i] as usize;
            }
            count += 1;
        }
        100.0 * hits.iter().sum::<usize>() as f64 / (count * correct.len()).max(1) as f64
    };
    let value = acc(&mut (0..n));
    if n == 0 {
        return Estimate {
            value: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<f64> = (0..resamples)
        .map(|_| {
            let draw: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            acc(&mut draw.into_iter())
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    Estimate {
        value,
        low: percentile(&samples, 0.025),
        high: percentile(&samples, 0.975),
    }
}

/// The difference `b - a` in accuracy (points, averaged over seeds) of two
/// conditions on the same examples, with a 95% paired-bootstrap CI: each
/// resample uses the same example indices for both conditions.
pub fn paired_delta(a: &[Vec<bool>], b: &[Vec<bool>], resamples: usize, seed: u64) -> Estimate {
    let n = a.first().map(Vec::len).unwrap_or(0);
    let diff = |idx: &[usize]| -> f64 {
        let mean = |c: &[Vec<bool>]| {
            let hits: usize = c
                .iter()
                .map(|row| idx.iter().filter(|&&i| row[i]).count())
                .sum();
            100.0 * hits as f64 / (idx.len() * c.len()).max(1) as f64
        };
        mean(b) - mean(a)
    };
    let all: Vec<usize> = (0..n).collect();
    let value = diff(&all);
    if n == 0 {
        return Estimate {
            value: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<f64> = (0..resamples)
        .map(|_| {
            let draw: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            diff(&draw)
        })
        .collect();
    samples.sort_by(|x, y| x.total_cmp(y));
    Estimate {
        value,
        low: percentile(&samples, 0.025),
        high: percentile(&samples, 0.975),
    }
}
