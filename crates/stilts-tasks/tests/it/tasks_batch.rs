//! Batches: length-bucketed training batches (deterministic per seed, every
//! feature exactly once, less padding than random batches), token budgets,
//! evaluation in length order with results restored to the original order,
//! and collate for every head.

use candle_core::Device;
use rand::{Rng, SeedableRng};
use stilts_model::loss::IGNORE_INDEX;
use stilts_model::{HeadKind, Target};
use stilts_tasks::batch::{in_order, lengths, BUCKET_BATCHES};
use stilts_tasks::{collate, train_batches, BatchSize, EvalPlan, Feature, Label};

fn random_lengths(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            if rng.random_bool(0.1) {
                rng.random_range(100..=256)
            } else {
                rng.random_range(8..60)
            }
        })
        .collect()
}

fn covers_once(batches: &[Vec<usize>], n: usize) {
    let mut seen = vec![0u32; n];
    for b in batches {
        assert!(!b.is_empty(), "empty batch");
        for &i in b {
            seen[i] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "every feature exactly once");
}

fn padded_tokens(batches: &[Vec<usize>], lens: &[usize]) -> usize {
    batches
        .iter()
        .map(|b| b.len() * b.iter().map(|&i| lens[i]).max().unwrap())
        .sum()
}

#[test]
fn bucketed_batches_are_deterministic_and_cover_everything() {
    let lens = random_lengths(10_007, 1);
    let a = train_batches(&lens, BatchSize::Examples(32), 7);
    let b = train_batches(&lens, BatchSize::Examples(32), 7);
    let c = train_batches(&lens, BatchSize::Examples(32), 8);
    assert_eq!(a, b, "same seed, same batches");
    assert_ne!(a, c, "another seed, other batches");
    covers_once(&a, lens.len());
    covers_once(&c, lens.len());
    assert!(a.iter().all(|x| x.len() <= 32));
    // Only the last batch of each bucket may be short.
    let buckets = lens.len().div_ceil(32 * BUCKET_BATCHES);
    assert!(a.iter().filter(|x| x.len() < 32).count() <= buckets);
    // Batches come in random order, not sorted by length.
    let longest: Vec<usize> = a
        .iter()
        .map(|x| x.iter().map(|&i| lens[i]).max().unwrap())
        .collect();
    assert!(longest.windows(2).any(|w| w[0] > w[1]) && longest.windows(2).any(|w| w[0] < w[1]));
    // Less padding than batches of a plain shuffle.
    let mut order: Vec<usize> = (0..lens.len()).collect();
    rand::seq::SliceRandom::shuffle(
        &mut order[..],
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(7),
    );
    let plain: Vec<Vec<usize>> = order.chunks(32).map(|c| c.to_vec()).collect();
    let real: usize = lens.iter().sum();
    let (bucketed, random) = (padded_tokens(&a, &lens), padded_tokens(&plain, &lens));
    assert!(
        bucketed < random / 2,
        "bucketed {bucketed} vs random {random} padded tokens ({real} real)"
    );
    assert!(
        (bucketed as f64) < 1.1 * real as f64,
        "bucketed {bucketed} vs {real} real"
    );
}

#[test]
fn token_budget_bounds_padded_size() {
    let mut lens = random_lengths(5_000, 2);
    lens[17] = 5000; // longer than the budget: alone in its batch
    let budget = 4096;
    for batches in [
        train_batches(&lens, BatchSize::Tokens(budget), 3),
        EvalPlan::new(&lens, BatchSize::Tokens(budget)).batches,
    ] {
        covers_once(&batches, lens.len());
        for b in &batches {
            let longest = b.iter().map(|&i| lens[i]).max().unwrap();
            assert!(
                b.len() * longest <= budget || b.len() == 1,
                "batch of {} × {longest}",
                b.len()
            );
        }
        assert!(batches.iter().any(|b| b == &vec![17]));
        // Batches are filled: on average at least half the budget.
        assert!(padded_tokens(&batches, &lens) as f64 / batches.len() as f64 > budget as f64 / 2.0);
    }
    assert_eq!(
        train_batches(&lens, BatchSize::Tokens(budget), 3),
        train_batches(&lens, BatchSize::Tokens(budget), 3)
    );
}

#[test]
fn evaluation_runs_longest_first_and_restores_order() {
    let lens = random_lengths(3_001, 3);
    let plan = EvalPlan::new(&lens, BatchSize::Examples(64));
    covers_once(&plan.batches, lens.len());
    let flat: Vec<usize> = plan.batches.iter().flatten().map(|&i| lens[i]).collect();
    assert!(
        flat.windows(2).all(|w| w[0] >= w[1]),
        "sorted longest first"
    );
    // A "model" whose output identifies the feature: restore gives 0..n back.
    let outputs: Vec<Vec<(usize, usize)>> = plan
        .batches
        .iter()
        .map(|b| b.iter().map(|&i| (i, lens[i] * 3)).collect())
        .collect();
    let restored = plan.restore(outputs).unwrap();
    assert_eq!(restored.len(), lens.len());
    for (k, (i, v)) in restored.iter().enumerate() {
        assert_eq!((*i, *v), (k, lens[k] * 3));
    }
    // Wrong shapes are errors, not silent misalignment.
    let mut short: Vec<Vec<usize>> = plan.batches.to_vec();
    short[3].pop();
    assert!(plan.restore(short).is_err());
    assert!(plan.restore(vec![vec![0usize]]).is_err());
}

fn feat(example: usize, rows: Vec<Vec<u32>>, label: Label) -> Feature {
    Feature {
        example,
        rows,
        label,
        offsets: Vec::new(),
    }
}

#[test]
fn collate_for_each_head() {
    let dev = Device::Cpu;
    // Classification: dynamic padding to the longest row, -100 without a label.
    let f = [
        feat(0, vec![vec![0, 5, 6, 2]], Label::Class(2)),
        feat(1, vec![vec![0, 7, 2]], Label::None),
        feat(2, vec![vec![0, 2]], Label::Class(0)),
    ];
    let refs: Vec<&Feature> = f.iter().collect();
    let head = HeadKind::Classification {
        labels: vec!["a".into(), "b".into(), "c".into()],
    };
    let (inp, target) = collate(&refs, &head, 1, &dev).unwrap();
    assert_eq!(inp.dims().unwrap(), (3, 4));
    assert_eq!(
        inp.input_ids.to_vec2::<u32>().unwrap(),
        vec![vec![0, 5, 6, 2], vec![0, 7, 2, 1], vec![0, 2, 1, 1]]
    );
    assert_eq!(
        inp.attention_mask.to_vec2::<u32>().unwrap()[2],
        vec![1, 1, 0, 0]
    );
    let Target::Class(y) = target else { panic!() };
    assert_eq!(y.to_vec1::<i64>().unwrap(), vec![2, IGNORE_INDEX, 0]);
    assert_eq!(lengths(&f), vec![4, 3, 2]);

    // Multiple choice: rows example-major, choices marked.
    let mc = [
        feat(
            0,
            vec![vec![0, 1, 2], vec![0, 3], vec![0, 4, 4, 4, 2]],
            Label::Class(1),
        ),
        feat(1, vec![vec![0, 9], vec![0, 8], vec![0, 7]], Label::Class(2)),
    ];
    let refs: Vec<&Feature> = mc.iter().collect();
    let (inp, target) = collate(&refs, &HeadKind::MultipleChoice, 1, &dev).unwrap();
    assert_eq!((inp.dims().unwrap(), inp.choices), ((6, 5), 3));
    assert_eq!(
        inp.input_ids.to_vec2::<u32>().unwrap()[3],
        vec![0, 9, 1, 1, 1]
    );
    let Target::Class(y) = target else { panic!() };
    assert_eq!(y.to_vec1::<i64>().unwrap(), vec![1, 2]);
    assert_eq!(lengths(&mc), vec![15, 6]);
    let mixed = [&mc[0], &feat(2, vec![vec![0], vec![0]], Label::Class(0))];
    assert!(collate(&mixed, &HeadKind::MultipleChoice, 1, &dev)
        .unwrap_err()
        .to_string()
        .contains("mixes 3 and 2 choices"));

    // Span QA.
    let qa = [
        feat(
            0,
            vec![vec![0, 5, 2, 2, 9, 9, 2]],
            Label::Span { start: 4, end: 5 },
        ),
        feat(
            0,
            vec![vec![0, 5, 2, 2, 9, 2]],
            Label::Span { start: 0, end: 0 },
        ),
    ];
    let refs: Vec<&Feature> = qa.iter().collect();
    let (inp, target) = collate(&refs, &HeadKind::SpanQa, 1, &dev).unwrap();
    assert_eq!(inp.dims().unwrap(), (2, 7));
    let Target::Span { start, end } = target else {
        panic!()
    };
    assert_eq!(
        (
            start.to_vec1::<i64>().unwrap(),
            end.to_vec1::<i64>().unwrap()
        ),
        (vec![4, 0], vec![5, 0])
    );

    // Tagging: [B, T] padded with -100.
    let tg = [
        feat(
            0,
            vec![vec![0, 5, 6, 2]],
            Label::Tags(vec![IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX]),
        ),
        feat(
            1,
            vec![vec![0, 7, 2]],
            Label::Tags(vec![IGNORE_INDEX, 1, IGNORE_INDEX]),
        ),
    ];
    let refs: Vec<&Feature> = tg.iter().collect();
    let (_, target) = collate(
        &refs,
        &HeadKind::Tagging {
            labels: vec!["x".into(); 4],
        },
        1,
        &dev,
    )
    .unwrap();
    let Target::Tags(y) = target else { panic!() };
    assert_eq!(
        y.to_vec2::<i64>().unwrap(),
        vec![vec![-100, 3, -100, -100], vec![-100, 1, -100, -100]]
    );

    // A label of the wrong kind for the head is an error.
    assert!(collate(&[&tg[0]], &head, 1, &dev).is_err());
    assert!(collate(&[], &head, 1, &dev).is_err());
}

#[test]
fn in_order_batches_are_consecutive_in_file_order() {
    let lens = random_lengths(70, 4);
    let b = in_order(&lens, BatchSize::Examples(32));
    assert_eq!(
        b,
        vec![
            (0..32).collect::<Vec<_>>(),
            (32..64).collect(),
            (64..70).collect()
        ]
    );
    // A token budget cuts the same order where the padded batch would overflow.
    let t = in_order(&lens, BatchSize::Tokens(400));
    covers_once(&t, 70);
    assert_eq!(t.concat(), (0..70).collect::<Vec<_>>());
}
