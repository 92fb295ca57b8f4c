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

/// The sampling variance of the seed mean were the k seeds' scores
/// independent samples of the test set, in points²: the mean over runs of
/// each run's own variance of its score (per stratum, the examples' sample
/// variance over n; strata averaged), over k. The floor of the
/// seed-aware variance in [`seed_estimate`]. 0 with runs of one example.
fn seed_sampling_floor(runs: &[Strata]) -> f64 {
    let k = runs.len();
    if k == 0 {
        return 0.0;
    }
    let per_run: f64 = runs
        .iter()
        .map(|r| {
            let strata = r.len().max(1) as f64;
            r.iter()
                .map(|xs| {
                    let n = xs.len();
                    if n < 2 {
                        return 0.0;
                    }
                    let (_, sd) = mean_std(&xs.iter().map(|x| 100.0 * x).collect::<Vec<_>>());
                    sd * sd / n as f64
                })
                .sum::<f64>()
                / (strata * strata)
        })
        .sum::<f64>()
        / k as f64;
    per_run / k as f64
}

/// Accuracy (or any per-example score) over seeds, with an interval that
/// includes seed variance. `runs[seed]` holds the per-example scores of one
/// seed (`[stratum][example]`, every seed on the same examples), or is
/// empty where only `values[seed]` (the seed's score in points) is known.
///
/// - k ≥ 2 seeds with per-example scores: `mean ± t(k-1) · sqrt(s²/k + v)`,
///   s² the variance of the seeds' scores, v the test set's share (see
///   `example_variance`): it covers the accuracy a new seed would reach on
///   new examples of the same population; where the seeds' scores are all
///   equal, its variance is at least that of k independent seeds' scores
///   (each seed's own test-set sampling variance, over k); it is never
///   narrower than the examples-only interval (it is widened to hold it);
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
            // Never narrower than the data allow. Where the variance
            // components come out at or below zero (seeds that score alike
            // but disagree on examples: two collapsed models predicting
            // different classes, or per-seed gains that cancel example by
            // example), `s²/k + v` can be 0 while each seed's own score
            // still has its test-set sampling variance. Where the seeds'
            // scores are all equal (no spread to estimate seed variance
            // from), the variance of the mean is taken as at least that of
            // k independent seeds' scores (`seed_sampling_floor`); and the
            // interval is always widened to hold the bootstrap over
            // examples. (A floor applied everywhere would double-count the
            // seed × example interaction the seeds' spread already holds:
            // 99.5% coverage at 3 seeds in the simulation test.)
            let total = if sd == 0.0 {
                v.max(seed_sampling_floor(runs))
            } else {
                sd * sd / k as f64 + v
            };
            let h = t975(k as f64 - 1.0) * total.sqrt();
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

// ---------------------------------------------------------------------------
// How a gain changes with model size.
//
// A gain at one size is the STILTs result minus the baseline at that size,
// paired by seed and by example as `paired_seed_delta` pairs them. Gains at
// different sizes come from different models, so their seeds are
// independent, but every size is scored on the same test examples: a
// contrast of gains across sizes (a difference, a slope) pairs them by
// example. Its variance is
//
//   Σ_s c_s² · s²_s / k_s                      (each size's seed spread)
// + (1/n) · [Var_i(Σ_s c_s · ḡ_s(i)) − Σ_s c_s² · MS_res,s / k_s]₊
//                                            (the examples, paired)
//
// with ḡ_s(i) the gain on example i averaged over the k_s seeds of size s
// and MS_res,s the residual mean square of the seeds × examples analysis of
// variance at that size (the seed × example noise is in s²_s already, so it
// is taken out of the examples' term, as `example_variance` does for one
// size). Languages are strata: each adds its term, the sum divided by the
// number of languages squared (the average over them). Degrees of freedom:
// Welch–Satterthwaite over the seed terms (k_s − 1 each) and the examples'
// term (n − 1), so a contrast over sizes with 3 seeds each has about 2 to
// 6 degrees of freedom, not the thousands the examples alone would claim.
// Where `compare` reports a wider interval for a size's gain than these
// terms give (t over the seeds' degrees of freedom for the whole variance,
// its floor for seeds that score alike, the hull of the examples-only
// interval), one more term w_s per size makes up the difference,
// Σ_s c_s² · w_s with k_s − 1 degrees of freedom (`SizeGain::holding`): a
// contrast is built on the intervals the gain table shows, never narrower
// than a gain it contains.

/// Student's t quantile: the `p` quantile with `df` degrees of freedom
/// (fractional df, as Welch–Satterthwaite gives, are fine); the normal
/// quantile for infinite df.
///
/// ```
/// use stilts_protocol::stats::t_quantile;
/// assert!((t_quantile(0.975, 1.0) - 12.7062).abs() < 1e-3);
/// assert!((t_quantile(0.975, 2.5) - 3.57465).abs() < 1e-3);
/// assert!((t_quantile(0.975, f64::INFINITY) - 1.95996).abs() < 1e-4);
/// ```
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    if !df.is_finite() || df > 1e7 {
        return Normal::new(0.0, 1.0).map_or(f64::NAN, |d| d.inverse_cdf(p));
    }
    StudentsT::new(0.0, 1.0, df.max(1e-3)).map_or(f64::NAN, |d| d.inverse_cdf(p))
}

/// The two-sided p-value of a t statistic with `df` degrees of freedom.
///
/// ```
/// use stilts_protocol::stats::t_p_value;
/// assert!((t_p_value(12.7062, 1.0) - 0.05).abs() < 1e-4);
/// assert!((t_p_value(-1.95996, f64::INFINITY) - 0.05).abs() < 1e-4);
/// assert_eq!(t_p_value(0.0, 3.0), 1.0);
/// ```
pub fn t_p_value(t: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    if t.is_nan() {
        return f64::NAN;
    }
    let upper = if !df.is_finite() || df > 1e7 {
        Normal::new(0.0, 1.0).map_or(f64::NAN, |d| d.sf(t.abs()))
    } else {
        StudentsT::new(0.0, 1.0, df.max(1e-3)).map_or(f64::NAN, |d| d.sf(t.abs()))
    };
    (2.0 * upper).min(1.0)
}

/// Holm's step-down adjustment of `p` (any order; NaN stays NaN and does
/// not count as a test): the adjusted p-values, in the same order.
///
/// ```
/// use stilts_protocol::stats::holm;
/// assert_eq!(holm(&[0.01, 0.04, 0.03]), vec![0.03, 0.06, 0.06]);
/// assert_eq!(holm(&[0.5, f64::NAN])[0], 0.5);
/// ```
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = idx.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in idx.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// The gain at one model size, kept in the form contrasts across sizes
/// need: built by [`SizeGain::new`] from the baseline's and the new
/// condition's runs at that size.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeGain {
    /// The gain in points (new minus baseline, means over seeds).
    pub mean: f64,
    /// Seeds (the fewer of the two sides).
    pub seeds: usize,
    /// The seed terms of its variance: (variance of one seed's score, seeds
    /// it is averaged over). Paired by seed: one term, the spread of the
    /// per-seed gains; unpaired (different seed counts): one per side.
    pub seed_terms: Vec<(f64, usize)>,
    /// Per language: the gain on each example averaged over seeds (points)
    /// and the seed × example noise already in the seed terms
    /// (Σ MS_residual / k over the sides, points²; 0 with one seed).
    /// `None` without per-example scores.
    pub examples: Option<Vec<(Vec<f64>, f64)>>,
    /// Variance (points²) added so that this gain's interval alone is as
    /// wide as the one `compare` reports for it (see
    /// [`SizeGain::holding`]); 0 from [`SizeGain::new`]. Counted with
    /// seeds − 1 degrees of freedom (infinite with one seed).
    pub widen: f64,
}

/// Mean of `runs[seed][stratum][i]` over seeds, in points, and the residual
/// mean square of the seeds × examples analysis of variance of that stratum
/// (0 with one seed).
fn columns_and_residual(runs: &[Strata], l: usize) -> (Vec<f64>, f64) {
    let k = runs.len();
    let n = runs[0][l].len();
    let y = |s: usize, i: usize| 100.0 * runs[s][l][i];
    let col: Vec<f64> = (0..n)
        .map(|i| (0..k).map(|s| y(s, i)).sum::<f64>() / k as f64)
        .collect();
    if k < 2 || n < 2 {
        return (col, 0.0);
    }
    let row: Vec<f64> = (0..k)
        .map(|s| (0..n).map(|i| y(s, i)).sum::<f64>() / n as f64)
        .collect();
    let grand = row.iter().sum::<f64>() / k as f64;
    let mut sse = 0.0;
    for (s, r) in row.iter().enumerate() {
        for (i, c) in col.iter().enumerate() {
            sse += (y(s, i) - r - c + grand).powi(2);
        }
    }
    (col, sse / ((k - 1) * (n - 1)) as f64)
}

fn same_shape(runs: &[Strata], like: &Strata) -> bool {
    runs.iter().all(|r| {
        r.len() == like.len()
            && r.iter()
                .zip(like)
                .all(|(a, b)| a.len() == b.len() && !a.is_empty())
    })
}

impl SizeGain {
    /// The gain of `b` over `a` at one size: per-seed scores (points) and,
    /// where kept, per-example scores (`[seed][language][example]`, every
    /// run on the same examples; empty when not kept). Paired by seed when
    /// both sides have the same number of seeds, as `compare` pairs them.
    ///
    /// ```
    /// use stilts_protocol::stats::SizeGain;
    /// let g = SizeGain::new(&[60.0, 62.0], &[], &[65.0, 66.0], &[]);
    /// assert_eq!(g.mean, 4.5);
    /// assert!((g.seed_terms[0].0 - 0.5).abs() < 1e-12 && g.seed_terms[0].1 == 2);
    /// assert!(g.examples.is_none());
    /// ```
    pub fn new(
        a_values: &[f64],
        a_runs: &[Strata],
        b_values: &[f64],
        b_runs: &[Strata],
    ) -> SizeGain {
        let (ka, kb) = (a_values.len(), b_values.len());
        let (ma, sa) = mean_std(a_values);
        let (mb, sb) = mean_std(b_values);
        let paired = ka == kb;
        let seed_terms = if paired {
            let d: Vec<f64> = a_values.iter().zip(b_values).map(|(a, b)| b - a).collect();
            let (_, sd) = mean_std(&d);
            vec![(sd * sd, ka)]
        } else {
            vec![(sa * sa, ka), (sb * sb, kb)]
        };
        let examples = (|| {
            let like = a_runs.first()?;
            if a_runs.len() != ka || b_runs.len() != kb || like.is_empty() {
                return None;
            }
            if !same_shape(a_runs, like) || !same_shape(b_runs, like) {
                return None;
            }
            let strata = like.len();
            if paired {
                let d: Vec<Strata> = a_runs
                    .iter()
                    .zip(b_runs)
                    .map(|(ra, rb)| {
                        ra.iter()
                            .zip(rb)
                            .map(|(xa, xb)| xa.iter().zip(xb).map(|(x, y)| y - x).collect())
                            .collect()
                    })
                    .collect();
                Some((0..strata).map(|l| columns_and_residual(&d, l)).collect())
            } else {
                Some(
                    (0..strata)
                        .map(|l| {
                            let (ca, ra) = columns_and_residual(a_runs, l);
                            let (cb, rb) = columns_and_residual(b_runs, l);
                            let col = ca.iter().zip(&cb).map(|(x, y)| y - x).collect();
                            (col, ra / ka as f64 + rb / kb as f64)
                        })
                        .collect(),
                )
            }
        })();
        // Paired: the residual is of the per-seed differences, over k seeds.
        let examples = examples.map(|v: Vec<(Vec<f64>, f64)>| {
            if paired {
                v.into_iter()
                    .map(|(c, r)| (c, r / ka.max(1) as f64))
                    .collect()
            } else {
                v
            }
        });
        SizeGain {
            mean: mb - ma,
            seeds: ka.min(kb),
            seed_terms,
            examples,
            widen: 0.0,
        }
    }

    /// The gain `compare` reports at one size, in the form contrasts across
    /// sizes need: [`SizeGain::new`] held to [`paired_seed_delta`]'s
    /// interval with the same `resamples` and `seed` (see
    /// [`SizeGain::holding`]). What `modulation` and the gain plot use, so
    /// a difference between sizes is built on the very variance the gain
    /// table shows.
    ///
    /// ```
    /// use stilts_protocol::stats::{contrast, paired_seed_delta, SizeGain};
    /// // Two seeds a side that score alike but disagree on examples.
    /// let run = |m: usize| vec![(0..60).map(|i| f64::from(u8::from(i % 3 == m))).collect::<Vec<_>>()];
    /// let (av, bv) = ([100.0 / 3.0; 2], [100.0 / 3.0; 2]);
    /// let (ar, br) = ([run(0), run(1)], [run(1), run(2)]);
    /// let reported = paired_seed_delta(&av, &ar, &bv, &br, 200, 1).ci.unwrap();
    /// let g = SizeGain::paired(&av, &ar, &bv, &br, 200, 1);
    /// let own = contrast(&[&g], &[1.0]).unwrap().ci;
    /// assert!(own.0 <= reported.0 + 1e-9 && own.1 >= reported.1 - 1e-9);
    /// ```
    pub fn paired(
        a_values: &[f64],
        a_runs: &[Strata],
        b_values: &[f64],
        b_runs: &[Strata],
        resamples: usize,
        seed: u64,
    ) -> SizeGain {
        let reported = paired_seed_delta(a_values, a_runs, b_values, b_runs, resamples, seed);
        SizeGain::new(a_values, a_runs, b_values, b_runs).holding(&reported)
    }

    /// This gain with [`SizeGain::widen`] set so that the interval of
    /// this gain alone (`contrast` of it with coefficient 1) is as wide as
    /// `reported`'s (the interval `compare` prints for it), the least
    /// widening that does (bisection: the half-width grows with it); 0
    /// where it is as wide already.
    ///
    /// `compare` takes t over the seeds' degrees of freedom for the whole
    /// variance (seeds and test set), never reports an interval narrower
    /// than the data allow (its floor for seeds that score alike, the hull
    /// of the examples-only interval), and its intervals are what a reader
    /// sees beside a difference. Built on the variance terms alone, with
    /// Welch–Satterthwaite degrees of freedom, a difference between sizes
    /// came out narrower than the one gain it contains (a size whose gain
    /// was exactly 0 beside one printed as ±48 gave a difference of ±7.7).
    /// Held to `compare`'s intervals, a contrast is as conservative as the
    /// gains it combines.
    pub fn holding(mut self, reported: &SeedEstimate) -> SizeGain {
        self.widen = 0.0;
        let Some((lo, hi)) = reported.ci else {
            return self;
        };
        let half = (reported.mean - lo).max(hi - reported.mean);
        if !(half > 0.0 && half.is_finite()) {
            return self;
        }
        let mut probe = self.clone();
        let mut covers = |w: f64| {
            probe.widen = w;
            contrast(&[&probe], &[1.0]).is_some_and(|c| c.ci.1 - c.estimate >= half)
        };
        if covers(0.0) {
            return self;
        }
        // t is never below the normal quantile: this much always reaches it.
        let mut high = (half / t_quantile(0.975, f64::INFINITY)).powi(2) * 1.000001;
        if !covers(high) {
            return self;
        }
        let mut low = 0.0;
        for _ in 0..100 {
            let mid = 0.5 * (low + high);
            if covers(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        self.widen = high;
        self
    }

    /// Whether the seed spread can be estimated (every side has 2+ seeds).
    pub fn has_seed_spread(&self) -> bool {
        self.seed_terms.iter().all(|&(_, k)| k >= 2)
    }
}

/// A linear combination of gains at several sizes (a gain, a difference
/// between sizes, a slope) with its 95% interval and its test against 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contrast {
    /// The estimate (points, or points per 10× parameters for a slope).
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// The 95% interval, `estimate ± t(0.975, df) · se`.
    pub ci: (f64, f64),
    /// Two-sided p-value of "it is 0".
    pub p: f64,
    /// What the interval holds: seeds and examples, seeds only (no
    /// per-example scores), or examples only (a size with one seed).
    pub method: IntervalMethod,
}

/// The variance of the example means' contrast `Σ c_s ḡ_s` that is not in
/// the seed terms, and its degrees of freedom (examples − 1), or `None`
/// without per-example scores of the same shape at every size.
fn examples_term(gains: &[&SizeGain], coef: &[f64]) -> Option<(f64, f64)> {
    let first = gains.first()?.examples.as_ref()?;
    let strata = first.len();
    for g in gains {
        let ex = g.examples.as_ref()?;
        if ex.len() != strata || ex.iter().zip(first).any(|(a, b)| a.0.len() != b.0.len()) {
            return None;
        }
    }
    let mut total = 0.0;
    let mut n_min = usize::MAX;
    for l in 0..strata {
        let n = first[l].0.len();
        n_min = n_min.min(n);
        if n < 2 {
            return None;
        }
        let z: Vec<f64> = (0..n)
            .map(|i| {
                gains
                    .iter()
                    .zip(coef)
                    .map(|(g, c)| c * g.examples.as_ref().map_or(0.0, |e| e[l].0[i]))
                    .sum()
            })
            .collect();
        let (_, sd) = mean_std(&z);
        let noise: f64 = gains
            .iter()
            .zip(coef)
            .map(|(g, c)| c * c * g.examples.as_ref().map_or(0.0, |e| e[l].1))
            .sum();
        total += (sd * sd - noise).max(0.0) / n as f64;
    }
    Some((total / (strata * strata) as f64, (n_min - 1) as f64))
}

/// `Σ coef[s] · gains[s]` with its 95% interval and p-value (see the
/// section's notes for the variance and degrees of freedom). `None` when
/// no variance can be estimated (one seed and no per-example scores).
///
/// ```
/// use stilts_protocol::stats::{contrast, SizeGain};
/// let small = SizeGain::new(&[60.0, 61.0, 59.0], &[], &[63.0, 63.5, 62.0], &[]);
/// let large = SizeGain::new(&[70.0, 71.0, 70.5], &[], &[71.0, 71.5, 71.0], &[]);
/// let d = contrast(&[&small, &large], &[-1.0, 1.0]).unwrap();
/// assert!((d.estimate - (0.6666667 - 2.8333333)).abs() < 1e-6);
/// // Equal seed spreads at both sizes, 2 degrees of freedom each: 4 in all.
/// assert!(d.ci.0 < d.estimate && d.estimate < d.ci.1 && (d.df - 4.0).abs() < 1e-9);
/// ```
pub fn contrast(gains: &[&SizeGain], coef: &[f64]) -> Option<Contrast> {
    let estimate: f64 = gains.iter().zip(coef).map(|(g, c)| c * g.mean).sum();
    let spread = gains.iter().all(|g| g.has_seed_spread());
    let mut var = 0.0;
    let mut denom = 0.0;
    if spread {
        for (g, c) in gains.iter().zip(coef) {
            for &(s2, k) in &g.seed_terms {
                let v = c * c * s2 / k as f64;
                var += v;
                denom += v * v / (k as f64 - 1.0);
            }
        }
    }
    let ex = examples_term(gains, coef);
    let method = match (spread, ex.is_some()) {
        (true, true) => IntervalMethod::SeedsAndExamples,
        (true, false) => IntervalMethod::Seeds,
        (false, true) => IntervalMethod::ExamplesOnly,
        (false, false) => return None,
    };
    if let Some((v, df)) = ex {
        var += v;
        denom += v * v / df;
    }
    // What `compare` adds beyond these terms at each size (`holding`).
    for (g, c) in gains.iter().zip(coef) {
        let v = c * c * g.widen;
        if v > 0.0 {
            var += v;
            if g.seeds >= 2 {
                denom += v * v / (g.seeds as f64 - 1.0);
            }
        }
    }
    let se = var.sqrt();
    let df = if denom > 0.0 {
        var * var / denom
    } else {
        f64::INFINITY
    };
    let h = t_quantile(0.975, df) * se;
    let p = if se > 0.0 {
        t_p_value(estimate / se, df)
    } else if estimate == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(Contrast {
        estimate,
        se,
        df,
        ci: (estimate - h, estimate + h),
        p,
        method,
    })
}

/// What the gain does across sizes (sorted by parameters): see
/// [`modulation`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Modulation {
    /// The gain at each size (the contrast of that size alone), in order.
    pub gains: Vec<Option<Contrast>>,
    /// Each larger size's gain minus the smallest size's: (size index, Δ).
    pub vs_smallest: Vec<(usize, Option<Contrast>)>,
    /// Each size's gain minus the next smaller size's, beyond the pair that
    /// `vs_smallest` has already: (size index, Δ).
    pub adjacent: Vec<(usize, Option<Contrast>)>,
    /// With three or more sizes: the slope of the gain against
    /// log10(parameters), points per 10× parameters (weighted least squares,
    /// weights 1 / the variance of each size's gain).
    pub slope: Option<Contrast>,
    /// The test of "the gain does not depend on size": the slope with three
    /// or more sizes, the difference with two.
    pub test: Option<Contrast>,
}

/// The weighted-least-squares coefficients of the slope of `y` on `x`
/// (weights `w`): slope = Σ c_s y_s. `None` when the x are all equal.
fn wls_slope_coef(x: &[f64], w: &[f64]) -> Option<Vec<f64>> {
    let sw: f64 = w.iter().sum();
    let xbar = x.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let sxx: f64 = x.iter().zip(w).map(|(x, w)| w * (x - xbar).powi(2)).sum();
    (sxx > 0.0 && sxx.is_finite())
        .then(|| x.iter().zip(w).map(|(x, w)| w * (x - xbar) / sxx).collect())
}

/// The weights of the slope: 1 / the variance of each size's gain, with
/// the seed part of every variance taken from the spread pooled over the
/// sizes (the mean of their per-seed variances, each size divided by its
/// own seed count) and the examples' part each size's own. A spread from 3
/// seeds has 2 degrees of freedom: weighting by it alone gives the size
/// that happened to look steady most of the weight and an interval that
/// undercovers; pooled, the weights follow what really differs between
/// sizes (seed counts, the test set). The slope's interval still uses each
/// size's own variance. Equal weights when a variance is not positive.
fn slope_weights(gains: &[&SizeGain]) -> Vec<f64> {
    let per_seed: Vec<f64> = gains
        .iter()
        .map(|g| g.seed_terms.iter().map(|t| t.0).sum::<f64>())
        .collect();
    let pooled = per_seed.iter().sum::<f64>() / gains.len().max(1) as f64;
    let vars: Vec<f64> = gains
        .iter()
        .map(|g| {
            let seeds = if g.has_seed_spread() {
                g.seed_terms
                    .iter()
                    .map(|t| pooled / g.seed_terms.len() as f64 / t.1 as f64)
                    .sum::<f64>()
            } else {
                0.0
            };
            seeds + examples_term(&[g], &[1.0]).map_or(0.0, |e| e.0) + g.widen
        })
        .collect();
    if vars.iter().all(|v| v.is_finite() && *v > 0.0) {
        vars.iter().map(|v| 1.0 / v).collect()
    } else {
        vec![1.0; gains.len()]
    }
}

/// How a gain changes with model size: `sizes` are (parameters, gain at
/// that size), any order (they are sorted by parameters here; the indices
/// in the answer are into the sorted order). Differences pair by example
/// and add the seed variance of both sizes; the slope is over
/// log10(parameters).
///
/// ```
/// use stilts_protocol::stats::{modulation, SizeGain};
/// let g = |d: f64| SizeGain::new(&[60.0, 61.0, 59.0], &[], &[60.0 + d, 61.5 + d, 59.2 + d], &[]);
/// let (a, b, c) = (g(3.0), g(2.0), g(1.0));
/// let m = modulation(&[(1e8, &a), (1e9, &b), (1e10, &c)]);
/// let s = m.slope.unwrap();
/// assert!((s.estimate + 1.0).abs() < 1e-9);
/// assert_eq!(m.vs_smallest.len(), 2);
/// assert_eq!(m.adjacent.len(), 1);
/// assert_eq!(m.test.unwrap().p, s.p);
/// ```
pub fn modulation(sizes: &[(f64, &SizeGain)]) -> Modulation {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[a].0.total_cmp(&sizes[b].0));
    let gains: Vec<&SizeGain> = order.iter().map(|&i| sizes[i].1).collect();
    let x: Vec<f64> = order.iter().map(|&i| sizes[i].0.log10()).collect();
    let diff = |a: usize, b: usize| contrast(&[gains[a], gains[b]], &[-1.0, 1.0]);
    let vs_smallest: Vec<(usize, Option<Contrast>)> =
        (1..gains.len()).map(|s| (s, diff(0, s))).collect();
    let adjacent: Vec<(usize, Option<Contrast>)> =
        (2..gains.len()).map(|s| (s, diff(s - 1, s))).collect();
    let slope = if gains.len() >= 3 {
        wls_slope_coef(&x, &slope_weights(&gains)).and_then(|c| contrast(&gains, &c))
    } else {
        None
    };
    let test = if gains.len() >= 3 {
        slope.clone()
    } else {
        vs_smallest.first().and_then(|(_, c)| c.clone())
    };
    Modulation {
        gains: gains.iter().map(|g| contrast(&[g], &[1.0])).collect(),
        vs_smallest,
        adjacent,
        slope,
        test,
    }
}

/// The fitted gain at `log10(parameters) = at` with its 95% interval (the
/// weighted line of [`modulation`]'s slope), for drawing its band; `None`
/// with fewer than two distinct sizes.
pub fn fitted_gain(sizes: &[(f64, &SizeGain)], at: f64) -> Option<Contrast> {
    let gains: Vec<&SizeGain> = sizes.iter().map(|s| s.1).collect();
    let x: Vec<f64> = sizes.iter().map(|s| s.0.log10()).collect();
    let w = slope_weights(&gains);
    let b = wls_slope_coef(&x, &w)?;
    let sw: f64 = w.iter().sum();
    let xbar = x.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let coef: Vec<f64> = w
        .iter()
        .zip(&b)
        .map(|(w, b)| w / sw + (at - xbar) * b)
        .collect();
    contrast(&gains, &coef)
}

/// The least seeds per cell (2 to 1000) whose 95% interval of the gain
/// would be at most ±`half_width` points, from this size's seed spread and
/// example variance; `None` when it cannot be said (one seed: no spread) or
/// no number of seeds reaches it (the test set's own variance is wider:
/// more examples are needed).
///
/// ```
/// use stilts_protocol::stats::{seeds_needed, SizeGain};
/// let g = SizeGain::new(&[60.0, 62.0], &[], &[64.0, 64.0], &[]);
/// // per-seed gains 4 and 2: sd 1.41; ±1 needs t(k-1)·1.41/√k ≤ 1.
/// assert_eq!(seeds_needed(&[&g], &[1.0], 1.0), Some(11));
/// ```
pub fn seeds_needed(gains: &[&SizeGain], coef: &[f64], half_width: f64) -> Option<usize> {
    if !gains.iter().all(|g| g.has_seed_spread()) || !(half_width > 0.0) {
        return None;
    }
    // One seed's variance of the contrast, and the examples' fixed term.
    let per_seed: Vec<f64> = gains
        .iter()
        .zip(coef)
        .flat_map(|(g, c)| g.seed_terms.iter().map(move |&(s2, _)| c * c * s2))
        .collect();
    let ex = examples_term(gains, coef);
    for k in 2..=1000usize {
        let kf = k as f64;
        let mut var = 0.0;
        let mut denom = 0.0;
        for v in &per_seed {
            var += v / kf;
            denom += (v / kf).powi(2) / (kf - 1.0);
        }
        if let Some((v, df)) = ex {
            var += v;
            denom += v * v / df;
        }
        let df = if denom > 0.0 {
            var * var / denom
        } else {
            f64::INFINITY
        };
        if t_quantile(0.975, df) * var.sqrt() <= half_width {
            return Some(k);
        }
    }
    None
}
