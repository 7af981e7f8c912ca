//! The statistics-based strategies through the `Learner` API: their answer does not
//! depend on the class order or the step sizes, they save and load, and they refuse
//! the iCaRL classifiers. Also the head's bias corrections.

mod common;

use common::{Clusters, names, subset};
use continual::stats::{RidgeConfig, SldaConfig};
use continual::{Classifier, Error, Learner, LearnerConfig, Strategy};
use ndarray::{Array2, Axis};

fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::Slda(SldaConfig::default()),
        Strategy::Ridge(RidgeConfig::default()),
        Strategy::Ridge(RidgeConfig {
            projection: Some(256),
            ..RidgeConfig::default()
        }),
        Strategy::Ncm,
    ]
}

fn learner(strategy: Strategy) -> Learner {
    let config = LearnerConfig {
        strategy,
        ..LearnerConfig::default()
    };
    Learner::new(32, config).expect("valid config")
}

/// Learns `steps` (lists of class indices) from the same pool of samples.
fn learn_in_steps(
    strategy: Strategy,
    x: &Array2<f32>,
    y: &[usize],
    steps: &[Vec<usize>],
) -> Learner {
    let mut learner = learner(strategy);
    for classes in steps {
        let (xs, ys) = subset(x, y, classes);
        learner.learn(xs.view(), &names(&ys), None).expect("learns");
    }
    learner
}

/// Scores of `x` with class columns put in the order of `reference`'s classes.
fn scores_by_name(learner: &Learner, reference: &Learner, x: &Array2<f32>) -> Array2<f32> {
    let by = learner.classifiers()[0];
    let scores = learner.scores(x.view(), by).expect("scores");
    let columns: Vec<usize> = reference
        .classes()
        .iter()
        .map(|c| learner.class_index(c).expect("same classes"))
        .collect();
    scores.select(Axis(1), &columns)
}

#[test]
fn statistics_strategies_do_not_depend_on_class_order_or_step_sizes() {
    let clusters = Clusters::new(32, 8, 1.5, 3);
    let all: Vec<usize> = (0..8).collect();
    let (x, y) = clusters.sample(&all, 60, 11);
    let (xt, _) = clusters.sample(&all, 20, 12);

    // Order A: 0..8 in steps of 4, 2, 2. Order B: shuffled, steps of 1, 3, 3, 1.
    let a = vec![vec![0, 1, 2, 3], vec![4, 5], vec![6, 7]];
    let b = vec![vec![6], vec![2, 7, 0], vec![3, 1, 4], vec![5]];

    for strategy in strategies() {
        let la = learn_in_steps(strategy.clone(), &x, &y, &a);
        let lb = learn_in_steps(strategy.clone(), &x, &y, &b);
        let sa = scores_by_name(&la, &la, &xt);
        let sb = scores_by_name(&lb, &la, &xt);
        // The learners sum the same samples in another order (f64 accumulators),
        // then solve; the f32 scores agree to rounding. Observed max difference:
        // 0 to 1e-6 relative to the score range.
        let range = sa.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = (&sa - &sb).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            diff <= 1e-5 * range.max(1.0),
            "{}: scores differ by {diff} (range {range})",
            strategy.name()
        );

        let pa = la
            .predict(xt.view(), la.classifiers()[0], 1)
            .expect("predicts");
        let pb = lb
            .predict(xt.view(), lb.classifiers()[0], 1)
            .expect("predicts");
        let same = pa
            .iter()
            .zip(&pb)
            .filter(|(p, q)| p.class == q.class)
            .count();
        assert_eq!(same, pa.len(), "{}: predictions differ", strategy.name());
    }
}

#[test]
fn a_known_class_brought_again_adds_to_its_statistics() {
    // Learning class 0 in two halves equals learning it at once.
    let clusters = Clusters::new(32, 3, 1.0, 5);
    let (x, y) = clusters.sample(&[0, 1, 2], 40, 1);
    let (xt, _) = clusters.sample(&[0, 1, 2], 10, 2);
    let first: Vec<usize> = (0..y.len()).filter(|&i| y[i] != 0 || i % 2 == 0).collect();
    let second: Vec<usize> = (0..y.len()).filter(|&i| y[i] == 0 && i % 2 == 1).collect();
    for strategy in strategies() {
        let at_once = learn_in_steps(strategy.clone(), &x, &y, &[vec![0, 1, 2]]);
        let mut in_two = learner(strategy.clone());
        for rows in [&first, &second] {
            let xs = x.select(Axis(0), rows);
            let ys: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
            let report = in_two.learn(xs.view(), &names(&ys), None).expect("learns");
            if rows == &second {
                assert_eq!(report.refreshed_classes, ["class00"]);
                assert!(report.new_classes.is_empty());
            }
        }
        let a = scores_by_name(&at_once, &at_once, &xt);
        let b = scores_by_name(&in_two, &at_once, &xt);
        let diff = (&a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(diff < 1e-4, "{}: {diff}", strategy.name());
    }
}

#[test]
fn statistics_learners_round_trip_through_the_state_file_bit_for_bit() {
    let clusters = Clusters::new(32, 4, 1.5, 8);
    let (x, y) = clusters.sample(&[0, 1, 2, 3], 30, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    for strategy in strategies() {
        let learned = learn_in_steps(strategy.clone(), &x, &y, &[vec![0, 1], vec![2, 3]]);
        let path = dir.path().join(format!("{}.state", strategy.name()));
        learned.save(&path).expect("saves");
        let loaded = Learner::load(&path).expect("loads");
        let by = learned.classifiers()[0];
        let a = learned.scores(x.view(), by).expect("scores");
        let b = loaded.scores(x.view(), by).expect("scores");
        let bits = |s: &Array2<f32>| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{}", strategy.name());
        assert_eq!(loaded.config().strategy, strategy);
        assert_eq!(loaded.exemplar_counts(), [0, 0, 0, 0], "exemplar-free");
    }
}

#[test]
fn a_learner_refuses_classifiers_of_another_strategy() {
    let clusters = Clusters::new(32, 2, 1.0, 1);
    let (x, y) = clusters.sample(&[0, 1], 10, 1);
    let slda = learn_in_steps(Strategy::Slda(SldaConfig::default()), &x, &y, &[vec![0, 1]]);
    assert_eq!(slda.classifiers(), [Classifier::Slda]);
    let err = slda.scores(x.view(), Classifier::Head).unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("no head classifier") && m.contains("slda")),
        "{err}"
    );

    let icarl = Learner::new(32, LearnerConfig::default()).expect("valid");
    assert_eq!(icarl.classifiers(), [Classifier::Nme, Classifier::Head]);
}

#[test]
fn weight_aligning_equalises_old_and_new_output_norms() {
    // After a step with weight aligning, the mean norm of the new classes' output
    // rows equals the old classes' (the rows `n_old..` are scaled by γ).
    let clusters = Clusters::new(32, 4, 1.5, 2);
    let config = LearnerConfig {
        weight_align: true,
        epochs: 5,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(32, config).expect("valid");
    for classes in [vec![0, 1, 2], vec![3]] {
        let (x, y) = clusters.sample(&classes, 40, classes[0] as u64);
        learner.learn(x.view(), &names(&y), None).expect("learns");
    }
    let w = &learner.head().output.w;
    let norm = |c: usize| w.row(c).dot(&w.row(c)).sqrt();
    let old = (norm(0) + norm(1) + norm(2)) / 3.0;
    let new = norm(3);
    assert!((old - new).abs() < 1e-4 * old, "old {old}, new {new}");
}
