//! Numbers a researcher can trust: mean and spread across seeds, bootstrap
//! confidence intervals over examples, and the paired comparison of two
//! conditions evaluated on the same examples.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A value with its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The statistic on all examples: accuracy in percent, or a difference in
    /// points (NaN with no examples).
    pub value: f64,
    /// Lower end of the interval (the bootstrap's 2.5th percentile).
    pub low: f64,
    /// Upper end of the interval (the bootstrap's 97.5th percentile).
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

/// A statistic of `n` examples with its 95% percentile-bootstrap CI: each
/// of `resamples` draws `n` example indices with replacement (ChaCha8 from
/// `seed`) and computes `stat` on them; `stat(0..n)` is the value. No
/// examples: NaN throughout.
fn bootstrap(n: usize, resamples: usize, seed: u64, stat: impl Fn(&[usize]) -> f64) -> Estimate {
    if n == 0 {
        return Estimate {
            value: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let all: Vec<usize> = (0..n).collect();
    let value = stat(&all);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<f64> = (0..resamples)
        .map(|_| {
            let draw: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            stat(&draw)
        })
        .collect();
    samples.sort_by(|x, y| x.total_cmp(y));
    Estimate {
        value,
        low: percentile(&samples, 0.025),
        high: percentile(&samples, 0.975),
    }
}

/// Accuracy (in %) averaged over seeds, with a 95% percentile-bootstrap CI
/// over examples: each resample draws example indices with replacement and
/// applies them to every seed (`correct[seed][example]`).
pub fn bootstrap_accuracy(correct: &[Vec<bool>], resamples: usize, seed: u64) -> Estimate {
    let n = correct.first().map(Vec::len).unwrap_or(0);
    bootstrap(n, resamples, seed, |idx| {
        let mut hits = vec![0usize; correct.len()];
        for &i in idx {
            for (s, row) in correct.iter().enumerate() {
                hits[s] += row[i] as usize;
            }
        }
        100.0 * hits.iter().sum::<usize>() as f64 / (idx.len() * correct.len()).max(1) as f64
    })
}

/// The difference `b - a` in accuracy (points, averaged over seeds) of two
/// conditions on the same examples, with a 95% paired-bootstrap CI: each
/// resample uses the same example indices for both conditions.
pub fn paired_delta(a: &[Vec<bool>], b: &[Vec<bool>], resamples: usize, seed: u64) -> Estimate {
    let n = a.first().map(Vec::len).unwrap_or(0);
    bootstrap(n, resamples, seed, |idx| {
        let mean = |c: &[Vec<bool>]| {
            let hits: usize = c
                .iter()
                .map(|row| idx.iter().filter(|&&i| row[i]).count())
                .sum();
            100.0 * hits as f64 / (idx.len() * c.len()).max(1) as f64
        };
        mean(b) - mean(a)
    })
}

/// Two-sided 97.5% quantile of Student's t with `df` degrees of freedom.
///
/// ```
/// assert_eq!(stilts_protocol::stats::t975(1.0), 12.706);
/// assert_eq!(stilts_protocol::stats::t975(1000.0), 1.96);
/// ```
pub fn t975(df: f64) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let d = df.floor().max(1.0) as usize;
    if d <= 30 {
        T[d - 1]
    } else {
        1.96
    }
}

/// How an interval was estimated: the words a table prints beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IntervalMethod {
    /// t over the k seeds (k-1 degrees of freedom) with the test set's
    /// sampling variance added: `mean ± t · sqrt(s²/k + σ²_examples/n)`,
    /// σ²_examples from the seeds × examples analysis of variance (what the
    /// seeds' spread does not already hold).
    SeedsAndExamples,
    /// t over the seeds only (no per-example scores were kept).
    Seeds,
    /// Percentile bootstrap over examples: one seed, so seed variance is
    /// NOT in the interval.
    ExamplesOnly,
}

impl IntervalMethod {
    /// The label tables print.
    pub fn describe(self) -> &'static str {
        match self {
            IntervalMethod::SeedsAndExamples => "95% CI: t over seeds + test-set sampling variance",
            IntervalMethod::Seeds => "95% CI: t over seeds",
            IntervalMethod::ExamplesOnly => {
                "95% CI: bootstrap over examples (one seed: seed variance not included)"
            }
        }
    }
}

/// A mean over seeds with its spread and intervals.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeedEstimate {
    /// Mean over seeds (percent points).
    pub mean: f64,
    /// Standard deviation over seeds (0 for one seed).
    pub seed_std: f64,
    /// Number of seeds (runs) the mean is over.
    pub seeds: usize,
    /// The 95% interval that includes seed variance where there are seeds
    /// to estimate it from (see `method`).
    pub ci: Option<(f64, f64)>,
    /// How `ci` was estimated; `None` when there is no `ci`.
    pub method: Option<IntervalMethod>,
    /// The example-level interval alone (bootstrap over examples, seeds
    /// fixed), reported beside the seed-aware one.
    pub example_ci: Option<(f64, f64)>,
}

/// Per-example scores of one evaluation: `[stratum][example]`, strata being
/// the languages averaged (one stratum for a single language).
pub type Strata = Vec<Vec<f64>>;

fn strata_mean(s: &Strata, draw: Option<&[Vec<usize>]>) -> f64 {
    let means: Vec<f64> = s
        .iter()
        .enumerate()
        .map(|(k, xs)| match draw {
            None => xs.iter().sum::<f64>() / xs.len().max(1) as f64,
            Some(d) => d[k].iter().map(|&i| xs[i]).sum::<f64>() / d[k].len().max(1) as f64,
        })
        .collect();
    100.0 * means.iter().sum::<f64>() / means.len().max(1) as f64
}

/// The example-sampling variance and percentile interval of the mean over
/// `runs` (each `[stratum][example]`, all on the same examples): examples
/// are resampled within each stratum, the same draw for every run.
fn example_bootstrap(runs: &[Strata], resamples: usize, seed: u64) -> Option<(f64, (f64, f64))> {
    let first = runs.first()?;
    if first.is_empty()
        || first.iter().any(Vec::is_empty)
        || runs
            .iter()
            .any(|r| r.len() != first.len() || r.iter().zip(first).any(|(a, b)| a.len() != b.len()))
    {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<f64> = (0..resamples)
        .map(|_| {
            let draw: Vec<Vec<usize>> = first
                .iter()
                .map(|xs| {
                    (0..xs.len())
                        .map(|_| rng.random_range(0..xs.len()))
                        .collect()
                })
                .collect();
            runs.iter()
                .map(|r| strata_mean(r, Some(&draw)))
                .sum::<f64>()
                / runs.len() as f64
        })
        .collect();
    let (m, sd) = mean_std(&samples);
    let _ = m;
    samples.sort_by(|a, b| a.total_cmp(b));
    Some((
        sd * sd,
        (percentile(&samples, 0.025), percentile(&samples, 0.975)),
    ))
}

/// The test set's share of the variance of the seed mean, in points²:
/// for each stratum, the seeds × examples two-way analysis of variance
/// (one score per cell) gives the examples' variance component
/// `σ²_ex = (MS_examples - MS_residual) / k` (clipped at 0), whose share is
/// `σ²_ex / n`; strata (languages) add, divided by their count squared, as
/// the mean over them does. The seed effects and the seed × example
/// interaction are in the spread of the seeds' scores already, so they are
/// not counted twice. `None` with fewer than two seeds or ragged runs.
fn example_variance(runs: &[Strata]) -> Option<f64> {
    let k = runs.len();
    let first = runs.first()?;
    if k < 2
        || first.is_empty()
        || first.iter().any(|x| x.len() < 2)
        || runs
            .iter()
            .any(|r| r.len() != first.len() || r.iter().zip(first).any(|(a, b)| a.len() != b.len()))
    {
        return None;
    }
    let strata = first.len();
    let mut total = 0.0;
    for l in 0..strata {
        let n = first[l].len();
        let y = |s: usize, i: usize| 100.0 * runs[s][l][i];
        let row: Vec<f64> = (0..k)
            .map(|s| (0..n).map(|i| y(s, i)).sum::<f64>() / n as f64)
            .collect();
        let col: Vec<f64> = (0..n)
            .map(|i| (0..k).map(|s| y(s, i)).sum::<f64>() / k as f64)
            .collect();
        let grand = row.iter().sum::<f64>() / k as f64;
        let ms_ex =
            k as f64 * col.iter().map(|c| (c - grand).powi(2)).sum::<f64>() / (n - 1) as f64;
        let mut sse = 0.0;
        for s in 0..k {
            for i in 0..n {
                sse += (y(s, i) - row[s] - col[i] + grand).powi(2);
            }
        }
        let ms_res = sse / ((k - 1) * (n - 1)) as f64;
        let sigma2 = ((ms_ex - ms_res) / k as f64).max(0.0);
        total += sigma2 / n as f64;
    }
    Some(total / (strata * strata) as f64)
}

/// Accuracy (or any per-example score) over seeds, with an interval that
/// includes seed variance. `runs[seed]` holds the per-example scores of one
/// seed (`[stratum][example]`, every seed on the same examples), or is
/// empty where only `values[seed]` (the seed's score in points) is known.
///
/// - k ≥ 2 seeds with per-example scores: `mean ± t(k-1) · sqrt(s²/k + v)`,
///   s² the variance of the seeds' scores, v the test set's share (see
///   `example_variance`): it covers the accuracy a new seed would reach on
///   new examples of the same population; never narrower than the
///   examples-only interval (it is widened to hold it);
/// - k ≥ 2 without them: t over seeds;
/// - one seed: the percentile bootstrap over examples, labelled as such.
///
/// ```
/// use stilts_protocol::stats::{seed_estimate, IntervalMethod};
/// let run = |p: usize| vec![(0..100).map(|i| f64::from(u8::from(i < p))).collect::<Vec<_>>()];
/// let e = seed_estimate(&[70.0, 74.0, 72.0], &[run(70), run(74), run(72)], 200, 1);
/// assert_eq!(e.mean, 72.0);
/// assert_eq!(e.method, Some(IntervalMethod::SeedsAndExamples));
/// let (lo, hi) = e.ci.unwrap();
/// assert!(lo < 70.0 && hi > 74.0);
/// ```
pub fn seed_estimate(values: &[f64], runs: &[Strata], resamples: usize, seed: u64) -> SeedEstimate {
    let k = values.len();
    let (mean, sd) = mean_std(values);
    let boot = if runs.len() == k && k > 0 {
        example_bootstrap(runs, resamples, seed)
    } else {
        None
    };
    let (ci, method) = match (k, &boot) {
        (0, _) => (None, None),
        (1, Some((_, ci))) => (Some(*ci), Some(IntervalMethod::ExamplesOnly)),
        (1, None) => (None, None),
        (_, _) if example_variance(runs).is_some() => {
            let v = example_variance(runs).unwrap_or(0.0);
            let h = t975(k as f64 - 1.0) * (sd * sd / k as f64 + v).sqrt();
            // Never narrower than the examples alone allow: where the
            // variance components are estimated at or below zero (seeds
            // that score alike but disagree on examples: two collapsed
            // models predicting different classes), `mean ± h` can be
            // narrower than, even zero-width inside, the bootstrap over
            // examples; the interval is then widened to hold it.
            let (mut lo, mut hi) = (mean - h, mean + h);
            if let Some((_, (blo, bhi))) = boot {
                lo = lo.min(blo);
                hi = hi.max(bhi);
            }
            (Some((lo, hi)), Some(IntervalMethod::SeedsAndExamples))
        }
        (_, _) => {
            let h = t975(k as f64 - 1.0) * sd / (k as f64).sqrt();
            (Some((mean - h, mean + h)), Some(IntervalMethod::Seeds))
        }
    };
    SeedEstimate {
        mean,
        seed_std: sd,
        seeds: k,
        ci,
        method,
        example_ci: boot.map(|(_, ci)| ci),
    }
}

/// `b - a` over seeds, paired: by seed (the i-th run of each side, when
/// both have the same number) and by example (the same resampled examples
/// for both). With different seed counts the seeds are unpaired (the two
/// seed variances add, Welch's degrees of freedom). Scores as in
/// [`seed_estimate`].
///
/// ```
/// use stilts_protocol::stats::paired_seed_delta;
/// let run = |p: usize| vec![(0..200).map(|i| f64::from(u8::from(i < p))).collect::<Vec<_>>()];
/// let d = paired_seed_delta(&[60.0, 61.0], &[vec![], vec![]], &[70.0, 72.0], &[vec![], vec![]], 100, 0);
/// assert_eq!(d.mean, 10.5);
/// assert!(d.ci.unwrap().0 < 10.5);
/// let d1 = paired_seed_delta(&[60.0], &[run(120)], &[70.0], &[run(140)], 200, 0);
/// assert!(d1.ci.unwrap().0 > 0.0 && d1.example_ci.is_some());
/// ```
pub fn paired_seed_delta(
    a_values: &[f64],
    a_runs: &[Strata],
    b_values: &[f64],
    b_runs: &[Strata],
    resamples: usize,
    seed: u64,
) -> SeedEstimate {
    let (ka, kb) = (a_values.len(), b_values.len());
    let has_runs = a_runs.len() == ka && b_runs.len() == kb && ka > 0 && kb > 0;
    if ka == kb {
        // Paired by seed: the per-seed differences are the sample.
        let d: Vec<f64> = a_values.iter().zip(b_values).map(|(a, b)| b - a).collect();
        let d_runs: Vec<Strata> = if has_runs {
            a_runs
                .iter()
                .zip(b_runs)
                .map(|(ra, rb)| {
                    ra.iter()
                        .zip(rb)
                        .map(|(xa, xb)| xa.iter().zip(xb).map(|(x, y)| y - x).collect())
                        .collect()
                })
                .collect()
        } else {
            vec![]
        };
        let same_shape = has_runs
            && a_runs.iter().zip(b_runs).all(|(ra, rb)| {
                ra.len() == rb.len() && ra.iter().zip(rb).all(|(x, y)| x.len() == y.len())
            });
        return seed_estimate(&d, if same_shape { &d_runs } else { &[] }, resamples, seed);
    }
    // Unpaired seeds.
    let (ma, sa) = mean_std(a_values);
    let (mb, sb) = mean_std(b_values);
    let mean = mb - ma;
    let (va, vb) = (sa * sa / ka.max(1) as f64, sb * sb / kb.max(1) as f64);
    let ex = if has_runs {
        match (example_variance(a_runs), example_variance(b_runs)) {
            (Some(x), Some(y)) => Some(x + y),
            _ => None,
        }
    } else {
        None
    };
    let (ci, method) = if ka >= 2 && kb >= 2 {
        let se2 = va + vb;
        let df = if se2 == 0.0 {
            (ka + kb - 2) as f64
        } else {
            se2 * se2 / (va * va / (ka as f64 - 1.0) + vb * vb / (kb as f64 - 1.0))
        };
        let h = t975(df) * (se2 + ex.unwrap_or(0.0)).sqrt();
        (
            Some((mean - h, mean + h)),
            Some(if ex.is_some() {
                IntervalMethod::SeedsAndExamples
            } else {
                IntervalMethod::Seeds
            }),
        )
    } else {
        (None, None)
    };
    SeedEstimate {
        mean,
        seed_std: (sa * sa + sb * sb).sqrt(),
        seeds: ka.min(kb),
        ci,
        method,
        example_ci: None,
    }
}
