//! The learner's invariants under random step sequences (proptest): memory never
//! above its budget `K`; every class keeps at least one exemplar while `K ≥ t`;
//! predictions only name known classes; a save/load round trip gives
//! bit-identical scores. Small dimensions and few epochs keep each case fast.

use continual::Strategy as Kind;
use continual::{Learner, LearnerConfig, OptimizerKind};
use ndarray::Array2;
use proptest::prelude::*;

/// One step: `(class id, samples of it)` pairs; ids may repeat earlier steps'.
type Step = Vec<(u8, usize)>;

#[derive(Clone, Debug)]
struct Case {
    dim: usize,
    hidden: Vec<usize>,
    epochs: usize,
    memory: usize,
    strategy: Kind,
    steps: Vec<Step>,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let step = prop::collection::vec((0u8..8, 1usize..5), 1..4);
    (
        2usize..7,
        prop_oneof![Just(vec![]), Just(vec![4])],
        0usize..3,
        0usize..24,
        prop_oneof![
            4 => Just(Kind::Icarl),
            1 => Just(Kind::Ncm),
        ],
        prop::collection::vec(step, 1..6),
        any::<u64>(),
    )
        .prop_map(
            |(dim, hidden, epochs, memory, strategy, steps, seed)| Case {
                dim,
                hidden,
                epochs,
                memory,
                strategy,
                steps,
                seed,
            },
        )
}

/// Deterministic features of class `c`, sample `i`: a class-dependent pattern
/// plus a sample-dependent wobble (a hash, so no generator to thread through).
fn features(step: &Step, dim: usize, salt: u64) -> (Array2<f32>, Vec<String>) {
    let rows: Vec<(u8, usize)> = step
        .iter()
        .flat_map(|&(c, n)| (0..n).map(move |i| (c, i)))
        .collect();
    let x = Array2::from_shape_fn((rows.len(), dim), |(r, j)| {
        let (c, i) = rows[r];
        let h = (u64::from(c) * 31 + i as u64 * 17 + j as u64 * 7 + salt)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> 40;
        let wobble = (h % 1000) as f32 / 1000.0 - 0.5;
        let centre = if j % 8 == usize::from(c) % dim {
            2.0
        } else {
            0.0
        };
        centre + 0.3 * wobble
    });
    let labels = rows.iter().map(|&(c, _)| format!("class{c}")).collect();
    (x, labels)
}

fn learner(case: &Case) -> Learner {
    let config = LearnerConfig {
        hidden: case.hidden.clone(),
        epochs: case.epochs,
        memory: case.memory,
        seed: case.seed,
        optimizer: OptimizerKind::Sgd {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 1e-5,
        },
        batch_size: 8,
        strategy: case.strategy.clone(),
        ..LearnerConfig::default()
    };
    Learner::new(case.dim, config).expect("valid config")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Shrunk failures are kept in the source as named tests, not in files.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn memory_stays_within_budget_and_no_class_is_emptied(case in case()) {
        let mut learner = learner(&case);
        for (k, step) in case.steps.iter().enumerate() {
            let (x, labels) = features(step, case.dim, k as u64);
            learner.learn(x.view(), &labels, None).expect("learns");

            let counts = learner.exemplar_counts();
            let t = learner.classes().len();
            prop_assert_eq!(counts.len(), t);
            let stored: usize = counts.iter().sum();
            prop_assert!(stored <= case.memory, "{stored} exemplars, budget {}", case.memory);
            if case.strategy == Kind::Icarl && case.memory >= t {
                prop_assert!(
                    counts.iter().all(|&n| n >= 1),
                    "K = {} ≥ t = {t} but counts {counts:?}", case.memory
                );
            }
        }
    }

    #[test]
    fn predictions_name_only_known_classes(case in case(), probe_salt in any::<u64>()) {
        let mut learner = learner(&case);
        for (k, step) in case.steps.iter().enumerate() {
            let (x, labels) = features(step, case.dim, k as u64);
            learner.learn(x.view(), &labels, None).expect("learns");
        }
        let everything: Step = (0..8).map(|c| (c, 2)).collect();
        let (probe, _) = features(&everything, case.dim, probe_salt);
        let t = learner.classes().len();
        for &classifier in learner.classifiers() {
            let predictions = learner.predict(probe.view(), classifier, t + 3).expect("predicts");
            prop_assert_eq!(predictions.len(), probe.nrows());
            for p in &predictions {
                prop_assert!(p.index < t);
                prop_assert_eq!(&p.class, &learner.classes()[p.index]);
                prop_assert_eq!(p.top.len(), t);
                for (name, _) in &p.top {
                    prop_assert!(learner.class_index(name).is_some(), "unknown {name}");
                }
            }
        }
    }

    #[test]
    fn save_and_load_preserve_scores_bit_for_bit(case in case()) {
        let mut learner = learner(&case);
        for (k, step) in case.steps.iter().enumerate() {
            let (x, labels) = features(step, case.dim, k as u64);
            learner.learn(x.view(), &labels, None).expect("learns");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state");
        learner.save(&path).expect("saves");
        let loaded = Learner::load(&path).expect("loads");

        let everything: Step = (0..8).map(|c| (c, 2)).collect();
        let (probe, _) = features(&everything, case.dim, 99);
        for &classifier in learner.classifiers() {
            let a = learner.scores(probe.view(), classifier).expect("scores");
            let b = loaded.scores(probe.view(), classifier).expect("scores");
            let bits = |s: &Array2<f32>| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&a), bits(&b), "{:?}", classifier);
        }
        prop_assert_eq!(loaded.classes(), learner.classes());
        prop_assert_eq!(loaded.exemplar_counts(), learner.exemplar_counts());
    }
}
