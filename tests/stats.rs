//! The statistics behave as their definitions say on cases with a known truth.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stilts::protocol::stats::{bootstrap_accuracy, mean_std, paired_delta};

fn bernoulli(p: f64, n: usize, rng: &mut ChaCha8Rng) -> Vec<bool> {
    (0..n).map(|_| rng.random::<f64>() < p).collect()
}

#[test]
fn mean_and_std() {
    let (m, s) = mean_std(&[70.0, 72.0, 74.0]);
    assert!((m - 72.0).abs() < 1e-12 && (s - 2.0).abs() < 1e-12);
    assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
}

/// Over many simulated test sets, the 95% interval covers the true accuracy
/// about 95% of the time.
#[test]
fn bootstrap_interval_covers_the_truth_at_its_nominal_rate() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let trials = 200;
    let mut covered = 0;
    for t in 0..trials {
        let data = vec![bernoulli(0.7, 400, &mut rng)];
        let e = bootstrap_accuracy(&data, 400, t);
        assert!(e.low <= e.value && e.value <= e.high);
        covered += (e.low <= 70.0 && 70.0 <= e.high) as usize;
    }
    let rate = covered as f64 / trials as f64;
    assert!((0.90..=0.99).contains(&rate), "coverage {rate}");
}

#[test]
fn paired_delta_finds_a_real_gain_and_not_a_fake_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 3000;
    let a: Vec<bool> = bernoulli(0.6, n, &mut rng);
    // b fixes 10% of a's errors: a true gain of about 4 points.
    let b: Vec<bool> = a.iter().map(|&x| x || rng.random::<f64>() < 0.1).collect();
    let d = paired_delta(&[a.clone()], &[b], 1000, 3);
    assert!(d.value > 0.0 && d.low > 0.0, "gain not detected: {d:?}");
    let same = paired_delta(&[a.clone()], &[a], 1000, 3);
    assert_eq!(same.value, 0.0);
    assert!(same.low <= 0.0 && same.high >= 0.0);
}
